"""CID parsing (CIDv0 base58btc and CIDv1 multibase) and block hash checks."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

DAG_PB = 0x70
RAW = 0x55
SHA2_256 = 0x12
SHA2_512 = 0x13
IDENTITY = 0x00

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


class CIDError(ValueError):
    """Raised for a string or byte sequence that is not a supported CID."""


def b58decode(text: str) -> bytes:
    """Decode a base58btc string (Bitcoin alphabet) to bytes."""
    num = 0
    for ch in text:
        try:
            num = num * 58 + _B58_INDEX[ch]
        except KeyError:
            raise CIDError(f"invalid base58 character {ch!r}") from None
    raw = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\x00" * pad + raw


def b58encode(data: bytes) -> str:
    """Encode bytes as base58btc (Bitcoin alphabet)."""
    num = int.from_bytes(data, "big")
    out = []
    while num:
        num, rem = divmod(num, 58)
        out.append(_B58_ALPHABET[rem])
    pad = len(data) - len(data.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(out))


def b32encode_nopad(data: bytes) -> str:
    """RFC 4648 base32, upper case, without padding."""
    return base64.b32encode(data).decode("ascii").rstrip("=")


def b32decode_nopad(text: str) -> bytes:
    """Decode RFC 4648 base32 (either case) without padding."""
    text = text.upper()
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except (ValueError, base64.binascii.Error) as exc:
        raise CIDError(f"invalid base32: {exc}") from None


def read_varint(buf: bytes, pos: int = 0) -> tuple[int, int]:
    """Read an unsigned LEB128 varint at ``pos``; return ``(value, new_pos)``."""
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise CIDError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise CIDError("varint too long")


def write_varint(value: int) -> bytes:
    """Encode an unsigned LEB128 varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@dataclass(frozen=True)
class CID:
    """A parsed content identifier: version, codec and multihash."""

    version: int
    codec: int
    multihash: bytes

    @property
    def hash_code(self) -> int:
        """Multihash function code (0x12 for sha2-256)."""
        return read_varint(self.multihash)[0]

    @property
    def digest(self) -> bytes:
        """The digest part of the multihash."""
        _, pos = read_varint(self.multihash)
        length, pos = read_varint(self.multihash, pos)
        return self.multihash[pos : pos + length]

    @classmethod
    def parse(cls, text: str) -> "CID":
        """Parse ``Qm…`` (CIDv0) or multibase ``b…``/``B…``/``z…`` (CIDv1) text."""
        if not text:
            raise CIDError("empty CID")
        if len(text) == 46 and text.startswith("Qm"):
            return cls.from_bytes(b58decode(text))
        prefix, body = text[0], text[1:]
        if prefix in "bB":
            raw = b32decode_nopad(body)
        elif prefix == "z":
            raw = b58decode(body)
        else:
            raise CIDError(f"unsupported multibase prefix {prefix!r}")
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "CID":
        """Parse binary CID bytes (CIDv0 multihash or CIDv1)."""
        if len(raw) == 34 and raw[0] == SHA2_256 and raw[1] == 32:
            return cls(0, DAG_PB, bytes(raw))
        version, pos = read_varint(raw)
        if version != 1:
            raise CIDError(f"unsupported CID version {version}")
        codec, pos = read_varint(raw, pos)
        mh = raw[pos:]
        code, p2 = read_varint(mh)
        length, p2 = read_varint(mh, p2)
        if len(mh) != p2 + length:
            raise CIDError("multihash length mismatch")
        return cls(1, codec, bytes(mh))

    def to_bytes(self) -> bytes:
        """Binary form of the CID."""
        if self.version == 0:
            return self.multihash
        return write_varint(1) + write_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode_nopad(self.to_bytes()).lower()

    @property
    def flatfs_key(self) -> str:
        """The flatfs key kubo uses for this block (base32 of the multihash)."""
        return b32encode_nopad(self.multihash)

    def verify(self, block: bytes) -> bool:
        """Return True if ``block`` hashes to this CID's multihash."""
        code = self.hash_code
        if code == SHA2_256:
            return hashlib.sha256(block).digest() == self.digest
        if code == SHA2_512:
            return hashlib.sha512(block).digest() == self.digest
        if code == IDENTITY:
            return block == self.digest
        raise CIDError(f"unsupported multihash function 0x{code:x}")
