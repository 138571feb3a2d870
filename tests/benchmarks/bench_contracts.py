"""Benchmark: ``%expect check`` on a large snapshot against pandera run directly on the frame.

Run: ``python tests/benchmarks/bench_contracts.py`` (10M rows, the issue's size) or
``--rows 1000000``. The snapshot has four columns (a unique id, an int age, a string plan, a float
income with 1% NaN). Two contracts:

* manifest rules (row count, min/max bounds, dtype, schema strict, not null on an int column):
  ours answers them from the manifest without reading data; the peer is pandera validating the
  same rules on the frame already in memory, and "load + pandera" adds reading the snapshot.
* data rules (unique, allowed values, null share of a float): ours loads the snapshot (verified)
  and runs one pandera schema per rule; the peer is one pandera schema with all of them on the
  loaded frame. "ours, checks only" is our pandera step alone on that loaded frame.

Each timing is the best of ``--repeat`` runs; the table prints seconds and ratios to the peer.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MANIFEST_RULES = [
    "rows >= 1000",
    "age between 0 120",
    "customer_id >= 0",
    "age dtype int64",
    "age not null",
    "schema strict",
]
DATA_RULES = ["customer_id unique", "plan in {free, pro, team}", "income not null >= 0.95"]


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    income = rng.lognormal(8, 0.5, rows)
    income[rng.random(rows) < 0.01] = np.nan
    return pd.DataFrame(
        {
            "customer_id": np.arange(rows),
            "age": rng.integers(18, 90, rows),
            "plan": np.array(["free", "pro", "team"])[rng.integers(0, 3, rows)],
            "income": income,
        }
    )


def best(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return min(times)


def one_schema(texts: list[str], columns: list[tuple[str, str]]) -> object:
    """The peer: the same rules written as one pandera schema by hand."""
    import pandera.pandas as pa

    checks: dict[str, list[object]] = {}
    options: dict[str, dict[str, object]] = {}
    frame_checks = []
    strict = False
    for text in texts:
        if text == "rows >= 1000":
            frame_checks.append(pa.Check(lambda df: len(df) >= 1000))
        elif text == "age between 0 120":
            checks.setdefault("age", []).append(pa.Check.in_range(0, 120))
        elif text == "customer_id >= 0":
            checks.setdefault("customer_id", []).append(pa.Check.ge(0))
        elif text == "age dtype int64":
            options.setdefault("age", {})["dtype"] = "int64"
        elif text == "age not null":
            options.setdefault("age", {})["nullable"] = False
        elif text == "schema strict":
            strict = True
        elif text == "customer_id unique":
            options.setdefault("customer_id", {})["unique"] = True
        elif text.startswith("plan in"):
            checks.setdefault("plan", []).append(pa.Check.isin(["free", "pro", "team"]))
        elif text.startswith("income not null"):
            checks.setdefault("income", []).append(
                pa.Check(lambda s: s.notna().mean() >= 0.95, element_wise=False, ignore_na=False)
            )
    names = [c for c, _ in columns] if strict else sorted(set(checks) | set(options))
    schema_columns = {}
    for name in names:
        opts = {"nullable": True, **options.get(name, {})}
        schema_columns[name] = pa.Column(checks=checks.get(name), **opts)  # type: ignore[arg-type]
    return pa.DataFrameSchema(schema_columns, checks=frame_checks, strict=strict)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-contracts-") as tmp:
        os.environ["MLOPS_HOME"] = str(Path(tmp) / ".mlops")
        os.chdir(tmp)
        import jupyter_mlops as mlops
        from jupyter_mlops.context import current_settings
        from jupyter_mlops.contracts import service
        from jupyter_mlops.contracts.guard import check_frame

        data = frame(args.rows)
        began = time.perf_counter()
        mlops.snapshot(data, "big")
        print(f"snapshot of {args.rows:,} rows saved in {time.perf_counter() - began:.1f} s")
        settings = current_settings()
        columns = [(str(c), str(t)) for c, t in data.dtypes.items()]
        mlops.expect("manifest", *MANIFEST_RULES)
        mlops.expect("data", *DATA_RULES)
        manifest_contract = service.store.read(settings.home, "manifest")
        data_contract = service.store.read(settings.home, "data")
        # "schema strict" pinned nothing for a name without versions: pin big's columns
        from jupyter_mlops.contracts.rules import STRICT, Rule

        pinned = tuple(
            Rule(STRICT, columns=tuple(columns)) if r.kind == STRICT else r
            for r in manifest_contract.rules
        )
        service.store.add(settings.home, "manifest", lambda _latest: pinned)

        check = service.check(settings, "big", contract="manifest", keep=False)
        assert check.passed and all(o.from_manifest for o in check.outcomes), check
        check = service.check(settings, "big", contract="data", keep=False)
        assert check.passed and not any(o.from_manifest for o in check.outcomes), check

        loaded = mlops.load("big")
        peer_manifest = one_schema(MANIFEST_RULES, columns)
        peer_data = one_schema(DATA_RULES, columns)
        rows = [
            (
                "manifest rules",
                best(
                    args.repeat,
                    lambda: service.check(settings, "big", contract="manifest", keep=False),
                ),
                best(args.repeat, lambda: peer_manifest.validate(loaded, lazy=True)),  # type: ignore[attr-defined]
                best(
                    1,
                    lambda: peer_manifest.validate(mlops.load("big"), lazy=True),  # type: ignore[attr-defined]
                ),
            ),
            (
                "data rules",
                best(
                    args.repeat, lambda: service.check(settings, "big", contract="data", keep=False)
                ),
                best(args.repeat, lambda: peer_data.validate(loaded, lazy=True)),  # type: ignore[attr-defined]
                best(1, lambda: peer_data.validate(mlops.load("big"), lazy=True)),  # type: ignore[attr-defined]
            ),
            (
                "data rules, checks only",
                best(args.repeat, lambda: check_frame(data_contract, loaded)),
                best(args.repeat, lambda: peer_data.validate(loaded, lazy=True)),  # type: ignore[attr-defined]
                float("nan"),
            ),
        ]
        print(f"\n%expect check on a {args.rows:,}-row snapshot (best of {args.repeat})")
        header = (
            f"{'contract':<26}{'ours s':>10}{'pandera on frame s':>20}{'ratio':>8}"
            f"{'load+pandera s':>16}{'ratio':>8}"
        )
        print(header)
        print("-" * len(header))
        for name, ours, peer, loaded_peer in rows:
            print(
                f"{name:<26}{ours:>10.4f}{peer:>20.4f}{ours / peer:>8.3f}"
                f"{loaded_peer:>16.3f}{ours / loaded_peer:>8.3f}"
            )


if __name__ == "__main__":
    main()
