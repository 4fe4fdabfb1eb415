"""A real DNS server for DNSLink tests: Debian's dnsmasq on 127.0.0.1 serving TXT records.

Usage::

    with DNSServer(tmp / "dns", {"_dnslink.mirror.test": ["dnslink=/ipfs/bafy…"]}) as dns:
        dns.query_txt("_dnslink.mirror.test")      # ["dnslink=/ipfs/bafy…"]
        dns.set_records({...})                     # rewrites the config, restarts, waits
        dns.stop(); dns.start()                    # a dead server: queries are refused
        dns.queries()                              # ["_dnslink.mirror.test", …] from the query log

dnsmasq (``/usr/sbin/dnsmasq``, package ``dnsmasq-base``) runs in the foreground with
``--no-daemon --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 --port=P
--log-queries --log-facility=<file>`` and a generated ``--conf-file`` holding one ``txt-record=``
line per TXT value, so a name with several values has several TXT records. A value is written as
one quoted string (``\\`` and ``"`` escaped); values longer than 255 bytes are split into several
character-strings of one record (DNS clients join them). Answers have TTL ``ttl`` (dnsmasq's
``--local-ttl``, default 0).

Names under ``local_domains`` (default ``("test",)``) that have no record get NXDOMAIN (dnsmasq
``--local=/test/``); other unknown names get REFUSED (there is no upstream). A stopped server's
port answers nothing: a UDP query gets ICMP "port unreachable" (``ConnectionRefusedError``), a TCP
connection is refused.
"""

from __future__ import annotations

import grp
import os
import pwd
import random
import re
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .procutil import die_with_parent, stop_process

DNSMASQ = "/usr/sbin/dnsmasq"
TYPE_A, TYPE_TXT, TYPE_AAAA = 1, 16, 28
QTYPES = {"A": TYPE_A, "TXT": TYPE_TXT, "AAAA": TYPE_AAAA}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
NAME_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")
QUERY_LOG_RE = re.compile(r"dnsmasq\[\d+\]: (?:\d+ \S+ )?query\[(\w+)\] (\S+) from ")


class DNSError(Exception):
    """A DNS answer with an error rcode (other than NXDOMAIN) or a malformed answer."""

    def __init__(self, message: str, rcode: int | None = None):
        """Message and the rcode, if an answer came."""
        super().__init__(message)
        self.rcode = rcode


@dataclass
class DNSAnswer:
    """A parsed answer: rcode and the records of the asked type (TXT: list of character-strings)."""

    rcode: int
    records: list[Any]
    ttls: list[int]
    authoritative: bool

    @property
    def rcode_name(self) -> str:
        """``NOERROR``, ``NXDOMAIN``, ``REFUSED``, …"""
        return RCODES.get(self.rcode, str(self.rcode))


