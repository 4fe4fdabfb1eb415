"""IPNS records built as ipfs/specs ``src/ipns/ipns-record.md`` says, independently of ipfs-xfer.

Keys are Ed25519 or RSA-2048 (``cryptography``); names are the multihash of the libp2p
``PublicKey`` protobuf ``{1: KeyType, 2: Data}`` (identity when that is at most 42 bytes, else
sha2-256), written as a libp2p-key CIDv1 in base36 (``k51…`` / ``k2k4r8…``) or base32
(``bafz…``), or as a base58btc peer ID (``12D3KooW…`` / ``Qm…``).

A record is the ``IpnsEntry`` protobuf (fields 1…9, written in field order as Go's
``proto.Marshal`` does) whose ``data`` is the DAG-CBOR map ``{TTL, Value, Sequence, Validity,
ValidityType}`` (keys sorted length-first, then bytewise), signed as
``signatureV2 = Sign("ipns-signature:" ‖ data)``. With ``v1=True`` (kubo's default
``--v1compat``) the V1 copies and ``signatureV1 = Sign(value ‖ validity ‖ "EOL")`` are added;
``"EOL"`` is how boxo renders the validity type (``fmt.Sprint`` of the protobuf enum).

Helpers for tests::

    key = make_key("ed25519")                    # or "rsa"
    name = name_of(key)                          # k51…; form="peerid" gives 12D3KooW…
    record = make_record(key, "/ipfs/bafy…", sequence=1, ttl_ns=300 * 10**9,
                         validity_seconds_from_now=3600)
    entry = make_entry(key, …)                   # the same, as an editable Entry; entry.encode()
    cases = conformance_cases()                  # the spec's six test vectors, made afresh
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from .cid import b32encode_nopad, b58encode, write_varint

ED25519 = "ed25519"
RSA = "rsa"

LIBP2P_KEY = 0x72
IDENTITY = 0x00
SHA2_256 = 0x12
MAX_INLINE_KEY = 42  # libp2p: keys whose protobuf is at most this long are named by identity
MAX_RECORD_SIZE = 10 * 1024
SIGNATURE_V2_PREFIX = b"ipns-signature:"
DEFAULT_TTL_NS = 5 * 60 * 10**9  # kubo: 5 min
DEFAULT_LIFETIME = 48 * 3600  # kubo: 48 h

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


# ---------------------------------------------------------------------------------------------
# Keys and names


@dataclass(frozen=True)
class Key:
    """A signing key and its libp2p public-key protobuf."""

    kind: str
    private: object

    @property
    def public_protobuf(self) -> bytes:
        """``PublicKey{Type, Data}``: raw 32 bytes for Ed25519, DER SubjectPublicKeyInfo for RSA."""
        public = self.private.public_key()
        if self.kind == ED25519:
            data = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            key_type = 1
        else:
            data = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            key_type = 0
        return _pb_varint(1, key_type) + _pb_bytes(2, data)

    def sign(self, message: bytes) -> bytes:
        """Ed25519 (RFC 8032), or RSA PKCS#1 v1.5 with SHA-256."""
        if self.kind == ED25519:
            return self.private.sign(message)
        return self.private.sign(message, padding.PKCS1v15(), hashes.SHA256())


