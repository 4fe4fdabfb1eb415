"""Minimal protobuf wire-format decoder and the dag-pb / UnixFS messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from .cid import CID, DAG_PB, read_varint


class ProtobufError(ValueError):
    """Malformed protobuf input."""


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """Yield ``(field_number, wire_type, value)`` for each field of a message.

    Varints are returned as ``int``, length-delimited fields as ``bytes``,
    fixed32/fixed64 as ``int``.
    """
    pos = 0
    n = len(buf)
    while pos < n:
        try:
            key, pos = read_varint(buf, pos)
        except ValueError as exc:
            raise ProtobufError(str(exc)) from None
        number, wtype = key >> 3, key & 7
        if wtype == 0:
            value, pos = read_varint(buf, pos)
        elif wtype == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > n:
                raise ProtobufError("length-delimited field overruns message")
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wtype == 1:
            if pos + 8 > n:
                raise ProtobufError("truncated fixed64")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wtype == 5:
            if pos + 4 > n:
                raise ProtobufError("truncated fixed32")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wtype}")
        yield number, wtype, value


@dataclass
class PBLink:
    """A dag-pb link: target CID, name and cumulative size."""

    cid: CID
    name: str
    tsize: int | None


@dataclass
class PBNode:
    """A dag-pb node: links (in stored order) and opaque data."""

    links: list[PBLink] = field(default_factory=list)
    data: bytes | None = None

    @classmethod
    def decode(cls, block: bytes) -> "PBNode":
        """Decode a dag-pb block (Links and Data may appear in any order)."""
        node = _decode_canonical(block)
        return node if node is not None else _decode_fields(block)


def _decode_fields(block: bytes) -> PBNode:
    """:meth:`PBNode.decode` field by field: any order, and the errors it reports."""
    node = PBNode()
    for number, wtype, value in iter_fields(block):
        if number == 2 and wtype == 2:
            node.links.append(_decode_link(value))
        elif number == 1 and wtype == 2:
            node.data = value
        else:
            raise ProtobufError(f"unexpected PBNode field {number}/{wtype}")
    return node


def _decode_canonical(block: bytes) -> PBNode | None:
    """:meth:`PBNode.decode` in one pass for a block laid out as encoders write dag-pb (links as
    Hash, Name, Tsize with CIDv0 hashes, then Data); None for any other layout or anything wrong,
    which :func:`_decode_fields` then handles (and reports). The kubo stand-ins decode every block
    they import or serve: field by field, a republish's HAMT shards cost most of an import in
    Python, where kubo's Go decoder costs next to nothing.
    """

    def varint(pos: int, end: int) -> tuple[int, int] | None:
        value = shift = 0
        while pos < end and shift <= 56:
            byte = block[pos]
            value |= (byte & 0x7F) << shift
            pos += 1
            if byte < 0x80:
                return value, pos
            shift += 7
        return None

    node = PBNode()
    n = len(block)
    pos = 0
    try:
        while pos < n:
            key = block[pos]
            length = varint(pos + 1, n)
            if length is None or length[1] + length[0] > n:
                return None
            pos, end = length[1], length[1] + length[0]
            if key == 0x0A:  # Data: the last field
                if end != n:
                    return None
                node.data = bytes(block[pos:end])
                return node
            if key != 0x12 or block[pos] != 0x0A or block[pos + 1] != 34 or block[pos + 2] != 0x12 \
                    or block[pos + 3] != 0x20:
                return None  # not a link with a CIDv0 hash
            cid = CID(0, DAG_PB, bytes(block[pos + 2:pos + 36]))
            pos += 36
            name = ""
            if pos < end and block[pos] == 0x12 and block[pos + 1] < 0x80:
                name = bytes(block[pos + 2:pos + 2 + block[pos + 1]]).decode("utf-8", "surrogateescape")
                pos += 2 + block[pos + 1]
            tsize = None
            if pos < end and block[pos] == 0x18:
                read = varint(pos + 1, end)
                if read is None:
                    return None
                tsize, pos = read
            if pos != end:
                return None
            node.links.append(PBLink(cid, name, tsize))
    except IndexError:
        return None
    return node


def _decode_link(buf: bytes) -> PBLink:
    cid = None
    name = ""
    tsize = None
    for number, wtype, value in iter_fields(buf):
        if number == 1 and wtype == 2:
            cid = CID.from_bytes(value)
        elif number == 2 and wtype == 2:
            name = value.decode("utf-8", "surrogateescape")
        elif number == 3 and wtype == 0:
            tsize = value
        else:
            raise ProtobufError(f"unexpected PBLink field {number}/{wtype}")
    if cid is None:
        raise ProtobufError("PBLink without Hash")
    return PBLink(cid, name, tsize)


# UnixFS Data.Type values
RAW, DIRECTORY, FILE, METADATA, SYMLINK, HAMT_SHARD = range(6)
TYPE_NAMES = {
    RAW: "raw",
    DIRECTORY: "directory",
    FILE: "file",
    METADATA: "metadata",
    SYMLINK: "symlink",
    HAMT_SHARD: "hamt-shard",
}


@dataclass
class UnixFSData:
    """The UnixFS ``Data`` protobuf carried in a dag-pb node's Data field."""

    type: int
    data: bytes = b""
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None
    mtime: tuple[int, int] | None = None

    @classmethod
    def decode(cls, buf: bytes) -> "UnixFSData":
        """Decode the UnixFS Data message (packed or unpacked blocksizes)."""
        out = cls(type=-1)
        for number, wtype, value in iter_fields(buf):
            if number == 1:
                out.type = value
            elif number == 2:
                out.data = value
            elif number == 3:
                out.filesize = value
            elif number == 4:
                if wtype == 2:  # tolerate packed encoding
                    pos = 0
                    while pos < len(value):
                        size, pos = read_varint(value, pos)
                        out.blocksizes.append(size)
                else:
                    out.blocksizes.append(value)
            elif number == 5:
                out.hash_type = value
            elif number == 6:
                out.fanout = value
            elif number == 7:
                out.mode = value
            elif number == 8:
                secs, nanos = 0, 0
                for n2, _, v2 in iter_fields(value):
                    if n2 == 1:
                        secs = v2 - (1 << 64) if v2 >= 1 << 63 else v2
                    elif n2 == 2:
                        nanos = v2
                out.mtime = (secs, nanos)
        if out.type not in TYPE_NAMES:
            raise ProtobufError(f"UnixFS Data without a valid Type ({out.type})")
        return out
