"""IPNS on the stand-in gateway: record routes, delegated routing and ``/ipns`` path serving.

Registered on every :class:`harness.gateway.GatewayApp` by default (no plugin needed), like
:mod:`harness.trustless`. The stand-in treats a record as opaque bytes (it never verifies it);
what it serves is whatever the test set. Names are matched in any text form: a key name given as
``k51…``, ``bafz…``, ``12D3KooW…`` or ``Qm…`` is one name (the multihash is compared), a DNS name
is compared case-insensitively without a trailing dot (see :func:`name_key`).

Routes (``GET`` and ``HEAD``; other methods → 405):

``/ipns/<name>?format=ipns-record`` (or ``Accept: application/vnd.ipfs.ipns-record``; ``format=``
wins) — the gateway's record export (ipfs.md §4, boxo ``handler_ipns_record.go``):

* 200 with the record bytes, ``Content-Type: application/vnd.ipfs.ipns-record``,
  ``Content-Disposition: attachment; filename="<name>.ipns-record"`` (``?filename=`` overrides),
  ``Cache-Control: public, max-age=<ttl seconds>``, ``X-Content-Type-Options: nosniff`` and an
  ``Etag`` derived from the bytes; ``If-None-Match`` with that Etag → 304;
* 400 when the path has segments after the name (a trailing ``/`` alone is fine), when the name
  is a DNS name (contains a dot: DNSLink has no record) or is not a key name at all;
* 404 when no record is set for the name.

``/routing/v1/ipns/<name>`` — delegated routing V1 (ipfs.md §4, boxo ``routing/http/server``), in
boxo's order of checks:

* 406 when ``Accept`` is present, not ``*/*``, and does not contain
  ``application/vnd.ipfs.ipns-record`` (a missing ``Accept`` means the record type);
* 400 when ``<name>`` is not a CIDv1 string (multibase ``k``/``b``/``z``…) with the libp2p-key
  codec 0x72 (``12D3KooW…``, ``Qm…`` and ``bafy…`` are refused);
* 404 when no record is set;
* 200 with the record, ``Content-Type: application/vnd.ipfs.ipns-record``, ``Vary: Accept``,
  ``Cache-Control: public, max-age=<ttl>, stale-while-revalidate=<remaining validity>,
  stale-if-error=<remaining validity>``, ``Expires`` (when the validity is known),
  ``Last-Modified`` (now) and a quoted ``Etag``. 404 and 406 bodies are JSON-less text like boxo's.

``/ipns/<name>[/<path>]`` without a record format — a trusted local kubo path gateway: the name is
looked up in the path table (:meth:`IpnsControl.set_ipns_path`; a value may be ``/ipfs/<cid>[/sub]``
or ``/ipns/<other>``, followed up to 32 steps) and the request is served exactly like
``/ipfs/<cid>[/sub]/<path>`` by :func:`harness.gateway.handle_ipfs` (files with Range, 301 for a
directory without ``/``, listings, ``?format=car``/``raw`` too), except that ``X-Ipfs-Path`` and a
301's ``Location`` name the ``/ipns`` path, listings link below it, and the immutable
``Cache-Control`` becomes ``public, max-age=<ttl>`` (default 300 s, kubo's TTL). A name that is not
in the table → 500 ``could not resolve name`` (kubo, offline); a name that is neither a key nor a
DNS name → 400; a missing path below a resolved name → 404 as for ``/ipfs``.

Faults (:mod:`harness.faults`: ``hang-headers``, ``status``, ``stall-body``, ``truncate``, …) apply to
these routes like to any other: ``gw.set_fault("status", match="/routing/v1/ipns/", code=500)``
kills one resolver. Log entries get ``format`` ``ipns-record`` for record requests (both routes)
and ``file`` for ``/ipns`` paths.

Control (never subject to faults): ``GET /_standin/ipns`` lists both tables, ``POST
/_standin/ipns/records`` ``{"name", "record": base64 | null, "ttl", "validity"}``, ``POST
/_standin/ipns/paths`` ``{"name", "path": text | null, "ttl"}`` (null removes), ``DELETE
/_standin/ipns`` clears both. Tests use the :class:`IpnsControl` methods of
:class:`harness.gateway.Gateway`.
"""

from __future__ import annotations

import base64
import calendar
import email.utils
import hashlib
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from .cid import CID, CIDError, b58decode, read_varint
from .protobuf import ProtobufError, iter_fields

