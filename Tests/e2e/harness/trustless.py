"""The stand-in's trustless gateway responses (ipfs/specs trustless-gateway.md, ipfs.md §2.1).

``GET /ipfs/<cid>[/<path>]?format=car`` (or ``Accept: application/vnd.ipld.car``) streams a
CARv1 whose header root is the request's root: the root block, the blocks that resolve each path
segment (directory blocks, HAMT shards along the bucket path), then the terminal entity for
``dag-scope`` (``block``, ``entity``: a whole file or a directory with its shards, ``all``),
depth first; ``car-dups=y`` (or ``dups=y`` in Accept) repeats blocks at each occurrence.
``GET /ipfs/<cid>?format=raw`` returns one block.

CAR faults (posted like every other fault, applied to CAR responses only):

=================  ==========================================================
``car-reorder``    swap the entity blocks at ``index`` and ``index``+1
``car-drop``       leave out the block at ``index``
``car-duplicate``  send the block at ``index`` twice in a row
``car-corrupt``    flip one byte inside the block at ``index`` (CID unchanged)
``car-foreign``    replace the block at ``index`` by the valid raw block ``foreign``
``car-pad``        add ``bytes`` (default 100) garbage bytes after the last section
``car-oversize``   insert a valid 2 MiB + 1 raw block before the entity
``car-truncate``   end the stream in the middle of the section at ``index``
``raw-corrupt``    flip one byte of a ``?format=raw`` block
=================  ==========================================================

``index`` counts the entity's blocks (after the path blocks); it defaults to the middle one.
"""

from __future__ import annotations

import hashlib
from typing import Iterator

from .car import header
from .cid import CID, write_varint
from .murmur3 import murmur3_x64_64
from .protobuf import PBNode

CAR_MODES = ("car-reorder", "car-drop", "car-duplicate", "car-corrupt", "car-foreign", "car-pad",
             "car-oversize", "car-truncate", "raw-corrupt")
DAG_PB = 0x70
RAW = 0x55


def raw_cid(block: bytes) -> CID:
    """The CIDv1 raw sha2-256 CID of ``block``."""
    return CID(1, RAW, bytes([0x12, 0x20]) + hashlib.sha256(block).digest())


def register(app) -> None:
    """Serves ``format=car`` and ``format=raw`` on the app's /ipfs route."""
    app.ipfs_formats["car"] = handle_car
    app.ipfs_formats["raw"] = handle_raw
    app.accept_formats["application/vnd.ipld.car"] = "car"
    app.accept_formats["application/vnd.ipld.raw"] = "raw"


def _links(store, cid: CID) -> list:
    if cid.codec != DAG_PB:
        return []
    return PBNode.decode(store.get(cid)).links


def path_blocks(app, root: CID, segments: list[str]) -> tuple[list[CID], CID] | None:
    """The blocks that resolve ``segments`` below ``root`` and the terminal CID; None if absent."""
    blocks = [root]
    current = root
    for segment in segments:
        node = app.fs.load(current)
        if node.kind == "directory":
            found = next((link.cid for link in node.pb.links if link.name == segment), None)
        elif node.kind == "hamt":
            digest = murmur3_x64_64(segment.encode("utf-8", "surrogateescape"))
            found = None
            shard = node
            for depth in range(8):
                prefix = f"{digest[depth]:02X}"
                link = next((l for l in shard.pb.links if l.name.startswith(prefix)), None)
                if link is None:
                    break
                if link.name == prefix:
                    blocks.append(link.cid)
                    shard = app.fs.load(link.cid)
                    continue
                if link.name[2:] == segment:
                    found = link.cid
                break
        else:
            return None
        if found is None:
            return None
        blocks.append(found)
        current = found
    return blocks, current


def entity_blocks(app, terminal: CID, scope: str, dups: bool) -> list[CID]:
    """The terminal entity's blocks in DFS order, per ``dag-scope``."""
    if scope == "block":
        return []
    node = app.fs.load(terminal)
    follow_all = scope == "all"
    only_shards = node.kind == "hamt" and not follow_all
    if node.kind == "directory" and not follow_all:
        return []
    order: list[CID] = []
    seen: set[bytes] = {terminal.to_bytes()}
    stack = list(reversed(_links(app.store, terminal)))
    while stack:
        link = stack.pop()
        if only_shards and len(link.name) != 2:
            continue
        key = link.cid.to_bytes()
        if link.cid.multihash[0] == 0x00:  # identity CIDs never travel in CARs
            continue
        if not dups and key in seen:
            continue
        seen.add(key)
        order.append(link.cid)
        stack.extend(reversed(_links(app.store, link.cid)))
    return order


