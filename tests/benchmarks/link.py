"""A TCP relay on 127.0.0.1 that carries at most ``--mbps`` megabytes a second each way.

For the benchmarks' S3 rows: moto on loopback moves bytes at memory speed, so a save there is
timed as if the network cost nothing; behind this relay both sides (ours and the peer) pay what
a link of a given speed costs. Every connection shares one budget per direction, as on one link.
Run: ``python tests/benchmarks/link.py --port P --to 127.0.0.1:Q --mbps 100`` (in its own
process, so that relaying takes no GIL time from the process being timed).
"""

from __future__ import annotations

import argparse
import asyncio
import time

BURST_S = 0.005  # how far ahead of the link's pace a read may go before it waits
READ_BYTES = 64 << 10


class Pace:
    """One direction of the link: each read is given the time its bytes take at ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.due = time.monotonic()

    async def take(self, n: int) -> None:
        now = time.monotonic()
        self.due = max(self.due, now) + n / self.rate
        wait = self.due - now - BURST_S
        if wait > 0:
            await asyncio.sleep(wait)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pace: Pace) -> None:
    try:
        while data := await reader.read(READ_BYTES):
            await pace.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(port: int, host: str, target_port: int, mbps: float) -> None:
    up, down = Pace(mbps * 1e6), Pace(mbps * 1e6)

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w, up), _pipe(server_r, client_w, down))

    server = await asyncio.start_server(relay, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--to", required=True, help="HOST:PORT of the server relayed to")
    parser.add_argument("--mbps", type=float, required=True, help="megabytes per second")
    args = parser.parse_args()
    host, _, port = args.to.rpartition(":")
    asyncio.run(serve(args.port, host, int(port), args.mbps))


if __name__ == "__main__":
    main()
