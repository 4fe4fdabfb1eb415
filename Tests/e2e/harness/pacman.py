"""Run pacman 6 inside a throw-away sandbox directory.

Everything pacman touches (root, databases, cache, log, GnuPG dir, hooks) is
under the sandbox directory: it is set both in the generated ``pacman.conf``
and on the command line, so nothing reaches the real system.

**Hooks.** pacman runs a hook's ``Exec`` with ``chroot(RootDir)``, ``chdir("/")``, uid 0 (pacman.md
§5), so the sandbox root must hold whatever the hook executes. :meth:`PacmanSandbox.enable_hook_chroot`
fills it in one of two ways (:func:`hook_chroot_mode` says which one the machine allows):

* ``"bind"`` (root with ``CAP_SYS_ADMIN``; this container): every pacman run happens in a private
  mount namespace (``unshare --mount --propagation private``) in which the host's ``/usr/bin``,
  ``/usr/sbin``, ``/usr/lib``, ``/usr/lib64``, ``/usr/libexec`` (and non-merged ``/bin``, ``/lib``…),
  the directories of each binary's ``ldd`` closure outside them (e.g. ``/opt/swift/usr/lib/swift/linux``)
  and each binary's own directory are bind-mounted **read-only** at the same paths under the root,
  ``/proc``, ``/dev/{null,zero,full,random,urandom}``, ``/tmp`` and the test's work directories
  read-write. The mounts exist only inside that namespace: they vanish when pacman exits, even when
  the test fails or pytest is killed, and are never visible on the host (:meth:`PacmanSandbox.cleanup`
  checks, and lazily unmounts anything it finds under the root). ``/usr/share`` is **not** bound:
  packages install there.
* ``"copy"`` (root without mount rights, e.g. a default Docker container): each binary, ``/bin/sh``
  and their ``ldd`` closures are copied into the root at the same paths; no ``/proc``, no shared
  work directories (``binds`` are refused), ``/dev/null`` only if ``mknod`` works.

In both modes symlinks on the way to a binary (``.build/debug`` → ``x86_64-unknown-linux-gnu/debug``)
and the merged-``/usr`` links (``bin`` → ``usr/bin``, ``lib``, ``lib64``, ``sbin``) are recreated in
the root, and ``/etc/{passwd,group,hosts,nsswitch.conf,resolv.conf,ld.so.cache,ld.so.conf}`` are
copied in unless the test put its own there.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable


LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"

#: Host directories bound read-only (bind mode) when they exist.
SYSTEM_DIRS = ("/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/local/bin", "/usr/local/lib")
#: Top-level directories that are symlinks into /usr on merged-/usr systems (else bound themselves).
TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib64")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
ETC_FILES = ("passwd", "group", "hosts", "nsswitch.conf", "resolv.conf", "ld.so.cache", "ld.so.conf",
             "ld.so.conf.d", "localtime")
HOOK_MOUNT_FAILED = 125


class HookChrootUnsupported(RuntimeError):
    """Hooks cannot run in a chroot here (not root, or no way to populate the root)."""


@functools.lru_cache(maxsize=1)
def hook_chroot_mode() -> str | None:
    """``"bind"`` if a private mount namespace with bind mounts works, ``"copy"`` if only chroot does
    (root), None when not root (pacman cannot chroot for hooks)."""
    if os.geteuid() != 0 or shutil.which("pacman") is None:
        return None
    if shutil.which("unshare") and shutil.which("mount"):
        probe = ("set -e; d=$(mktemp -d); mount --bind /usr/bin \"$d\"; mount -o remount,bind,ro \"$d\"; "
                 "test -x \"$d/sh\"; umount \"$d\"; rmdir \"$d\"")
        try:
            ok = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", probe],
                                capture_output=True, timeout=20).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return "bind"
    return "copy"


def ldd_closure(binary: str | os.PathLike) -> list[str]:
    """The shared objects ``binary`` loads (``ldd``; absolute paths as the loader finds them, loader
    included); [] for a static binary."""
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    paths = []
    for line in proc.stdout.splitlines():
        match = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if match and match.group(1) not in paths:
            paths.append(match.group(1))
    return paths


@dataclass
class HookChroot:
    """What a sandbox root gets so hooks can run (see the module docstring). Made by
    :meth:`PacmanSandbox.enable_hook_chroot`."""

    root: Path
    mode: str
    binaries: list[str] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)  # read-write, same path inside
    ro_binds: list[str] = field(default_factory=list)  # read-only, same path inside
    devices: list[str] = field(default_factory=list)
    proc: bool = True

    def mount_script(self) -> str:
        """The shell run inside the new mount namespace before ``exec``-ing pacman."""
        lines = ["set -u", "fail() { echo \"pacman sandbox: $1\" >&2; exit %d; }" % HOOK_MOUNT_FAILED]

        def bind(src: str, readonly: bool) -> None:
            dst = shlex.quote(str(self.root) + src)
            q = shlex.quote(src)
            lines.append(f"mount --bind {q} {dst} || fail {shlex.quote('cannot bind ' + src)}")
            if readonly:
                lines.append(f"mount -o remount,bind,ro {dst} || fail {shlex.quote('cannot make ' + src + ' read-only')}")

        entries = [(src, True) for src in self.ro_binds] + [(src, False) for src in self.binds]
        for src, readonly in sorted(entries, key=lambda e: (e[0].rstrip("/").count("/"), e[0])):  # parents first
            bind(src, readonly)
        if self.proc:
            lines.append(f"mount --bind /proc {shlex.quote(str(self.root / 'proc'))} || fail 'cannot bind /proc'")
        for dev in self.devices:
            bind(dev, False)
        lines.append('exec "$@"')
        return "\n".join(lines)

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run in a private mount namespace with the binds (bind mode), or as is (copy mode)."""
        if self.mode != "bind":
            return argv
        return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", self.mount_script(),
                "pacman-sandbox", *argv]


