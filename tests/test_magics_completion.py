"""Tab completion of the magics (names read from a real store) and did-you-mean usage errors.

Completion is checked through the shell's own ``complete()`` and through a real kernel's
``complete_request``, the message JupyterLab sends on TAB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.error import UsageError

import jupyter_mlops as mlops
from jupyter_mlops.context import current_settings
from jupyter_mlops.tracking.client import mlflow_client

CASES = [
    ("%snapshot load cu", ["current", "customers"]),
    ("x = %snapshot load cu", ["current", "customers"]),
    ("%mlops snapshot load cu", ["current", "customers"]),
    ("%snapshot load current@", ["latest", "v1", "v2"]),
    ("%snapshot l", ["list", "load"]),
    ("%snapshot gc --d", ["--dry-run"]),
    ("%promote ch", ["churn"]),
    ("%promote churn --to ch", ["challenger", "champion"]),
    ("%promote churn --t", ["--to"]),
    ("%lineage churn@c", ["challenger", "champion"]),
    ("%drift a b --fail", ["--fail-on"]),
    ("%drift a b --engine ", ["evidently", "fast"]),
    ("%mlops dr", ["drift"]),
]


@pytest.fixture
def named_store(isolated_store: Path) -> Path:
    """Snapshots current (v1, v2) and customers; model churn with aliases champion, challenger."""
    mlops.snapshot(pd.DataFrame({"a": [1, 2]}), "current")
    mlops.snapshot(pd.DataFrame({"a": [1, 2, 3]}), "current")
    mlops.snapshot(pd.DataFrame({"b": [1]}), "customers")
    client = mlflow_client(current_settings().tracking_uri)
    client.create_registered_model("churn")
    for _ in range(2):
        client.create_model_version("churn", source=str(isolated_store))
    client.set_registered_model_alias("churn", "champion", "1")
    client.set_registered_model_alias("churn", "challenger", "2")
    return isolated_store


def completions(ip: Any, line: str) -> list[str]:
    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(line, len(line))]


@pytest.mark.parametrize(("line", "expected"), CASES)
def test_shell_completes_names_verbs_and_flags(
    ip: Any, named_store: Path, line: str, expected: list[str]
) -> None:
    for name in [n for n, v in ip.user_ns.items() if isinstance(v, pd.DataFrame)]:
        del ip.user_ns[name]  # the shared test shell keeps other tests' frames (also offered)
    assert completions(ip, line) == expected
    assert ip.complete("", line, len(line))[1] == expected


def test_a_real_kernel_answers_complete_request(named_store: Path) -> None:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(named_store))
    try:
        kc.execute_interactive("%load_ext jupyter_mlops", timeout=60)
        for line, expected in CASES:
            reply = kc.complete(line, len(line), reply=True, timeout=30)["content"]
            assert reply["status"] == "ok"
            assert reply["matches"] == expected, line
            assert reply["cursor_end"] == len(line)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize(
    ("magic", "line", "message"),
    [
        ("drift", "a b --fail_on x", "--fail_on is not a flag, did you mean --fail-on?"),
        ("promote", "churn --too champion", "--too is not a flag, did you mean --to?"),
        ("mlops", "statsu", "unknown sub-command 'statsu'; did you mean 'status'?"),
        ("snapshot", "lod current", "unknown sub-command 'lod'; did you mean 'load'?"),
    ],
)
def test_misspelt_flags_and_verbs_name_the_nearest_valid_one(
    ip: Any, magic: str, line: str, message: str
) -> None:
    with pytest.raises(UsageError) as raised:
        ip.run_line_magic(magic, line)
    assert message in str(raised.value) and "\n" not in str(raised.value)
