"""The stand-in's trustless responses themselves: block order, hashes, scopes, dups, faults."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

import pytest

from harness.cid import CID, read_varint
from harness.protobuf import PBNode, UnixFSData

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, accept: str | None = None) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with NO_PROXY.open(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), ""


def read_car(data: bytes) -> list[tuple[CID, bytes]]:
    """Sections of a CARv1 (header skipped), each block checked against its CID."""
    length, position = read_varint(data, 0)
    position += length
    sections = []
    while position < len(data):
        length, position = read_varint(data, position)
        section = data[position:position + length]
        position += length
        if section[:2] == b"\x12\x20":
            cid, size = CID.from_bytes(section[:34]), 34
        else:
            _, p = read_varint(section, 0)
            _, p = read_varint(section, p)
            _, p = read_varint(section, p)
            digest_length, p = read_varint(section, p)
            size = p + digest_length
            cid = CID.from_bytes(section[:size])
        block = section[size:]
        assert hashlib.sha256(block).digest() == cid.digest
        sections.append((cid, block))
    return sections


def file_bytes(sections) -> bytes:
    """The file data of DFS-ordered file blocks (dag-pb File nodes and raw leaves)."""
    out = b""
    for cid, block in sections:
        if cid.codec == 0x55:
            out += block
        else:
            data = UnixFSData.decode(PBNode.decode(block).data)
            out += data.data or b""
    return out


def test_a_path_car_is_path_blocks_then_the_file_depth_first(gateway, ipfs_mirror, mirror):
    package = mirror.package("ipx-big")
    url = f"{gateway.url}/ipfs/{ipfs_mirror.root_cid}/{package.path}?format=car&dag-scope=entity&car-dups=y"
    status, body, content_type = fetch(url)
    assert status == 200 and content_type.startswith("application/vnd.ipld.car; version=1; order=dfs; dups=y")
    sections = read_car(body)
    path = package.path.split("/")
    path_blocks = sections[: len(path)]
    assert str(path_blocks[0][0]) == ipfs_mirror.root_cid
    for (parent, block), name, (child, _) in zip(path_blocks, path, sections[1:]):
        assert any(link.name == name and link.cid == child for link in PBNode.decode(block).links)
    assert hashlib.sha256(file_bytes(sections[len(path):])).hexdigest() == package.sha256
    status, only, _ = fetch(url.replace("dag-scope=entity", "dag-scope=block"))
    assert status == 200 and len(read_car(only)) == len(path) + 1


def test_raw_blocks_and_misses(gateway, ipfs_mirror):
    status, block, content_type = fetch(f"{gateway.url}/ipfs/{ipfs_mirror.root_cid}?format=raw")
    assert status == 200 and content_type == "application/vnd.ipld.raw"
    assert hashlib.sha256(block).digest() == CID.parse(ipfs_mirror.root_cid).digest
    assert fetch(f"{gateway.url}/ipfs/bafkqaaa?format=raw")[:2] == (200, b"")
    missing = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"  # "hello world", not in the store
    assert fetch(f"{gateway.url}/ipfs/{missing}?format=raw")[0] == 404
    assert fetch(f"{gateway.url}/ipfs/{ipfs_mirror.root_cid}/nope?format=car")[0] == 404


def test_car_faults_change_the_stream(gateway, ipfs_mirror, mirror):
    package = mirror.package("ipx-big")
    url = f"{gateway.url}/ipfs/{ipfs_mirror.root_cid}/{package.path}?format=car&dag-scope=entity&car-dups=y"
    clean = read_car(fetch(url)[1])
    for mode, check in [
        ("car-drop", lambda s: len(s) == len(clean) - 1),
        ("car-duplicate", lambda s: len(s) == len(clean) + 1),
        ("car-reorder", lambda s: [c for c, _ in s] != [c for c, _ in clean] and sorted(map(str, (c for c, _ in s))) == sorted(map(str, (c for c, _ in clean)))),
        ("car-foreign", lambda s: any(b == b"foreign" for _, b in s)),
        ("car-oversize", lambda s: any(len(b) > 2 * 1024 * 1024 for _, b in s)),
    ]:
        gateway.set_fault(mode, match=Path(package.path).name, times=1)
        assert check(read_car(fetch(url)[1])), mode
    gateway.set_fault("car-corrupt", match=Path(package.path).name, times=1)
    with pytest.raises(AssertionError):  # read_car finds the block whose hash is wrong
        read_car(fetch(url)[1])
