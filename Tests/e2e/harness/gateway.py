"""Stand-in kubo path gateway serving a kubo flatfs block store over HTTP.

Run as a subprocess::

    python3 -m harness.gateway --blocks DIR --port 0 --ready-file F \
        [--plugin harness.some_module ...]

It listens on 127.0.0.1 only and writes its port to ``F`` once listening.
Tests drive it through the :class:`Gateway` helper.

Routes (``GatewayApp.routes``, first match wins):

* ``GET|HEAD /ipfs/<cid>[/<path>]`` – path gateway (ipfs.md §2.2): file
  bytes with ``Etag``, ``X-Ipfs-Path``, ``X-Ipfs-Roots``, immutable
  ``Cache-Control``; single ``Range`` (``N-``, ``N-M``, ``-S``) → 206 or 416;
  404 for a missing path or block, 400 for a bad CID, 301 for a directory
  without trailing slash, an HTML listing for a directory with it.
* ``GET|HEAD /ipfs/<cid>[/<path>]?format=car`` and ``/ipfs/<cid>?format=raw``
  (or the ``Accept`` types ``application/vnd.ipld.car`` / ``.raw``) – the
  trustless gateway of :mod:`harness.trustless`, installed by default. CARs
  are streamed with ``Transfer-Encoding: chunked``.
* ``GET|HEAD /ipns/<name>[/<path>]`` (paths through a name table, ``?format=ipns-record``) and
  ``GET /routing/v1/ipns/<name>`` – IPNS routes of :mod:`harness.ipnsroutes`, installed by
  default, with the control endpoint ``/_standin/ipns`` (:class:`Gateway` ``set_ipns_record``,
  ``set_ipns_path``, ``clear_ipns``).
* ``/_standin/faults`` (``GET``/``POST``/``DELETE``) and ``/_standin/log``
  (``GET``/``DELETE``) – control endpoints, never subject to faults. Log
  entries carry ``format`` (``file`` for the path gateway, ``car``, ``raw``)
  and for CARs ``blocks``, the number of sections sent.

Extension points for later work (each in its own module, loaded with
``--plugin MODULE`` which must define ``register(app)``):

* ``app.add_route(methods, prefix, handler)`` for new URL spaces such as
  ``/ipns/``, ``/routing/v1/`` or ``/api/v0/``; prepend with ``first=True``.
* ``app.ipfs_formats[name] = handler`` for ``/ipfs/…?format=name`` (e.g.
  ``raw``, ``car``) and ``app.accept_formats[mime] = name`` to select the
  same handler via the ``Accept`` header. Such a handler gets
  ``(app, request, cid, segments)``.

A handler takes ``(app, request)`` and returns a :class:`Response`. Faults
(see :mod:`harness.faults`) are applied by the server to whatever response
a handler returns; handlers that shape content themselves (the CAR faults)
find the selected rule in ``request.fault`` and the log entry in
``request.log``. A response with ``chunked=True`` has no length: its body
iterator is sent with chunked transfer encoding, then ``trailers``; raising
:class:`harness.faults.CutConnection` from it closes the connection at once.
"""

from __future__ import annotations

import argparse
import html
import importlib
import json
import mimetypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .blockstore import BlockCorrupt, BlockNotFound, BlockStore
from .cid import CID, CIDError
from .faults import CutConnection, Fault, FaultError, FaultTable, Throttle
from . import ipnsroutes, trustless
from .procutil import die_with_parent, free_port, harness_env, wait_for_file  # noqa: F401 (free_port re-exported)
from .standin import StandinControl, StandinProcess, TrackingHTTPServer
from .unixfs import InvalidDAG, Node, NotADirectory, PathNotFound, SymlinkInPath, UnixFS

IMMUTABLE_CACHE = "public, max-age=29030400, immutable"


