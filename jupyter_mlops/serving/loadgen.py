"""The closed-loop load generator's client side, run as its own process by :func:`.bench.load`.

Standard library only and run by path (``python loadgen.py``), so the child imports neither
the package nor MLflow: one asyncio loop drives every client over raw keep-alive streams (a
hand-written HTTP/1.1 request, the answer read by its ``Content-Length``), cheap enough that
the client is never what a benchmark measures. It prints one JSON object: per-request
latencies (ms), statuses and the version header counts, and the CPU seconds it used.

    python loadgen.py URL CLIENTS SECONDS CONTENT_TYPE HEADER < BODY
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import urllib.parse
from collections import Counter
from typing import Any

CONNECT_TIMEOUT = 10.0
ANSWER_TIMEOUT = 30.0


class Tally:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()


async def _answer(reader: asyncio.StreamReader, header: bytes) -> tuple[int, str | None]:
    """(status, version header) of one response, its body read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, version = 0, None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == header:
            version = value.strip().decode()
    if length:
        await reader.readexactly(length)
    return status, version


async def _client(
    host: str, port: int, request: bytes, header: bytes, until: float, tally: Tally
) -> None:
    loop = asyncio.get_running_loop()
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while loop.time() < until:
        began = time.perf_counter()
        try:
            if streams is None:
                streams = await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_TIMEOUT
                )
            reader, writer = streams
            writer.write(request)
            status, version = await asyncio.wait_for(_answer(reader, header), ANSWER_TIMEOUT)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
            status, version = 0, None
            if streams is not None:
                streams[1].close()
            streams = None
        tally.latencies_ms.append((time.perf_counter() - began) * 1000.0)
        tally.statuses[status] += 1
        if version:
            tally.versions[version] += 1
    if streams is not None:
        streams[1].close()


def http_request(url: str, body: bytes, content_type: str) -> tuple[str, int, bytes]:
    """(host, port, bytes of a keep-alive ``POST {path}/invocations``)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    head = (
        f"POST {parts.path}/invocations HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return host, port, head.encode("latin-1") + body


async def run(
    url: str, body: bytes, clients: int, seconds: float, content_type: str, header: str
) -> dict[str, Any]:
    host, port, request = http_request(url, body, content_type)
    tallies = [Tally() for _ in range(clients)]
    loop = asyncio.get_running_loop()
    began = loop.time()
    until = began + seconds
    await asyncio.gather(
        *(_client(host, port, request, header.lower().encode(), until, t) for t in tallies)
    )
    elapsed = loop.time() - began
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    for tally in tallies:
        statuses.update(tally.statuses)
        versions.update(tally.versions)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": elapsed,
        "latencies_ms": [v for t in tallies for v in t.latencies_ms],
        "statuses": {str(k): v for k, v in statuses.items()},
        "versions": dict(versions),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def main(argv: list[str]) -> int:
    url, clients, seconds, content_type, header = argv
    body = sys.stdin.buffer.read()
    result = asyncio.run(run(url, body, int(clients), float(seconds), content_type, header))
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
