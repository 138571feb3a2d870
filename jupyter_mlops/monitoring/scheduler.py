"""The headless schedule host: ``python -m jupyter_mlops.monitoring.scheduler HOME [--poll S]``.

Runs the schedules of the store at HOME until SIGTERM/SIGINT; exits 3 at once when another host
(a Jupyter server, another of these) already runs them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .schedules import start_host

ALREADY_HOSTED = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_mlops.monitoring.scheduler")
    parser.add_argument("home", help="the project store folder (.mlops)")
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between job-store reads")
    args = parser.parse_args(argv)
    home = Path(args.home).expanduser().resolve()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before the host exists: no stop is lost
        signal.signal(signum, lambda *_: stop.set())
    host = start_host(home, args.poll)
    if host is None:
        print(f"another scheduler host already runs the schedules of {home}", file=sys.stderr)
        return ALREADY_HOSTED
    print(f"running the schedules of {home}", flush=True)
    stop.wait()
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
