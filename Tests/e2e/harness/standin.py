"""Pieces every HTTP stand-in shares: the server side (a threading server that can cut all its
connections at once) and the test side (the subprocess's lifetime, and the ``/_standin/…`` control
calls for faults and the request log).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

from .procutil import stop_process

#: Never send test traffic to a proxy.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TrackingHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that remembers its open connections (handlers call :meth:`track`),
    so :meth:`close_connections` can cut them all, as a server that goes away does."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, *args: Any, **kwargs: Any):
        """Bind and start tracking connections."""
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection with Nagle's algorithm off, as Go's net package (kubo's servers) does:
        a reply written in pieces (headers, then body) must not wait for the client's delayed ACK."""
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address

    def track(self, conn: socket.socket, add: bool) -> None:
        """Add or remove an open connection."""
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_connections(self) -> None:
        """Shut down every open connection."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class TrackedRequestHandler(BaseHTTPRequestHandler):
    """A request handler whose connection its :class:`TrackingHTTPServer` can cut while it runs."""

    def setup(self) -> None:
        """Track the connection."""
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        """Untrack the connection."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)


class StandinProcess:
    """A stand-in run as a subprocess: the subclass's ``start`` sets ``proc`` (and ``_stderr``, the
    file its stderr goes to); ``stop`` ends it, and the object is a context manager."""

    proc: subprocess.Popen | None = None
    _stderr: Any = None

    def start(self) -> Any:
        """Start the subprocess and wait until it serves; returns self."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the subprocess (releases any hung requests)."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Any:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class StandinControl:
    """The test side of a stand-in's control API; subclasses give :attr:`control_url`."""

    @property
    def control_url(self) -> str:
        """Base URL of the ``/_standin/…`` endpoints."""
        raise NotImplementedError

    def _control(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.control_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with NO_PROXY.open(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ValueError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None

    def set_fault(self, mode: str, match: str = "", times: int | None = None, **params: Any) -> dict:
        """Add a fault rule (the modes are the stand-in's own); returns the stored rule."""
        spec = {"mode": mode, "match": match, **params}
        if times is not None:
            spec["times"] = times
        return self._control("POST", "/_standin/faults", spec)

    def clear_faults(self) -> int:
        """Remove every fault rule and release the requests they hold."""
        return self._control("DELETE", "/_standin/faults")["cleared"]

    def faults(self) -> list[dict]:
        """Current fault rules with hit counts."""
        return self._control("GET", "/_standin/faults")

    def log(self) -> list[dict]:
        """Requests so far (fields are the stand-in's own)."""
        return self._control("GET", "/_standin/log")

    def clear_log(self) -> None:
        """Forget the request log."""
        self._control("DELETE", "/_standin/log")

    def fresh(self) -> Iterator[Any]:
        """For a function-scoped fixture over a module's stand-in: yields it with no fault rules
        and an empty log, and clears both again when the test is done."""
        self.clear_faults()
        self.clear_log()
        yield self
        self.clear_faults()
        self.clear_log()
