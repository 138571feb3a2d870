"""The benchmarks' link relay (tests/benchmarks/link.py): every byte arrives, at the link's pace.

The S3 rows of bench_remote rest on it, so a relay that dropped bytes or did not slow them would
make those rows wrong without failing anything else.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.lab_server import free_port

LINK = Path(__file__).parent / "benchmarks" / "link.py"
PAYLOAD = bytes(range(256)) * (8 << 10)  # 2 MiB
MBPS = 8.0


def echo_server() -> tuple[socket.socket, int]:
    """A server that sends back whatever each connection sends it."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1 << 16):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return listener, int(listener.getsockname()[1])


def connect(port: int, deadline_s: float = 20.0) -> socket.socket:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_link_relays_every_byte_at_its_pace_each_way() -> None:
    listener, target = echo_server()
    port = free_port()
    args = ["--port", str(port), "--to", f"127.0.0.1:{target}", "--mbps", str(MBPS)]
    relay = subprocess.Popen([sys.executable, str(LINK), *args])
    try:
        with connect(port) as conn:
            started = time.monotonic()
            sender = threading.Thread(target=conn.sendall, args=(PAYLOAD,))
            sender.start()
            received = bytearray()
            while len(received) < len(PAYLOAD):
                chunk = conn.recv(1 << 16)
                assert chunk, "the relay closed the connection early"
                received.extend(chunk)
            took = time.monotonic() - started
            sender.join()
        assert bytes(received) == PAYLOAD
        # 2 MiB each way at 8 MB/s: at least ~0.26 s (both directions run at once).
        floor = len(PAYLOAD) / (MBPS * 1e6) * 0.9
        assert took >= floor, f"{took:.3f} s for {len(PAYLOAD)} bytes: the link did not slow them"
        assert took < 10 * floor  # and it does carry them at about its pace
    finally:
        relay.kill()
        relay.wait()
        listener.close()
