"""Benchmark: ``%load_ext jupyter_mlops`` in a fresh IPython, against importing MLflow.

Run: ``python tests/benchmarks/bench_load_ext.py [--repeat N]``. Each sample is a new Python
process with an IPython shell already started (as in a new kernel); timed is only the line the
user runs: ``%load_ext jupyter_mlops`` (ours, MLflow stays unimported until a cell needs it)
against ``import mlflow`` (what an extension that imports its tracking client eagerly pays).
Medians of N samples; the ratio is the peer's time over ours. The unit test
``test_load_ext_imports_nothing_heavy`` checks what keeps it fast, without timing it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

SAMPLE = """
import json, sys, time
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
started = time.perf_counter()
{line}
print(json.dumps(time.perf_counter() - started))
"""
CASES = {
    "%load_ext jupyter_mlops (ours)": "ip.run_line_magic('load_ext', 'jupyter_mlops')",
    "import mlflow (peer)": "import mlflow",
}


def sample(line: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", SAMPLE.format(line=line)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    medians = {
        name: statistics.median(sample(line) for _ in range(args.repeat))
        for name, line in CASES.items()
    }
    ours = medians["%load_ext jupyter_mlops (ours)"]
    print(f"first line of a new kernel, median of {args.repeat} fresh processes")
    print(f"{'case':<36}{'seconds':>10}{'peer / ours':>14}")
    for name, seconds in medians.items():
        print(f"{name:<36}{seconds:>10.3f}{seconds / ours:>14.1f}")


if __name__ == "__main__":
    main()