# ----------------------------------------------------------------------------
# request / response model
# ----------------------------------------------------------------------------
@dataclass
class Request:
    """An incoming HTTP request as seen by route handlers."""

    method: str
    target: str  # raw request target, e.g. "/ipfs/Qm…/a%20b?format=raw"
    path: str  # raw path part (still percent-encoded)
    query: dict[str, list[str]]
    headers: Any  # http.client.HTTPMessage
    body: bytes = b""
    fault: Any = None  # the fault rule applied to this request, for handlers that shape content
    log: dict[str, Any] | None = None  # this request's log entry, for handlers that add details

    def param(self, name: str, default: str | None = None) -> str | None:
        """First value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    """A response produced by a handler.

    ``body`` is bytes or an iterable of byte chunks totalling ``length``.
    ``entity_offset``/``entity_size`` locate the body inside the served
    entity (the file) so that byte-level faults address file offsets.
    With ``chunked`` the length is unknown: the body goes out with chunked
    transfer encoding, followed by ``trailers`` (declared up front by name
    in ``trailer_names``; the body iterator may fill in their values).
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""
    length: int | None = None
    entity_offset: int = 0
    entity_size: int | None = None
    chunked: bool = False
    trailer_names: tuple[str, ...] = ()
    trailers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.chunked:
            self.length = None
            return
        if self.length is None:
            if not isinstance(self.body, (bytes, bytearray)):
                raise ValueError("streamed Response needs an explicit length")
            self.length = len(self.body)
        if self.entity_size is None:
            self.entity_size = self.length

    def chunks(self) -> Iterator[bytes]:
        """Iterate the body as byte chunks."""
        if isinstance(self.body, (bytes, bytearray)):
            if self.body:
                yield bytes(self.body)
        else:
            yield from self.body


