"""Self-tests of the name-resolution stand-ins: kubo RPC ``name/resolve``, the gateway's IPNS
routes (records, delegated routing, ``/ipns`` paths) and the dnsmasq DNS server for DNSLink.

They do not involve ipfs-xfer; they prove the stand-ins answer as kubo, boxo and a DNS server do,
so that a failing "resolve the mirror root" test can be blamed on ipfs-xfer.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import socket
import struct
import time
import urllib.parse

import pytest

from harness import ipnsroutes
from harness.cid import b58decode
from harness.dns import DNSError, DNSServer
from harness.kuborpc import DEFAULT_PEER_ID, KuboRPC

# ipfs.md §4: one Ed25519 name in its three text forms
PEER_ID = "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d"
K51 = "k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36dam"
BAFZ = "bafzaajaiaejcbhltvusd6q2t7tm3lmke4vu4lieeerm25eihikbh3ncjntnm6t6o"
#: another libp2p-key name (a different Ed25519 key) that nothing is set for
OTHER_K51 = ipnsroutes.b36encode(bytes([0x01, 0x72, 0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + bytes(range(32)))
RECORD_MIME = "application/vnd.ipfs.ipns-record"
CORE_DB = "core/os/x86_64/core.db"


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
class Reply:
    """Status, lower-case headers and body of one exchange."""

    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def request(base, method, target, headers=None, body=None, timeout=10.0) -> Reply:
    """One HTTP request with http.client (no proxies, raw target)."""
    parsed = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def refused(port) -> bool:
    """True if a TCP connect to 127.0.0.1:port is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError(n)


def pb_field(num, value):
    """A protobuf field: bytes (length-delimited) or int (varint)."""
    def varint(v):
        out = b""
        while True:
            b, v = v & 0x7F, v >> 7
            out += bytes([b | (0x80 if v else 0)])
            if not v:
                return out
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    return varint(num << 3 | 2) + varint(len(value)) + value


def unsigned_record(value: str, ttl_s: int, validity: str, v1=True) -> bytes:
    """An IpnsEntry with the right shape but no valid signature (the stand-in never verifies)."""
    cbor_map = {"TTL": ttl_s * 10**9, "Value": value.encode(), "Sequence": 7, "Validity": validity.encode(),
                "ValidityType": 0}
    data = cbor_head(5, len(cbor_map))
    for key in ("TTL", "Value", "Sequence", "Validity", "ValidityType"):
        data += cbor_head(3, len(key)) + key.encode()
        val = cbor_map[key]
        data += cbor_head(0, val) if isinstance(val, int) else cbor_head(2, len(val)) + val
    out = b""
    if v1:
        out += pb_field(1, value.encode()) + pb_field(2, b"\x00" * 64) + pb_field(3, 0) + pb_field(4, validity.encode())
        out += pb_field(5, 7) + pb_field(6, ttl_s * 10**9)
    return out + pb_field(8, b"\x01" * 64) + pb_field(9, data)


# ----------------------------------------------------------------------------
# name helpers
# ----------------------------------------------------------------------------
def test_name_forms_are_one_name():
    """k51, bafz and 12D3KooW spell one key; DNS names compare case-insensitively."""
    assert ipnsroutes.b36encode(ipnsroutes.parse_cid_text(K51).to_bytes()) == K51
    assert str(ipnsroutes.parse_cid_text(K51)) == BAFZ
    keys = {ipnsroutes.name_key(n) for n in (K51, BAFZ, PEER_ID, "/ipns/" + K51, K51.upper())}
    assert len(keys) == 1 and next(iter(keys)).startswith("key:")
    assert ipnsroutes.name_key("Mirror.Test.") == ipnsroutes.name_key("/ipns/mirror.test") == "dns:mirror.test"
    assert ipnsroutes.routing_name_ok(K51) and ipnsroutes.routing_name_ok(BAFZ)
    assert not ipnsroutes.routing_name_ok(PEER_ID)
    assert not ipnsroutes.routing_name_ok("bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354")  # dag-pb
    assert not ipnsroutes.routing_name_ok("mirror.test")