def make_key(kind: str = ED25519) -> Key:
    """A fresh Ed25519 or RSA-2048 key."""
    if kind == ED25519:
        return Key(kind, ed25519.Ed25519PrivateKey.generate())
    if kind == RSA:
        return Key(kind, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    raise ValueError(f"unknown key kind {kind!r}")


def multihash_of(key: Key) -> bytes:
    """The name's multihash: identity of the protobuf when short (Ed25519), else sha2-256 (RSA)."""
    protobuf = key.public_protobuf
    if len(protobuf) <= MAX_INLINE_KEY:
        return bytes([IDENTITY]) + write_varint(len(protobuf)) + protobuf
    return bytes([SHA2_256, 32]) + hashlib.sha256(protobuf).digest()


def base36(data: bytes) -> str:
    """Lower-case base36 without a prefix; leading zero bytes become ``0`` digits."""
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, remainder = divmod(number, 36)
        digits = _B36[remainder] + digits
    return "0" * (len(data) - len(data.lstrip(b"\x00"))) + digits


_FORMS = {
    "k51": "base36", "k2k4r8": "base36", "base36": "base36",
    "bafz": "base32", "base32": "base32",
    "peerid": "base58", "12D3KooW": "base58", "Qm": "base58", "base58": "base58",
}


def name_of(key: Key, form: str = "k51") -> str:
    """The IPNS name of ``key``.

    ``form``: ``"k51"``/``"k2k4r8"``/``"base36"`` for the libp2p-key CIDv1 in base36 (``k51…`` for
    Ed25519, ``k2k4r8…`` for RSA), ``"base32"``/``"bafz"`` for it in base32, and
    ``"peerid"``/``"12D3KooW"``/``"Qm"`` for the base58btc multihash (``12D3KooW…``/``Qm…``).
    """
    encoding = _FORMS.get(form)
    if encoding is None:
        raise ValueError(f"unknown name form {form!r}")
    multihash = multihash_of(key)
    cid = write_varint(1) + write_varint(LIBP2P_KEY) + multihash
    if encoding == "base36":
        return "k" + base36(cid)
    if encoding == "base32":
        return "b" + b32encode_nopad(cid).lower()
    return b58encode(multihash)


# ---------------------------------------------------------------------------------------------
# DAG-CBOR and protobuf


def _cbor_head(major: int, argument: int) -> bytes:
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * width):
            return bytes([major << 5 | info]) + argument.to_bytes(width, "big")
    raise ValueError("CBOR argument over 64 bits")


def cbor_encode(value) -> bytes:
    """Canonical DAG-CBOR of ints ≥ 0, bytes, str, lists and str-keyed dicts (keys length-first)."""
    if isinstance(value, bool) or value is None:
        return bytes([0xF5 if value is True else 0xF4 if value is False else 0xF6])
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, bytes):
        return _cbor_head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _cbor_head(3, len(raw)) + raw
    if isinstance(value, list):
        return _cbor_head(4, len(value)) + b"".join(cbor_encode(item) for item in value)
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return _cbor_head(5, len(keys)) + b"".join(cbor_encode(k) + cbor_encode(value[k]) for k in keys)
    raise TypeError(f"cannot encode {type(value).__name__} as DAG-CBOR")


def _pb_varint(number: int, value: int) -> bytes:
    return write_varint(number << 3) + write_varint(value)


def _pb_bytes(number: int, value: bytes) -> bytes:
    return write_varint(number << 3 | 2) + write_varint(len(value)) + value


# ---------------------------------------------------------------------------------------------
# Records


def rfc3339(unix_ns: int) -> str:
    """Go's ``RFC3339Nano`` in UTC: ``2123-08-14T12:17:03.694052Z`` (trailing zeros trimmed)."""
    seconds, nanos = divmod(unix_ns, 10**9)
    text = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


@dataclass
class Entry:
    """An ``IpnsEntry``; ``None`` leaves a field out. ``encode()`` writes fields 1…9 in order."""

    value: bytes | None = None
    signature_v1: bytes | None = None
    validity_type: int | None = None
    validity: bytes | None = None
    sequence: int | None = None
    ttl: int | None = None
    pub_key: bytes | None = None
    signature_v2: bytes | None = None
    data: bytes | None = None

    def encode(self) -> bytes:
        """The protobuf bytes."""
        out = b""
        for number, field in enumerate(
            ("value", "signature_v1", "validity_type", "validity", "sequence", "ttl", "pub_key", "signature_v2", "data"),
            start=1,
        ):
            item = getattr(self, field)
            if item is None:
                continue
            out += _pb_varint(number, item) if isinstance(item, int) else _pb_bytes(number, item)
        return out

    def resigned(self, key: Key) -> "Entry":
        """A copy whose signatureV2 signs its (possibly edited) data."""
        return replace(self, signature_v2=key.sign(SIGNATURE_V2_PREFIX + self.data))


def record_data(value: bytes, validity: bytes, sequence: int, ttl_ns: int, validity_type: int = 0, extra=None) -> bytes:
    """The DAG-CBOR ``data`` map; ``extra`` adds keys (the spec's extensible data)."""
    fields = {"Value": value, "Validity": validity, "ValidityType": validity_type, "Sequence": sequence, "TTL": ttl_ns}
    fields.update(extra or {})
    return cbor_encode(fields)