IPNS_RECORD_MIME = "application/vnd.ipfs.ipns-record"
LIBP2P_KEY = 0x72
DEFAULT_TTL = 300  # seconds: kubo's default IPNS TTL (5 min)
DEFAULT_LIFETIME = 48 * 3600  # seconds: boxo's DefaultRecordLifetime
MAX_DEPTH = 32  # recursion limit for /ipns → /ipns chains
B36_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
DNS_NAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)+[A-Za-z0-9_-]{1,63}\.?$")


# ----------------------------------------------------------------------------
# names
# ----------------------------------------------------------------------------
def b36decode(text: str) -> bytes:
    """Decode multibase base36 text *without* its ``k``/``K`` prefix (leading ``0`` = zero byte)."""
    body = text.lower()
    if not body or any(c not in B36_ALPHABET for c in body):
        raise CIDError("invalid base36")
    zeros = len(body) - len(body.lstrip("0"))
    num = 0
    for c in body:
        num = num * 36 + B36_ALPHABET.index(c)
    raw = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\x00" * zeros + raw


def b36encode(raw: bytes) -> str:
    """Multibase base36 text of ``raw`` including the ``k`` prefix."""
    zeros = len(raw) - len(raw.lstrip(b"\x00"))
    num = int.from_bytes(raw, "big")
    out = ""
    while num:
        num, rem = divmod(num, 36)
        out = B36_ALPHABET[rem] + out
    return "k" + "0" * zeros + out


def parse_cid_text(text: str) -> CID:
    """Parse a CID in ``Qm…`` or multibase ``b``/``B``/``z``/``k``/``K`` form (raises CIDError)."""
    if text[:1] in ("k", "K"):
        return CID.from_bytes(b36decode(text[1:]))
    return CID.parse(text)


def _check_multihash(mh: bytes) -> bytes:
    _, pos = read_varint(mh)
    length, pos = read_varint(mh, pos)
    if pos + length != len(mh):
        raise CIDError("multihash length mismatch")
    return mh


def key_multihash(name: str) -> bytes | None:
    """The multihash of a key name in any form (CIDv1 multibase, ``12D3KooW…``/``Qm…``), else None."""
    if not name or "." in name:
        return None
    try:
        if name.startswith("1") or (name.startswith("Qm") and len(name) == 46):
            return _check_multihash(b58decode(name))  # bare multihash (peer ID)
        return parse_cid_text(name).multihash
    except (CIDError, ValueError, IndexError):
        return None


def routing_name_ok(name: str) -> bool:
    """True if ``name`` is what delegated routing accepts: a CIDv1 string with the libp2p-key codec."""
    if not name or name.startswith("Qm") or name.startswith("1"):
        return False
    try:
        cid = parse_cid_text(name)
    except (CIDError, ValueError, IndexError):
        return False
    return cid.version == 1 and cid.codec == LIBP2P_KEY


def strip_ipns(name: str) -> str:
    """``/ipns/<name>`` or ``<name>`` → ``<name>`` (no slashes)."""
    text = name.strip()
    if text.startswith("/ipns/"):
        text = text[len("/ipns/") :]
    return text.strip("/")


def name_key(name: str) -> str:
    """Canonical table key of an IPNS name given in any form (the text after ``/ipns/``).

    Key names → ``key:<multihash hex>``; anything else → ``dns:<lower-case name without trailing dot>``.
    """
    text = strip_ipns(name)
    mh = key_multihash(text)
    if mh is not None:
        return "key:" + mh.hex()
    return "dns:" + text.lower().rstrip(".")


def is_dns_name(name: str) -> bool:
    """True for a DNSLink-style domain name (has a dot and valid labels)."""
    return "." in name and DNS_NAME_RE.match(name) is not None


class NameNotResolved(Exception):
    """A name is not in the table (kubo: ``could not resolve name``)."""


class ResolutionDepth(Exception):
    """An ``/ipns`` → ``/ipns`` chain longer than :data:`MAX_DEPTH`."""


