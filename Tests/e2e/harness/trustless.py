"""The stand-in's trustless gateway responses (ipfs/specs trustless-gateway.md, ipfs.md §2.1).

Registered on every :class:`harness.gateway.GatewayApp` by default (no plugin needed):

``GET|HEAD /ipfs/<cid>[/<path>]?format=car`` (or ``Accept: application/vnd.ipld.car``; ``format=``
wins over ``Accept``) streams a CARv1 with chunked transfer encoding, as kubo does. Parameters
(query parameters override the Accept parameters ``version=``, ``order=``, ``dups=``):

* ``dag-scope=block|entity|all`` (default ``all``);
* ``car-dups=y|n`` / ``dups=`` (default ``n``);
* ``car-order=dfs|unk`` / ``order=`` (blocks are always sent depth first, ``order=dfs``);
* ``car-version=1`` / ``version=`` (only 1);
* ``entity-bytes=from:to`` (IPIP-402, see :func:`parse_entity_bytes` and :func:`range_walk`).

Headers: ``Content-Type: application/vnd.ipld.car; version=1; order=dfs; dups=y|n``,
``Content-Disposition: attachment; filename="<cid>.car"``, ``X-Content-Type-Options: nosniff``,
``Accept-Ranges: none``, a weak ``Etag``, ``X-Ipfs-Path``, ``X-Ipfs-Roots``, immutable
``Cache-Control``, and the trailer ``X-Stream-Error`` when a block is missing mid-stream (the CAR
then simply ends early; the status stays 200).

The CAR header's only root is the request's root CID. Blocks, in exactly this order (conformance
``Exactly().InThatOrder()``):

1. the *path blocks*: the root block and, for each path segment, the blocks that resolve it — the
   next directory block, or for a HAMT directory the shard blocks along the bucket path of the
   name (the terminal block itself is not a path block);
2. the *entity blocks*, starting with the terminal block: ``block`` → only it; ``entity`` → a
   file's whole DAG depth first (node, then its children left to right), a directory's own block
   plus, for a HAMT, all its shard blocks (not the entries); ``all`` → the whole DAG below it
   depth first.

``entity-bytes=from:to`` (inclusive byte offsets into the terminal file; ``to`` may be ``*``;
negative offsets count from the end, ``-1`` being the last byte) implies ``dag-scope=entity``
(an explicit ``dag-scope=block`` still wins). For a UnixFS file (raw block, or dag-pb of UnixFS
type File/Raw) the entity blocks are then only those whose byte span intersects the range, depth
first: a node is sent when any byte of its subtree is in the range, and a child whose span —
from the parent's ``blocksizes``, after the parent's own inline ``Data`` — lies wholly outside it
is skipped with its subtree. The offsets are resolved against the file root's size (``filesize``,
else inline data plus ``blocksizes``): a negative ``from`` before the start is clamped to 0, ``to``
past the end to the last byte. Errors and edge cases:

* a value not of the form ``int:int`` or ``int:*`` (also an empty one) → 400;
* ``from > to`` where both have the same sign (known up front, as boxo) → 400, for any target;
* for a file, ``from > to`` after resolving the negative offsets (``to`` not ``*``) → 400;
* a range that does not intersect the file (e.g. ``from`` at or past the end, or an empty file)
  → served as ``dag-scope=block``: the path blocks and the file's root block only;
* a terminal that is not a file (directory, HAMT, symlink, …) → ``entity-bytes`` is ignored
  (after the syntax checks) and the CAR is ``dag-scope=entity``.

The ``Etag`` variant includes the range (normalised ``from:to``) when one is given.

With ``dups=y`` a block is sent at each occurrence in the traversal, with ``dups=n`` once (a
repeated subtree is skipped). Identity CIDs are never sent. A missing root block, a missing
path block or segment → 404 (symlinks in the path and non-directories too).

``GET|HEAD /ipfs/<cid>?format=raw`` (or ``Accept: application/vnd.ipld.raw``): the block,
``Content-Type: application/vnd.ipld.raw``; 404 if missing, 400 with a path;
``/ipfs/bafkqaaa?format=raw`` is the 200-with-empty-body probe.

Faults: the ``car-*`` modes and ``raw-corrupt`` of :mod:`harness.faults` are applied here (see
:func:`apply_car_fault` and the table in :mod:`harness.faults`); byte-level modes (``stall-body``,
``truncate``, ``corrupt``, ``slow``, ``status``, ``hang-headers``) are applied by the server to
the CAR or raw bytes like to any other response. A CAR fault that needs the number of entity
blocks (default or negative ``index``) first walks the DAG once to count them.

Log entries get ``format`` (``car``/``raw``/``file``) and, for CARs, ``blocks`` (sections fully
sent), ``stream_error`` if the stream ended early, and with ``entity-bytes`` the resolved
``entity_bytes`` ``[first, last]`` (null when served as a block or the target is no file).
"""

