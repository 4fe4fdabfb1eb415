"""ipfs-xfer called directly the way pacman 7 calls it: as an unprivileged DownloadUser with
HOME=/root in a 0700 download directory, and on a terminal (progress line) or not (silence)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.pacman import PacmanSandbox
from xfer import XFER_BIN, XferSetup, sha256_of



@pytest.fixture
def open_box(nginx):
    """A pacman sandbox under a world-traversable directory (pytest's own tmp is 0700)."""
    top = Path(tempfile.mkdtemp(prefix="ipfs-xfer-e2e-", dir="/tmp"))
    top.chmod(0o755)
    box = PacmanSandbox(top / "pacman", mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    for path in [box.dir, *box.dir.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    yield box
    shutil.rmtree(top, ignore_errors=True)


def sandbox_download_dir(box, user: str) -> Path:
    """A `download-XXXXXX` dir as pacman 7 makes it: mode 0700, owned by the DownloadUser."""
    path = Path(tempfile.mkdtemp(prefix="download-", dir=box.cachedir))
    info = pwd.getpwnam(user)
    os.chown(path, info.pw_uid, info.pw_gid)
    path.chmod(0o700)
    return path


def test_runs_as_the_download_user_with_root_home(open_box, download_user, nginx, mirror):
    box = open_box
    # As the packaged tmpfiles.d line makes it: 2775 root:<download user's group>, so files
    # that root (pacman -Sy here, hooks later) creates stay writable for the download user.
    state = box.dir / "state"
    state.mkdir()
    shutil.chown(state, "root", download_user)
    state.chmod(0o2775)
    setup = XferSetup(box, None, state_dir=state)
    assert box.run("-Sy").returncode == 0
    package = mirror.package("ipx-small")
    directory = sandbox_download_dir(box, download_user)
    output = directory / (Path(package.path).name + ".part")
    call = setup.run(f"{nginx.url('m1')}/{package.path}", output, user=download_user, env={"HOME": "/root"})
    assert call.returncode == 0, call.stderr
    assert call.stderr == ""
    assert sha256_of(output) == package.sha256
    assert output.stat().st_uid == pwd.getpwnam(download_user).pw_uid
    last = setup.transfers()[-1]  # the two before are pacman -Sy's databases, fetched as root
    assert (last.file, last.kind) == (Path(package.path).name, "mirror")


def test_says_when_statedir_is_not_writable_and_still_works(open_box, download_user, nginx, mirror):
    box = open_box
    state = box.dir / "root-only-state"
    state.mkdir(mode=0o755)  # owned by root: the download user cannot write here
    setup = XferSetup(box, None, state_dir=state)
    assert box.run("-Sy").returncode == 0
    package = mirror.package("ipx-tiny")
    output = sandbox_download_dir(box, download_user) / (Path(package.path).name + ".part")
    call = setup.run(f"{nginx.url('m1')}/{package.path}", output, user=download_user, env={"HOME": "/root"})
    assert call.returncode == 0, call.stderr
    assert f"StateDir {state} is not writable by {download_user}" in call.stderr
    assert sha256_of(output) == package.sha256


def test_an_unwritable_output_directory_is_a_clear_error(open_box, download_user, nginx, mirror):
    box = open_box
    setup = XferSetup(box, None, state_dir=box.dir / "state")
    package = mirror.package("ipx-tiny")
    output = box.cachedir / (Path(package.path).name + ".part")  # root's CacheDir, as with DisableSandbox
    call = setup.run(f"{nginx.url('m1')}/{package.path}", output, user=download_user, env={"HOME": "/root"})
    assert call.returncode != 0
    assert call.stderr.startswith(f"ipfs-xfer: error: cannot write to {box.cachedir}")
    assert call.stderr.count("\n") == 1
    assert not output.exists()


def test_progress_line_on_a_terminal_and_silence_otherwise(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, ipfs_mirror.root_cid, gateways=[gateway.url])
    assert box.run("-Sy").returncode == 0  # the package is then verified: a warning-free call
    package = mirror.package("ipx-big")
    name = Path(package.path).name
    quiet = setup.run(f"{nginx.url('m1')}/{package.path}", box.cachedir / "quiet.part")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    command = f"{XFER_BIN} --config {setup.conf} {nginx.url('m1')}/{package.path} {box.cachedir / 'tty.part'}"
    tty = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, TERM="xterm", COLUMNS="200", no_proxy="127.0.0.1"))
    assert tty.returncode == 0, tty.stdout
    final = tty.stdout.replace("\x1b[2K", "").split("\r")[-1]
    assert name in final and "3.0 MiB" in final and "/s" in final and f"gateway {gateway.url}" in final, repr(final)
    assert sha256_of(box.cachedir / "tty.part") == package.sha256
