"""DNSLink over DNS-over-HTTPS (RFC 8484): the DoH stand-in (:mod:`harness.doh`, forwarding to the
dnsmasq of ``dns_server``) on its own, then ipfs-xfer with ``DNSServer = <DoH URL>``: the query it
sends, one lookup per transaction, the resolution it reports, and what it does when the DoH server
is down, hangs, fails or answers with several DNSLinks."""

from __future__ import annotations

import base64
import socket
import struct
import time

import pytest

from harness.dns import TYPE_TXT, DNSServer, build_query, parse_answer
from harness.doh import DNS_MESSAGE, DoHServer, doh_get, doh_post, doh_request, encode_dns_param
from test_xfer_roots import gateway_file_paths, ipns_setup, pacman_ok, resolve
from xfer import assert_cache_clean, file_requests

DOMAIN = "mirror.test"
NAME = "_dnslink." + DOMAIN


def udp_exchange(server: DNSServer, message: bytes) -> bytes:
    """Send ``message`` straight to dnsmasq and return its answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect((server.address, server.port))
        s.send(message)
        return s.recv(65535)


def decode_query(param: str) -> tuple[int, int, int, str, int, int]:
    """(id, flags, qdcount, name, qtype, qclass) of a ``dns=`` parameter, decoded here independently."""
    assert "=" not in param and "+" not in param and "/" not in param, param  # base64url, no padding
    message = base64.urlsafe_b64decode(param + "=" * (-len(param) % 4))
    txid, flags, qd, an, ns, _ = struct.unpack(">HHHHHH", message[:12])
    assert an == 0 and ns == 0
    labels, pos = [], 12
    while message[pos]:
        labels.append(message[pos + 1 : pos + 1 + message[pos]].decode())
        pos += 1 + message[pos]
    qtype, qclass = struct.unpack(">HH", message[pos + 1 : pos + 5])
    return txid, flags, qd, ".".join(labels), qtype, qclass


# ----------------------------------------------------------------------------
# the stand-in
# ----------------------------------------------------------------------------
def test_standin_get_returns_dnsmasqs_answer_verbatim(doh_server, dns_server):
    dns_server.set_records({NAME: "dnslink=/ipfs/bafyexample"})
    query = build_query(NAME, TYPE_TXT, 0)
    status, headers, body = doh_get(doh_server.url, query)
    assert status == 200, body
    assert headers["content-type"] == DNS_MESSAGE
    assert headers["cache-control"] == "max-age=0"  # dnsmasq's local TTL is 0 here
    assert body == udp_exchange(dns_server, query)  # byte for byte what the upstream says
    answer = parse_answer(body, 0, TYPE_TXT)
    assert answer.rcode_name == "NOERROR" and answer.records == [[b"dnslink=/ipfs/bafyexample"]]
    [entry] = doh_server.log()
    assert entry["method"] == "GET" and entry["dns"] == encode_dns_param(query)
    assert entry["question"] == {"id": 0, "flags": 0x0100, "name": NAME, "type": TYPE_TXT, "class": 1}
    assert entry["status"] == 200 and entry["rcode"] == 0 and entry["upstream"] == "udp"
    assert dns_server.queries() == [NAME, NAME]  # the DoH request and the direct comparison


def test_standin_post_and_nxdomain(doh_server, dns_server):
    dns_server.set_records({NAME: ["dnslink=/ipfs/a1", "dnslink=/ipfs/b2"]})
    status, headers, body = doh_post(doh_server.url, build_query(NAME, TYPE_TXT, 4660))
    assert status == 200 and headers["content-type"] == DNS_MESSAGE
    answer = parse_answer(body, 4660, TYPE_TXT)
    assert sorted(answer.records) == [[b"dnslink=/ipfs/a1"], [b"dnslink=/ipfs/b2"]]
    status, _, body = doh_get(doh_server.url, build_query("_dnslink.nothing.test", TYPE_TXT, 0), accept=None)
    assert status == 200 and parse_answer(body, 0, TYPE_TXT).rcode_name == "NXDOMAIN"
    assert [q["name"] for q in doh_server.questions()] == [NAME, "_dnslink.nothing.test"]


def test_standin_cache_control_is_the_least_ttl(tmp_path):
    with DNSServer(tmp_path / "dns", {NAME: "dnslink=/ipfs/x"}, ttl=300) as dns, \
            DoHServer((dns.address, dns.port)) as doh:
        status, headers, body = doh_get(doh.url, build_query(NAME, TYPE_TXT, 0))
        assert status == 200 and headers["cache-control"] == "max-age=300"
        assert parse_answer(body, 0, TYPE_TXT).ttls == [300]


@pytest.mark.parametrize("target, reason", [
    ("", "missing dns parameter"),
    ("?ct=application/dns-message", "missing dns parameter"),
    ("?dns=", "empty dns parameter"),
    ("?dns=" + base64.urlsafe_b64encode(build_query(NAME, TYPE_TXT, 0)).decode(), "without padding"),  # padded
    ("?dns=" + base64.b64encode(b"\xfb\xff" + build_query(NAME, TYPE_TXT, 0)[2:]).decode().rstrip("="),
     "without padding"),  # standard alphabet ('+', '/')
    ("?dns=AAAAA", "impossible base64url length"),
    ("?dns=" + encode_dns_param(b"\x00" * 11), "shorter than a DNS header"),
    ("?dns=" + encode_dns_param(build_query(NAME, TYPE_TXT, 0)[:-3]), "run past the message"),
    ("?dns=" + encode_dns_param(bytes.fromhex("00008180") + build_query(NAME, TYPE_TXT, 0)[4:]), "QR is set"),
    ("?dns=" + encode_dns_param(build_query(NAME, TYPE_TXT, 0)[:4] + b"\x00\x00" + build_query(NAME, TYPE_TXT, 0)[6:]),
     "0 questions"),
    ("?dns=" + encode_dns_param(build_query(NAME, TYPE_TXT, 0)) + "&dns=AAAA", "more than one"),
])
def test_standin_refuses_a_bad_dns_parameter_with_400(target, reason, doh_server, dns_server):
    status, headers, body = doh_request(doh_server.url + target, headers={"Accept": DNS_MESSAGE})
    assert status == 400 and reason in body.decode(), body
    assert headers["content-type"].startswith("text/plain")
    assert doh_server.log()[0]["error"] and doh_server.questions() == []
    assert dns_server.queries() == []  # nothing was forwarded


def test_standin_refuses_other_requests_as_rfc8484_and_http_say(doh_server, dns_server):
    query = build_query(NAME, TYPE_TXT, 0)
    assert doh_get(doh_server.url, query, accept="application/dns-json")[0] == 406
    assert doh_get(doh_server.url, query, accept="application/dns-message;q=0, text/html")[0] == 406
    assert doh_get(doh_server.url, query, accept="application/*;q=0.5")[0] == 200
    assert doh_post(doh_server.url, query, content_type="application/octet-stream")[0] == 415
    assert doh_post(doh_server.url, b"")[0] == 400
    assert doh_post(doh_server.url, b"\x00" * 5)[0] == 400
    assert doh_get(doh_server.base_url + "/resolve", query)[0] == 404
    status, headers, _ = doh_request(doh_server.url + "?dns=" + encode_dns_param(query), "PUT", b"x")
    assert status == 405 and headers["allow"] == "GET, POST"
    assert [e["status"] for e in doh_server.log()] == [406, 406, 200, 415, 400, 400, 404, 405]
    assert dns_server.queries() == [NAME]


def test_standin_faults_and_a_dead_upstream(doh_server, dns_server):
    query = build_query(NAME, TYPE_TXT, 7)
    doh_server.set_fault("status", status=503)
    assert doh_get(doh_server.url, query)[0] == 503
    doh_server.set_fault("down")
    port = doh_server.port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    doh_server.set_fault("hang")
    with pytest.raises(OSError):  # socket timeout (urllib wraps it in URLError, an OSError)
        doh_get(doh_server.url, query, timeout=0.5)
    doh_server.clear_faults()
    assert doh_server.port == port and doh_get(doh_server.url, query)[0] == 200
    dns_server.stop()  # the upstream is gone: a SERVFAIL the stand-in makes, as public resolvers do
    status, headers, body = doh_get(doh_server.url, query)
    assert status == 200 and headers["cache-control"] == "max-age=0"
    assert parse_answer(body, 7, TYPE_TXT).rcode_name == "SERVFAIL"
    assert doh_server.log()[-1]["upstream"].startswith("failed")
    assert [e["fault"] for e in doh_server.log()] == ["status", "hang", None, None]


# ----------------------------------------------------------------------------
# ipfs-xfer
# ----------------------------------------------------------------------------
def doh_setup(box, doh_server, gateway):
    return ipns_setup(box, f"/ipns/{DOMAIN}", gateways=[gateway.url], extra=[f"DNSServer = {doh_server.url}"])


def test_dnslink_over_doh_end_to_end(make_pacman, nginx, gateway, ipfs_mirror, mirror, dns_server, doh_server):
    root = ipfs_mirror.root_cid
    dns_server.set_records({NAME: f"dnslink=/ipfs/{root}"})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = doh_setup(box, doh_server, gateway)
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    print("\n" + setup.report())
    assert set(setup.served_by().values()) == {"gateway"}
    paths = gateway_file_paths(gateway)
    assert paths and all(path.startswith(f"/ipfs/{root}/") for path in paths), paths
    assert file_requests(nginx, "m1") == []
    [entry] = doh_server.log()  # one lookup for -Sy and -S together
    assert entry["method"] == "GET" and entry["path"] == "/dns-query" and entry["status"] == 200
    assert entry["accept"] == DNS_MESSAGE
    txid, flags, qdcount, name, qtype, qclass = decode_query(entry["dns"])
    assert (txid, qdcount, name, qtype, qclass) == (0, 1, NAME, TYPE_TXT, 1)
    assert not flags & 0x8000 and (flags >> 11) & 0xF == 0  # a standard query
    assert dns_server.queries() == [NAME]  # dnsmasq was asked only through the DoH server
    assert f"/ipns/{DOMAIN}\t/ipfs/{root}\tDNSLink {DOMAIN}" in (setup.state_dir / "roots").read_text()
    answer = resolve(setup)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines()[:2] == [f"/ipfs/{root}", f"source: DNSLink {DOMAIN}"]
    assert len(doh_server.log()) == 2  # `resolve` asks afresh
    assert_cache_clean(box, mirror)


def test_a_dead_doh_server_leaves_pacman_on_the_mirror(make_pacman, nginx, gateway, ipfs_mirror, mirror,
                                                       dns_server, doh_server):
    dns_server.set_records({NAME: f"dnslink=/ipfs/{ipfs_mirror.root_cid}"})
    doh_server.set_fault("down")
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = doh_setup(box, doh_server, gateway)
    answer = resolve(setup)
    assert answer.returncode == 1
    assert answer.stderr.count("\n") == 1, answer.stderr
    assert answer.stderr.startswith(f"ipfs-xfer: error: cannot resolve /ipns/{DOMAIN}"), answer.stderr
    assert NAME in answer.stderr, answer.stderr
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    print("\n" + setup.report())
    assert set(setup.served_by().values()) == {"mirror"}  # HTTP fallback
    # Without an answer the configured root goes to the trusted gateway as it is (RootLookup);
    # the stand-in cannot resolve the domain, so nothing under /ipfs is ever asked for.
    assert all(path.startswith(f"/ipns/{DOMAIN}/") for path in gateway_file_paths(gateway))
    assert all(entry["status"] != 200 for entry in gateway.log() if "/os/" in entry["path"])
    assert dns_server.queries() == [] and doh_server.log() == []
    assert_cache_clean(box, mirror)


@pytest.mark.parametrize("fault", [{"mode": "hang"}, {"mode": "status", "status": 500},
                                   {"mode": "status", "status": 200, "body": b"\x00\x00\x81\x80"}])
def test_a_failing_doh_server_is_one_error_line(fault, make_pacman, gateway, dns_server, doh_server):
    dns_server.set_records({NAME: "dnslink=/ipfs/bafkqaaa"})
    doh_server.set_fault(**fault)
    setup = doh_setup(make_pacman(mirrorlist=["http://127.0.0.1:9/$repo/os/$arch"]), doh_server, gateway)
    started = time.monotonic()
    answer = resolve(setup)
    assert time.monotonic() - started < 10  # ResolveTimeout = 2s bounds a hanging server
    assert answer.returncode == 1 and answer.stderr.count("\n") == 1, answer.stderr
    assert answer.stderr.startswith(f"ipfs-xfer: error: cannot resolve /ipns/{DOMAIN}: "), answer.stderr
    assert NAME in answer.stderr, answer.stderr
    assert [e["fault"] for e in doh_server.log()] == [fault["mode"]]
    assert dns_server.queries() == []


def test_a_doh_answer_with_two_dnslinks_is_refused(make_pacman, gateway, ipfs_mirror, dns_server, doh_server):
    dns_server.set_records({NAME: [f"dnslink=/ipfs/{ipfs_mirror.root_cid}", "dnslink=/ipfs/bafkqaaa"]})
    setup = doh_setup(make_pacman(mirrorlist=["http://127.0.0.1:9/$repo/os/$arch"]), doh_server, gateway)
    answer = resolve(setup)
    assert answer.returncode == 1 and answer.stderr.count("\n") == 1, answer.stderr
    assert "several DNSLinks" in answer.stderr, answer.stderr
    assert f"/ipfs/{ipfs_mirror.root_cid}" in answer.stderr and "/ipfs/bafkqaaa" in answer.stderr
    [entry] = doh_server.log()
    assert entry["status"] == 200 and decode_query(entry["dns"])[3] == NAME


def test_every_base64url_tail_and_a_doh_url_with_a_query(make_pacman, gateway, dns_server, doh_server):
    # Queries of 38, 39 and 40 bytes: base64url tails of 2, 0 and 1 leftover bytes (no padding).
    domains = {"mirror.test": "bafkqaaa", "mirrors.test": "bafkqaab", "mirror-a.test": "bafkqaac"}
    dns_server.set_records({f"_dnslink.{d}": f"dnslink=/ipfs/{cid}" for d, cid in domains.items()})
    box = make_pacman(mirrorlist=["http://127.0.0.1:9/$repo/os/$arch"])
    setup = ipns_setup(box, f"/ipns/{DOMAIN}", extra=[f"DNSServer = {doh_server.url}?ct=application/dns-message"])
    for domain, cid in domains.items():
        answer = resolve(setup, domain)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.splitlines()[:2] == [f"/ipfs/{cid}", f"source: DNSLink {domain}"]
    log = doh_server.log()
    assert [e["status"] for e in log] == [200, 200, 200]
    assert [len(e["dns"]) % 4 for e in log] == [3, 0, 2]
    assert [decode_query(e["dns"])[3] for e in log] == [f"_dnslink.{d}" for d in domains]
    assert all(e["query"]["ct"] == ["application/dns-message"] for e in log)


def test_a_servfail_over_doh_is_reported_as_a_server_failure(make_pacman, gateway, dns_server, doh_server):
    dns_server.stop()  # the DoH server answers SERVFAIL for an upstream that does not answer
    setup = doh_setup(make_pacman(mirrorlist=["http://127.0.0.1:9/$repo/os/$arch"]), doh_server, gateway)
    answer = resolve(setup)
    assert answer.returncode == 1 and answer.stderr.count("\n") == 1, answer.stderr
    assert f"the DNS server failed to answer for {NAME}" in answer.stderr, answer.stderr
    assert [e["rcode"] for e in doh_server.log()] == [2]