def test_record_info_reads_ttl_and_validity():
    """TTL and EOL come from the signed CBOR data, else from the V1 fields; garbage gives None."""
    rec = unsigned_record("/ipfs/bafkqaaa", 123, "2100-01-02T03:04:05.123456789Z")
    info = ipnsroutes.record_info(rec)
    assert info["ttl"] == 123
    assert info["validity"] == pytest.approx(4102542245.123457)
    v2only = unsigned_record("/ipfs/bafkqaaa", 9, "2100-01-02T03:04:05Z", v1=False)
    assert ipnsroutes.record_info(v2only)["ttl"] == 9
    assert ipnsroutes.record_info(b"\xff\xff not a record") == {"ttl": None, "validity": None}


# ----------------------------------------------------------------------------
# kubo RPC
# ----------------------------------------------------------------------------
def test_rpc_only_post(kubo_rpc):
    """GET, PUT, DELETE, HEAD → 405 with kubo's text (before the command is looked up); OPTIONS → 200."""
    for method in ("GET", "PUT", "DELETE"):
        for path in ("/api/v0/name/resolve?arg=" + K51, "/api/v0/version", "/api/v0/no/such/cmd"):
            r = request(kubo_rpc.url, method, path)
            assert r.status == 405, (method, path)
            assert r.body == b"405 - Method Not Allowed\n"
            assert r.headers["content-type"] == "text/plain; charset=utf-8"
            assert r.headers["x-content-type-options"] == "nosniff"
    head = request(kubo_rpc.url, "HEAD", "/api/v0/version")
    assert head.status == 405 and head.body == b""
    assert request(kubo_rpc.url, "OPTIONS", "/api/v0/version").status == 200
    assert [e["status"] for e in kubo_rpc.log()].count(405) == 10


def test_rpc_unknown_command_and_json_shape(kubo_rpc):
    """Unknown commands → 404 text; results are compact JSON lines, chunked, with kubo's headers."""
    for path in ("/api/v0/no/such/cmd", "/api/v0/name", "/api/v1/version", "/version"):
        r = request(kubo_rpc.url, "POST", path)
        assert (r.status, r.body) == (404, b"404 page not found\n"), path
    r = request(kubo_rpc.url, "POST", "/api/v0/version")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.headers["trailer"] == "X-Stream-Error" and r.headers["vary"] == "Origin"
    assert r.body.endswith(b"}\n") and b" " not in r.body
    assert r.json()["Version"] == "0.22.0" and set(r.json()) == {"Version", "Commit", "Repo", "System", "Golang"}
    ident = kubo_rpc.post("id").json()
    assert ident["ID"] == DEFAULT_PEER_ID and ident["AgentVersion"] == "kubo/0.22.0/"
    pubkey = base64.b64decode(ident["PublicKey"])
    assert b58decode(DEFAULT_PEER_ID) == bytes([0x00, len(pubkey)]) + pubkey  # identity multihash of the key
    assert kubo_rpc.post("id", "12D3KooWNotThisOne").status == 500


def test_name_resolve_any_name_form(kubo_rpc, ipfs_mirror):
    """A name set in one form resolves when asked in any form, with or without /ipns/."""
    root = ipfs_mirror.ipfs_path()
    kubo_rpc.set_name(K51, root)
    kubo_rpc.set_name("/ipns/Mirror.Test", root + "/core")
    for arg in (K51, "/ipns/" + K51, BAFZ, "/ipns/" + PEER_ID, PEER_ID):
        r = kubo_rpc.post("name/resolve", arg)
        assert (r.status, r.json()) == (200, {"Path": root}), arg
    assert kubo_rpc.post("name/resolve", "/ipns/mirror.test").json() == {"Path": root + "/core"}
    assert kubo_rpc.post("name/resolve", "mirror.test.").json() == {"Path": root + "/core"}
    assert kubo_rpc.names() == {K51: root, "Mirror.Test": root + "/core"}
    # options kubo has are accepted, unknown ones ignored, aliases work
    r = kubo_rpc.post("name/resolve", K51, nocache=True, dht_record_count=16, dht_timeout="1m", foo="bar")
    assert r.json() == {"Path": root}
    kubo_rpc.set_name(K51, None)
    assert kubo_rpc.post("name/resolve", K51).status == 500