def section(cid: CID, block: bytes) -> bytes:
    identity = cid.to_bytes()
    return write_varint(len(identity) + len(block)) + identity + block


def handle_car(app, req, root: CID, segments: list[str]):
    from .gateway import Response, text_response  # imported here: gateway imports this module

    scope = req.param("dag-scope", "all")
    if scope not in ("block", "entity", "all"):
        return text_response(400, f"invalid dag-scope {scope!r}")
    accept = req.headers.get("Accept") or ""
    dups = (req.param("car-dups") or ("y" if "dups=y" in accept else "n")) == "y"
    if not app.store.has(root):
        return text_response(404, f"block {root} not found")
    resolved = path_blocks(app, root, segments)
    if resolved is None:
        return text_response(404, f"no link named {segments[-1]!r}" if segments else "not found")
    path, terminal = resolved
    entity = entity_blocks(app, terminal, scope, dups)
    sections: list[tuple[CID, bytes | None]] = [(cid, None) for cid in path + entity]
    fault = getattr(req, "fault", None)
    trailer = b""
    cut = None
    if fault is not None and fault.mode.startswith("car-"):
        sections, trailer, cut = apply_car_fault(app, fault, sections, len(path))

    def block_of(item):
        cid, block = item
        return block if block is not None else app.store.get(cid)

    length = len(header(root)) + len(trailer)
    for item in sections:
        length += len(section(item[0], block_of(item)))

    def body() -> Iterator[bytes]:
        yield header(root)
        for position, item in enumerate(sections):
            data = section(item[0], block_of(item))
            if cut is not None and position == cut:
                yield data[: len(data) // 2]
                return
            yield data
        if trailer:
            yield trailer

    if cut is not None:
        length = None  # a cut stream is sent without a length, then the connection closes
    headers = [
        ("Content-Type", f"application/vnd.ipld.car; version=1; order=dfs; dups={'y' if dups else 'n'}"),
        ("Content-Disposition", f'attachment; filename="{root}.car"'),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "public, max-age=29030400, immutable"),
    ]
    if length is None:
        return Response(200, headers, b"".join(body()))
    return Response(200, headers, body(), length=length)


def apply_car_fault(app, fault, sections, path_count):
    """Alters the section list as the fault says; returns (sections, trailer, cut index)."""
    entity_count = len(sections) - path_count
    index = path_count + int(fault.params.get("index", max(entity_count // 2, 0)))
    index = min(index, len(sections) - 1)
    mode = fault.mode
    sections = list(sections)
    trailer = b""
    cut = None
    if mode == "car-reorder" and index + 1 < len(sections):
        sections[index], sections[index + 1] = sections[index + 1], sections[index]
    elif mode == "car-drop":
        del sections[index]
    elif mode == "car-duplicate":
        sections.insert(index + 1, sections[index])
    elif mode == "car-corrupt":
        cid, _ = sections[index]
        block = bytearray(app.store.get(cid))
        block[len(block) // 2] ^= 0x01
        sections[index] = (cid, bytes(block))
    elif mode == "car-foreign":
        sections[index] = (raw_cid(b"foreign"), b"foreign")
    elif mode == "car-pad":
        trailer = b"\xab" * int(fault.params.get("bytes", 100))
    elif mode == "car-oversize":
        huge = b"\x07" * (2 * 1024 * 1024 + 1)
        sections.insert(path_count, (raw_cid(huge), huge))
    elif mode == "car-truncate":
        cut = index
    return sections, trailer, cut


def handle_raw(app, req, cid: CID, segments: list[str]):
    from .gateway import Response, text_response

    if segments:
        return text_response(400, "format=raw takes a bare /ipfs/<cid>")
    if cid.multihash[0] == 0x00:
        block = cid.multihash[2:]
    elif not app.store.has(cid):
        return text_response(404, f"block {cid} not found")
    else:
        block = app.store.get(cid)
    fault = getattr(req, "fault", None)
    if fault is not None and fault.mode == "raw-corrupt" and block:
        data = bytearray(block)
        data[len(data) // 2] ^= 0x01
        block = bytes(data)
    return Response(200, [("Content-Type", "application/vnd.ipld.raw"),
                          ("Content-Disposition", f'attachment; filename="{cid}.bin"'),
                          ("X-Content-Type-Options", "nosniff")], block)