from __future__ import annotations

import functools
import hashlib
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Iterator

from .blockstore import BlockCorrupt, BlockNotFound, BlockStore
from .car import header, section
from .cid import CID, CIDError
from .faults import CAR_MODES, CutConnection, Fault
from .murmur3 import murmur3_x64_64
from .protobuf import DIRECTORY, FILE, HAMT_SHARD, METADATA, SYMLINK, PBLink, PBNode, UnixFSData
from .protobuf import RAW as UNIXFS_RAW
from .unixfs import HAMT_MURMUR3, InvalidDAG, NotADirectory, PathNotFound, SymlinkInPath

DAG_PB = 0x70
RAW = 0x55
IDENTITY = 0x00
CAR_MIME = "application/vnd.ipld.car"
RAW_MIME = "application/vnd.ipld.raw"
IMMUTABLE_CACHE = "public, max-age=29030400, immutable"
MAX_BLOCK = 2 << 20  # the spec's (and kubo's) block limit; car-oversize sends one byte more
FOREIGN_BLOCK = b"foreign"
STREAM_ERROR = "X-Stream-Error"


def raw_cid(block: bytes) -> CID:
    """The CIDv1 (raw codec, sha2-256) of ``block``."""
    return CID(1, RAW, bytes([0x12, 0x20]) + hashlib.sha256(block).digest())


FOREIGN_CID = raw_cid(FOREIGN_BLOCK)


