"""UnixFS reader: resolve ``/<cid>/<path…>`` and stream file byte ranges.

Supports dag-pb and raw codecs, basic directories, HAMT-sharded directories
(fanout 256, murmur3-x64-64 h1 big-endian, link names ``%02X`` + name) and
files of any depth (``blocksizes`` are used to skip subtrees). Symlinks are
reported, never followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from .blockstore import BlockStore
from .cid import CID, DAG_PB, RAW, CIDError
from .murmur3 import murmur3_x64_64
from .protobuf import (
    DIRECTORY,
    FILE,
    HAMT_SHARD,
    RAW as UNIXFS_RAW,
    SYMLINK,
    PBLink,
    PBNode,
    UnixFSData,
)

HAMT_MURMUR3 = 0x22


class UnixFSError(Exception):
    """Base class for resolution and decoding errors."""


class PathNotFound(UnixFSError):
    """A path segment does not exist in its directory."""


class NotADirectory(UnixFSError):
    """A path continues below something that is not a directory."""


class SymlinkInPath(UnixFSError):
    """A path goes through a symlink; the target is reported, not followed."""

    def __init__(self, path: str, target: str):
        super().__init__(f"{path} is a symlink to {target!r}")
        self.path = path
        self.target = target


class InvalidDAG(UnixFSError):
    """The DAG is structurally invalid (bad blocksizes, unknown codec, …)."""


@dataclass
class Node:
    """A decoded UnixFS node.

    ``kind`` is one of ``file``, ``directory``, ``hamt``, ``symlink``.
    Raw-codec blocks are files whose bytes are the whole block.
    """

    cid: CID
    kind: str
    pb: PBNode | None = None
    unixfs: UnixFSData | None = None
    raw: bytes | None = None
    block_size: int = 0

    @property
    def is_dir(self) -> bool:
        """True for basic and HAMT directories."""
        return self.kind in ("directory", "hamt")

    @property
    def size(self) -> int:
        """File size in bytes (symlink: target length; directory: 0)."""
        if self.raw is not None:
            return len(self.raw)
        assert self.unixfs is not None
        if self.kind == "file":
            if self.unixfs.filesize is not None:
                return self.unixfs.filesize
            return len(self.unixfs.data) + sum(self.unixfs.blocksizes)
        if self.kind == "symlink":
            return len(self.unixfs.data)
        return 0

    @property
    def symlink_target(self) -> str:
        """Target of a symlink node."""
        assert self.kind == "symlink" and self.unixfs is not None
        return self.unixfs.data.decode("utf-8", "surrogateescape")


@dataclass
class Resolved:
    """Result of resolving a path: the final node plus the CID of every segment."""

    node: Node
    roots: list[CID] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)


class UnixFS:
    """Resolves paths and reads files from a :class:`BlockStore`."""

    def __init__(self, store: BlockStore):
        """Wrap ``store``; all blocks read are hash-checked by the store."""
        self.store = store

    # -- decoding -------------------------------------------------------
    def load(self, cid: CID | str) -> Node:
        """Fetch and decode the block for ``cid``."""
        if isinstance(cid, str):
            cid = CID.parse(cid)
        block = self.store.get(cid)
        if cid.codec == RAW:
            return Node(cid, "file", raw=block, block_size=len(block))
        if cid.codec != DAG_PB:
            raise InvalidDAG(f"unsupported codec 0x{cid.codec:x} for {cid}")
        try:
            pb = PBNode.decode(block)
            if pb.data is None:
                raise InvalidDAG(f"dag-pb node {cid} has no UnixFS data")
            ufs = UnixFSData.decode(pb.data)
        except (ValueError, CIDError) as exc:
            raise InvalidDAG(f"cannot decode {cid}: {exc}") from None
        if ufs.type in (FILE, UNIXFS_RAW):
            kind = "file"
            if len(ufs.blocksizes) != len(pb.links):
                raise InvalidDAG(f"{cid}: {len(ufs.blocksizes)} blocksizes for {len(pb.links)} links")
        elif ufs.type == DIRECTORY:
            kind = "directory"
        elif ufs.type == HAMT_SHARD:
            kind = "hamt"
            if ufs.hash_type != HAMT_MURMUR3 or ufs.fanout != 256:
                raise InvalidDAG(f"{cid}: unsupported HAMT hash {ufs.hash_type} / fanout {ufs.fanout}")
        elif ufs.type == SYMLINK:
            kind = "symlink"
        else:
            raise InvalidDAG(f"{cid}: unsupported UnixFS type {ufs.type}")
        return Node(cid, kind, pb=pb, unixfs=ufs, block_size=len(block))

    # -- directories ----------------------------------------------------
    def lookup(self, directory: Node, name: str) -> CID | None:
        """Return the CID of entry ``name`` in a basic or HAMT directory, or None."""
        if directory.kind == "directory":
            assert directory.pb is not None
            for link in directory.pb.links:
                if link.name == name:
                    return link.cid
            return None
        if directory.kind != "hamt":
            raise NotADirectory(str(directory.cid))
        digest = murmur3_x64_64(name.encode("utf-8", "surrogateescape"))
        shard = directory
        for depth in range(8):
            assert shard.pb is not None
            prefix = f"{digest[depth]:02X}"
            for link in shard.pb.links:
                if not link.name.startswith(prefix):
                    continue
                if link.name == prefix:
                    shard = self.load(link.cid)
                    if shard.kind != "hamt":
                        raise InvalidDAG(f"HAMT child {link.cid} is not a shard")
                    break
                if link.name[2:] == name:
                    return link.cid
                return None
            else:
                return None
        raise InvalidDAG("sharded directory too deep")

    def listdir(self, directory: Node) -> Iterator[PBLink]:
        """Yield the entries of a directory as links with their real names.

        HAMT shards are walked recursively; yielded names have the bucket
        prefix removed. Order follows the stored links.
        """
        if directory.kind == "directory":
            assert directory.pb is not None
            yield from directory.pb.links
            return
        if directory.kind != "hamt":
            raise NotADirectory(str(directory.cid))
        assert directory.pb is not None
        for link in directory.pb.links:
            if len(link.name) == 2:
                yield from self.listdir(self.load(link.cid))
            else:
                yield PBLink(link.cid, link.name[2:], link.tsize)

    # -- paths ----------------------------------------------------------
    def resolve(self, root: CID | str, segments: list[str] | str = ()) -> Resolved:
        """Resolve ``segments`` (a list, or a ``/``-separated string) below ``root``.

        Empty segments are ignored. Raises :class:`PathNotFound`,
        :class:`NotADirectory` or :class:`SymlinkInPath`.
        """
        if isinstance(root, str):
            root = CID.parse(root)
        if isinstance(segments, str):
            segments = segments.split("/")
        segments = [s for s in segments if s not in ("", ".")]
        node = self.load(root)
        result = Resolved(node, [root], [])
        walked = str(root)
        for seg in segments:
            if node.kind == "symlink":
                raise SymlinkInPath(walked, node.symlink_target)
            if not node.is_dir:
                raise NotADirectory(walked)
            child = self.lookup(node, seg)
            walked += "/" + seg
            if child is None:
                raise PathNotFound(walked)
            node = self.load(child)
            result.roots.append(child)
            result.segments.append(seg)
        result.node = node
        return result

    # -- files ----------------------------------------------------------
    def read(self, node: Node, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream ``length`` bytes of a file starting at ``offset``.

        Subtrees outside the range are skipped using ``blocksizes``, so only
        the blocks holding the range are read.
        """
        if node.kind == "symlink":
            data = node.unixfs.data if node.unixfs else b""
            end = len(data) if length is None else min(len(data), offset + length)
            if offset < end:
                yield data[offset:end]
            return
        if node.kind != "file":
            raise UnixFSError(f"{node.cid} is a {node.kind}, not a file")
        size = node.size
        end = size if length is None else min(size, offset + length)
        if offset >= end:
            return
        yield from self._read_range(node, offset, end)

    def _read_range(self, node: Node, start: int, end: int) -> Iterator[bytes]:
        if node.raw is not None:
            if end > len(node.raw):
                raise InvalidDAG(f"raw block {node.cid} shorter than its blocksize")
            yield node.raw[start:end]
            return
        if node.kind != "file":
            raise InvalidDAG(f"file child {node.cid} is a {node.kind}")
        assert node.unixfs is not None and node.pb is not None
        inline = node.unixfs.data
        pos = len(inline)
        if start < pos:
            yield inline[start : min(end, pos)]
        for link, blocksize in zip(node.pb.links, node.unixfs.blocksizes):
            if pos >= end:
                break
            child_end = pos + blocksize
            if child_end > start:
                child = self.load(link.cid)
                yield from self._read_range(child, max(0, start - pos), min(blocksize, end - pos))
            pos = child_end
        if pos < end:
            raise InvalidDAG(f"{node.cid}: file data ends at {pos}, expected {end}")

    def cat(self, node: Node) -> bytes:
        """Return a whole file's bytes."""
        return b"".join(self.read(node))