# ----------------------------------------------------------------------------
# a tiny DNS client
# ----------------------------------------------------------------------------
def encode_name(name: str) -> bytes:
    """Wire form of a domain name."""
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if any(ord(c) > 127 for c in label) else label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def build_query(name: str, qtype: int, txid: int) -> bytes:
    """A standard query (RD set) for ``name``/``qtype``, class IN."""
    return struct.pack(">HHHHHH", txid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack(">HH", qtype, 1)


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        length = msg[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length


def parse_answer(msg: bytes, txid: int, qtype: int) -> DNSAnswer:
    """Parse a reply to :func:`build_query` (records of ``qtype`` only)."""
    if len(msg) < 12:
        raise DNSError("short DNS reply")
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    if rid != txid or not flags & 0x8000:
        raise DNSError("reply does not match the query")
    pos = 12
    for _ in range(qd):
        pos = _skip_name(msg, pos) + 4
    records, ttls = [], []
    for _ in range(an):
        pos = _skip_name(msg, pos)
        rtype, _, ttl, rdlen = struct.unpack(">HHIH", msg[pos : pos + 10])
        pos += 10
        rdata = msg[pos : pos + rdlen]
        pos += rdlen
        if rtype != qtype:
            continue
        if rtype == TYPE_TXT:
            strings, i = [], 0
            while i < len(rdata):
                n = rdata[i]
                strings.append(rdata[i + 1 : i + 1 + n])
                i += 1 + n
            records.append(strings)
        elif rtype == TYPE_A:
            records.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == TYPE_AAAA:
            records.append(socket.inet_ntop(socket.AF_INET6, rdata))
        else:
            records.append(rdata)
        ttls.append(ttl)
    return DNSAnswer(flags & 0xF, records, ttls, bool(flags & 0x0400))


def dns_query(server: str, port: int, name: str, qtype: int | str = "TXT", tcp: bool = False,
              timeout: float = 2.0) -> DNSAnswer:
    """Ask ``server:port`` one question over UDP (or TCP); raises OSError if nothing answers."""
    qtype = QTYPES[qtype.upper()] if isinstance(qtype, str) else qtype
    txid = random.randrange(1 << 16)
    query = build_query(name, qtype, txid)
    if tcp:
        with socket.create_connection((server, port), timeout=timeout) as s:
            s.sendall(struct.pack(">H", len(query)) + query)
            head = _recv_exact(s, 2)
            msg = _recv_exact(s, struct.unpack(">H", head)[0])
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.connect((server, port))
            s.send(query)
            deadline = time.monotonic() + timeout
            while True:
                msg = s.recv(65535)
                if len(msg) >= 2 and struct.unpack(">H", msg[:2])[0] == txid:
                    break
                if time.monotonic() > deadline:
                    raise socket.timeout("no matching DNS reply")
    return parse_answer(msg, txid, qtype)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("DNS connection closed early")
        buf += chunk
    return buf


def free_udp_tcp_port() -> int:
    """A port on 127.0.0.1 free for both TCP and UDP a moment ago."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free UDP+TCP port")


# ----------------------------------------------------------------------------
# the server
# ----------------------------------------------------------------------------
def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def txt_line(name: str, value: str) -> str:
    """The dnsmasq ``txt-record=`` line for one TXT value (split into ≤255-byte strings)."""
    raw = value.encode()
    if any(b < 0x20 or b == 0x7F for b in raw):
        raise ValueError(f"TXT value for {name!r} has control characters")
    chunks, start = [], 0
    while True:
        end = min(len(raw), start + 255)
        while end < len(raw) and end > start and (raw[end] & 0xC0) == 0x80:
            end -= 1  # never split inside a UTF-8 sequence
        chunks.append(raw[start:end].decode())
        start = end
        if start >= len(raw):
            break
    return f"txt-record={name.rstrip('.')}," + ",".join(_quote(c) for c in chunks)


def normalize_records(records: Mapping[str, str | Iterable[str]] | None) -> dict[str, list[str]]:
    """``{name: value | [values]}`` → ``{name: [values]}`` with the names checked."""
    out: dict[str, list[str]] = {}
    for name, values in (records or {}).items():
        if not NAME_RE.match(name) or ".." in name:
            raise ValueError(f"bad DNS name {name!r}")
        out[name] = [values] if isinstance(values, str) else list(values)
        for value in out[name]:
            if not isinstance(value, str):
                raise ValueError(f"TXT values must be text: {name!r}")
    return out


class DNSServer:
    """dnsmasq on 127.0.0.1 serving TXT records (see the module docstring)."""

    def __init__(
        self,
        workdir: str | os.PathLike,
        records: Mapping[str, str | Iterable[str]] | None = None,
        port: int = 0,
        ttl: int = 0,
        local_domains: Iterable[str] = ("test",),
        binary: str = DNSMASQ,
    ):
        """Configure (not start). ``port`` 0 picks a free UDP+TCP port, kept across restarts."""
        self.workdir = Path(workdir)
        self.records = normalize_records(records)
        self.ttl = int(ttl)
        self.local_domains = tuple(d.strip(".") for d in local_domains)
        self.binary = binary
        self._port = port or None
        self.proc: subprocess.Popen | None = None
        self._stderr = None
        self._log_offset = 0

    # -- properties
    @property
    def address(self) -> str:
        """``127.0.0.1``."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The UDP/TCP port (chosen on first start)."""
        if self._port is None:
            raise RuntimeError("DNS server not started")
        return self._port

    @property
    def nameserver(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{self.address}:{self.port}"

    @property
    def running(self) -> bool:
        """True while dnsmasq runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def conf_file(self) -> Path:
        """The generated dnsmasq configuration."""
        return self.workdir / "dnsmasq.conf"

    @property
    def log_file(self) -> Path:
        """dnsmasq's log (``--log-facility``), kept across restarts."""
        return self.workdir / "dnsmasq.log"

    # -- lifecycle
    def _write_conf(self) -> None:
        lines = ["# generated by harness.dns"]
        for domain in self.local_domains:
            lines.append(f"local=/{domain}/")
        for name, values in self.records.items():
            for value in values:
                lines.append(txt_line(name, value))
        tmp = self.conf_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.conf_file)

    def start(self, timeout: float = 10.0) -> "DNSServer":
        """Start dnsmasq (same port as before, if restarted) and wait until it answers a query."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._port is None:
            self._port = free_udp_tcp_port()
        self._write_conf()
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        cmd = [
            self.binary, "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
            "--listen-address=127.0.0.1", f"--port={self._port}", "--log-queries",
            f"--log-facility={self.log_file}", f"--conf-file={self.conf_file}",
            f"--pid-file={self.workdir / 'dnsmasq.pid'}", f"--local-ttl={self.ttl}",
            f"--user={user}", f"--group={group}", "--cache-size=0",
        ]
        self._stderr = open(self.workdir / "dnsmasq.stderr", "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                     preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                self._close_stderr()
                err = (self.workdir / "dnsmasq.stderr").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"dnsmasq exited with {code}: {err}")
            try:
                dns_query(self.address, self._port, "_standin-ready.invalid", "TXT", timeout=0.2)
                return self
            except (OSError, DNSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"dnsmasq did not answer on port {self._port} within {timeout} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop dnsmasq (the port then answers nothing)."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        self._close_stderr()

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def restart(self) -> "DNSServer":
        """Stop and start again (re-reads the records)."""
        self.stop()
        return self.start()

    def set_records(self, records: Mapping[str, str | Iterable[str]]) -> None:
        """Replace every record (``{name: value | [values]}``); restarts a running server and waits."""
        self.records = normalize_records(records)
        if self.running:
            self.restart()

    def __enter__(self) -> "DNSServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- queries
    def query(self, name: str, qtype: str | int = "TXT", tcp: bool = False, timeout: float = 2.0) -> DNSAnswer:
        """Ask this server (UDP, or TCP); OSError when it is down."""
        return dns_query(self.address, self.port, name, qtype, tcp=tcp, timeout=timeout)

    def query_txt(self, name: str, tcp: bool = False, timeout: float = 2.0) -> list[str]:
        """The TXT values of ``name`` (each record's strings joined); [] for NXDOMAIN or no data.

        Raises :class:`DNSError` for other error rcodes (REFUSED, SERVFAIL) and OSError when the
        server is down.
        """
        answer = self.query(name, "TXT", tcp=tcp, timeout=timeout)
        if answer.rcode not in (0, 3):
            raise DNSError(f"{name}: {answer.rcode_name}", answer.rcode)
        return [b"".join(strings).decode(errors="replace") for strings in answer.records]

    def query_log(self) -> list[tuple[str, str]]:
        """``(type, name)`` of every query dnsmasq logged since start or :meth:`clear_queries`."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return []
        return [(m.group(1), m.group(2)) for m in QUERY_LOG_RE.finditer(text)]

    def queries(self, qtype: str | None = "TXT", include_probes: bool = False) -> list[str]:
        """Names asked (of type ``qtype``; None: any), in order, without the harness's readiness probes."""
        return [
            name for t, name in self.query_log()
            if (qtype is None or t == qtype) and (include_probes or name != "_standin-ready.invalid")
        ]

    def clear_queries(self) -> None:
        """Forget the queries logged so far."""
        try:
            self._log_offset = self.log_file.stat().st_size
        except FileNotFoundError:
            self._log_offset = 0
