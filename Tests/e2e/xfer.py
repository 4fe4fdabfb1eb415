"""Helpers for driving the built ``ipfs-xfer`` binary in the end-to-end tests.

The binary is the one ``swift build`` produced (``IPFS_XFER_BIN`` overrides it). Each
:class:`XferSetup` writes an ``ipfs-xfer.conf`` for one pacman sandbox and makes it the
sandbox's ``XferCommand``, exactly as a user would in ``/etc/pacman.conf``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.pkgrepo import sha256_file as sha256_of

REPO_ROOT = Path(__file__).resolve().parents[2]
XFER_BIN = Path(os.environ.get("IPFS_XFER_BIN", REPO_ROOT / ".build" / "debug" / "ipfs-xfer"))


def closed_port_url() -> str:
    """An http URL on a loopback port nothing listens on (connection refused)."""
    from harness.procutil import free_port

    return f"http://127.0.0.1:{free_port()}"


@dataclass
class Transfer:
    """One line of ``StateDir/transfers.log``: which source served which file."""

    file: str
    bytes: int
    seconds: float
    kind: str
    source: str
    flags: tuple[str, ...] = ()  # fields after the 6th, e.g. ("unverified",)

    @property
    def unverified(self) -> bool:
        """The file was served without a size and sha256 to check it against (no db listed it)."""
        return "unverified" in self.flags

    @property
    def wasted(self) -> int:
        """Bytes this source sent that were not used (``wasted=N``: overlap, a losing copy, a bad
        range); 0 without the flag."""
        return sum(int(flag.split("=", 1)[1]) for flag in self.flags if flag.startswith("wasted="))


class XferSetup:
    """An ipfs-xfer config for one pacman sandbox, installed as its XferCommand."""

    def __init__(
        self,
        box,
        root_cid: str | None,
        gateways: list[str] = (),
        mount: str | os.PathLike | None = None,
        hedge: str = "3s",
        stall: str = "2s",
        state_dir: str | os.PathLike | None = None,
        extra: list[str] = (),
        pacman_config: bool | str | os.PathLike = True,
    ):
        """``pacman_config``: True writes ``PacmanConfig = <the sandbox's pacman.conf>``, a path
        names another file, False leaves the key out (ipfs-xfer then finds the db pacman uses)."""
        self.box = box
        self.state_dir = Path(state_dir) if state_dir else box.dir / "xfer-state"
        self.conf = box.dir / "ipfs-xfer.conf"
        lines = ["[options]"]
        if root_cid:
            lines.append(f"MirrorRoot = /ipfs/{root_cid}")
        lines += [f"Gateway = {g}" for g in gateways]
        if mount:
            lines.append(f"MountPoint = {mount}")
        lines += [
            f"Include = {box.mirrorlist_path}",
            f"StateDir = {self.state_dir}",
            *([f"PacmanConfig = {box.conf if pacman_config is True else pacman_config}"] if pacman_config else []),
            f"HedgeDelay = {hedge}",
            "ConnectTimeout = 2s",
            f"StallTimeout = {stall}",
            *extra,
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        box.xfercommand = f"{XFER_BIN} --config {self.conf} %u %o"
        box.write_conf()

    def transfers(self) -> list[Transfer]:
        """Every file ipfs-xfer served so far, in order."""
        log = self.state_dir / "transfers.log"
        if not log.exists():
            return []
        result = []
        for line in log.read_text().splitlines():
            _, file, size, seconds, kind, source, *flags = line.split("\t")
            result.append(Transfer(file, int(size), float(seconds), kind, source, tuple(flags)))
        return result

    def served_by(self) -> dict[str, str]:
        """File name → kind of the source that served it last (gateway, mount, mirror)."""
        return {t.file: t.kind for t in self.transfers()}

    def report(self) -> str:
        """A table of which source served each file, printed by the tests."""
        return "\n".join(f"  {t.file:45} {t.bytes:>9} B  {t.kind:8} {t.source}" for t in self.transfers())

    def run(self, url: str, output: str | os.PathLike, user: str | None = None, timeout: float = 60,
            env: dict | None = None) -> subprocess.CompletedProcess:
        """Run ipfs-xfer as pacman would (``ipfs-xfer --config C %u %o``), optionally as another user."""
        cmd = [str(XFER_BIN), "--config", str(self.conf), url, str(output)]
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        full_env = dict(os.environ, no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
        full_env.update(env or {})
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)



def assert_cache_clean(box, mirror) -> None:
    """Every file in the cache is a complete package whose sha256 matches the repo's."""
    by_name = {Path(p.path).name: p for p in mirror.packages.values()}
    for entry in box.cachedir.iterdir():
        assert entry.name in by_name, f"unexpected file in cache: {entry.name}"
        assert sha256_of(entry) == by_name[entry.name].sha256, f"corrupt cache file {entry.name}"


def file_requests(nginx, name: str) -> list[dict]:
    """The mirror's requests for repo files: all but the freshness guard's `lastupdate` reads."""
    return [r for r in nginx.requests(name) if not r["path"].endswith("/lastupdate")]
