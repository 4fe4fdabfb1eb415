"""Stand-in DNS-over-HTTPS server (RFC 8484) on 127.0.0.1 that forwards to a real DNS server.

Usage (the ``doh_server`` fixture does this with the ``dns_server`` dnsmasq as upstream)::

    with DoHServer(("127.0.0.1", dns.port)) as doh:
        doh.url                                   # http://127.0.0.1:P/dns-query
        status, headers, body = doh_get(doh.url, build_query("_dnslink.x.test", TYPE_TXT, 0))
        doh.log(); doh.questions()               # what was asked
        doh.set_fault("down" | "hang" | "status", status=500)
        doh.clear_faults()

It runs in threads of the test process (a ``ThreadingHTTPServer``), plain HTTP (ipfs-xfer accepts
``http://`` DoH URLs, which keeps TLS out of the tests).

Requests, checked in this order, the way a real DoH server checks them:

1. a path other than :attr:`DoHServer.path` (``/dns-query``) → 404; a method other than ``GET`` or
   ``POST`` → 405 with ``Allow: GET, POST``;
2. an ``Accept`` header that excludes ``application/dns-message`` (no range matching it with
   ``q`` > 0: ``application/dns-message``, ``application/*``, ``*/*``) → 406; no ``Accept`` at all is
   fine (RFC 8484 §4.1: the server must support ``application/dns-message`` regardless);
3. ``GET``: exactly one ``dns`` parameter, base64url **without padding** (RFC 8484 §4.1: padding
   "MUST NOT be included"; ``=``, ``+``, ``/``, blanks or a length ≡ 1 mod 4 → 400); a missing, repeated
   or empty ``dns`` → 400. ``POST``: ``Content-Type`` must be ``application/dns-message`` (parameters
   ignored) → else 415; no ``Content-Length`` → 411; a body over 65535 bytes → 413; an empty body → 400;
4. the DNS message must parse as a query (:func:`parse_query`): a 12-byte header, QR clear, opcode
   QUERY, exactly one question, no answer or authority records, a well-formed uncompressed name,
   type and class within the message → else 400;
5. the message goes to the upstream **verbatim** over UDP (id included, so RFC 8484's id 0 stays 0),
   retried over TCP when the UDP answer is truncated (TC). The upstream's answer is returned
   verbatim: 200, ``Content-Type: application/dns-message``, ``Cache-Control: max-age=<min TTL>``
   (the least TTL of the answer and authority records; 0 when there are none). An upstream that
   does not answer (stopped, ``upstream_timeout``) gives a SERVFAIL message the stand-in makes
   (200, ``max-age=0``), as public DoH services do.

Errors are ``text/plain`` bodies naming the reason. Faults (:meth:`DoHServer.set_fault`, a single
one at a time; ``times`` limits ``hang``/``status`` to that many requests):

==========  ======================================================================================
``down``    stop listening (connections are refused; open ones are shut); :meth:`clear_faults`
            listens again on the same port
``hang``    read the request, never answer; released (connection closed unanswered) by
            :meth:`clear_faults`, :meth:`stop` or after ``max_seconds`` (default 60)
``status``  answer every DoH request with ``status`` (default 500) and ``body`` (default
            ``stand-in fault injection``) of ``content_type`` (default ``text/plain``) — with
            ``status=200`` and a body of one's choosing this is a malformed answer
==========  ======================================================================================

The log (:meth:`DoHServer.log`) has one dict per request: ``id``, ``time``, ``method``, ``path``,
``target``, ``query`` (dict of lists), ``dns`` (the raw ``dns`` parameter or None), ``accept``,
``content_type`` (of the request), ``user_agent``, ``message`` (the DNS message bytes as hex, or
None), ``question`` (``{"id", "flags", "name", "type", "class"}`` or None), ``status``, ``error``
(why a request was refused), ``fault``, ``rcode`` (of the answer), ``max_age``, ``upstream``
(``"udp"``, ``"tcp"`` or ``"failed: …"``) and ``done``.
"""

from __future__ import annotations

import base64
import binascii
import re
import socket
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from .standin import NO_PROXY, TrackedRequestHandler, TrackingHTTPServer