@functools.lru_cache(maxsize=4)
def oversize_block(size: int = MAX_BLOCK + 1) -> tuple[CID, bytes]:
    """A deterministic raw block of ``size`` bytes and its CID (for ``car-oversize``)."""
    pattern = hashlib.sha256(b"ipfs-xfer stand-in oversize block").digest()
    block = (pattern * (size // len(pattern) + 1))[:size]
    return raw_cid(block), block


def pad_bytes(count: int) -> bytes:
    """``count`` garbage bytes for ``car-pad``: 0xAB, a varint continuation byte.

    From 10 bytes on, any reader sees an over-long section-length varint; shorter padding reads
    as a section length cut short (which a client may take for a stream that broke off).
    """
    return b"\xab" * count


def register(app) -> None:
    """Serve ``format=car`` and ``format=raw`` (and their Accept types) on ``/ipfs``."""
    app.ipfs_formats["car"] = handle_car
    app.ipfs_formats["raw"] = handle_raw
    app.accept_formats[CAR_MIME] = "car"
    app.accept_formats[RAW_MIME] = "raw"


# ----------------------------------------------------------------------------
# request parameters
# ----------------------------------------------------------------------------
def accept_params(accept: str | None, mime: str) -> dict[str, str] | None:
    """Parameters of the first ``Accept`` item of type ``mime`` (None if it is not listed)."""
    for item in (accept or "").split(","):
        parts = [p.strip() for p in item.split(";")]
        if parts[0].lower() != mime:
            continue
        params = {}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        return params
    return None


@dataclass
class CarParams:
    """The CAR request parameters after defaults."""

    scope: str = "all"
    dups: bool = False
    order: str = "dfs"
    version: str = "1"
    entity_bytes: "EntityBytes | None" = None  # as requested
    byte_range: tuple[int, int] | None = None  # resolved against the terminal file (inclusive)


def car_params(req) -> CarParams | str:
    """Parse the CAR parameters of ``req``; a string is the 400 error message."""
    accept = accept_params(req.headers.get("Accept"), CAR_MIME) or {}
    params = CarParams()
    params.scope = req.param("dag-scope") or "all"
    if params.scope not in ("block", "entity", "all"):
        return f"invalid dag-scope {params.scope!r} (block, entity or all)"
    version = req.param("car-version") or accept.get("version") or "1"
    if version != "1":
        return f"unsupported CAR version {version!r} (only 1)"
    order = req.param("car-order") or accept.get("order") or "dfs"
    if order not in ("dfs", "unk"):
        return f"invalid CAR order {order!r} (dfs or unk)"
    dups = req.param("car-dups") or accept.get("dups") or "n"
    if dups not in ("y", "n"):
        return f"invalid CAR dups {dups!r} (y or n)"
    params.dups = dups == "y"
    return params


ENTITY_BYTES_RE = re.compile(r"(-?[0-9]+):(-?[0-9]+|\*)")


@dataclass(frozen=True)
class EntityBytes:
    """A parsed ``entity-bytes=from:to``; ``last`` is None for ``*``. Offsets may be negative."""

    first: int
    last: int | None

    def __str__(self) -> str:
        return f"{self.first}:{'*' if self.last is None else self.last}"

    def resolve(self, size: int) -> tuple[int, int] | None | str:
        """The inclusive ``(first, last)`` byte offsets within a file of ``size`` bytes.

        None if the range does not intersect the file (served as ``dag-scope=block``); a string
        (the 400 message) if ``from`` comes after ``to`` once negative offsets are resolved.
        """
        first = self.first + size if self.first < 0 else self.first
        if self.last is None:
            last = size - 1
        else:
            last = self.last + size if self.last < 0 else self.last
            if first > last:
                return f"entity-bytes {self}: from ({first}) is after to ({last}) for a {size}-byte file"
        first, last = max(first, 0), min(last, size - 1)
        return (first, last) if first <= last else None


def parse_entity_bytes(value: str) -> EntityBytes | str:
    """Parse ``from:to`` (``to`` may be ``*``); a string is the 400 error message.

    As boxo, ``from > to`` is rejected up front when both have the same sign; mixed signs can
    only be checked against the file size (:meth:`EntityBytes.resolve`).
    """
    match = ENTITY_BYTES_RE.fullmatch(value)
    if match is None:
        return f"invalid entity-bytes {value!r} (from:to, from:* with integer offsets)"
    first = int(match.group(1))
    last = None if match.group(2) == "*" else int(match.group(2))
    if last is not None and (first >= 0) == (last >= 0) and first > last:
        return f"invalid entity-bytes {value!r}: from is after to"
    return EntityBytes(first, last)


# ----------------------------------------------------------------------------
# DAG walking
# ----------------------------------------------------------------------------
def decode(cid: CID, block: bytes) -> tuple[str, list[PBLink], UnixFSData | None]:
    """``(kind, links, unixfs)`` of a block; kind is file/directory/hamt/symlink/dag-pb/other."""
    if cid.codec == RAW:
        return "file", [], None
    if cid.codec != DAG_PB:
        return "other", [], None
    try:
        pb = PBNode.decode(block)
        if pb.data is None:
            return "dag-pb", pb.links, None
        ufs = UnixFSData.decode(pb.data)
    except (ValueError, CIDError) as exc:
        raise InvalidDAG(f"cannot decode {cid}: {exc}") from None
    kind = {FILE: "file", UNIXFS_RAW: "file", METADATA: "file", DIRECTORY: "directory",
            HAMT_SHARD: "hamt", SYMLINK: "symlink"}[ufs.type]
    if kind == "hamt" and (ufs.hash_type != HAMT_MURMUR3 or ufs.fanout != 256):
        raise InvalidDAG(f"{cid}: unsupported HAMT hash {ufs.hash_type} / fanout {ufs.fanout}")
    return kind, pb.links, ufs


@dataclass
class PathResolution:
    """The blocks that resolve ``/<root>/<segments>`` and the terminal block."""

    path_blocks: list[tuple[CID, bytes]]  # root, directories and HAMT shards; not the terminal
    terminal: CID
    terminal_block: bytes
    roots: list[CID] = field(default_factory=list)  # CID of each logical segment (X-Ipfs-Roots)


def resolve_path(store: BlockStore, root: CID, segments: list[str]) -> PathResolution:
    """Walk ``segments`` below ``root``, recording every block read on the way.

    Raises BlockNotFound, PathNotFound, NotADirectory, SymlinkInPath or InvalidDAG.
    """
    cid, block = root, store.get(root)
    path_blocks: list[tuple[CID, bytes]] = []
    roots = [root]
    walked = str(root)
    for segment in segments:
        kind, links, ufs = decode(cid, block)
        if kind == "symlink":
            raise SymlinkInPath(walked, ufs.data.decode("utf-8", "surrogateescape"))
        if kind not in ("directory", "hamt"):
            raise NotADirectory(walked)
        path_blocks.append((cid, block))
        walked += "/" + segment
        if kind == "directory":
            found = next((link.cid for link in links if link.name == segment), None)
        else:
            found = _hamt_lookup(store, links, segment, path_blocks)
        if found is None:
            raise PathNotFound(walked)
        cid, block = found, store.get(found)
        roots.append(found)
    return PathResolution(path_blocks, cid, block, roots)


def _hamt_lookup(store: BlockStore, links: list[PBLink], name: str, visited: list) -> CID | None:
    """Find ``name`` in a HAMT whose root links are ``links``; inner shards go to ``visited``."""
    digest = murmur3_x64_64(name.encode("utf-8", "surrogateescape"))
    for depth in range(8):
        prefix = f"{digest[depth]:02X}"
        link = next((l for l in links if l.name.startswith(prefix)), None)
        if link is None:
            return None
        if link.name != prefix:
            return link.cid if link.name[2:] == name else None
        shard = store.get(link.cid)
        kind, links, _ = decode(link.cid, shard)
        if kind != "hamt":
            raise InvalidDAG(f"HAMT child {link.cid} is not a shard")
        visited.append((link.cid, shard))
    raise InvalidDAG("sharded directory too deep")


def entity_walk(store: BlockStore, cid: CID, block: bytes, scope: str,
                seen: set[bytes] | None) -> Iterator[tuple[CID, bytes]]:
    """The terminal entity's blocks in DFS order (identity blocks traversed, never yielded).

    ``seen`` is the set of CIDs already sent (dups=n) or None (dups=y).
    """
    kind, _, _ = decode(cid, block)
    if scope == "block" or (scope == "entity" and kind == "directory"):
        follow = None
    elif scope == "entity" and kind == "hamt":
        follow = lambda link: len(link.name) == 2  # noqa: E731 — sub-shards, not entries
    else:
        follow = lambda link: True  # noqa: E731
    stack: list[tuple[CID, bytes | None]] = [(cid, block)]
    while stack:
        cid, block = stack.pop()
        if seen is not None:
            key = cid.to_bytes()
            if key in seen:
                continue
            seen.add(key)
        if block is None:
            block = store.get(cid)
        if cid.hash_code != IDENTITY:
            yield cid, block
        if follow is None or cid.codec != DAG_PB:
            continue
        try:
            links = PBNode.decode(block).links
        except (ValueError, CIDError) as exc:
            raise InvalidDAG(f"cannot decode {cid}: {exc}") from None
        stack.extend((link.cid, None) for link in reversed(links) if follow(link))


def file_size(cid: CID, block: bytes) -> int | None:
    """Size of the UnixFS file whose root block is ``block``; None if it is not a file.

    A raw block is a file of its own length; a dag-pb node of UnixFS type File or Raw has its
    ``filesize``, or else inline data plus ``blocksizes`` (Metadata nodes are not files here).
    """
    if cid.codec == RAW:
        return len(block)
    if cid.codec != DAG_PB:
        return None
    try:
        pb = PBNode.decode(block)
        ufs = UnixFSData.decode(pb.data) if pb.data is not None else None
    except (ValueError, CIDError):
        return None
    if ufs is None or ufs.type not in (FILE, UNIXFS_RAW):
        return None
    return ufs.filesize if ufs.filesize is not None else len(ufs.data) + sum(ufs.blocksizes)


def range_walk(store: BlockStore, cid: CID, block: bytes, first: int, last: int,
               seen: set[bytes] | None) -> Iterator[tuple[CID, bytes]]:
    """The blocks of the file DAG under ``cid`` needed for bytes ``first..last`` (inclusive), DFS.

    The root is always yielded. Below a dag-pb node, the node's inline ``Data`` comes first, then
    each child spans the next ``blocksizes[i]`` bytes; a child whose span does not intersect the
    range is skipped with its whole subtree (as boxo's seek does). Identity blocks are traversed,
    never yielded; ``seen`` is as for :func:`entity_walk`.
    """
    stack: list[tuple[CID, bytes | None, int]] = [(cid, block, 0)]
    while stack:
        cid, block, offset = stack.pop()
        if seen is not None:
            key = cid.to_bytes()
            if key in seen:
                continue
            seen.add(key)
        if block is None:
            block = store.get(cid)
        if cid.hash_code != IDENTITY:
            yield cid, block
        if cid.codec != DAG_PB:
            continue  # a raw leaf
        try:
            pb = PBNode.decode(block)
            ufs = UnixFSData.decode(pb.data) if pb.data is not None else None
        except (ValueError, CIDError) as exc:
            raise InvalidDAG(f"cannot decode {cid}: {exc}") from None
        if ufs is None or ufs.type not in (FILE, UNIXFS_RAW):
            raise InvalidDAG(f"{cid} in a file DAG is not a UnixFS file node")
        if len(ufs.blocksizes) != len(pb.links):
            raise InvalidDAG(f"{cid}: {len(ufs.blocksizes)} blocksizes for {len(pb.links)} links")
        pos = offset + len(ufs.data)
        children = []
        for link, size in zip(pb.links, ufs.blocksizes):
            if pos > last:
                break
            if size > 0 and pos + size - 1 >= first:
                children.append((link.cid, None, pos))
            pos += size
        stack.extend(reversed(children))


def car_blocks(store: BlockStore, res: PathResolution, scope: str, dups: bool,
               byte_range: tuple[int, int] | None = None) -> Iterator[tuple[CID, bytes]]:
    """Every block of the CAR in order: path blocks, then the entity.

    With ``byte_range`` (inclusive offsets, the terminal being a file) the entity is only the
    blocks needed for that range (:func:`range_walk`); ``scope`` is then ignored.
    """
    seen: set[bytes] | None = None if dups else set()
    for cid, block in res.path_blocks:
        if seen is not None:
            if cid.to_bytes() in seen:
                continue
            seen.add(cid.to_bytes())
        if cid.hash_code != IDENTITY:
            yield cid, block
    if byte_range is not None:
        yield from range_walk(store, res.terminal, res.terminal_block, *byte_range, seen)
    else:
        yield from entity_walk(store, res.terminal, res.terminal_block, scope, seen)


def path_block_count(res: PathResolution, dups: bool) -> int:
    """How many sections the path blocks take (identity blocks are not sent)."""
    sent = [c.to_bytes() for c, _ in res.path_blocks if c.hash_code != IDENTITY]
    return len(sent) if dups else len(set(sent))


# ----------------------------------------------------------------------------
# CAR faults
# ----------------------------------------------------------------------------
@dataclass
class Item:
    """One piece of the CAR body: a section, or loose bytes (padding, a cut section)."""

    cid: CID | None = None
    block: bytes = b""
    raw: bytes | None = None
    cut_connection: bool = False


def fault_target(fault: Fault, n_path: int, count: int | None) -> int:
    """Absolute section position a CAR fault aims at (see the table in :mod:`harness.faults`)."""
    params = fault.params
    total = None if count is None else n_path + count
    if "section" in params:
        position = int(params["section"])
        return position if total is None else min(position, max(total - 1, 0))
    if fault.mode == "car-oversize":
        index = int(params.get("index", 0))
    elif "index" in params:
        index = int(params["index"])
    else:
        index = (count or 0) // 2
    if count is not None:
        if index < 0:
            index += count
        index = max(0, min(index, count if fault.mode == "car-oversize" else count - 1))
    return n_path + index


def needs_count(fault: Fault) -> bool:
    """True if the fault's target depends on the number of entity blocks."""
    if fault.mode == "car-pad":
        return False
    if "section" in fault.params:
        return True  # clamped to the last block
    return fault.mode != "car-oversize" or "index" in fault.params


def flip(block: bytes, offset: int | None) -> bytes:
    """``block`` with the byte at ``offset`` (default: the middle) XORed with 0xFF."""
    if not block:
        return block
    position = min(len(block) // 2 if offset is None else offset, len(block) - 1)
    data = bytearray(block)
    data[position] ^= 0xFF
    return bytes(data)


def apply_car_fault(blocks: Iterator[tuple[CID, bytes]], fault: Fault | None,
                    target: int, total: int | None) -> Iterator[Item]:
    """The CAR body items for ``blocks`` with ``fault`` applied at absolute position ``target``."""
    mode = fault.mode if fault is not None and fault.mode in CAR_MODES else None
    params = fault.params if fault is not None else {}
    if mode == "car-reorder" and total is not None and target + 1 >= total:
        target -= 1  # the last block swaps with the one before it
    held: Item | None = None
    position = -1
    for position, (cid, block) in enumerate(blocks):
        item = Item(cid, block)
        if position != target or mode is None:
            if mode == "car-reorder" and held is not None:
                yield item
                yield held
                held = None
                continue
            yield item
            continue
        if mode == "car-reorder" and target >= 0:
            held = item
        elif mode == "car-drop":
            continue
        elif mode == "car-duplicate":
            yield item
            yield Item(cid, block)
        elif mode == "car-corrupt":
            yield Item(cid, flip(block, params.get("offset")))
        elif mode == "car-foreign":
            yield Item(FOREIGN_CID, FOREIGN_BLOCK)
        elif mode == "car-oversize":
            big_cid, big = oversize_block(int(params.get("size", MAX_BLOCK + 1)))
            yield Item(big_cid, big)
            yield item
        elif mode == "car-truncate":
            data = section(cid, block)
            yield Item(raw=data[: max(1, len(data) // 2)], cut_connection=bool(params.get("close")))
            return
        else:
            yield item
    if held is not None:  # nothing followed the held block
        yield held
    if mode == "car-oversize" and target == position + 1:  # insert at the very end
        big_cid, big = oversize_block(int(params.get("size", MAX_BLOCK + 1)))
        yield Item(big_cid, big)
    if mode == "car-pad":
        yield Item(raw=pad_bytes(int(params.get("bytes", 100))))


# ----------------------------------------------------------------------------
# handlers
# ----------------------------------------------------------------------------
def _gateway():
    # Imported late: harness.gateway imports this module.
    from . import gateway

    return gateway


def _resolve_or_error(app, req, root: CID, segments: list[str]):
    """A PathResolution, or the error Response for a missing root, path or bad DAG."""
    gw = _gateway()
    try:
        return resolve_path(app.store, root, segments)
    except BlockNotFound as exc:
        return gw.text_response(404, f"block {exc.args[0]} not found (stand-in gateway is offline)")
    except PathNotFound as exc:
        return gw.text_response(404, f"no link named {segments[-1]!r} under {exc}")
    except SymlinkInPath as exc:
        return gw.text_response(404, f"path goes through a symlink: {exc}")
    except NotADirectory as exc:
        return gw.text_response(404, f"{exc} is not a directory")
    except (InvalidDAG, BlockCorrupt) as exc:
        return gw.text_response(500, f"cannot resolve path: {exc}")


def handle_car(app, req, root: CID, segments: list[str]):
    """``/ipfs/<root>/<segments>?format=car``: the CAR of the path and its entity."""
    gw = _gateway()
    params = car_params(req)
    if isinstance(params, str):
        return gw.text_response(400, params)
    entity_bytes = req.param("entity-bytes")
    if entity_bytes is not None:
        parsed = parse_entity_bytes(entity_bytes)
        if isinstance(parsed, str):
            return gw.text_response(400, parsed)
        params.entity_bytes = parsed
    res = _resolve_or_error(app, req, root, segments)
    if not isinstance(res, PathResolution):
        return res
    dups = "y" if params.dups else "n"
    etag_key = f"{'/'.join(segments)}\0{params.scope}\0{dups}"
    if params.entity_bytes is not None:
        etag_key += f"\0{params.entity_bytes}"
        error = _apply_entity_bytes(params, res)
        if error is not None:
            return gw.text_response(400, error)
    variant = hashlib.sha256(etag_key.encode()).hexdigest()[:16]
    headers = [
        ("Content-Type", f"{CAR_MIME}; version=1; order=dfs; dups={dups}"),
        ("Content-Disposition", f'attachment; filename="{root}.car"'),
        ("X-Content-Type-Options", "nosniff"),
        ("Accept-Ranges", "none"),
        ("Cache-Control", IMMUTABLE_CACHE),
        ("Etag", f'W/"{root}.car.{variant}"'),
        ("X-Ipfs-Path", urllib.parse.unquote(req.path)),
        ("X-Ipfs-Roots", ",".join(str(c) for c in res.roots)),
    ]
    response = gw.Response(200, headers, b"", chunked=True, trailer_names=(STREAM_ERROR,))
    if req.method != "HEAD":
        response.body = _car_body(app, req, response, root, res, params)
    return response


def _apply_entity_bytes(params: CarParams, res: PathResolution) -> str | None:
    """Turn ``params.entity_bytes`` into the scope and byte range to serve; a string is a 400.

    ``dag-scope=block`` wins; otherwise the scope becomes ``entity``, with the resolved range for
    a file, or ``block`` if the range misses the file entirely. Non-files ignore the range.
    """
    if params.scope == "block":
        return None
    params.scope = "entity"
    size = file_size(res.terminal, res.terminal_block)
    if size is None:
        return None
    resolved = params.entity_bytes.resolve(size)
    if isinstance(resolved, str):
        return resolved
    if resolved is None:
        params.scope = "block"
    else:
        params.byte_range = resolved
    return None


def _car_body(app, req, response, root: CID, res: PathResolution, params: CarParams) -> Iterator[bytes]:
    fault = req.fault if req.fault is not None and req.fault.mode in CAR_MODES else None
    log = req.log if req.log is not None else {}
    log["blocks"] = 0
    if params.entity_bytes is not None:
        log["entity_bytes"] = list(params.byte_range) if params.byte_range is not None else None
    n_path = path_block_count(res, params.dups)
    count = None
    if fault is not None and needs_count(fault):
        count = 0
        unverified = BlockStore(app.store.directory, verify=False)
        try:
            for _ in car_blocks(unverified, res, params.scope, params.dups, params.byte_range):
                count += 1
        except (BlockNotFound, InvalidDAG):
            pass
        count -= n_path
    target = fault_target(fault, n_path, count) if fault is not None else -1
    total = None if count is None else n_path + count
    yield header(root)
    blocks = car_blocks(app.store, res, params.scope, params.dups, params.byte_range)
    items = apply_car_fault(blocks, fault, target, total)
    try:
        for item in items:
            if item.raw is not None:
                yield item.raw
                if item.cut_connection:
                    raise CutConnection()
                continue
            yield section(item.cid, item.block)
            log["blocks"] += 1
    except (BlockNotFound, BlockCorrupt, InvalidDAG) as exc:
        message = f"block {exc.args[0]} not found" if isinstance(exc, BlockNotFound) else str(exc)
        response.trailers[STREAM_ERROR] = message
        log["stream_error"] = message


def handle_raw(app, req, cid: CID, segments: list[str]):
    """``/ipfs/<cid>?format=raw``: one block."""
    gw = _gateway()
    if segments:
        return gw.text_response(400, "format=raw takes no path: /ipfs/<cid>?format=raw")
    try:
        block = app.store.get(cid)  # identity CIDs (the bafkqaaa probe) come from the CID itself
    except BlockNotFound:
        return gw.text_response(404, f"block {cid} not found (stand-in gateway is offline)")
    except BlockCorrupt as exc:
        return gw.text_response(500, str(exc))
    fault = req.fault
    if fault is not None and fault.mode == "raw-corrupt":
        block = flip(block, fault.params.get("offset"))
    headers = [
        ("Content-Type", RAW_MIME),
        ("Content-Disposition", f'attachment; filename="{cid}.bin"'),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", IMMUTABLE_CACHE),
        ("Etag", f'"{cid}.raw"'),
        ("X-Ipfs-Path", urllib.parse.unquote(req.path)),
        ("X-Ipfs-Roots", str(cid)),
    ]
    return gw.Response(200, headers, block if req.method != "HEAD" else b"", length=len(block))