def test_name_resolve_recursion_and_subpaths(kubo_rpc, ipfs_mirror):
    """/ipns → /ipns chains are followed unless recursive=false; a sub path is appended."""
    root = ipfs_mirror.ipfs_path()
    kubo_rpc.set_name("mirror.test", "/ipns/" + K51)
    kubo_rpc.set_name(K51, root)
    assert kubo_rpc.post("name/resolve", "/ipns/mirror.test").json() == {"Path": root}
    assert kubo_rpc.post("name/resolve", "/ipns/mirror.test", recursive=False).json() == {"Path": "/ipns/" + K51}
    assert kubo_rpc.post("name/resolve", "/ipns/mirror.test", r="0").json() == {"Path": "/ipns/" + K51}
    assert kubo_rpc.post("name/resolve", "/ipns/mirror.test/" + CORE_DB).json() == {"Path": f"{root}/{CORE_DB}"}
    r = kubo_rpc.post("name/resolve", K51, stream=True)
    assert r.headers["x-chunked-output"] == "1" and r.json_lines() == [{"Path": root}]
    # loops hit the recursion limit
    kubo_rpc.set_name("a.test", "/ipns/b.test")
    kubo_rpc.set_name("b.test", "/ipns/a.test")
    r = kubo_rpc.post("name/resolve", "a.test")
    assert r.status == 500 and "recursion limit" in r.json()["Message"]


def test_name_resolve_errors(kubo_rpc):
    """Unknown names → 500 kubo JSON; bad options and argument counts → 400 text; no arg = self."""
    r = kubo_rpc.post("name/resolve", "/ipns/" + OTHER_K51)
    assert r.status == 500
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"Message": "could not resolve name", "Code": 0, "Type": "error"}
    assert kubo_rpc.post("name/resolve", "nothing.test").json()["Message"] == "could not resolve name"
    bad = kubo_rpc.post("name/resolve", K51, recursive="maybe")
    assert bad.status == 400 and b'"maybe"' in bad.body and bad.headers["content-type"].startswith("text/plain")
    twice = kubo_rpc.request("POST", f"/api/v0/name/resolve?arg={K51}&recursive=true&recursive=false")
    assert twice.status == 400 and b"single value" in twice.body
    assert kubo_rpc.post("name/resolve", K51, "extra").status == 400
    # without arg kubo resolves its own peer ID
    assert kubo_rpc.request("POST", "/api/v0/name/resolve").status == 500
    kubo_rpc.set_name(DEFAULT_PEER_ID, "/ipfs/bafkqaaa")
    assert kubo_rpc.request("POST", "/api/v0/name/resolve").json() == {"Path": "/ipfs/bafkqaaa"}


def test_rpc_refuses_foreign_origins(kubo_rpc):
    """A foreign Origin/Referer or a browser without either → 403; the API's own origin is fine."""
    path = "/api/v0/version"
    assert request(kubo_rpc.url, "POST", path, {"Origin": "http://evil.example"}).status == 403
    assert request(kubo_rpc.url, "POST", path, {"Referer": "http://evil.example/x"}).body == b"403 - Forbidden\n"
    assert request(kubo_rpc.url, "POST", path, {"User-Agent": "Mozilla/5.0"}).status == 403
    assert request(kubo_rpc.url, "POST", path, {"Origin": kubo_rpc.url}).status == 200
    assert request(kubo_rpc.url, "POST", path, {"User-Agent": "ipfs-xfer/1 libcurl"}).status == 200