def resolve_in_table(table: dict[str, str], path: str, recursive: bool = True) -> str:
    """Resolve ``/ipns/<name>[/rest]`` through ``table`` (name_key → value) as namesys does.

    Returns the value with ``rest`` appended. With ``recursive`` an ``/ipns/…`` value is resolved
    again (at most :data:`MAX_DEPTH` steps). Raises :class:`NameNotResolved` or
    :class:`ResolutionDepth`.
    """
    current = path if path.startswith("/ipns/") else "/ipns/" + path.lstrip("/")
    for _ in range(MAX_DEPTH):
        name, _, rest = current[len("/ipns/") :].partition("/")
        value = table.get(name_key(name))
        if value is None:
            raise NameNotResolved(name)
        current = value.rstrip("/") + ("/" + rest if rest else "")
        if not recursive or not current.startswith("/ipns/"):
            return current
    raise ResolutionDepth(path)


# ----------------------------------------------------------------------------
# best-effort reading of a record's TTL and validity (the stand-in never verifies)
# ----------------------------------------------------------------------------
def _cbor_item(buf: bytes, pos: int) -> tuple[Any, int]:
    """Decode one CBOR item of the kinds an IPNS ``data`` map holds (uint, bytes, text, map)."""
    ib = buf[pos]
    major, info = ib >> 5, ib & 31
    pos += 1
    if info < 24:
        arg = info
    elif info in (24, 25, 26, 27):
        n = 1 << (info - 24)
        arg = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    else:
        raise ValueError("unsupported CBOR length")
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        data = buf[pos : pos + arg]
        return (bytes(data) if major == 2 else data.decode()), pos + arg
    if major == 5:
        out = {}
        for _ in range(arg):
            key, pos = _cbor_item(buf, pos)
            value, pos = _cbor_item(buf, pos)
            out[key] = value
        return out, pos
    raise ValueError("unsupported CBOR type")


def parse_rfc3339(text: str) -> float | None:
    """Seconds since the epoch of an IPNS validity string (lenient about the fraction)."""
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text.strip())
    if not m:
        return None
    secs = calendar.timegm(tuple(int(g) for g in m.groups()[:6]) + (0, 0, 0))
    secs += float(m.group(7) or 0)
    if m.group(8) != "Z":
        sign = 1 if m.group(8)[0] == "+" else -1
        hours, minutes = m.group(8)[1:].split(":")
        secs -= sign * (int(hours) * 3600 + int(minutes) * 60)
    return secs


def record_info(record: bytes) -> dict[str, Any]:
    """``{"ttl": seconds | None, "validity": epoch seconds | None}`` read from a record, if possible.

    Prefers the signed DAG-CBOR ``data`` (field 9) and falls back to the V1 fields (4 validity,
    6 ttl). Anything unreadable gives None; the record is never verified.
    """
    info: dict[str, Any] = {"ttl": None, "validity": None}
    try:
        fields = {num: value for num, _, value in iter_fields(record)}
    except (ProtobufError, ValueError, IndexError):
        return info
    data = fields.get(9)
    if isinstance(data, bytes):
        try:
            cbor, _ = _cbor_item(data, 0)
            if isinstance(cbor, dict):
                if isinstance(cbor.get("TTL"), int):
                    info["ttl"] = cbor["TTL"] // 1_000_000_000
                if isinstance(cbor.get("Validity"), bytes) and cbor.get("ValidityType", 0) == 0:
                    info["validity"] = parse_rfc3339(cbor["Validity"].decode(errors="replace"))
        except (ValueError, IndexError, UnicodeDecodeError):
            pass
    if info["ttl"] is None and isinstance(fields.get(6), int):
        info["ttl"] = fields[6] // 1_000_000_000
    if info["validity"] is None and isinstance(fields.get(4), bytes) and fields.get(3, 0) == 0:
        info["validity"] = parse_rfc3339(fields[4].decode(errors="replace"))
    return info


# ----------------------------------------------------------------------------
# state on the app
# ----------------------------------------------------------------------------
@dataclass
class RecordEntry:
    """A record set for a name."""

    name: str  # as given by the test
    data: bytes
    ttl: int  # seconds
    validity: float | None  # epoch seconds of the record's EOL, if known


@dataclass
class PathEntry:
    """A path-table entry: ``/ipns/<name>`` → ``value``."""

    name: str
    value: str
    ttl: int


class IpnsState:
    """The two tables, shared by the request threads."""

    def __init__(self) -> None:
        """Start empty."""
        self.lock = threading.Lock()
        self.records: dict[str, RecordEntry] = {}
        self.paths: dict[str, PathEntry] = {}

    def path_values(self) -> dict[str, str]:
        """Snapshot ``name_key → value`` for :func:`resolve_in_table`."""
        with self.lock:
            return {k: e.value for k, e in self.paths.items()}

    def record(self, name: str) -> RecordEntry | None:
        """The record set for ``name`` (any form), if any."""
        with self.lock:
            return self.records.get(name_key(name))


