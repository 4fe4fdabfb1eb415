"""`ipfs-xfer ipns verify RECORD NAME`: records made by harness/ipns.py (the spec, with
``cryptography``), checked step by step: the spec's six conformance cases, Ed25519 and RSA under
every name form, and each way a record can fail."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from harness.ipns import (
    RSA,
    ED25519,
    Entry,
    conformance_cases,
    make_entry,
    make_key,
    make_record,
    name_of,
    record_data,
    rfc3339,
)
from xfer import XFER_BIN

CID = "/ipfs/bafkreidfdrlkeq4m4xnxuyx6iae76fdm4wgl5d4xzsb77ixhyqwumhz244"


def verify(tmp_path, record: bytes, name: str) -> subprocess.CompletedProcess:
    path = tmp_path / "record.ipns-record"
    path.write_bytes(record)
    return subprocess.run(
        [str(XFER_BIN), "ipns", "verify", str(path), name], capture_output=True, text=True, timeout=60
    )


def assert_valid(result, value: str, sequence: int = 0) -> list[str]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == value
    assert lines[1] == f"sequence: {sequence}"
    assert lines[2].startswith("ttl: ") and lines[3].startswith("valid until: ")
    assert result.stderr == ""
    return lines


def assert_invalid(result, reason: str) -> None:
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("ipfs-xfer: error: "), result.stderr
    assert reason in result.stderr, result.stderr


@pytest.fixture(scope="module")
def ed_key():
    return make_key(ED25519)


@pytest.fixture(scope="module")
def rsa_key():
    return make_key(RSA)


@pytest.fixture(scope="module", params=[ED25519, RSA])
def key(request, ed_key, rsa_key):
    return ed_key if request.param == ED25519 else rsa_key


# ---------------------------------------------------------------------------------------------
# The spec's conformance vectors


CONFORMANCE_ERRORS = {
    "v1-only": "IPNS record has no signatureV2",
    "broken-v1-value": "V1 field value differs from the signed data",
    "broken-signature-v2": "signatureV2 does not verify",
}


@pytest.fixture(scope="module", params=[ED25519, RSA])
def conformance(request):
    return {case.label: case for case in conformance_cases(request.param)}


@pytest.mark.parametrize(
    "label", ["v1-only", "v1-v2", "broken-v1-value", "broken-signature-v2", "broken-signature-v1", "v2-only"]
)
def test_conformance_cases(conformance, label, tmp_path):
    case = conformance[label]
    result = verify(tmp_path, case.record, case.name)
    if case.valid:
        lines = assert_valid(result, case.value)
        assert lines[2] == "ttl: 1800s"
    else:
        assert_invalid(result, CONFORMANCE_ERRORS[label])


def test_conformance_values_match_the_spec(conformance):
    assert conformance["v1-v2"].value == "/ipfs/bafkqaddwgevxmmraojswg33smq"
    assert conformance["broken-signature-v1"].value == (
        "/ipfs/bafkqahtwgevxmmrao5uxi2bamjzg623fnyqhg2lhnzqxi5lsmuqhmmi"
    )


# ---------------------------------------------------------------------------------------------
# Valid records under every name form


@pytest.mark.parametrize("form", ["k51", "peerid", "base32"])
@pytest.mark.parametrize("v1", [True, False], ids=["v1+v2", "v2-only"])
def test_valid_record_under_every_name_form(key, form, v1, tmp_path):
    record = make_record(key, CID + "/core/os/x86_64", sequence=7, ttl_ns=300 * 10**9,
                         validity_seconds_from_now=3600, v1=v1)
    name = name_of(key, form)
    expected_prefix = {
        (ED25519, "k51"): "k51qzi5uqu5", (ED25519, "peerid"): "12D3KooW", (ED25519, "base32"): "bafz",
        (RSA, "k51"): "k2k4r8", (RSA, "peerid"): "Qm", (RSA, "base32"): "bafz",
    }[(key.kind, form)]
    assert name.startswith(expected_prefix)
    lines = assert_valid(verify(tmp_path, record, name), CID + "/core/os/x86_64", 7)
    assert lines[2] == "ttl: 300s"


def test_prints_sequence_ttl_and_validity_as_signed(ed_key, tmp_path):
    validity = rfc3339(4_102_444_800 * 10**9 + 694_052_000)  # 2100-01-01T00:00:00.694052Z
    record = make_record(ed_key, "/ipns/example.org", sequence=2**64 - 1, ttl_ns=1_500_000_000, validity=validity)
    lines = assert_valid(verify(tmp_path, record, name_of(ed_key)), "/ipns/example.org", 2**64 - 1)
    assert lines[2:] == ["ttl: 1.5s", "valid until: 2100-01-01T00:00:00.694052Z"]


def test_validity_with_an_offset_and_no_fraction(ed_key, tmp_path):
    record = make_record(ed_key, CID, validity="2999-12-31T23:59:59+01:00")
    assert_valid(verify(tmp_path, record, name_of(ed_key)), CID)


def test_ed25519_record_may_embed_its_key(ed_key, tmp_path):
    record = make_record(ed_key, CID, embed_public_key=True)
    assert_valid(verify(tmp_path, record, name_of(ed_key, "peerid")), CID)


def test_extra_data_keys_are_ignored(ed_key, tmp_path):
    extra = {"_custom": {"nested": [1, -2, b"x", "y", None, True]}, "Z": 5}
    record = make_record(ed_key, CID, extra_data=extra, v1=False)
    assert_valid(verify(tmp_path, record, name_of(ed_key)), CID)


# ---------------------------------------------------------------------------------------------
# Failures, one per verification step


def test_expired_record(key, tmp_path):
    record = make_record(key, CID, validity_seconds_from_now=-60)
    assert_invalid(verify(tmp_path, record, name_of(key)), "IPNS record expired at ")


def test_bad_signature(key, tmp_path):
    entry = make_entry(key, CID)
    signature = bytearray(entry.signature_v2)
    signature[10] ^= 1
    record = replace(entry, signature_v2=bytes(signature)).encode()
    assert_invalid(verify(tmp_path, record, name_of(key)), "signatureV2 does not verify")


def test_data_changed_after_signing(key, tmp_path):
    entry = make_entry(key, CID, sequence=1, v1=False)
    forged = record_data(b"/ipfs/bafkqaaa", entry_validity(entry), 1, 300 * 10**9)
    assert_invalid(verify(tmp_path, replace(entry, data=forged).encode(), name_of(key)), "signatureV2 does not verify")


def entry_validity(entry: Entry) -> bytes:
    """The validity text inside ``entry.data`` (the ``Validity`` key's bytes)."""
    marker = b"hValidity"
    start = entry.data.index(marker) + len(marker)
    length = entry.data[start] & 0x1F
    return entry.data[start + 1 : start + 1 + length]


@pytest.mark.parametrize(
    "field, edit",
    [
        ("value", {"value": b"/ipfs/bafkqaglumvzxi2lom4qgeyleebuxa3ttebzgky3pojshgcq"}),
        ("sequence", {"sequence": 8}),
        ("ttl", {"ttl": 1}),
        ("validity", {"validity": b"2999-01-01T00:00:00Z"}),
        ("validityType", {"validity_type": 1}),
    ],
)
def test_v1_fields_must_equal_the_signed_data(ed_key, field, edit, tmp_path):
    entry = make_entry(ed_key, CID, sequence=7)
    record = replace(entry, **edit).encode()
    assert_invalid(verify(tmp_path, record, name_of(ed_key)), f"V1 field {field} differs from the signed data")


def test_a_lone_v1_field_is_checked_too(ed_key, tmp_path):
    entry = make_entry(ed_key, CID, sequence=7, v1=False)
    assert_invalid(verify(tmp_path, replace(entry, sequence=7).encode(), name_of(ed_key)),
                   "V1 field value differs from the signed data")


def test_record_for_another_name(key, tmp_path):
    other = make_key(key.kind)
    record = make_record(key, CID)
    reason = "is not the key of" if key.kind == RSA else "signatureV2 does not verify"
    assert_invalid(verify(tmp_path, record, name_of(other)), reason)


def test_rsa_record_without_its_key(rsa_key, tmp_path):
    record = make_record(rsa_key, CID, embed_public_key=False)
    assert_invalid(verify(tmp_path, record, name_of(rsa_key, "peerid")), "has no public key")


def test_embedded_key_of_another_ed25519_name(ed_key, tmp_path):
    other = make_key(ED25519)
    record = make_record(other, CID, embed_public_key=True)
    assert_invalid(verify(tmp_path, record, name_of(ed_key)), "is not the key of")


def test_oversize_record(ed_key, tmp_path):
    record = make_record(ed_key, CID, extra_data={"_pad": bytes(10 * 1024)})
    assert len(record) > 10 * 1024
    assert_invalid(verify(tmp_path, record, name_of(ed_key)), "is over the 10 KiB limit")


def test_record_at_the_size_limit_is_accepted(ed_key, tmp_path):
    validity = "2999-01-01T00:00:00.123Z"  # fixed: generated ones vary in length (trailing zeros trimmed)
    base = len(make_record(ed_key, CID, validity=validity, extra_data={"_pad": b""}))
    pad = 10 * 1024 - base - 2  # the byte string's head grows from 1 to 3 bytes
    record = make_record(ed_key, CID, validity=validity, extra_data={"_pad": bytes(pad)})
    assert len(record) == 10 * 1024
    assert_valid(verify(tmp_path, record, name_of(ed_key)), CID)


@pytest.mark.parametrize(
    "garbage",
    [b"\xff" * 40, b"not a protobuf at all", b"\x0a\x50short", b"\x42\x05hello\x42\x05hello"],
    ids=["ff", "text", "truncated", "repeated-field"],
)
def test_garbage_bytes(ed_key, garbage, tmp_path):
    assert_invalid(verify(tmp_path, garbage, name_of(ed_key)), "malformed IPNS record")


def test_empty_record(ed_key, tmp_path):
    assert_invalid(verify(tmp_path, b"", name_of(ed_key)), "IPNS record has no signatureV2")


def test_data_that_is_not_cbor(ed_key, tmp_path):
    entry = make_entry(ed_key, CID, v1=False)
    record = replace(entry, data=b"\xa5\x63TTL").resigned(ed_key).encode()
    assert_invalid(verify(tmp_path, record, name_of(ed_key)), "malformed IPNS record data")


def test_unsupported_validity_type(ed_key, tmp_path):
    entry = make_entry(ed_key, CID, v1=False)
    data = record_data(CID.encode(), entry_validity(entry), 0, 300 * 10**9, validity_type=1)
    record = replace(entry, data=data).resigned(ed_key).encode()
    assert_invalid(verify(tmp_path, record, name_of(ed_key)), "unsupported IPNS validity type 1")


def test_validity_that_is_not_a_time(ed_key, tmp_path):
    record = make_record(ed_key, CID, validity="tomorrow\nnoon")
    assert_invalid(verify(tmp_path, record, name_of(ed_key)), "is not an RFC 3339 time")


@pytest.mark.parametrize("name", ["k51notbase36!", "QmTooShort", "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", ""])
def test_names_that_are_not_ipns_names(ed_key, name, tmp_path):
    assert_invalid(verify(tmp_path, make_record(ed_key, CID), name), "not an IPNS name")


def test_missing_record_file(ed_key, tmp_path):
    result = subprocess.run([str(XFER_BIN), "ipns", "verify", str(tmp_path / "absent"), name_of(ed_key)],
                            capture_output=True, text=True, timeout=60)
    assert_invalid(result, "No such file or directory")