def test_rpc_error_hang_and_delay_faults(kubo_rpc):
    """error → kubo JSON with the given status; hang → no answer until cleared; delay → late answer."""
    kubo_rpc.set_name(K51, "/ipfs/bafkqaaa")
    kubo_rpc.set_fault("error", match="name/resolve", times=1, message="routing: not found")
    r = kubo_rpc.post("name/resolve", K51)
    assert (r.status, r.json()) == (500, {"Message": "routing: not found", "Code": 0, "Type": "error"})
    assert kubo_rpc.post("name/resolve", K51).status == 200  # times=1 used up
    kubo_rpc.set_fault("error", match="version", code=403, times=1)
    assert kubo_rpc.post("version").json()["Code"] == 1

    kubo_rpc.set_fault("hang", match="name/resolve")
    start = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        kubo_rpc.post("name/resolve", K51, timeout=0.7)
    assert time.monotonic() - start < 3
    assert kubo_rpc.post("version").status == 200  # other commands still answer
    hung = [e for e in kubo_rpc.log() if e["fault"] == "hang"]
    assert len(hung) == 1 and hung[0]["done"] is False and hung[0]["status"] is None
    assert kubo_rpc.faults()[0]["hits"] == 1
    kubo_rpc.clear_faults()
    deadline = time.monotonic() + 5
    while not all(e["done"] for e in kubo_rpc.log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(e["done"] for e in kubo_rpc.log())

    kubo_rpc.set_fault("delay", match="name/resolve", seconds=0.5)
    start = time.monotonic()
    assert kubo_rpc.post("name/resolve", K51).json() == {"Path": "/ipfs/bafkqaaa"}
    assert time.monotonic() - start >= 0.45


def test_rpc_down_refuses_connections(kubo_rpc):
    """down → the RPC port refuses connections and open ones are closed; up → same port again."""
    port = kubo_rpc.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/api/v0/version")
    assert conn.getresponse().read()
    kubo_rpc.down()
    assert not kubo_rpc.listening and refused(port)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("POST", "/api/v0/version")
        conn.getresponse().read()
    conn.close()
    kubo_rpc.up()
    assert kubo_rpc.listening and kubo_rpc.port == port
    assert kubo_rpc.post("version").status == 200
    kubo_rpc.set_fault("down")
    assert refused(port)
    kubo_rpc.clear_faults()
    assert kubo_rpc.post("version").status == 200


def test_rpc_request_log(kubo_rpc):
    """The log has method, path, query, command, args and status of every RPC request."""
    kubo_rpc.set_name(K51, "/ipfs/bafkqaaa")
    kubo_rpc.post("name/resolve", "/ipns/" + K51, recursive=False)
    request(kubo_rpc.url, "GET", "/api/v0/version")
    log = kubo_rpc.log()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/api/v0/name/resolve", 200),
        ("GET", "/api/v0/version", 405),
    ]
    assert log[0]["query"] == {"arg": ["/ipns/" + K51], "recursive": ["false"]}
    assert log[0]["command"] == "name/resolve" and log[0]["args"] == ["/ipns/" + K51]
    assert log[1]["command"] is None and all(e["done"] for e in log)
    kubo_rpc.clear_log()
    assert kubo_rpc.log() == []
    kubo_rpc.clear()
    assert kubo_rpc.names() == {} and kubo_rpc.faults() == []


PLUGIN = '''
from harness.kuborpc import Argument, Command, Option, RpcError, Stream, multipart_parts

def run_pin_add(app, call):
    pins = app.state.setdefault("pins", [])
    pins.extend(call.args)
    return {"Pins": call.args}

def run_dag_import(app, call):
    parts = multipart_parts(call.request)
    if not call.options["pin-roots"]:
        pass
    return Stream([{"Root": {"Cid": {"/": h.get("content-disposition", "")}, "PinErrorMsg": ""}, "Size": len(b)}
                   for h, b in parts])

def register(app):
    app.add_command(Command("pin/add", run_pin_add, (Argument("ipfs-path", variadic=True),),
                            (Option("recursive", "bool", True, ("r",)),)))
    app.add_command(Command("dag/import", run_dag_import, (), (Option("pin-roots", "bool", True),)))
'''