def register(app) -> None:
    """Install the IPNS routes and control endpoint on a :class:`harness.gateway.GatewayApp`."""
    app.ipns = IpnsState()
    app.add_route(["GET", "POST", "DELETE"], r"^/_standin/ipns(/(records|paths))?/?$", handle_control, control=True)
    app.add_route(["GET", "HEAD"], r"^/ipns(/|$)", handle_ipns)
    app.add_route(["GET", "HEAD"], r"^/routing/v1/ipns(/|$)", handle_routing_ipns)
    app.accept_formats[IPNS_RECORD_MIME] = "ipns-record"
    app.ipfs_formats["ipns-record"] = handle_ipfs_record_format


def _gateway():
    # Imported late: harness.gateway imports this module.
    from . import gateway

    return gateway


# ----------------------------------------------------------------------------
# control
# ----------------------------------------------------------------------------
def handle_control(app, req):
    """``/_standin/ipns``: GET lists, DELETE clears; POST ``…/records`` or ``…/paths`` sets one entry."""
    gw = _gateway()
    state: IpnsState = app.ipns
    if req.method == "GET":
        with state.lock:
            return gw.json_response(
                200,
                {
                    "records": {e.name: {"size": len(e.data), "ttl": e.ttl, "validity": e.validity}
                                for e in state.records.values()},
                    "paths": {e.name: {"path": e.value, "ttl": e.ttl} for e in state.paths.values()},
                },
            )
    if req.method == "DELETE":
        with state.lock:
            count = len(state.records) + len(state.paths)
            state.records.clear()
            state.paths.clear()
        return gw.json_response(200, {"cleared": count})
    try:
        spec = json.loads(req.body or b"null")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not strip_ipns(spec["name"]):
            raise ValueError("need an object with a non-empty string 'name'")
        name = strip_ipns(spec["name"])
        key = name_key(name)
        ttl = spec.get("ttl")
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
            raise ValueError("ttl must be a non-negative integer (seconds)")
        if req.path.rstrip("/").endswith("/records"):
            if spec.get("record") is None:
                with state.lock:
                    state.records.pop(key, None)
                return gw.json_response(200, {"removed": name})
            data = base64.b64decode(spec["record"], validate=True)
            info = record_info(data)
            validity = spec.get("validity")
            if validity is None:
                validity = info["validity"]
            elif not isinstance(validity, (int, float)) or isinstance(validity, bool):
                raise ValueError("validity must be epoch seconds")
            if ttl is None:
                ttl = info["ttl"] if info["ttl"] is not None else DEFAULT_TTL
            entry = RecordEntry(name, data, ttl, validity)
            with state.lock:
                state.records[key] = entry
            return gw.json_response(200, {"name": name, "size": len(data), "ttl": ttl, "validity": validity})
        if req.path.rstrip("/").endswith("/paths"):
            value = spec.get("path")
            if value is None:
                with state.lock:
                    state.paths.pop(key, None)
                return gw.json_response(200, {"removed": name})
            if not isinstance(value, str) or not re.match(r"^/(ipfs|ipns)/[^/]+", value):
                raise ValueError("path must be /ipfs/<cid>[/sub] or /ipns/<name>[/sub]")
            entry = PathEntry(name, value, DEFAULT_TTL if ttl is None else ttl)
            with state.lock:
                state.paths[key] = entry
            return gw.json_response(200, {"name": name, "path": value, "ttl": entry.ttl})
        raise ValueError("POST to /_standin/ipns/records or /_standin/ipns/paths")
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        return gw.json_response(400, {"error": str(exc)})


# ----------------------------------------------------------------------------
# record responses
# ----------------------------------------------------------------------------
def record_etag(data: bytes) -> str:
    """A stable Etag for record bytes (boxo uses xxhash; any stable digest does here)."""
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    """True if ``If-None-Match`` lists ``etag`` (weak or strong) or is ``*``."""
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or ("W/" + etag) in tags


def handle_ipfs_record_format(app, req, cid, segments):
    """``/ipfs/…?format=ipns-record``: 400 as in boxo (records exist only for ``/ipns`` names)."""
    return _gateway().text_response(400, f"{urllib.parse.unquote(req.path)} is not an IPNS link")


