"""Run pacman 6 inside a throw-away sandbox directory.

Everything pacman touches (root, databases, cache, log, GnuPG dir, hooks) is
under the sandbox directory: it is set both in the generated ``pacman.conf``
and on the command line, so nothing reaches the real system.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterable


LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"


class PacmanSandbox:
    """A pacman configuration rooted in ``tmpdir``.

    Usage::

        box = PacmanSandbox(tmp, repos=["core", "extra"],
                            mirrorlist=[f"{nginx.url('m1')}/$repo/os/$arch"],
                            xfercommand="/usr/bin/curl -L -C - -f -o %o %u")
        box.run("-Sy").check_returncode()
        box.run("-S", "ipx-small")
        assert "ipx-small" in box.installed()

    Layout: ``root/`` (RootDir), ``db/`` (DBPath, with ``local/`` and
    ``sync/``), ``cache/`` (CacheDir), ``hooks/`` (HookDir), ``gnupg/``
    (GPGDir), ``pacman.log``, ``pacman.conf`` and ``mirrorlist``.
    """

    def __init__(
        self,
        tmpdir: str | os.PathLike,
        repos: Iterable[str] = ("core", "extra"),
        mirrorlist: Iterable[str] = (),
        xfercommand: str | None = None,
        architecture: str = "x86_64",
        extra_options: Iterable[str] = (),
        cache_servers: Iterable[str] = (),
    ):
        """Create the directory layout and write ``pacman.conf`` and ``mirrorlist``.

        ``mirrorlist`` holds server URL templates (``$repo``/``$arch`` are
        expanded by pacman), written as ``Server = …`` lines; every repo
        section includes that file. ``extra_options`` are raw lines added to
        ``[options]``; ``cache_servers`` become ``CacheServer =`` lines in
        every repo section (pacman 6.1+ only; 6.0.2 warns "directive 'CacheServer'
        … not recognized" and ignores them).
        """
        self.dir = Path(tmpdir)
        self.root = self.dir / "root"
        self.dbpath = self.dir / "db"
        self.cachedir = self.dir / "cache"
        self.hookdir = self.dir / "hooks"
        self.gpgdir = self.dir / "gnupg"
        self.logfile = self.dir / "pacman.log"
        self.conf = self.dir / "pacman.conf"
        self.mirrorlist_path = self.dir / "mirrorlist"
        self.repos = list(repos)
        self.architecture = architecture
        self.xfercommand = xfercommand
        self.extra_options = list(extra_options)
        self.cache_servers = list(cache_servers)
        for d in (self.root, self.dbpath / "local", self.dbpath / "sync", self.cachedir, self.hookdir, self.gpgdir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.gpgdir, 0o700)
        self.set_mirrorlist(mirrorlist)
        self.write_conf()

    def set_mirrorlist(self, servers: Iterable[str]) -> None:
        """Rewrite the mirrorlist with ``Server = <template>`` lines in order."""
        lines = ["## written by the ipfs-xfer e2e harness"]
        lines += [f"Server = {s}" for s in servers]
        self.mirrorlist_path.write_text("\n".join(lines) + "\n")

    def write_conf(self) -> None:
        """(Re)write ``pacman.conf`` from the current attributes."""
        lines = [
            "[options]",
            f"RootDir = {self.root}",
            f"DBPath = {self.dbpath}/",
            f"CacheDir = {self.cachedir}/",
            f"LogFile = {self.logfile}",
            f"GPGDir = {self.gpgdir}/",
            f"HookDir = {self.hookdir}/",
            f"Architecture = {self.architecture}",
            "SigLevel = Never",
            "LocalFileSigLevel = Never",
        ]
        if self.xfercommand:
            lines.append(f"XferCommand = {self.xfercommand}")
        lines += self.extra_options
        for repo in self.repos:
            lines += ["", f"[{repo}]", "SigLevel = Never"]
            lines += [f"CacheServer = {s}" for s in self.cache_servers]
            lines.append(f"Include = {self.mirrorlist_path}")
        self.conf.write_text("\n".join(lines) + "\n")

    def command(self, *args: str) -> list[str]:
        """The full pacman argv for ``args``."""
        return [
            "pacman",
            "--config", str(self.conf),
            "--root", str(self.root),
            "--dbpath", str(self.dbpath),
            "--cachedir", str(self.cachedir),
            "--hookdir", str(self.hookdir),
            "--gpgdir", str(self.gpgdir),
            "--logfile", str(self.logfile),
            "--noconfirm",
            *args,
        ]

    def run(
        self,
        *args: str,
        user: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        input: str | None = None,  # noqa: A002
    ) -> subprocess.CompletedProcess:
        """Run ``pacman --config … --noconfirm ARGS`` and capture its output.

        ``user`` runs pacman as another user (via ``runuser``; the sandbox
        path must be traversable by that user, which pytest's 0700
        ``/tmp/pytest-of-root`` is not); ``env`` adds
        to (and overrides) the inherited environment; LANG/LC_ALL are C so
        messages are stable; ``no_proxy`` covers loopback. Raises ``subprocess.TimeoutExpired`` after
        ``timeout`` seconds.
        """
        cmd = self.command(*args)
        if user is not None:
            cmd = ["runuser", "-u", user, "--", *cmd]
        full_env = dict(os.environ, LANG="C", LC_ALL="C")
        # test servers are on loopback: keep any configured proxy out of the way
        full_env.update(no_proxy=LOOPBACK_NO_PROXY, NO_PROXY=LOOPBACK_NO_PROXY)
        full_env.update(env or {})
        return subprocess.run(
            cmd, capture_output=True, text=True, env=full_env, timeout=timeout,
            input=input if input is not None else "", cwd=self.dir,
        )

    def cache_files(self, include_partial: bool = True) -> list[str]:
        """Names of the regular files in CacheDir (``*.part`` optional)."""
        return sorted(
            p.name
            for p in self.cachedir.iterdir()
            if p.is_file() and (include_partial or not p.name.endswith(".part"))
        )

    def sync_files(self) -> list[str]:
        """Names of the files in ``DBPath/sync`` (e.g. ``core.db``)."""
        return sorted(p.name for p in (self.dbpath / "sync").iterdir() if p.is_file())

    def installed(self) -> dict[str, str]:
        """Installed packages from the local db: ``{name: version}``."""
        result = {}
        for desc in (self.dbpath / "local").glob("*/desc"):
            fields = _parse_desc(desc.read_text())
            if "NAME" in fields:
                result[fields["NAME"][0]] = fields.get("VERSION", [""])[0]
        return result

    def read_log(self) -> str:
        """Content of pacman's log file ("" if absent)."""
        return self.logfile.read_text() if self.logfile.exists() else ""


def _parse_desc(text: str) -> dict[str, list[str]]:
    """Parse a pacman ``desc`` file (``%KEY%`` blocks) into ``{KEY: [lines]}``."""
    fields: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("%") and line.endswith("%") and len(line) > 2:
            key = line[1:-1]
            fields[key] = []
        elif line == "":
            key = None
        elif key is not None:
            fields[key].append(line)
    return fields