DNS_MESSAGE = "application/dns-message"
MAX_MESSAGE = 65535
FAULT_MODES = ("down", "hang", "status")
MAX_HANG_SECONDS = 120.0
TYPE_OPT = 41
BASE64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")


# ----------------------------------------------------------------------------
# the wire format
# ----------------------------------------------------------------------------
class MalformedMessage(ValueError):
    """A DNS message that is not a well-formed query (or answer)."""


@dataclass
class Question:
    """The header and question of a DNS query."""

    id: int
    flags: int
    name: str
    type: int
    qclass: int

    def to_json(self) -> dict[str, Any]:
        """For the request log."""
        return {"id": self.id, "flags": self.flags, "name": self.name, "type": self.type, "class": self.qclass}


def encode_dns_param(message: bytes) -> str:
    """The RFC 8484 ``dns`` parameter: base64url without padding."""
    return base64.urlsafe_b64encode(message).rstrip(b"=").decode()


def decode_dns_param(text: str) -> bytes:
    """Decode a ``dns`` parameter strictly (base64url, no padding); ValueError if it is not."""
    if not text:
        raise ValueError("empty dns parameter")
    if not BASE64URL_RE.match(text):
        bad = next(c for c in text if not (c.isascii() and (c.isalnum() or c in "-_")))
        raise ValueError(f"dns parameter is not base64url without padding (character {bad!r})")
    if len(text) % 4 == 1:
        raise ValueError("dns parameter has an impossible base64url length")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"dns parameter does not decode: {exc}") from None