def serve_gateway_record(app, req, name: str, has_rest: bool):
    """``/ipns/<name>?format=ipns-record``."""
    gw = _gateway()
    if req.log is not None:
        req.log["format"] = "ipns-record"
    if has_rest:
        return gw.text_response(400, "cannot find ipns key for subpath")
    if "." in name:
        return gw.text_response(400, f"{name} is a DNSLink name: no IPNS record exists for it")
    if key_multihash(name) is None:
        return gw.text_response(400, f"invalid IPNS name {name!r}: not a key (CID or peer ID)")
    entry = app.ipns.record(name)
    if entry is None:
        return gw.text_response(404, f"ipns record for {name} not found (stand-in gateway has none set)")
    etag = record_etag(entry.data)
    filename = req.param("filename") or f"{name}.ipns-record"
    headers = [
        ("Etag", etag),
        ("Cache-Control", f"public, max-age={entry.ttl}"),
        ("Content-Type", IPNS_RECORD_MIME),
        ("Content-Disposition", f'attachment; filename="{_quote_filename(filename)}"'),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Ipfs-Path", f"/ipns/{name}"),
    ]
    if etag_matches(req.headers.get("If-None-Match"), etag):
        return gw.Response(304, headers, b"")
    return gw.Response(200, headers, entry.data)