def text_response(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """A ``text/plain`` response."""
    body = (text.rstrip("\n") + "\n").encode()
    return Response(status, [("Content-Type", "text/plain; charset=utf-8")] + (headers or []), body)


def json_response(status: int, obj: Any) -> Response:
    """An ``application/json`` response."""
    body = (json.dumps(obj, indent=1) + "\n").encode()
    return Response(status, [("Content-Type", "application/json")], body)


def html_error(status: int, detail: str = "") -> Response:
    """A small HTML error page like the ones reverse proxies send."""
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = (
        f"<html><head><title>{status} {reason}</title></head><body>"
        f"<h1>{status} {reason}</h1><p>{html.escape(detail)}</p></body></html>\n"
    ).encode()
    return Response(status, [("Content-Type", "text/html; charset=utf-8")], body)


Handler = Callable[["GatewayApp", Request], Response]
FormatHandler = Callable[["GatewayApp", Request, CID, list[str]], Response]


@dataclass
class Route:
    """A route: HTTP methods, a path regex (matched against the raw path) and a handler."""

    methods: frozenset[str]
    pattern: re.Pattern
    handler: Handler
    control: bool = False  # control routes bypass faults and the request log


# ----------------------------------------------------------------------------
# application
# ----------------------------------------------------------------------------
class GatewayApp:
    """Routing table, UnixFS reader, fault table and request log of one server."""

    def __init__(self, blocks: str | os.PathLike):
        """Serve the flatfs block store at ``blocks``."""
        self.store = BlockStore(blocks)
        self.fs = UnixFS(self.store)
        self.faults = FaultTable()
        self.routes: list[Route] = []
        self.ipfs_formats: dict[str, FormatHandler] = {}
        self.accept_formats: dict[str, str] = {}
        self.stopping = threading.Event()
        self._log_lock = threading.Lock()
        self._log: list[dict[str, Any]] = []
        self._install_default_routes()

    # -- routing --------------------------------------------------------
    def add_route(
        self, methods: Iterable[str], pattern: str, handler: Handler, first: bool = False, control: bool = False
    ) -> Route:
        """Register ``handler`` for ``methods`` on paths matching regex ``pattern``."""
        route = Route(frozenset(m.upper() for m in methods), re.compile(pattern), handler, control)
        if first:
            self.routes.insert(0, route)
        else:
            self.routes.append(route)
        return route

    def find_route(self, method: str, path: str) -> tuple[Route | None, bool]:
        """Return ``(route, path_matched)``; route is None if nothing fits."""
        path_matched = False
        for route in self.routes:
            if route.pattern.match(path):
                path_matched = True
                if method in route.methods:
                    return route, True
        return None, path_matched

    def _install_default_routes(self) -> None:
        self.add_route(["GET", "POST", "DELETE"], r"^/_standin/faults/?$", handle_faults, control=True)
        self.add_route(["GET", "DELETE"], r"^/_standin/log/?$", handle_log, control=True)
        self.add_route(["GET"], r"^/_standin/health/?$", lambda app, req: text_response(200, "ok"), control=True)
        self.add_route(["GET", "HEAD"], r"^/ipfs(/|$)", handle_ipfs)
        trustless.register(self)
        ipnsroutes.register(self)

    # -- request log ----------------------------------------------------
    def log_start(self, request: Request, fault: Fault | None) -> dict[str, Any]:
        """Create the log entry for a request (updated in place as it proceeds)."""
        entry = {
            "time": time.time(),
            "method": request.method,
            "path": request.target,
            "range": request.headers.get("Range"),
            "status": None,
            "bytes": 0,
            "length": None,
            "fault": fault.mode if fault else None,
            "done": False,
        }
        with self._log_lock:
            entry["id"] = len(self._log) + 1
            self._log.append(entry)
        return entry

    def log_snapshot(self) -> list[dict[str, Any]]:
        """Copy of the request log."""
        with self._log_lock:
            return [dict(e) for e in self._log]

    def log_clear(self) -> None:
        """Forget all logged requests."""
        with self._log_lock:
            self._log.clear()


# ----------------------------------------------------------------------------
# control handlers
# ----------------------------------------------------------------------------
def handle_faults(app: GatewayApp, req: Request) -> Response:
    """``/_standin/faults``: GET lists, POST adds (object or list), DELETE clears."""
    if req.method == "GET":
        return json_response(200, app.faults.list())
    if req.method == "DELETE":
        return json_response(200, {"cleared": app.faults.clear()})
    try:
        spec = json.loads(req.body or b"null")
        specs = spec if isinstance(spec, list) else [spec]
        added = [app.faults.add(s).to_json() for s in specs]
    except (ValueError, FaultError) as exc:
        return json_response(400, {"error": str(exc)})
    return json_response(200, added if isinstance(spec, list) else added[0])


def handle_log(app: GatewayApp, req: Request) -> Response:
    """``/_standin/log``: GET returns served requests, DELETE clears them."""
    if req.method == "DELETE":
        app.log_clear()
        return json_response(200, {"cleared": True})
    return json_response(200, app.log_snapshot())


# ----------------------------------------------------------------------------
# the path gateway
# ----------------------------------------------------------------------------
RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """Parse a single-range ``Range`` header against ``size``.

    Returns ``(start, end_exclusive)``, None to ignore the header (absent,
    malformed or multi-range), or ``"unsatisfiable"``.
    """
    if not header:
        return None
    m = RANGE_RE.match(header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: last S bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = size if not last else min(size, int(last) + 1)
    if end <= start:
        return None  # last < first: syntactically invalid, ignore
    return start, end


def split_ipfs_path(raw_path: str) -> tuple[str, list[str]]:
    """Split ``/ipfs/<cid>/<a>/<b>`` into the CID text and decoded segments."""
    parts = raw_path.split("/")[2:]  # drop "" and "ipfs"
    cid_text = urllib.parse.unquote(parts[0]) if parts else ""
    segments = [urllib.parse.unquote(p) for p in parts[1:] if p not in ("",)]
    return cid_text, segments


def requested_format(app: GatewayApp, req: Request) -> str | None:
    """The response format asked for: ``?format=`` wins, else the first known ``Accept`` type."""
    fmt = req.param("format")
    if fmt is None:
        accept = (req.headers.get("Accept") or "").split(",")
        for item in accept:
            mime = item.split(";")[0].strip().lower()
            if mime in app.accept_formats:
                fmt = app.accept_formats[mime]
                break
    return fmt or None


def handle_ipfs(app: GatewayApp, req: Request) -> Response:
    """``GET|HEAD /ipfs/<cid>[/<path>]``: the UnixFS path gateway."""
    cid_text, segments = split_ipfs_path(req.path)
    if not cid_text:
        return text_response(400, "ipfs path is missing a CID")
    try:
        cid = CID.parse(cid_text)
    except (CIDError, ValueError) as exc:
        return text_response(400, f"invalid path {req.path!r}: invalid CID: {exc}")

    fmt = requested_format(app, req)
    if fmt:
        handler = app.ipfs_formats.get(fmt)
        if handler is None:
            return text_response(400, f"unsupported format {fmt!r}")
        return handler(app, req, cid, segments)

    try:
        resolved = app.fs.resolve(cid, segments)
    except BlockNotFound as exc:
        return text_response(404, f"ipfs resolve: block {exc.args[0]} not found (stand-in gateway is offline)")
    except PathNotFound as exc:
        return text_response(404, f"ipfs resolve -r /ipfs/{exc}: no link named {segments[-1]!r}" if segments else str(exc))
    except SymlinkInPath as exc:
        return text_response(404, f"path goes through a symlink: {exc}")
    except NotADirectory as exc:
        return text_response(404, f"{exc} is not a directory")
    except BlockCorrupt as exc:
        return text_response(500, f"corrupt block in store: {exc}")
    except InvalidDAG as exc:
        return text_response(500, f"invalid DAG: {exc}")

    node = resolved.node
    headers = [
        ("X-Ipfs-Path", urllib.parse.unquote(req.path)),
        ("X-Ipfs-Roots", ",".join(str(c) for c in resolved.roots)),
    ]
    if node.is_dir:
        if not req.path.endswith("/"):
            location = req.path + "/"
            if "?" in req.target:
                location += "?" + req.target.split("?", 1)[1]
            return Response(301, headers + [("Location", location), ("Content-Type", "text/html")], b"")
        index = app.fs.lookup(node, "index.html")
        if index is not None:
            idx_node = app.fs.load(index)
            if idx_node.kind == "file":
                resolved.roots.append(index)
                return serve_file(app, req, idx_node, headers, "index.html")
        return serve_listing(app, req, node, headers)
    name = segments[-1] if segments else str(cid)
    return serve_file(app, req, node, headers, name)


def serve_file(app: GatewayApp, req: Request, node: Node, headers: list[tuple[str, str]], name: str) -> Response:
    """Serve a file (or a symlink's target text) with Range support."""
    etag = f'"{node.cid}"'
    size = node.size
    if node.kind == "symlink":
        ctype = "inode/symlink"
    else:
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = headers + [
        ("Etag", etag),
        ("Cache-Control", IMMUTABLE_CACHE),
        ("Accept-Ranges", "bytes"),
        ("Content-Type", ctype),
    ]
    inm = req.headers.get("If-None-Match")
    if inm and etag in [t.strip() for t in inm.split(",")]:
        return Response(304, headers, b"")
    rng = parse_range(req.headers.get("Range"), size)
    if rng == "unsatisfiable":
        return Response(416, headers + [("Content-Range", f"bytes */{size}")], b"")
    status, start, end = 200, 0, size
    if isinstance(rng, tuple):
        status, (start, end) = 206, rng
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
    body = app.fs.read(node, start, end - start) if req.method != "HEAD" else b""
    return Response(status, headers, body, length=end - start, entity_offset=start, entity_size=size)


def serve_listing(app: GatewayApp, req: Request, node: Node, headers: list[tuple[str, str]]) -> Response:
    """A minimal HTML directory listing (HAMT directories included)."""
    base = req.path
    rows = []
    for link in sorted(app.fs.listdir(node), key=lambda l: l.name):
        href = html.escape(base + urllib.parse.quote(link.name))
        rows.append(f'<li><a href="{href}">{html.escape(link.name)}</a> {link.cid} {link.tsize or 0}</li>')
    body = (
        f"<html><head><title>{html.escape(urllib.parse.unquote(base))}</title></head><body>"
        f"<h1>Index of {html.escape(urllib.parse.unquote(base))}</h1><ul>\n" + "\n".join(rows) + "\n</ul></body></html>\n"
    ).encode()
    headers = headers + [
        ("Etag", f'"DirIndex-stand-in_CID-{node.cid}"'),
        ("Cache-Control", IMMUTABLE_CACHE),
        ("Content-Type", "text/html; charset=utf-8"),
    ]
    return Response(200, headers, body if req.method != "HEAD" else b"", length=len(body))


# ----------------------------------------------------------------------------
# HTTP server
# ----------------------------------------------------------------------------
class _Abort(Exception):
    """Stop sending and close the connection."""


class GatewayRequestHandler(BaseHTTPRequestHandler):
    """Parses requests, dispatches to routes and applies faults while sending."""

    protocol_version = "HTTP/1.1"
    server_version = "ipfs-standin-gateway/1"
    timeout = 120  # idle keep-alive connections and stuck clients are dropped
    app: GatewayApp  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Access lines go to stderr (the Gateway helper sends it to a file)."""
        sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    def do_GET(self) -> None:  # noqa: N802
        """Handle GET."""
        self._dispatch()

    do_HEAD = do_POST = do_DELETE = do_PUT = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        app = self.app
        length = int(self.headers.get("Content-Length") or 0)
        if length > 16 << 20:
            self.close_connection = True  # body left unread: do not reuse the connection
        body = self.rfile.read(length) if 0 < length <= 16 << 20 else b""
        target = self.path
        raw_path, _, query = target.partition("?")
        request = Request(
            method=self.command,
            target=target,
            path=raw_path,
            query=urllib.parse.parse_qs(query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        route, path_matched = app.find_route(request.method, raw_path)
        fault = None
        entry = None
        if route is None or not route.control:
            fmt = requested_format(app, request)
            fault = app.faults.select(request.method, (target, urllib.parse.unquote(target)), fmt)
            entry = app.log_start(request, fault)
            entry["format"] = fmt or ("file" if re.match(r"^/ipfs(/|$)", raw_path) else None)
            if fmt == "car":
                entry["blocks"] = 0
            request.fault = fault
            request.log = entry
        try:
            if fault and fault.mode == "hang-headers":
                fault.wait()
                raise _Abort()
            if fault and fault.mode == "status":
                response = html_error(fault.params.get("code", 500), "stand-in fault injection")
                for key, value in (fault.params.get("headers") or {}).items():
                    response.headers.append((str(key), str(value)))
                if request.method == "HEAD":
                    response.body = b""
            elif route is None:
                response = text_response(405 if path_matched else 404, "no such route")
            else:
                try:
                    response = route.handler(app, request)
                except Exception as exc:  # a handler bug must not kill the server
                    response = text_response(500, f"stand-in gateway error: {type(exc).__name__}: {exc}")
            self._send(request, response, fault, entry)
        except (_Abort, BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        finally:
            if entry is not None:
                entry["done"] = True

    def _send(self, request: Request, response: Response, fault: Fault | None, entry: dict | None) -> None:
        chunked = response.chunked
        length = response.length or 0
        if entry is not None:
            entry["status"] = response.status
            entry["length"] = None if chunked else length
        self.send_response(response.status)
        for key, value in response.headers:
            self.send_header(key, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            if response.trailer_names:
                self.send_header("Trailer", ", ".join(response.trailer_names))
        else:
            self.send_header("Content-Length", str(length))
        if fault and fault.mode in ("stall-body", "truncate", "slow"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if request.method == "HEAD" or response.status in (204, 304) or (length == 0 and not chunked):
            self.wfile.flush()
            return
        self._chunked = chunked
        try:
            self._send_body(response, fault, entry)
        finally:
            self._chunked = False
        if chunked:
            trailers = "".join(f"{k}: {v}\r\n" for k, v in response.trailers.items() if k in response.trailer_names)
            self.wfile.write(b"0\r\n" + trailers.encode("latin-1", "replace") + b"\r\n")
            self.wfile.flush()

    def _send_body(self, response: Response, fault: Fault | None, entry: dict | None) -> None:
        length = response.length or 0
        mode = fault.mode if fault else None
        budget = None  # bytes to send before stalling/truncating
        if mode in ("stall-body", "truncate"):
            after = int(fault.params.get("after", 65536))
            budget = after if response.chunked else min(after, max(0, length - 1))
        flip = None
        if mode == "corrupt":
            default = 1024 if response.chunked else (response.entity_size or 0) // 2
            flip = int(fault.params.get("offset", default))
        throttle = Throttle(fault, int(fault.params.get("rate", 16384))) if mode == "slow" else None
        sent = 0
        pos = response.entity_offset
        try:
            for chunk in response.chunks():
                if flip is not None and pos <= flip < pos + len(chunk):
                    buf = bytearray(chunk)
                    buf[flip - pos] ^= 0xFF
                    chunk = bytes(buf)
                pos += len(chunk)
                if budget is not None:
                    if sent + len(chunk) >= budget:
                        chunk = chunk[: budget - sent]
                        self._write(chunk, entry)
                        sent += len(chunk)
                        break
                if throttle is not None:
                    for i in range(0, len(chunk), throttle.chunk):
                        piece = chunk[i : i + throttle.chunk]
                        if not throttle.before_write(len(piece)):
                            raise _Abort()
                        self._write(piece, entry)
                else:
                    self._write(chunk, entry)
                sent += len(chunk)
        except (BlockNotFound, BlockCorrupt, InvalidDAG) as exc:
            sys.stderr.write(f"aborting body: {exc}\n")
            raise _Abort() from None
        except CutConnection:
            raise _Abort() from None
        if budget is not None:
            self.wfile.flush()
            if mode == "stall-body":
                fault.wait()
            raise _Abort()

    _chunked = False  # set while a chunked body is being sent

    def _write(self, data: bytes, entry: dict | None) -> None:
        if self.app.stopping.is_set():
            raise _Abort()
        if not data:
            return  # an empty chunk would end a chunked body
        if self._chunked:
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            self.wfile.write(data)
        self.wfile.flush()
        if entry is not None:
            entry["bytes"] += len(data)


def make_server(app: GatewayApp, port: int = 0, host: str = "127.0.0.1") -> TrackingHTTPServer:
    """Create (and bind) a server for ``app``."""
    handler = type("BoundGatewayRequestHandler", (GatewayRequestHandler,), {"app": app})
    return TrackingHTTPServer((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python3 -m harness.gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", required=True, help="kubo flatfs directory (<repo>/blocks)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", help="write the listening port here when ready")
    parser.add_argument("--plugin", action="append", default=[], help="module with register(app); repeatable")
    args = parser.parse_args(argv)

    app = GatewayApp(args.blocks)
    for name in args.plugin:
        importlib.import_module(name).register(app)
    server = make_server(app, args.port)

    def stop(signum: int, frame: Any) -> None:
        app.stopping.set()
        app.faults.clear()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = server.server_address[1]
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, args.ready_file)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


# ----------------------------------------------------------------------------
# test-side helper
# ----------------------------------------------------------------------------
class Gateway(StandinProcess, StandinControl, ipnsroutes.IpnsControl):
    """Runs the stand-in gateway in a subprocess and controls it.

    Usage::

        with Gateway(repo.blocks, workdir=tmp) as gw:
            urllib.request.urlopen(gw.ipfs_url(root_cid, "core/os/x86_64/core.db"))
            gw.set_fault("stall-body", match=".pkg.tar.zst", times=1, after=65536)
            gw.clear_faults()
            gw.log()   # method, path, range, status, bytes, fault, format, done (CARs: blocks)

    Fault modes: see :mod:`harness.faults`.
    """

    def __init__(
        self,
        blocks: str | os.PathLike,
        workdir: str | os.PathLike | None = None,
        port: int = 0,
        plugins: Iterable[str] = (),
        pythonpath: Iterable[str | os.PathLike] = (),
    ):
        """Configure (not start) a gateway over the flatfs dir ``blocks``.

        ``plugins`` are module names loaded with ``--plugin`` (each defines
        ``register(app)``); ``pythonpath`` adds directories to search for them.
        """
        self.blocks = Path(blocks)
        self.workdir = Path(workdir) if workdir else Path(os.environ.get("TMPDIR", "/tmp"))
        self.requested_port = port
        self.plugins = list(plugins)
        self.pythonpath = [str(p) for p in pythonpath]
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._stderr = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self.port is None:
            raise RuntimeError("gateway not started")
        return f"http://127.0.0.1:{self.port}"

    def ipfs_url(self, cid: str, path: str = "") -> str:
        """URL of ``/ipfs/<cid>/<path>`` (path is percent-encoded here)."""
        url = f"{self.url}/ipfs/{cid}"
        if path:
            url += "/" + urllib.parse.quote(path.lstrip("/"))
        return url

    def car_url(self, cid: str, path: str = "", **params: Any) -> str:
        """URL of ``/ipfs/<cid>/<path>?format=car&…``; ``dag_scope="entity"`` → ``dag-scope=entity``.

        Example: ``gw.car_url(root, "extra/os/x86_64/x.pkg.tar.zst", dag_scope="entity", car_dups="y")``.
        """
        query = [("format", "car")] + [(key.replace("_", "-"), str(value)) for key, value in params.items()]
        return self.ipfs_url(cid, path) + "?" + urllib.parse.urlencode(query)

    def raw_url(self, cid: str) -> str:
        """URL of ``/ipfs/<cid>?format=raw`` (one block)."""
        return f"{self.url}/ipfs/{cid}?format=raw"

    def start(self, timeout: float = 15.0) -> "Gateway":
        """Start the subprocess and wait until it listens."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / f"gateway-{os.getpid()}-{id(self)}.port"
        ready.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "harness.gateway", "--blocks", str(self.blocks)]
        cmd += ["--port", str(self.requested_port), "--ready-file", str(ready)]
        for plugin in self.plugins:
            cmd += ["--plugin", plugin]
        env = harness_env()
        env["PYTHONPATH"] = os.pathsep.join([*self.pythonpath, env["PYTHONPATH"]])
        self._stderr = open(self.workdir / "gateway.stderr", "ab")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=self._stderr, env=env, preexec_fn=die_with_parent
        )
        try:
            self.port = int(wait_for_file(ready, self.proc, timeout))
        except Exception:
            self.stop()
            raise
        return self

    @property
    def control_url(self) -> str:
        """The control endpoints are on the gateway's own port."""
        return self.url


if __name__ == "__main__":
    sys.exit(main())