def _mirror_symlinks(root: Path, path: str, skip=lambda p: False) -> str:
    """Recreate under ``root`` every symlink met while resolving the absolute ``path`` (same link text),
    so the path resolves inside the chroot as it does outside; returns the fully resolved path.
    Links for which ``skip(host path)`` is true (inside a bound directory) are not created."""
    parts = [p for p in path.split("/") if p]
    current = "/"
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current.rstrip("/")) or "/"
            continue
        if part == ".":
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(f"too many symlinks resolving {path}")
            target = os.readlink(candidate)
            inside = root / candidate.lstrip("/")
            if not skip(candidate) and not inside.is_symlink():
                inside.parent.mkdir(parents=True, exist_ok=True)
                if inside.exists() and inside.is_dir() and not any(inside.iterdir()):
                    inside.rmdir()
                if not inside.exists():
                    inside.symlink_to(target)
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                current = "/"
            continue
        current = candidate
    return current


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
        hookdirs: Iterable[str | os.PathLike] = (),
    ):
        """Create the directory layout and write ``pacman.conf`` and ``mirrorlist``.

        ``hookdirs``: hook directories passed as extra ``--hookdir`` options (pacman adds them to
        ``HookDir``; both are read, see :meth:`install_hook`).

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
        self.extra_hookdirs = [Path(h) for h in hookdirs]
        self.hook_chroot: HookChroot | None = None
        for d in (self.root, self.dbpath / "local", self.dbpath / "sync", self.cachedir, self.hookdir, self.gpgdir,
                  *self.extra_hookdirs):
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
            *[arg for d in self.extra_hookdirs for arg in ("--hookdir", str(d))],
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
        ``/tmp/pytest-of-root`` is not; hooks then cannot chroot); ``env`` adds
        to (and overrides) the inherited environment, which hooks inherit; LANG/LC_ALL are C so
        messages are stable; ``no_proxy`` covers loopback. Raises ``subprocess.TimeoutExpired`` after
        ``timeout`` seconds. With :meth:`enable_hook_chroot` in bind mode pacman runs in a private
        mount namespace holding the binds (exit status 125 and a ``pacman sandbox:`` line on stderr if a
        mount failed).
        """
        cmd = self.command(*args)
        if user is not None:
            cmd = ["runuser", "-u", user, "--", *cmd]
        if self.hook_chroot is not None:
            cmd = self.hook_chroot.wrap(cmd)
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

    def hook_output(self) -> list[str]:
        """What hooks printed, from pacman's log (``[ALPM-SCRIPTLET]`` lines, stdout and stderr merged)."""
        return [line.split("[ALPM-SCRIPTLET] ", 1)[1] for line in self.read_log().splitlines()
                if "[ALPM-SCRIPTLET] " in line]

    # -- hooks
    def add_hookdir(self, path: str | os.PathLike) -> Path:
        """One more hook directory (``--hookdir``), created if missing."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if path not in self.extra_hookdirs:
            self.extra_hookdirs.append(path)
        return path

    @staticmethod
    def hook_text(
        exec: str,  # noqa: A002 - the alpm-hooks key
        when: str = "PostTransaction",
        operations: Iterable[str] = ("Install", "Upgrade"),
        trigger_type: str = "Package",
        targets: Iterable[str] = ("*",),
        description: str | None = None,
        needs_targets: bool = False,
        abort_on_fail: bool = False,
        depends: Iterable[str] = (),
    ) -> str:
        """An alpm hook file (``[Trigger]`` + ``[Action]``, alpm-hooks(5))."""
        lines = ["[Trigger]"]
        lines += [f"Operation = {op}" for op in operations]
        lines.append(f"Type = {trigger_type}")
        lines += [f"Target = {t}" for t in targets]
        lines += ["", "[Action]"]
        if description:
            lines.append(f"Description = {description}")
        lines += [f"When = {when}", f"Exec = {exec}"]
        lines += [f"Depends = {d}" for d in depends]
        if abort_on_fail:
            lines.append("AbortOnFail")
        if needs_targets:
            lines.append("NeedsTargets")
        return "\n".join(lines) + "\n"

    def install_hook(self, name: str, text: str | None = None, directory: str | os.PathLike | None = None,
                     system: bool = False, **fields) -> Path:
        """Write ``<name>.hook``: ``text`` as is, or :meth:`hook_text` of ``fields`` (``exec=…`` etc.).

        Into :attr:`hookdir` (``HookDir`` and ``--hookdir``), ``directory`` (added with
        :meth:`add_hookdir`), or with ``system`` into ``<root>/usr/share/libalpm/hooks`` (scanned first;
        a hook of the same file name in a hook dir overrides it). Returns the file's path.
        """
        if text is None:
            text = self.hook_text(**fields)
        elif fields:
            raise TypeError("give either text or hook fields")
        if system:
            target = self.root / "usr/share/libalpm/hooks"
            target.mkdir(parents=True, exist_ok=True)
        elif directory is not None:
            target = self.add_hookdir(directory)
        else:
            target = self.hookdir
        path = target / (name if name.endswith(".hook") else name + ".hook")
        path.write_text(text)
        return path

    def enable_hook_chroot(
        self,
        binaries: Iterable[str | os.PathLike] = (),
        binds: Iterable[str | os.PathLike] = (),
        mode: str | None = None,
        tmp: bool = True,
    ) -> HookChroot:
        """Prepare the root so hook ``Exec`` lines can run host binaries (see the module docstring).

        ``binaries``: host executables hooks run (``/bin/sh`` is always added), by their host path;
        ``binds``: host directories shared read-write at the same path (bind mode only), e.g. the
        test's work directory (``tmp``: also the host ``/tmp``, which holds pytest's directories);
        ``mode``: ``"bind"`` / ``"copy"`` / None (:func:`hook_chroot_mode`). Raises
        :class:`HookChrootUnsupported` when hooks cannot run in a chroot here.
        """
        available = hook_chroot_mode()
        mode = mode or available
        if mode not in ("bind", "copy") or available is None:
            raise HookChrootUnsupported("hooks need root (pacman chroots into RootDir to run them)")
        if mode == "bind" and available != "bind":
            raise HookChrootUnsupported("bind mounts in a private mount namespace are not allowed here")
        binds = [os.path.realpath(b) for b in binds]
        if mode == "copy" and binds:
            raise HookChrootUnsupported("copy mode cannot share directories with the chroot (no bind mounts)")
        root = self.root
        chroot = HookChroot(root=root, mode=mode, binaries=[], proc=(mode == "bind"))
        if mode == "bind":
            chroot.binds = (["/tmp"] if tmp else []) + [b for b in binds if not (tmp and _under(b, "/tmp"))]
        bound: list[str] = []

        def covered(path: str) -> bool:
            return any(_under(path, b) for b in bound + chroot.binds)

        for top in TOP_LEVEL:
            inside = root / top.lstrip("/")
            if os.path.islink(top):
                if not inside.is_symlink() and not inside.exists():
                    inside.symlink_to(os.readlink(top))
            elif os.path.isdir(top) and mode == "bind":
                bound.append(top)
        if mode == "bind":
            for d in SYSTEM_DIRS:
                if os.path.isdir(d) and not os.path.islink(d) and not covered(d):
                    bound.append(d)
        wanted = ["/bin/sh", *[os.path.abspath(b) for b in binaries]]
        for binary in wanted:
            if not os.path.exists(binary):
                raise FileNotFoundError(binary)
            real = _mirror_symlinks(root, binary, covered)
            chroot.binaries.append(binary)
            for path in [real, *ldd_closure(real)]:
                resolved = _mirror_symlinks(root, path, covered)
                if mode == "bind":
                    directory = os.path.dirname(resolved)
                    if not covered(directory):
                        bound.append(directory)
                else:
                    target = root / resolved.lstrip("/")
                    if not target.exists():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(resolved, target)
        if mode == "bind":
            chroot.ro_binds = bound
            for d in [*bound, *chroot.binds]:
                (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
            (root / "proc").mkdir(exist_ok=True)
            (root / "dev").mkdir(exist_ok=True)
            for dev in DEVICES:
                if os.path.exists(dev):
                    (root / dev.lstrip("/")).touch()
                    chroot.devices.append(dev)
        else:
            (root / "dev").mkdir(exist_ok=True)
            null = root / "dev/null"
            if not null.exists():
                try:
                    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
                except OSError:
                    pass
        tmpdir = root / "tmp"
        tmpdir.mkdir(exist_ok=True)
        os.chmod(tmpdir, 0o1777)
        etc = root / "etc"
        etc.mkdir(exist_ok=True)
        for name in ETC_FILES:
            src, dst = Path("/etc") / name, etc / name
            if dst.exists() or dst.is_symlink() or not src.exists():
                continue
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=False)
            else:
                shutil.copyfile(src, dst)
        self.hook_chroot = chroot
        return chroot

    def mounts(self) -> list[str]:
        """Mount points at or below the sandbox root visible here (none in bind mode: they live only in
        pacman's private mount namespace)."""
        prefix = str(self.root)
        found = []
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    point = line.split()[4].replace("\\040", " ")
                    if point == prefix or point.startswith(prefix + "/"):
                        found.append(point)
        except OSError:
            pass
        return found

    def cleanup(self) -> list[str]:
        """Lazily unmount anything still mounted under the root (deepest first); returns what was found."""
        found = self.mounts()
        for point in sorted(found, key=lambda p: p.count("/"), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        return found

    def __enter__(self) -> "PacmanSandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def _under(path: str, directory: str) -> bool:
    """True if ``path`` is ``directory`` or inside it."""
    directory = directory.rstrip("/") or "/"
    return path == directory or path.startswith(directory + "/") or directory == "/"


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