def _quote_filename(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def handle_routing_ipns(app, req):
    """``GET /routing/v1/ipns/<name>`` (delegated routing V1)."""
    gw = _gateway()
    if req.log is not None:
        req.log["format"] = "ipns-record"
    accept = req.headers.get("Accept") or ""
    if accept.strip() in ("", "*/*"):
        accept = IPNS_RECORD_MIME
    if IPNS_RECORD_MIME not in accept.lower():
        return gw.text_response(406, "GetIPNS error: content type in 'Accept' header is missing or not supported")
    parts = req.path.split("/")[4:]  # "", "routing", "v1", "ipns", name, …
    name = urllib.parse.unquote(parts[0]) if parts else ""
    if len([p for p in parts[1:] if p]) > 0:
        return gw.text_response(404, "404 page not found")
    if not routing_name_ok(name):
        return gw.text_response(400, f"GetIPNS error: unable to parse CID or peer ID CID is not valid: {name!r}")
    entry = app.ipns.record(name)
    if entry is None:
        return gw.text_response(404, "GetIPNS error: delegate error: routing: not found")
    now = time.time()
    if entry.validity is not None:
        remaining = max(0, int(entry.validity - now))
    else:
        remaining = DEFAULT_LIFETIME
    headers = [
        ("Cache-Control", f"public, max-age={entry.ttl}, stale-while-revalidate={remaining}, stale-if-error={remaining}"),
        ("Last-Modified", email.utils.formatdate(now, usegmt=True)),
        ("Etag", record_etag(entry.data)),
        ("Content-Type", IPNS_RECORD_MIME),
        ("Vary", "Accept"),
    ]
    if entry.validity is not None:
        headers.insert(0, ("Expires", email.utils.formatdate(entry.validity, usegmt=True)))
    return gw.Response(200, headers, entry.data)


# ----------------------------------------------------------------------------
# /ipns/<name>[/<path>]
# ----------------------------------------------------------------------------
def handle_ipns(app, req):
    """``GET|HEAD /ipns/<name>[/<path>]``: record export or path serving through the name table."""
    gw = _gateway()
    raw_rest = req.path[len("/ipns/") :] if req.path.startswith("/ipns/") else ""
    raw_name, slash, raw_tail = raw_rest.partition("/")
    name = urllib.parse.unquote(raw_name)
    if not name:
        return gw.text_response(400, "ipns path is missing a name")
    fmt = gw.requested_format(app, req)
    if fmt == "ipns-record":
        return serve_gateway_record(app, req, name, has_rest=bool(raw_tail.strip("/")))
    if req.log is not None and not fmt:
        req.log["format"] = "file"
    if key_multihash(name) is None and not is_dns_name(name):
        return gw.text_response(400, f"invalid path \"/ipns/{name}\": not a valid IPNS name (key or DNSLink domain)")
    try:
        target = resolve_in_table(app.ipns.path_values(), "/ipns/" + name)
    except NameNotResolved:
        return gw.text_response(500, f"failed to resolve /ipns/{name}: could not resolve name")
    except ResolutionDepth:
        return gw.text_response(500, f"failed to resolve /ipns/{name}: could not resolve name (recursion limit exceeded)")
    if not target.startswith("/ipfs/"):
        return gw.text_response(500, f"failed to resolve /ipns/{name}: resolved to {target!r}, not an /ipfs path")
    with app.ipns.lock:
        entry = app.ipns.paths.get(name_key(name))
    ttl = entry.ttl if entry else DEFAULT_TTL

    new_path = urllib.parse.quote(target.rstrip("/"), safe="/:@!$&'()*+,;=") + (slash + raw_tail)
    query = req.target.partition("?")[2]
    inner = gw.Request(
        method=req.method,
        target=new_path + ("?" + query if query else ""),
        path=new_path,
        query=req.query,
        headers=req.headers,
        body=req.body,
        fault=req.fault,
        log=req.log,
    )
    response = gw.handle_ipfs(app, inner)
    if _is_listing(response):
        response = _relist(app, req, inner, response)
    return _rewrite_headers(req, response, ttl)


def _is_listing(response) -> bool:
    return response.status == 200 and any(
        k.lower() == "etag" and v.startswith('"DirIndex') for k, v in response.headers
    )


def _relist(app, req, inner, response):
    """Render the directory listing again with links below the ``/ipns`` path."""
    gw = _gateway()
    cid_text, segments = gw.split_ipfs_path(inner.path)
    try:
        node = app.fs.resolve(CID.parse(cid_text), segments).node
    except Exception:  # noqa: BLE001 - keep the /ipfs listing if anything differs
        return response
    keep = [(k, v) for k, v in response.headers if k.lower() in ("x-ipfs-path", "x-ipfs-roots")]
    return gw.serve_listing(app, req, node, keep)


def _rewrite_headers(req, response, ttl: int):
    """Make a response for the inner ``/ipfs`` path look like kubo's for the ``/ipns`` path."""
    headers = []
    for key, value in response.headers:
        low = key.lower()
        if low == "x-ipfs-path":
            value = urllib.parse.unquote(req.path)
        elif low == "location" and response.status == 301:
            value = req.path + "/"
            if "?" in req.target:
                value += "?" + req.target.split("?", 1)[1]
        elif low == "cache-control" and "immutable" in value:
            value = f"public, max-age={ttl}"
        headers.append((key, value))
    response.headers = headers
    return response


# ----------------------------------------------------------------------------
# test-side helper (mixed into harness.gateway.Gateway)
# ----------------------------------------------------------------------------
class IpnsControl:
    """IPNS table methods of :class:`harness.gateway.Gateway` (need ``self._control``)."""

    def set_ipns_record(
        self, name: str, record: bytes | None, ttl_seconds: int | None = None, validity: float | None = None
    ) -> dict:
        """Serve ``record`` (opaque bytes) for ``name`` (any form; ``None`` removes it).

        ``ttl_seconds`` is the ``max-age`` (default: the record's own TTL if it can be read, else
        300). ``validity`` (epoch seconds) sets ``Expires``/``stale-*`` on ``/routing/v1``
        (default: the record's validity if readable, else no ``Expires`` and 48 h).
        """
        payload = {"name": name, "record": None if record is None else base64.b64encode(record).decode()}
        if ttl_seconds is not None:
            payload["ttl"] = ttl_seconds
        if validity is not None:
            payload["validity"] = validity
        return self._control("POST", "/_standin/ipns/records", payload)

    def set_ipns_path(self, name: str, path: str | None, ttl_seconds: int | None = None) -> dict:
        """Make ``/ipns/<name>`` resolve to ``path`` (``/ipfs/<cid>[/sub]`` or ``/ipns/<other>``; ``None`` removes)."""
        payload: dict[str, Any] = {"name": name, "path": path}
        if ttl_seconds is not None:
            payload["ttl"] = ttl_seconds
        return self._control("POST", "/_standin/ipns/paths", payload)

    def ipns_tables(self) -> dict:
        """``{"records": {name: {size, ttl, validity}}, "paths": {name: {path, ttl}}}``."""
        return self._control("GET", "/_standin/ipns")

    def clear_ipns(self) -> int:
        """Forget every record and path-table entry; returns how many there were."""
        return self._control("DELETE", "/_standin/ipns")["cleared"]