def test_rpc_command_table_is_extensible(tmp_path):
    """A plugin adds commands (variadic args, multipart bodies, streams) through app.add_command."""
    (tmp_path / "rpc_plugin_for_test.py").write_text(PLUGIN)
    with KuboRPC(workdir=tmp_path, plugins=["rpc_plugin_for_test"], pythonpath=[tmp_path]) as rpc:
        assert rpc.post("pin/add", "/ipfs/bafkqaaa", "/ipfs/bafkqaab").json() == {"Pins": ["/ipfs/bafkqaaa",
                                                                                          "/ipfs/bafkqaab"]}
        assert rpc.post("pin/add").status == 400  # a required variadic argument
        boundary = "xferboundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.car\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"\x00CAR" + f"\r\n--{boundary}--\r\n".encode()
        r = rpc.request("POST", "/api/v0/dag/import?pin-roots=false", body=body,
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status == 200 and r.json_lines()[0]["Size"] == 4
        assert "a.car" in r.json_lines()[0]["Root"]["Cid"]["/"]
        assert rpc.request("POST", "/api/v0/dag/import").status == 400  # no multipart body
        assert rpc.post("version").status == 200  # the default commands stay


# ----------------------------------------------------------------------------
# gateway: IPNS records
# ----------------------------------------------------------------------------
def test_gateway_ipns_record(gateway):
    """?format=ipns-record and the Accept type return the bytes with boxo's headers, in any name form."""
    record = b"\x0a\x05hello opaque record bytes"
    gateway.set_ipns_record(K51, record)
    r = request(gateway.url, "GET", f"/ipns/{K51}?format=ipns-record")
    assert r.status == 200 and r.body == record
    assert r.headers["content-type"] == RECORD_MIME
    assert r.headers["content-disposition"] == f'attachment; filename="{K51}.ipns-record"'
    assert r.headers["cache-control"] == "public, max-age=300"  # kubo's default TTL: not readable from these bytes
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["etag"]
    by_accept = request(gateway.url, "GET", f"/ipns/{BAFZ}", {"Accept": RECORD_MIME})
    assert by_accept.body == record
    assert by_accept.headers["content-disposition"] == f'attachment; filename="{BAFZ}.ipns-record"'
    head = request(gateway.url, "HEAD", f"/ipns/{K51}/?format=ipns-record")  # trailing slash alone is fine
    assert head.status == 200 and head.body == b"" and head.headers["content-length"] == str(len(record))
    again = request(gateway.url, "GET", f"/ipns/{K51}?format=ipns-record", {"If-None-Match": r.headers["etag"]})
    assert again.status == 304 and again.body == b""
    named = request(gateway.url, "GET", f"/ipns/{K51}?format=ipns-record&filename=x.bin")
    assert named.headers["content-disposition"] == 'attachment; filename="x.bin"'
    gateway.set_ipns_record(PEER_ID, record + b"!", ttl_seconds=42)  # same name, other form: replaces
    r = request(gateway.url, "GET", f"/ipns/{K51}?format=ipns-record")
    assert r.body == record + b"!" and r.headers["cache-control"] == "public, max-age=42"
    assert [e["format"] for e in gateway.log()] == ["ipns-record"] * 6


def test_gateway_ipns_record_errors(gateway):
    """Sub paths, DNSLink names and non-keys → 400; no record → 404; /ipfs paths have no record → 400."""
    gateway.set_ipns_record(K51, b"record")
    gateway.set_ipns_record("mirror.test", b"record")  # stored, but DNS names never get one
    cases = {
        f"/ipns/{K51}/core?format=ipns-record": 400,
        "/ipns/mirror.test?format=ipns-record": 400,
        "/ipns/not-a-key?format=ipns-record": 400,
        f"/ipns/{OTHER_K51}?format=ipns-record": 404,
        "/ipfs/bafkqaaa?format=ipns-record": 400,
    }
    for target, status in cases.items():
        assert request(gateway.url, "GET", target).status == status, target
    assert request(gateway.url, "POST", f"/ipns/{K51}?format=ipns-record").status == 405


def test_routing_v1_ipns(gateway):
    """GET /routing/v1/ipns/<name>: 200 with routing headers, 406/400/404 in boxo's order."""
    record = unsigned_record("/ipfs/bafkqaaa", 120, "2099-12-31T23:59:59.5Z")
    gateway.set_ipns_record(BAFZ, record)
    r = request(gateway.url, "GET", f"/routing/v1/ipns/{K51}", {"Accept": RECORD_MIME})
    assert r.status == 200 and r.body == record
    assert r.headers["content-type"] == RECORD_MIME and r.headers["vary"] == "Accept"
    cache = r.headers["cache-control"]
    assert cache.startswith("public, max-age=120, stale-while-revalidate=") and "stale-if-error=" in cache
    expires = email.utils.parsedate_to_datetime(r.headers["expires"])
    assert expires.year == 2099 and expires.month == 12
    remaining = int(cache.split("stale-while-revalidate=")[1].split(",")[0])
    assert abs(remaining - (expires.timestamp() - time.time())) < 5
    assert email.utils.parsedate_to_datetime(r.headers["last-modified"]) and r.headers["etag"].startswith('"')
    for accept in (None, "*/*", f"application/json, {RECORD_MIME};q=0.9"):
        hdrs = {"Accept": accept} if accept else {}
        assert request(gateway.url, "GET", f"/routing/v1/ipns/{BAFZ}", hdrs).status == 200, accept
    cases = [
        (K51, "application/json", 406),
        (K51, "application/vnd.ipld.car", 406),
        ("not-a-cid", "application/json", 406),  # Accept is checked first
        (PEER_ID, RECORD_MIME, 400),
        ("bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354", RECORD_MIME, 400),
        ("mirror.test", RECORD_MIME, 400),
        (OTHER_K51, RECORD_MIME, 404),
    ]
    for name, accept, status in cases:
        assert request(gateway.url, "GET", f"/routing/v1/ipns/{name}", {"Accept": accept}).status == status, name
    # a record whose validity is unknown: no Expires, boxo's 48 h default lifetime
    gateway.set_ipns_record(K51, b"opaque", ttl_seconds=5)
    r = request(gateway.url, "GET", f"/routing/v1/ipns/{K51}", {"Accept": RECORD_MIME})
    assert "expires" not in r.headers
    assert r.headers["cache-control"] == "public, max-age=5, stale-while-revalidate=172800, stale-if-error=172800"
    # an explicit validity
    gateway.set_ipns_record(K51, b"opaque", ttl_seconds=5, validity=time.time() + 100)
    r = request(gateway.url, "GET", f"/routing/v1/ipns/{K51}", {"Accept": RECORD_MIME})
    assert "stale-while-revalidate=99" in r.headers["cache-control"] or "stale-while-revalidate=100" in r.headers["cache-control"]


def test_ipns_tables_control(gateway):
    """Tables list, remove with None, clear with a count; bad input → 400."""
    gateway.set_ipns_record(K51, b"abc", ttl_seconds=1)
    gateway.set_ipns_path("mirror.test", "/ipfs/bafkqaaa")
    tables = gateway.ipns_tables()
    assert tables["records"] == {K51: {"size": 3, "ttl": 1, "validity": None}}
    assert tables["paths"] == {"mirror.test": {"path": "/ipfs/bafkqaaa", "ttl": 300}}
    gateway.set_ipns_record(BAFZ, None)
    assert gateway.ipns_tables()["records"] == {}
    with pytest.raises(ValueError):
        gateway.set_ipns_path("mirror.test", "bafkqaaa")  # not an /ipfs or /ipns path
    with pytest.raises(ValueError):
        gateway._control("POST", "/_standin/ipns/records", {"name": K51, "record": "***"})
    assert gateway.clear_ipns() == 1 and gateway.ipns_tables() == {"records": {}, "paths": {}}


# ----------------------------------------------------------------------------
# gateway: /ipns paths
# ----------------------------------------------------------------------------
def test_ipns_path_serves_mirror_files(gateway, ipfs_mirror):
    """/ipns/<name>/<path> is served like /ipfs/<root>/<path>: bytes, Range, headers for the /ipns path."""
    data = (ipfs_mirror.manifest.root / CORE_DB).read_bytes()
    gateway.set_ipns_path(K51, ipfs_mirror.ipfs_path())
    r = request(gateway.url, "GET", f"/ipns/{K51}/{CORE_DB}")
    assert r.status == 200 and r.body == data
    assert r.headers["x-ipfs-path"] == f"/ipns/{K51}/{CORE_DB}"
    assert r.headers["x-ipfs-roots"].split(",")[0] == ipfs_mirror.root_cid
    assert r.headers["cache-control"] == "public, max-age=300"
    direct = request(gateway.url, "GET", ipfs_mirror.ipfs_path(CORE_DB))
    assert r.headers["etag"] == direct.headers["etag"]
    part = request(gateway.url, "GET", f"/ipns/{PEER_ID}/{CORE_DB}", {"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    head = request(gateway.url, "HEAD", f"/ipns/{BAFZ}/{CORE_DB}")
    assert head.status == 200 and head.headers["content-length"] == str(len(data))
    # packages with ':' and '+' in their names, percent-encoded
    for name in ("ipx-libc++", "ipx-epoch"):
        pkg = ipfs_mirror.manifest.package(name)
        r = request(gateway.url, "GET", f"/ipns/{K51}/" + urllib.parse.quote(pkg.path))
        assert r.status == 200 and r.body == (ipfs_mirror.manifest.root / pkg.path).read_bytes(), name
    assert [e["format"] for e in gateway.log()][:3] == ["file", "file", "file"]


def test_ipns_path_directories_and_chains(gateway, ipfs_mirror):
    """301 to the /ipns path with a slash, listings link below /ipns, values with sub paths and chains."""
    gateway.set_ipns_path("mirror.test", "/ipns/" + K51, ttl_seconds=60)
    gateway.set_ipns_path(K51, ipfs_mirror.ipfs_path("core"))
    r = request(gateway.url, "GET", f"/ipns/{K51}/os?x=1")
    assert r.status == 301 and r.headers["location"] == f"/ipns/{K51}/os/?x=1"
    listing = request(gateway.url, "GET", f"/ipns/{K51}/os/x86_64/")
    assert listing.status == 200 and f'href="/ipns/{K51}/os/x86_64/core.db"'.encode() in listing.body
    data = (ipfs_mirror.manifest.root / CORE_DB).read_bytes()
    r = request(gateway.url, "GET", "/ipns/Mirror.Test/os/x86_64/core.db")  # DNSLink name → key → /ipfs/…/core
    assert r.status == 200 and r.body == data and r.headers["cache-control"] == "public, max-age=60"
    car = request(gateway.url, "GET", f"/ipns/{K51}/os/x86_64/core.db?format=car&dag-scope=entity")
    assert car.status == 200 and car.headers["content-type"].startswith("application/vnd.ipld.car")


def test_ipns_path_errors(gateway, ipfs_mirror):
    """Unknown names → 500 (kubo offline), invalid names → 400, missing files → 404."""
    gateway.set_ipns_path(K51, ipfs_mirror.ipfs_path())
    r = request(gateway.url, "GET", f"/ipns/{OTHER_K51}/{CORE_DB}")
    assert r.status == 500 and b"could not resolve name" in r.body
    assert request(gateway.url, "GET", "/ipns/unknown.test/core.db").status == 500
    assert request(gateway.url, "GET", "/ipns/not_a_name/core.db").status == 400
    assert request(gateway.url, "GET", "/ipns/").status == 400
    assert request(gateway.url, "GET", f"/ipns/{K51}/core/os/x86_64/nope.pkg.tar.zst").status == 404
    gateway.set_ipns_path("loop.test", "/ipns/loop.test")
    assert request(gateway.url, "GET", "/ipns/loop.test/x").status == 500


def test_faults_apply_to_ipns_routes(gateway, ipfs_mirror):
    """The fault table kills one resolver: status on routing v1, hang on /ipns paths, others unaffected."""
    gateway.set_ipns_record(K51, b"rec")
    gateway.set_ipns_path(K51, ipfs_mirror.ipfs_path())
    gateway.set_fault("status", match="/routing/v1/ipns/", code=502)
    assert request(gateway.url, "GET", f"/routing/v1/ipns/{K51}", {"Accept": RECORD_MIME}).status == 502
    assert request(gateway.url, "GET", f"/ipns/{K51}?format=ipns-record").status == 200
    gateway.set_fault("hang-headers", match="format=ipns-record", times=1)
    with pytest.raises((socket.timeout, TimeoutError)):
        request(gateway.url, "GET", f"/ipns/{K51}?format=ipns-record", timeout=0.7)
    assert request(gateway.url, "GET", f"/ipns/{K51}?format=ipns-record").status == 200
    gateway.set_fault("truncate", match=f"/ipns/{K51}/core", after=100)
    with pytest.raises(http.client.IncompleteRead):
        request(gateway.url, "GET", f"/ipns/{K51}/{CORE_DB}")
    faults = [e["fault"] for e in gateway.log()]
    assert faults == ["status", None, "hang-headers", None, "truncate"]


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_signed_record_from_ipns_generator(gateway, kind):
    """Real signed records (harness.ipns) are served unchanged, found under every name form, with
    their own TTL and validity (Ed25519: identity-multihash names; RSA: sha2-256 ones)."""
    ipns = pytest.importorskip("harness.ipns")
    key = ipns.make_key(kind)
    record = ipns.make_record(key, "/ipfs/bafkqaaa", 3, 90 * 10**9, 3600)
    forms = [ipns.name_of(key, form=f) for f in ("k51", "bafz", "peerid")]
    assert forms[0].startswith("k51" if kind == "ed25519" else "k2k4r8")
    gateway.set_ipns_record(forms[0], record)
    for name in forms:
        r = request(gateway.url, "GET", f"/ipns/{name}?format=ipns-record")
        assert r.status == 200 and r.body == record, name
        assert r.headers["cache-control"] == "public, max-age=90"
    for name in forms[:2]:
        r = request(gateway.url, "GET", f"/routing/v1/ipns/{name}", {"Accept": RECORD_MIME})
        assert r.status == 200 and r.body == record
        expires = email.utils.parsedate_to_datetime(r.headers["expires"]).timestamp()
        assert abs(expires - (time.time() + 3600)) < 10
    assert request(gateway.url, "GET", f"/routing/v1/ipns/{forms[2]}", {"Accept": RECORD_MIME}).status == 400
    v2only = ipns.make_record(key, "/ipfs/bafkqaaa", 4, 30 * 10**9, 60, v1=False)
    gateway.set_ipns_record(forms[2], v2only)
    r = request(gateway.url, "GET", f"/ipns/{forms[1]}?format=ipns-record")
    assert r.body == v2only and r.headers["cache-control"] == "public, max-age=30"


# ----------------------------------------------------------------------------
# DNS
# ----------------------------------------------------------------------------
def test_dns_txt_records(dns_server):
    """Several TXT records per name, quotes/spaces/commas/backslashes, >255-byte values, UDP and TCP."""
    odd = 'dnslink=/ipfs/bafy "quoted" with spaces, a comma; and \\ backslash'
    long_value = "dnslink=/ipfs/" + "b" * 400
    dns_server.set_records({
        "_dnslink.mirror.test": ["dnslink=/ipfs/bafkqaaa", "dnslink=/ipns/" + K51],
        "_dnslink.odd.test": odd,
        "_dnslink.long.test": [long_value],
    })
    for tcp in (False, True):
        assert sorted(dns_server.query_txt("_dnslink.mirror.test", tcp=tcp)) == ["dnslink=/ipfs/bafkqaaa",
                                                                                 "dnslink=/ipns/" + K51]
        assert dns_server.query_txt("_dnslink.odd.test", tcp=tcp) == [odd]
        assert dns_server.query_txt("_DNSLINK.Long.Test.", tcp=tcp) == [long_value]
    answer = dns_server.query("_dnslink.long.test")
    assert [len(s) for s in answer.records[0]] == [255, len(long_value) - 255]  # split into character-strings
    assert dns_server.query_txt("_dnslink.nothing.test") == []  # NXDOMAIN under the local domain
    assert dns_server.query("_dnslink.nothing.test").rcode_name == "NXDOMAIN"
    assert dns_server.query("_dnslink.mirror.test", "A").records == []
    with pytest.raises(DNSError) as exc:
        dns_server.query_txt("_dnslink.example.org")  # not local, no upstream
    assert exc.value.rcode == 5
    dns_server.set_records({"_dnslink.new.test": "dnslink=/ipfs/bafkqaaa"})
    assert dns_server.query_txt("_dnslink.mirror.test") == []
    assert dns_server.query_txt("_dnslink.new.test") == ["dnslink=/ipfs/bafkqaaa"]
    with pytest.raises(ValueError):
        dns_server.set_records({"bad name,x": "v"})


def test_dns_stop_start_and_query_log(dns_server):
    """A stopped server refuses UDP and TCP on its port; started again it answers on the same port;
    the query log lists the names asked, in order."""
    dns_server.set_records({"_dnslink.mirror.test": "dnslink=/ipfs/bafkqaaa"})
    dns_server.clear_queries()
    port = dns_server.port
    assert dns_server.query_txt("_dnslink.mirror.test") == ["dnslink=/ipfs/bafkqaaa"]
    dns_server.stop()
    assert not dns_server.running
    with pytest.raises(ConnectionRefusedError):
        dns_server.query_txt("_dnslink.mirror.test")
    with pytest.raises(ConnectionRefusedError):
        dns_server.query_txt("_dnslink.mirror.test", tcp=True)
    dns_server.start()
    assert dns_server.port == port and dns_server.address == "127.0.0.1" and dns_server.nameserver == f"127.0.0.1:{port}"
    assert dns_server.query_txt("_dnslink.mirror.test", tcp=True) == ["dnslink=/ipfs/bafkqaaa"]
    dns_server.query("mirror.test", "A")
    assert dns_server.queries() == ["_dnslink.mirror.test", "_dnslink.mirror.test"]
    assert dns_server.queries(qtype=None) == ["_dnslink.mirror.test", "_dnslink.mirror.test", "mirror.test"]
    assert ("A", "mirror.test") in dns_server.query_log()
    dns_server.clear_queries()
    assert dns_server.queries() == []


def test_dns_server_context_manager_and_ttl(tmp_path):
    """Records from the constructor, the answer TTL, and a raw UDP query built with struct."""
    with DNSServer(tmp_path / "d", {"_dnslink.x.test": "dnslink=/ipfs/bafkqaaa"}, ttl=60) as dns:
        answer = dns.query("_dnslink.x.test")
        assert answer.ttls == [60] and answer.rcode == 0
        query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x08_dnslink\x01x\x04test\x00" + struct.pack(">HH", 16, 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(query, (dns.address, dns.port))
            reply = s.recv(512)
        assert reply[:2] == b"\x12\x34" and b"dnslink=/ipfs/bafkqaaa" in reply
    assert not dns.running