def _read_name(msg: bytes, pos: int, allow_pointers: bool) -> tuple[str, int]:
    """A domain name at ``pos`` and the position after it."""
    labels: list[str] = []
    end = None
    hops = 0
    total = 0
    while True:
        if pos >= len(msg):
            raise MalformedMessage("name runs past the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if not allow_pointers:
                raise MalformedMessage("compression pointer in a query name")
            if pos + 1 >= len(msg):
                raise MalformedMessage("truncated compression pointer")
            hops += 1
            if hops > 64:
                raise MalformedMessage("compression loop")
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if length & 0xC0:
            raise MalformedMessage("bad label type")
        pos += 1
        if length == 0:
            break
        if pos + length > len(msg):
            raise MalformedMessage("label runs past the message")
        total += length + 1
        if total > 254:
            raise MalformedMessage("name longer than 255 bytes")
        labels.append(msg[pos : pos + length].decode("ascii", errors="backslashreplace"))
        pos += length
    return (".".join(labels) or "."), (end if end is not None else pos)


def parse_query(msg: bytes) -> Question:
    """Check that ``msg`` is a standard query with one question; MalformedMessage if not."""
    if len(msg) < 12:
        raise MalformedMessage(f"{len(msg)} bytes is shorter than a DNS header")
    txid, flags, qd, an, ns, _ar = struct.unpack(">HHHHHH", msg[:12])
    if flags & 0x8000:
        raise MalformedMessage("QR is set: a response, not a query")
    if (flags >> 11) & 0xF != 0:
        raise MalformedMessage(f"opcode {(flags >> 11) & 0xF} is not QUERY")
    if qd != 1:
        raise MalformedMessage(f"{qd} questions, not 1")
    if an or ns:
        raise MalformedMessage("a query with answer or authority records")
    name, pos = _read_name(msg, 12, allow_pointers=False)
    if pos + 4 > len(msg):
        raise MalformedMessage("question type and class run past the message")
    qtype, qclass = struct.unpack(">HH", msg[pos : pos + 4])
    return Question(txid, flags, name, qtype, qclass)


def answer_ttls(msg: bytes) -> tuple[int, list[int]]:
    """The rcode and the TTLs of the answer and authority records of an answer (not OPT)."""
    if len(msg) < 12:
        raise MalformedMessage("short DNS answer")
    _, flags, qd, an, ns, _ = struct.unpack(">HHHHHH", msg[:12])
    pos = 12
    for _ in range(qd):
        _, pos = _read_name(msg, pos, allow_pointers=True)
        pos += 4
    ttls = []
    for _ in range(an + ns):
        _, pos = _read_name(msg, pos, allow_pointers=True)
        if pos + 10 > len(msg):
            raise MalformedMessage("record header runs past the message")
        rtype, _, ttl, rdlen = struct.unpack(">HHIH", msg[pos : pos + 10])
        pos += 10 + rdlen
        if pos > len(msg):
            raise MalformedMessage("record data runs past the message")
        if rtype != TYPE_OPT:
            ttls.append(ttl)
    return flags & 0xF, ttls


def servfail_for(query: bytes, question: Question) -> bytes:
    """A SERVFAIL answer to ``query`` (its id, RD copied, RA set, the question echoed)."""
    _, pos = _read_name(query, 12, allow_pointers=False)
    flags = 0x8000 | (question.flags & 0x0100) | 0x0080 | 2
    return struct.pack(">HHHHHH", question.id, flags, 1, 0, 0, 0) + query[12 : pos + 4]


def accepts_dns_message(accept: str | None) -> bool:
    """True when an ``Accept`` header (or none) admits ``application/dns-message``."""
    if accept is None:
        return True
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if q > 0 and media in (DNS_MESSAGE, "application/*", "*/*"):
            return True
    return False


# ----------------------------------------------------------------------------
# upstream
# ----------------------------------------------------------------------------
def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("upstream closed the TCP connection early")
        buf += chunk
    return buf


def forward(upstream: tuple[str, int], query: bytes, timeout: float) -> tuple[bytes, str]:
    """Send ``query`` to the upstream over UDP (TCP when truncated); (answer, "udp" | "tcp")."""
    txid = query[:2]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(upstream)
        s.send(query)
        deadline = time.monotonic() + timeout
        while True:
            answer = s.recv(MAX_MESSAGE)
            if len(answer) >= 12 and answer[:2] == txid and answer[2] & 0x80:
                break
            if time.monotonic() > deadline:
                raise socket.timeout("no matching answer from the upstream")
    if not answer[2] & 0x02:
        return answer, "udp"
    with socket.create_connection(upstream, timeout=timeout) as s:
        s.sendall(struct.pack(">H", len(query)) + query)
        length = struct.unpack(">H", _recv_exact(s, 2))[0]
        return _recv_exact(s, length), "tcp"


# ----------------------------------------------------------------------------
# the server
# ----------------------------------------------------------------------------
class _Abort(Exception):
    """Close the connection without answering."""


class _Refusal(Exception):
    """An HTTP error answer: status and reason."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


class DoHHandler(TrackedRequestHandler):
    """One DoH connection (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "ipfs-standin-doh/1"
    timeout = 60
    doh: "DoHServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the request log is :meth:`DoHServer.log`."""

    def do_GET(self) -> None:  # noqa: N802
        """Every method goes through one dispatcher."""
        self._dispatch()

    do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        doh = self.doh
        raw_path, _, query_string = self.path.partition("?")
        query = urllib.parse.parse_qs(query_string, keep_blank_values=True)
        entry = doh._log_start({
            "method": self.command, "path": raw_path, "target": self.path, "query": query,
            "dns": query["dns"][0] if len(query.get("dns", [])) == 1 else None,
            "accept": self.headers.get("Accept"), "content_type": self.headers.get("Content-Type"),
            "user_agent": self.headers.get("User-Agent"), "message": None, "question": None,
            "status": None, "error": None, "fault": None, "rcode": None, "max_age": None, "upstream": None,
        })
        try:
            body = self._read_body()
            if raw_path != doh.path:
                raise _Refusal(404, f"not found: {raw_path}")
            if self.command not in ("GET", "POST"):
                raise _Refusal(405, f"method {self.command} not allowed", (("Allow", "GET, POST"),))
            fault = doh._take_fault()
            if fault is not None:
                entry["fault"] = fault["mode"]
                if fault["mode"] == "hang":
                    fault["release"].wait(min(float(fault.get("max_seconds", 60)), MAX_HANG_SECONDS))
                    raise _Abort()
                status = int(fault.get("status", 500))
                payload = fault.get("body", b"stand-in fault injection\n")
                payload = payload.encode() if isinstance(payload, str) else bytes(payload)
                self._send(entry, status, fault.get("content_type", "text/plain; charset=utf-8"), payload)
                return
            if not accepts_dns_message(self.headers.get("Accept")):
                raise _Refusal(406, f"Accept does not admit {DNS_MESSAGE}: {self.headers.get('Accept')}")
            message = self._message(query, body)
            entry["message"] = message.hex()
            try:
                question = parse_query(message)
            except MalformedMessage as exc:
                raise _Refusal(400, f"not a DNS query: {exc}") from None
            entry["question"] = question.to_json()
            try:
                answer, how = forward(doh.upstream, message, doh.upstream_timeout)
                entry["upstream"] = how
            except OSError as exc:
                entry["upstream"] = f"failed: {exc or type(exc).__name__}"
                answer = servfail_for(message, question)
            try:
                rcode, ttls = answer_ttls(answer)
            except MalformedMessage:
                rcode, ttls = None, []
            entry["rcode"] = rcode
            entry["max_age"] = min(ttls) if ttls else 0
            self._send(entry, 200, DNS_MESSAGE, answer, (("Cache-Control", f"max-age={entry['max_age']}"),))
        except _Refusal as exc:
            entry["error"] = exc.reason
            self._send(entry, exc.status, "text/plain; charset=utf-8", (exc.reason + "\n").encode(), exc.headers)
        except (_Abort, BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            entry["done"] = True

    def _read_body(self) -> bytes | None:
        """The request body (None when there is no Content-Length); refuses oversize bodies."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise _Refusal(411, "chunked request bodies are not supported; send Content-Length")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return None
        try:
            length = int(length_text)
        except ValueError:
            self.close_connection = True
            raise _Refusal(400, f"bad Content-Length {length_text!r}") from None
        if length > MAX_MESSAGE:
            self.close_connection = True
            raise _Refusal(413, f"a {length}-byte body is over {MAX_MESSAGE} bytes")
        return self.rfile.read(length) if length > 0 else b""

    def _message(self, query: dict[str, list[str]], body: bytes | None) -> bytes:
        """The DNS message of a GET (``dns=``) or POST (body)."""
        if self.command == "GET":
            values = query.get("dns", [])
            if not values:
                raise _Refusal(400, "missing dns parameter")
            if len(values) > 1:
                raise _Refusal(400, "more than one dns parameter")
            try:
                return decode_dns_param(values[0])
            except ValueError as exc:
                raise _Refusal(400, str(exc)) from None
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != DNS_MESSAGE:
            raise _Refusal(415, f"Content-Type must be {DNS_MESSAGE}, not {self.headers.get('Content-Type')!r}")
        if body is None:
            raise _Refusal(411, "a POST needs a Content-Length")
        if not body:
            raise _Refusal(400, "empty POST body")
        return body

    def _send(self, entry: dict, status: int, content_type: str, body: bytes,
              headers: tuple[tuple[str, str], ...] = ()) -> None:
        entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()


class DoHServer:
    """A DoH stand-in forwarding to ``upstream`` (see the module docstring)."""

    def __init__(self, upstream: tuple[str, int] | str, port: int = 0, path: str = "/dns-query",
                 upstream_timeout: float = 2.0):
        """Configure (not start). ``upstream`` is ``(address, port)`` or ``"address:port"``."""
        if isinstance(upstream, str):
            host, _, port_text = upstream.rpartition(":")
            upstream = (host, int(port_text))
        self.upstream = (upstream[0], int(upstream[1]))
        self.path = path
        self.upstream_timeout = upstream_timeout
        self._port = port
        self._server: TrackingHTTPServer | None = None
        self._lock = threading.Lock()
        self._log: list[dict[str, Any]] = []
        self._next_id = 1
        self._fault: dict[str, Any] | None = None
        self._started = False

    # -- properties
    @property
    def port(self) -> int:
        """The TCP port (chosen on first start, kept while down)."""
        if not self._port:
            raise RuntimeError("DoH server not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:P``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The DoH endpoint, ``http://127.0.0.1:P/dns-query`` (what ``DNSServer =`` takes)."""
        return self.base_url + self.path

    @property
    def listening(self) -> bool:
        """True while the port accepts connections."""
        return self._server is not None

    # -- lifecycle
    def start(self) -> "DoHServer":
        """Listen (same port as before if it was down)."""
        self._started = True
        self._up()
        return self

    def stop(self) -> None:
        """Stop listening, release hung requests."""
        self._started = False
        self._release()
        self._down()

    def __enter__(self) -> "DoHServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _up(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            handler = type("BoundDoHHandler", (DoHHandler,), {"doh": self})
            deadline = time.monotonic() + 5
            while True:
                try:
                    server = TrackingHTTPServer(("127.0.0.1", self._port), handler)
                    break
                except OSError:
                    if not self._port or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            self._port = server.server_address[1]
            self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         name=f"doh-{self._port}", daemon=True).start()

    def _down(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()

    # -- faults
    def set_fault(self, mode: str, times: int | None = None, **params: Any) -> dict[str, Any]:
        """Install the fault (replacing any): ``down``, ``hang`` (``max_seconds``) or ``status``
        (``status``, ``body``, ``content_type``)."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r} (one of {', '.join(FAULT_MODES)})")
        self.clear_faults()
        fault = {"mode": mode, "times": times, **params, "release": threading.Event()}
        with self._lock:
            self._fault = fault
        if mode == "down":
            self._down()
        return {k: v for k, v in fault.items() if k != "release"}

    def clear_faults(self) -> None:
        """Remove the fault: hung requests are released, a down server listens again."""
        self._release()
        if self._started:
            self._up()

    def faults(self) -> list[dict[str, Any]]:
        """The installed fault (0 or 1 of them)."""
        with self._lock:
            fault = self._fault
        return [] if fault is None else [{k: v for k, v in fault.items() if k != "release"}]

    def _release(self) -> None:
        with self._lock:
            fault, self._fault = self._fault, None
        if fault is not None:
            fault["release"].set()

    def _take_fault(self) -> dict[str, Any] | None:
        """The fault that applies to this request (counting ``times``)."""
        with self._lock:
            fault = self._fault
            if fault is None or fault["mode"] == "down":
                return None
            if fault["times"] is not None:
                if fault["times"] <= 0:
                    return None
                fault["times"] -= 1
            return fault

    # -- log
    def _log_start(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry = {"id": self._next_id, "time": time.time(), **entry, "done": False}
            self._next_id += 1
            self._log.append(entry)
        return entry

    def log(self) -> list[dict[str, Any]]:
        """Every request since start or :meth:`clear_log` (copies)."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def clear_log(self) -> None:
        """Forget the requests so far."""
        with self._lock:
            self._log.clear()

    def questions(self) -> list[dict[str, Any]]:
        """The questions of the requests that were answered with a DNS message (status 200)."""
        return [e["question"] for e in self.log() if e["status"] == 200 and e["question"] is not None]

    def clear(self) -> None:
        """No faults (listening), an empty log."""
        self.clear_faults()
        self.clear_log()


# ----------------------------------------------------------------------------
# a tiny DoH client for the tests
# ----------------------------------------------------------------------------
def doh_request(url: str, method: str = "GET", body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange: (status, lower-cased headers, body); HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with NO_PROXY.open(request, timeout=timeout) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def doh_get(url: str, message: bytes, accept: str | None = DNS_MESSAGE,
            timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """``GET url?dns=<base64url>`` with ``Accept: application/dns-message`` (None: no Accept)."""
    headers = {"Accept": accept} if accept is not None else {}
    separator = "&" if "?" in url else "?"
    return doh_request(url + separator + "dns=" + encode_dns_param(message), headers=headers, timeout=timeout)


def doh_post(url: str, message: bytes, content_type: str = DNS_MESSAGE, accept: str | None = DNS_MESSAGE,
             timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """``POST url`` with the message as the body."""
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    return doh_request(url, "POST", message, headers, timeout)