def make_entry(
    key: Key,
    value: str | bytes,
    sequence: int = 0,
    ttl_ns: int = DEFAULT_TTL_NS,
    validity_seconds_from_now: float = DEFAULT_LIFETIME,
    v1: bool = True,
    v2: bool = True,
    *,
    validity: str | None = None,
    embed_public_key: bool | None = None,
    extra_data: dict | None = None,
) -> Entry:
    """A signed record as an editable :class:`Entry` (see :func:`make_record`)."""
    value_bytes = value.encode() if isinstance(value, str) else value
    if validity is None:
        validity = rfc3339(time.time_ns() + int(validity_seconds_from_now * 10**9))
    validity_bytes = validity.encode()
    data = record_data(value_bytes, validity_bytes, sequence, ttl_ns, extra=extra_data)
    if embed_public_key is None:
        embed_public_key = len(key.public_protobuf) > MAX_INLINE_KEY
    entry = Entry(pub_key=key.public_protobuf if embed_public_key else None)
    if v2:
        entry.data = data
        entry.signature_v2 = key.sign(SIGNATURE_V2_PREFIX + data)
    if v1:
        entry.value = value_bytes
        entry.validity = validity_bytes
        entry.validity_type = 0
        entry.sequence = sequence
        entry.ttl = ttl_ns
        entry.signature_v1 = key.sign(value_bytes + validity_bytes + b"EOL")
    return entry


def make_record(
    key: Key,
    value: str | bytes,
    sequence: int = 0,
    ttl_ns: int = DEFAULT_TTL_NS,
    validity_seconds_from_now: float = DEFAULT_LIFETIME,
    v1: bool = True,
    v2: bool = True,
    **options,
) -> bytes:
    """A serialized record of ``key`` pointing at ``value`` (``/ipfs/<cid>[/path]`` or ``/ipns/…``).

    ``v1=True, v2=True`` is kubo's default (V1 copies + both signatures); ``v1=False`` gives a
    V2-only record, ``v2=False`` a V1-only one (no data, no signatureV2: invalid today). A
    negative ``validity_seconds_from_now`` makes an expired record. Options: ``validity`` (exact
    RFC 3339 text), ``embed_public_key`` (default: only for RSA), ``extra_data`` (more CBOR keys).
    """
    return make_entry(key, value, sequence, ttl_ns, validity_seconds_from_now, v1, v2, **options).encode()


def raw_path(text: str) -> str:
    """``/ipfs/`` + the raw-codec identity CIDv1 of ``text``, as the conformance generator makes values
    (``cid.Prefix{Version: 1, Codec: 0x55}`` leaves the multihash type at 0, identity)."""
    data = text.encode()
    cid = write_varint(1) + write_varint(0x55) + bytes([IDENTITY]) + write_varint(len(data)) + data
    return "/ipfs/b" + b32encode_nopad(cid).lower()


@dataclass
class ConformanceCase:
    """One of the spec's test vectors: the record, its name, and the value when it is valid."""

    label: str
    record: bytes
    name: str
    valid: bool
    value: str


def conformance_cases(kind: str = ED25519) -> list[ConformanceCase]:
    """The six cases of the spec's table, made the way ``gateway-conformance``'s generator makes them.

    Each has its own key; the record is kubo's V1+V2 record with one edit: ``v1-only`` drops data
    and signatureV2, ``broken-v1-value`` replaces the V1 value, ``broken-signature-v2`` and
    ``broken-signature-v1`` replace that signature with ``b"invalid stuff"``, ``v2-only`` is made
    without V1 compatibility. Records are valid for 100 years, TTL 30 min, sequence 0.
    """
    lifetime = 876_000 * 3600
    ttl = 30 * 60 * 10**9
    cases = []
    for label, text, valid in (
        ("v1-only", "v1-only record", False),
        ("v1-v2", "v1+v2 record", True),
        ("broken-v1-value", "v1+v2 record with broken value", False),
        ("broken-signature-v2", "v1+v2 with broken signature v2", False),
        ("broken-signature-v1", "v1+v2 with broken signature v1", True),
        ("v2-only", "v2-only record", True),
    ):
        key = make_key(kind)
        value = raw_path(text)
        entry = make_entry(key, value, 0, ttl, lifetime, v1=label != "v2-only")
        if label == "v1-only":
            entry.data = entry.signature_v2 = None
        elif label == "broken-v1-value":
            entry.value = b"/ipfs/bafkqaglumvzxi2lom4qgeyleebuxa3ttebzgky3pojshgcq"
        elif label == "broken-signature-v2":
            entry.signature_v2 = b"invalid stuff"
        elif label == "broken-signature-v1":
            entry.signature_v1 = b"invalid stuff"
        cases.append(ConformanceCase(label, entry.encode(), name_of(key), valid, value))
    return cases
