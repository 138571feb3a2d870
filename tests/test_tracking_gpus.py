"""The GPUs a %%track run records, from ``nvidia-smi`` output as drivers really print it.

There is no GPU on the test machines, so a stand-in ``nvidia-smi`` on PATH answers the query it
is given with fields taken from real driver output, including the ``[N/A]`` a driver prints
for memory it cannot report (MIG, some vGPUs). That is the honest way to exercise the parser;
NVML is made unimportable here so the ``nvidia-smi`` path is the one under test.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_mlops.environment import Gpu, visible_subset
from jupyter_mlops.tracking import context
from tests.tracking_support import all_runs

GPUS = [
    {"index": "0", "uuid": "GPU-0aa1b2c3-1111-2222-3333-444455556666",
     "name": "NVIDIA A100-SXM4-80GB", "memory.total": "81920"},
    {"index": "1", "uuid": "GPU-7bb1b2c3-1111-2222-3333-444455556666",
     "name": "NVIDIA A100-SXM4-80GB", "memory.total": "[N/A]"},
    {"index": "2", "uuid": "GPU-9cc1b2c3-1111-2222-3333-444455556666",
     "name": "NVIDIA H100 80GB HBM3", "memory.total": "81559"},
]  # fmt: skip

FAKE_SMI = """#!{python}
import json, sys
query = next(a for a in sys.argv if a.startswith("--query-gpu="))
fields = query.split("=", 1)[1].split(",")
for gpu in json.loads({gpus!r}):
    print(", ".join(gpu[f] for f in fields))
"""


@pytest.fixture
def fake_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nvidia-smi"
    script.write_text(FAKE_SMI.format(python=sys.executable, gpus=json.dumps(GPUS)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    context.environment_tags.cache_clear()  # asked once per process; ask again here
    yield
    context.environment_tags.cache_clear()


def recorded_gpus(ip: Any, store: Path) -> list[dict[str, Any]]:
    result = ip.run_cell("%%track --experiment gpus\npass\n")
    assert result.error_in_exec is None, result.error_in_exec
    (run,) = all_runs(store)
    gpus: list[dict[str, Any]] = json.loads(run.data.tags["mlops.gpus"])
    return gpus


def test_na_memory_is_recorded_as_unknown(fake_smi: None, ip: Any, store: Path) -> None:
    assert [(g["index"], g["memory_mib"]) for g in recorded_gpus(ip, store)] == [
        (0, 81920),
        (1, None),
        (2, 81559),
    ]


def test_uuid_style_cuda_visible_devices_selects_those_gpus(
    fake_smi: None, ip: Any, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A unique prefix is enough for CUDA; the order is CUDA_VISIBLE_DEVICES's own.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{GPUS[2]['uuid']},GPU-7bb")
    assert [(g["index"], g["uuid"]) for g in recorded_gpus(ip, store)] == [
        (2, GPUS[2]["uuid"]),
        (1, GPUS[1]["uuid"]),
    ]


def gpu(index: int, uuid: str) -> Gpu:
    return Gpu(index, "g", 1, uuid)


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [0, 1, 2]),
        ("", []),
        ("-1", []),
        ("2,0", [2, 0]),
        ("0,7,1", [0]),  # CUDA stops at the first entry naming no device
        ("GPU-a", []),  # ambiguous prefix: CUDA refuses it
        ("GPU-ab,1", [1]),
        ("0,0", [0]),
        (" 1 , GPU-c ", [1, 2]),
    ],
)
def test_visible_subset_reads_cuda_visible_devices_as_cuda_does(
    visible: str | None, expected: list[int]
) -> None:
    gpus = [gpu(0, "GPU-aa11"), gpu(1, "GPU-ab22"), gpu(2, "GPU-cc33")]
    assert [g.index for g in visible_subset(gpus, visible)] == expected
