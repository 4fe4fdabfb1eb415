"""A TCP relay on 127.0.0.1 that limits one server to a fixed rate across all its connections.

nginx's ``limit_rate`` is per request and lets each request send one second's worth at once
(``limit = rate * (elapsed + 1)``), so many short range requests are not limited at all. This
relay shares one token bucket between every connection to it, so a server limited to 25 MB/s
sends at most 25 MB/s however it is asked::

    with Throttle(target_port=8080, rate=25_000_000) as throttle:
        url = throttle.url   # http://127.0.0.1:<port>

Run as ``python3 -m harness.throttle LISTEN_PORT TARGET_PORT RATE`` (one asyncio process).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness.procutil import free_port

CHUNK = 64 * 1024


class Bucket:
    """Bytes may be sent at ``rate`` per second, with a burst of at most one chunk."""

    def __init__(self, rate: float):
        self.rate = rate
        self.available = 0.0
        self.last = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, count: int) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.available = min(self.available + (now - self.last) * self.rate, CHUNK)
                self.last = now
                if self.available >= count:
                    self.available -= count
                    return
                await asyncio.sleep((count - self.available) / self.rate)


async def relay(reader, writer, bucket: Bucket | None) -> None:
    try:
        while data := await reader.read(CHUNK):
            if bucket is not None:
                await bucket.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def serve(listen_port: int, target_port: int, rate: float) -> None:
    bucket = Bucket(rate)

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(relay(client_reader, server_writer, None), relay(server_reader, client_writer, bucket))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


class Throttle:
    """A relay process in front of ``target_port``, limited to ``rate`` bytes/s in total."""

    def __init__(self, target_port: int, rate: float):
        self.port = free_port()
        self.target_port = target_port
        self.rate = rate
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "Throttle":
        here = Path(__file__).resolve().parents[1]
        env = dict(os.environ, PYTHONPATH=str(here))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness.throttle", str(self.port), str(self.target_port), str(self.rate)], env=env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.process.kill()
        raise TimeoutError("throttle did not start")

    def __exit__(self, *exc) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=5)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
