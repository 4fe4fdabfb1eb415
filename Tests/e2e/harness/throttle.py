"""A TCP relay on 127.0.0.1 that limits one server to a fixed rate across all its connections.

nginx's ``limit_rate`` is per request and lets each request send one second's worth at once
(``limit = rate * (elapsed + 1)``), so many short range requests are not limited at all. This
relay shares one token bucket between every connection to it, so a server limited to 25 MB/s
sends at most 25 MB/s however it is asked::

    with Throttle(target_port=8080, rate=25_000_000) as throttle:
        url = throttle.url   # http://127.0.0.1:<port>

The rate may change once, after a number of bytes (counted over all connections): a source that
is fast for the first 2 MB and then trickles at 50 KB/s::

    with Throttle(8080, rate=10_000_000, then_rate=50_000, after_bytes=2_000_000) as throttle:
        ...
        throttle.relayed()   # bytes sent to clients so far (all connections, headers included)

Bytes go out in pieces of a twentieth of a second's worth (at most 64 KiB, at least 1 KiB), so a
slow rate is a steady trickle, not a burst followed by a silence: at 50 KB/s the client gets
2.5 KB every 50 ms. From 1.28 MB/s up the pieces are 64 KiB, as they always were.

Run as ``python3 -m harness.throttle LISTEN_PORT TARGET_PORT RATE [--then-rate R --after-bytes N]
[--count-file F]`` (one asyncio process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness.procutil import die_with_parent, free_port

CHUNK = 64 * 1024
#: The smallest piece sent at a time (at rates under 20 KB/s a piece is more than 50 ms apart).
MIN_PIECE = 1024


def piece_size(rate: float) -> int:
    """Bytes sent at a time at ``rate``: a twentieth of a second's worth, 1 KiB to 64 KiB."""
    return int(max(MIN_PIECE, min(CHUNK, rate / 20)))


class Bucket:
    """Bytes may be sent at ``rate`` per second, with a burst of at most one piece; once ``after_bytes``
    have been sent (by all connections together), at ``then_rate``."""

    def __init__(self, rate: float, then_rate: float | None = None, after_bytes: int | None = None):
        self.first_rate = rate
        self.then_rate = then_rate
        self.after_bytes = after_bytes
        self.sent = 0
        self.available = 0.0
        self.last = time.monotonic()
        self.lock = asyncio.Lock()

    @property
    def rate(self) -> float:
        """The rate now: ``then_rate`` once ``after_bytes`` are sent, else the first one."""
        if self.then_rate is not None and self.after_bytes is not None and self.sent >= self.after_bytes:
            return self.then_rate
        return self.first_rate

    async def take(self, count: int) -> int:
        """Waits until some of ``count`` bytes may be sent; returns how many (at most one piece)."""
        async with self.lock:
            while True:
                rate = self.rate
                piece = piece_size(rate)
                now = time.monotonic()
                self.available = min(self.available + (now - self.last) * rate, piece)
                self.last = now
                grant = min(count, piece)
                if self.then_rate is not None and self.after_bytes is not None and self.sent < self.after_bytes:
                    grant = min(grant, self.after_bytes - self.sent)  # the new rate starts on the byte
                if self.available >= grant:
                    self.available -= grant
                    self.sent += grant
                    return grant
                await asyncio.sleep((grant - self.available) / rate)


async def relay(reader, writer, bucket: Bucket | None) -> None:
    try:
        while data := await reader.read(CHUNK):
            if bucket is None:
                writer.write(data)
                await writer.drain()
                continue
            view = memoryview(data)
            while view:
                grant = await bucket.take(len(view))
                writer.write(view[:grant])
                await writer.drain()
                view = view[grant:]
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def report(bucket: Bucket, count_file: str) -> None:
    """Keeps ``count_file`` holding the bytes sent so far (rewritten atomically when it changes)."""
    written = None
    while True:
        if bucket.sent != written:
            written = bucket.sent
            tmp = count_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(written))
            os.replace(tmp, count_file)
        await asyncio.sleep(0.05)


async def serve(listen_port: int, target_port: int, rate: float, then_rate: float | None = None,
                after_bytes: int | None = None, count_file: str | None = None) -> None:
    bucket = Bucket(rate, then_rate, after_bytes)

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(relay(client_reader, server_writer, None), relay(server_reader, client_writer, bucket))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    reporter = asyncio.create_task(report(bucket, count_file)) if count_file else None
    async with server:
        await server.serve_forever()
    if reporter:
        reporter.cancel()


class Throttle:
    """A relay process in front of ``target_port``, limited to ``rate`` bytes/s in total; with
    ``then_rate`` and ``after_bytes``, to ``then_rate`` once ``after_bytes`` are sent."""

    def __init__(self, target_port: int, rate: float, then_rate: float | None = None,
                 after_bytes: int | None = None):
        if (then_rate is None) != (after_bytes is None):
            raise ValueError("then_rate and after_bytes go together")
        self.port = free_port()
        self.target_port = target_port
        self.rate = rate
        self.then_rate = then_rate
        self.after_bytes = after_bytes
        self.process: subprocess.Popen | None = None
        self.count_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def relayed(self) -> int:
        """Bytes sent to clients so far, over all connections (HTTP headers included); read after
        the relay has had 0.15 s to write its count."""
        time.sleep(0.15)
        try:
            return int(self.count_file.read_text() or 0)
        except (OSError, ValueError, AttributeError):
            return 0

    def __enter__(self) -> "Throttle":
        here = Path(__file__).resolve().parents[1]
        env = dict(os.environ, PYTHONPATH=str(here))
        self.count_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"throttle-{os.getpid()}-{self.port}.count"
        cmd = [sys.executable, "-m", "harness.throttle", str(self.port), str(self.target_port), str(self.rate),
               "--count-file", str(self.count_file)]
        if self.then_rate is not None:
            cmd += ["--then-rate", str(self.then_rate), "--after-bytes", str(int(self.after_bytes))]
        self.process = subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent)
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
        if self.count_file:
            self.count_file.unlink(missing_ok=True)
            self.count_file.with_name(self.count_file.name + ".tmp").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m harness.throttle", description=__doc__.split("\n")[0])
    parser.add_argument("listen_port", type=int)
    parser.add_argument("target_port", type=int)
    parser.add_argument("rate", type=float, help="bytes per second, over all connections")
    parser.add_argument("--then-rate", type=float, help="the rate once --after-bytes are sent")
    parser.add_argument("--after-bytes", type=int)
    parser.add_argument("--count-file", help="kept holding the bytes sent to clients so far")
    args = parser.parse_args(argv)
    if (args.then_rate is None) != (args.after_bytes is None):
        parser.error("--then-rate and --after-bytes go together")
    asyncio.run(serve(args.listen_port, args.target_port, args.rate, args.then_rate, args.after_bytes,
                      args.count_file))


if __name__ == "__main__":
    main()
