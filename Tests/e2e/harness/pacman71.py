"""pacman 7.1.0's XferCommand path, emulated call for call, over a harness pacman sandbox.

The harness's pacman is Debian's 6.0.2, which neither fetches signatures through XferCommand nor
downloads into a sandbox directory, and pacman 7.1 cannot be installed here. :class:`Pacman71`
drives whole transactions (``-Sy``, ``-Syy``, ``-Sw``, ``-Syw``) through the sandbox's
``XferCommand`` exactly as pacman 7.1.0 does according to ``/work/shared/reference/pacman.md``
(cited below as §N). The sandbox (:class:`harness.pacman.PacmanSandbox`) gives RootDir, DBPath,
CacheDir, the mirrorlist and the XferCommand; its pacman 6.0.2 is used only to list a
transaction's packages (``-Sp --print-format '%r %l'``), never to download.

What is emulated, and where each behaviour comes from:

* **One pacman process per transaction** (§1.2: XferCommand is pacman's child; its
  ``/proc/<ppid>/cmdline`` is pacman's). Each transaction runs its calls from a stand-in process
  of its own whose command line is ``pacman <this file> --config … --root … --dbpath …
  --cachedir … --noconfirm -S…`` (the sandbox's own options; this file's path reads as a target),
  so ipfs-xfer finds pacman's DBPath from its parent as under a real pacman, and ``getppid()``
  differs between transactions and is the same for every call of one.
* **exec, not a shell; only whole ``%u``/``%o`` words replaced** (§1.1). The XferCommand is split
  with :func:`shlex.split` (pacman's ``wordsplit``: whitespace, quotes, no expansion).
  ``%o`` is ``<download dir>/<basename(url)>.part``; without ``%o`` in the command nothing is
  renamed and ``<cwd>/<basename>`` is expected (§1.1).
* **Sequential calls, one per file per server, in order** (§0.1, §2): databases in the
  sandbox's repo order, packages in transaction order (pacman's ``-Sp`` order);
  CacheServers first, then the repo's Servers, both from the sandbox; the loop for a file stops
  at the first call that succeeds; ``ParallelDownloads`` is ignored.
* **Signatures** (§4): the ``.sig`` is requested right after its file succeeded, from the same
  server only (``%u`` = ``<server>/<file>.sig``, ``%o`` = ``<dir>/<file>.sig.part``, §1.6). A
  failed optional signature is ignored (it still costs the 2 s sleep); a failed required one
  fails the file, without another server. Which signatures are requested follows a SigLevel
  (:class:`SigLevel`, default Arch's ``Required DatabaseOptional``: ``.db.sig`` optional,
  package ``.sig`` required; §4 "When requested"). The signatures are not verified (no keyring).
* **DownloadUser and the sandbox dir, 7.1** (§1.3): with DownloadUser set (and pacman as root),
  ``mkdtemp("<dir>download-XXXXXX")`` (0700) under CacheDir for packages and under
  ``DBPath/sync/`` for databases, ``chown``-ed to the DownloadUser; the call runs as that user
  (setgid, ``setgroups(0)``, setuid, and ``PR_SET_NO_NEW_PRIVS`` as 7.1 sets it; no Landlock or
  seccomp) with cwd and ``%o`` in that dir. Without DownloadUser (7.1: no sandbox) the call runs
  as root and files go straight into CacheDir or ``DBPath/sync/`` (§1.3 last paragraph of
  "Download directory", §1.6 table).
* **Environment** (§1.2): inherited from pacman, ``HOME`` (here ``/root``) and ``USER`` not
  changed for the DownloadUser, ``HTTP_USER_AGENT`` set by pacman unless already set;
  stdin/stdout/stderr are pacman's (here files per call); pacman's own cwd is restored after.
* **``.part`` and resume** (§1.5): before the calls, in sandbox mode, ``prepare_resumable_downloads``
  moves ``<CacheDir>/<file>.part`` (size > 0) into the sandbox dir and chowns it to the
  DownloadUser (observed for packages, [exp7]; done here for every file of the batch, as the
  function loops over all payloads). Without the sandbox ``%o`` simply is ``<CacheDir>/<file>.part``.
  A package ``.part`` is never deleted after a failure. ``-Syy`` (``force``) unlinks ``%o`` and
  ``<dir>/<file>`` before each database call (§1.5, §3).
* **Exit status** (§1.4): 0 is success and pacman then renames ``%o`` to ``<dir>/<file>``; a
  rename that fails (no ``%o``) is a failure; any other status, death by a signal included, is a
  failure. After every failed call pacman **sleeps 2 s** (§1.2, §0.1): the sleep is real
  (``sleep=`` replaces it) and each one is recorded in :attr:`Transaction.sleeps`.
* **Failure, 7.1** (§1.5 "Failure handling"): the first file that fails on every server (and is
  not an optional signature) ends the transaction at once: the remaining files are never tried,
  the files are not moved into place and the ``download-XXXXXX`` dir is **leaked** with whatever
  it holds (:attr:`Transaction.leaked`). A ``-Sw`` that has nothing to download still creates
  its sandbox dir and leaks it empty (§1.5 "Empty temp dirs").
* **Success** (§1.3 last bullets): ``finalize_download_locations`` moves each file (and its
  ``.sig``) from the sandbox dir into CacheDir or ``DBPath/sync/``, chowned to 0:0 and chmod-ed
  to ``0666 & ~umask``, deleting 0-byte files; then the sandbox dir is removed (every entry
  unlinked, then ``rmdir``, as ``_alpm_remove_temporary_download_dir`` does).
* **What needs downloading** (§4): a package whose file is not in CacheDir, or whose ``.sig`` is
  not when package signatures are requested (then the package is fetched again in full).

Not emulated: pacman's own messages, progress output and checks after downloading (sha256, PGP,
the 128 MiB db cap that applies to the curl path only), installing, hooks, ``-U URL``, pacman
7.0 (whose sandbox dir is used even without DownloadUser and deleted on failure), and the
DownloadUser-with-sandbox-disabled pitfall (§1.3).

Usage::

    setup = XferSetup(box, root_cid, gateways=[gw.url], pacman_config=False)   # sets box.xfercommand
    pacman = Pacman71(box, download_user="ipfsxfer-test")     # None: DownloadUser unset
    tx = pacman.refresh()                                      # pacman -Sy
    tx = pacman.download("foo", interrupt=Interrupt("foo-1.0-1-x86_64.pkg.tar.zst", signal.SIGINT))
    tx.ok, tx.calls[i].returncode / .stderr / .seconds / .argv, tx.sleeps, tx.leaked
    print(tx.report())

The sandbox's directories must be traversable by the DownloadUser (pytest's own tmp is 0700:
put the sandbox under a 0755 directory) and its StateDir writable by it where a test needs that.
This file is also the stand-in pacman process itself (run by :class:`PacmanProcess`, stdlib only).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import pwd
import random
import select
import shlex
import signal as signals
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"
#: pacman 7.1.0's user agent (§1.2: pacman/<ver> (<sysname> <machine>) libalpm/<ver>; 7.1.0 ships
#: libalpm 16.0.0 [version not in the reference]).
USER_AGENT = f"pacman/7.1.0 ({platform.system()} {platform.machine()}) libalpm/16.0.0"
FAILURE_SLEEP = 2.0  # §1.2: sleep(2) after every failed XferCommand call
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38


# ----------------------------------------------------------------------------
# SigLevel
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SigLevel:
    """Which signatures pacman requests through XferCommand: for each of databases and packages
    ``None`` (not requested), ``"optional"`` or ``"required"`` (§4)."""

    database: str | None
    package: str | None

    @classmethod
    def parse(cls, text: str) -> "SigLevel":
        """A pacman.conf ``SigLevel`` value as ``process_siglevel`` reads it (conf.c): starting from
        pacman's built-in default (both checked, both optional), ``Never``/``Optional``/``Required``
        set both kinds, ``Package…``/``Database…`` one; ``TrustedOnly``/``TrustAll`` concern trust
        only."""
        state = {"database": "optional", "package": "optional"}
        for word in text.split():
            kinds = ["database", "package"]
            for prefix, kind in (("Package", "package"), ("Database", "database")):
                if word.startswith(prefix):
                    kinds, word = [kind], word[len(prefix):]
            if word in ("TrustedOnly", "TrustAll"):
                continue
            value = {"Never": None, "Optional": "optional", "Required": "required"}.get(word, "?")
            if value == "?":
                raise ValueError(f"unknown SigLevel word {word!r} in {text!r}")
            for kind in kinds:
                state[kind] = value
        return cls(**state)


#: Arch's ``SigLevel = Required DatabaseOptional`` (§4): ``.db.sig`` optional, package ``.sig`` required.
ARCH_SIGLEVEL = SigLevel.parse("Required DatabaseOptional")


# ----------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------
@dataclass
class Interrupt:
    """Send ``signal`` to the XferCommand call for ``file`` (a package file name) once its partial
    data in the call's directory (``<file>.part`` or any ``.<file>.part…`` temporary file, the
    largest) reaches ``after_bytes``; once per transaction."""

    file: str
    signal: int = signals.SIGINT
    after_bytes: int = 1 << 20


@dataclass
class Call:
    """One XferCommand run."""

    index: int
    file: str  # basename of %u: core.db, foo.pkg.tar.zst, foo.pkg.tar.zst.sig
    url: str
    output: Path  # %o (<dir>/<file>.part)
    cwd: Path
    argv: list[str]
    user: str  # who ran it: "root" or the DownloadUser
    returncode: int | None = None  # exit status; -N when killed by signal N; None if it never ran
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0  # wall time, fork to reap (measured by the pacman process)
    started: float = 0.0  # time.monotonic() in the test process when it was started
    interrupted: int | None = None  # the signal the runner sent it (Interrupt)
    partial_at_interrupt: int | None = None
    timed_out: bool = False
    error: str | None = None  # pacman's message when the call did not succeed

    @property
    def ok(self) -> bool:
        """pacman's view: exit 0 and ``%o`` renamed into place."""
        return self.returncode == 0 and self.error is None

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


@dataclass
class Transaction:
    """One pacman run (one stand-in pacman process): its calls, sleeps and leftovers."""

    operation: str  # e.g. "-Sy", "-Sw foo bar"
    pacman_pid: int = 0  # the stand-in pacman: every call's parent
    calls: list[Call] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)  # seconds actually slept after failed calls
    sandbox_dirs: list[Path] = field(default_factory=list)  # download-XXXXXX dirs it made
    leaked: list[Path] = field(default_factory=list)  # sandbox dirs it left behind (§1.5)
    moved_in: list[tuple[Path, Path, int]] = field(default_factory=list)  # .part moved into a sandbox dir
    ok: bool = True
    error: str | None = None  # pacman's error line when the transaction failed
    seconds: float = 0.0

    def calls_for(self, file: str) -> list[Call]:
        return [c for c in self.calls if c.file == file]

    def stderr_lines(self) -> list[str]:
        """Every line ipfs-xfer wrote to stderr in this transaction, in order."""
        return [line for c in self.calls for line in c.stderr_lines]

    def report(self) -> str:
        """A table of the calls, printed by the tests."""
        lines = [f"pacman {self.operation} (pid {self.pacman_pid}): {'ok' if self.ok else self.error}, "
                 f"{len(self.calls)} calls, {len(self.sleeps)} sleeps of 2 s, {self.seconds:.2f} s"]
        for c in self.calls:
            status = "killed by %d" % -c.returncode if (c.returncode or 0) < 0 else f"exit {c.returncode}"
            extra = f"  [signal {c.interrupted} at {c.partial_at_interrupt} B]" if c.interrupted else ""
            lines.append(f"  {c.index:2} {c.user:14} {c.file:42} {status:14} {c.seconds:6.3f} s{extra}")
            lines += [f"       | {line}" for line in c.stderr_lines]
            if c.error and c.returncode == 0:
                lines.append(f"       pacman: {c.error}")
        for src, dst, size in self.moved_in:
            lines.append(f"  moved {src} ({size} B) to {dst}")
        lines += [f"  leaked {d}: {sorted(p.name for p in d.iterdir()) if d.exists() else 'gone'}" for d in self.leaked]
        return "\n".join(lines)


@dataclass
class _Payload:
    """One file to download (``dload_payload``)."""

    file: str
    servers: list[str]
    cache_servers: list[str] = field(default_factory=list)
    signature: str | None = None  # None, "optional", "required"
    force: bool = False


# ----------------------------------------------------------------------------
# the stand-in pacman process
# ----------------------------------------------------------------------------
class PacmanProcess:
    """A process whose command line is pacman's (``pacman <this file> ARGS``) and which starts the
    XferCommand calls it is sent, one at a time, as its own children (§1.2 ``systemvp``: fork,
    in the child drop to the DownloadUser, exec). The test process talks to it over a pipe and
    may signal the children itself (it is root)."""

    def __init__(self, pacman_args: list[str], log: Path):
        from .procutil import die_with_parent

        # argv[0] "pacman" would make Python look for its library beside /usr/bin/pacman: PYTHONHOME
        # names this interpreter's (the stand-in needs the standard library only). PYTHONSAFEPATH:
        # the harness directory is not put first on its module path.
        env = dict(os.environ, PYTHONHOME=f"{sys.base_prefix}:{sys.base_exec_prefix}", PYTHONSAFEPATH="1")
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(["pacman", str(Path(__file__).resolve()), *pacman_args],
                                         executable=sys.executable, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, env=env, preexec_fn=die_with_parent, close_fds=True)
        self.buffer = b""
        self.pid = self.proc.pid

    def _send(self, message: dict) -> None:
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def _reply(self, timeout: float | None) -> dict | None:
        """The next reply line, or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"the stand-in pacman process exited ({self.proc.wait()})")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def start(self, argv: list[str], cwd: Path, env: dict, user: str | None, stdout: Path, stderr: Path) -> int | str:
        """Starts a call; returns its pid, or the error text when it could not be started."""
        ids = None
        if user is not None:
            info = pwd.getpwnam(user)
            ids = [info.pw_uid, info.pw_gid]
        self._send({"argv": argv, "cwd": str(cwd), "env": env, "ids": ids, "stdout": str(stdout), "stderr": str(stderr)})
        reply = self._reply(30)
        if reply is None:
            raise RuntimeError("the stand-in pacman process did not start the call")
        return reply["pid"] if "pid" in reply else reply["error"]

    def wait(self, timeout: float) -> dict | None:
        """``{"returncode", "seconds"}`` of the running call, or None if it has not ended yet."""
        return self._reply(timeout)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def _pacman_process_main() -> int:
    """The stand-in pacman: reads call requests (JSON lines) on stdin, runs each as its child and
    answers ``{"pid"}`` then ``{"returncode", "seconds"}``."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signals.SIGTERM, 0, 0, 0)

    # pacman ignores SIGINT and SIGQUIT while its child runs; the child gets the defaults back (§1.2).
    for number in (signals.SIGINT, signals.SIGQUIT):
        signals.signal(number, signals.SIG_IGN)

    def child_defaults() -> None:
        for number in (signals.SIGINT, signals.SIGQUIT):
            signals.signal(number, signals.SIG_DFL)

    def sandbox_child() -> None:  # 7.1's alpm_sandbox_setup_child (§1.3), after the user switch
        child_defaults()
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

    def reply(message: dict) -> None:
        os.write(1, (json.dumps(message) + "\n").encode())

    for line in sys.stdin.buffer:
        request = json.loads(line)
        kwargs = dict(preexec_fn=child_defaults)
        if request["ids"] is not None:
            uid, gid = request["ids"]
            kwargs = dict(user=uid, group=gid, extra_groups=[], preexec_fn=sandbox_child)
        with open(request["stdout"], "wb") as out, open(request["stderr"], "wb") as err:
            start = time.monotonic()
            try:
                child = subprocess.Popen(request["argv"], cwd=request["cwd"], env=request["env"],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err, close_fds=True, **kwargs)
            except (OSError, subprocess.SubprocessError) as exc:
                reply({"error": f"running XferCommand: fork failed! ({exc})"})
                continue
        reply({"pid": child.pid})
        code = child.wait()
        reply({"returncode": code, "seconds": time.monotonic() - start})
    return 0


# ----------------------------------------------------------------------------
# the runner
# ----------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkdtemp(parent: Path) -> Path:
    """``mkdtemp("<parent>/download-XXXXXX")``: six random letters or digits, mode 0700."""
    letters = string.ascii_letters + string.digits
    for _ in range(1000):
        path = parent / ("download-" + "".join(random.choices(letters, k=6)))
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)
        return path
    raise RuntimeError(f"cannot make a download dir in {parent}")


def _remove_dir(path: Path) -> None:
    """``_alpm_remove_temporary_download_dir``: unlink every entry, then ``rmdir``."""
    for entry in path.iterdir():
        entry.unlink()
    path.rmdir()


class Pacman71:
    """Runs transactions through ``box.xfercommand`` as pacman 7.1.0 does (module docstring).

    ``download_user``: pacman.conf's ``DownloadUser`` (the sandbox is on, as Arch ships it), or
    None for pacman 7.1 with DownloadUser unset. ``siglevel``: the repos' SigLevel (a
    :class:`SigLevel` or its pacman.conf text), for all repos. ``sleep``: what sleeps after a
    failed call (default :func:`time.sleep`, 2 s; each sleep is recorded either way).
    ``call_timeout``: a call still running after this many seconds is killed (SIGKILL) and counts
    as failed.
    """

    def __init__(self, box, download_user: str | None, siglevel: SigLevel | str = ARCH_SIGLEVEL,
                 sleep: Callable[[float], None] = time.sleep, call_timeout: float = 180,
                 workdir: str | os.PathLike | None = None):
        if not box.xfercommand:
            raise ValueError("the sandbox has no XferCommand (XferSetup sets one)")
        self.box = box
        self.download_user = download_user
        self.siglevel = SigLevel.parse(siglevel) if isinstance(siglevel, str) else siglevel
        self.sleep = sleep
        self.call_timeout = call_timeout
        self.workdir = Path(workdir) if workdir else box.dir / "pacman71"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.calls = 0  # numbering of the call output files, over every transaction

    # -- the sandbox's configuration ------------------------------------
    @property
    def sandboxed(self) -> bool:
        """7.1's ``_alpm_use_sandbox()``: root and DownloadUser set (§1.3)."""
        return self.download_user is not None and os.geteuid() == 0

    def servers(self, repo: str) -> list[str]:
        """The repo's ``Server`` URLs from the sandbox's mirrorlist, ``$repo``/``$arch`` expanded."""
        return [self._expand(line.split("=", 1)[1].strip(), repo)
                for line in self.box.mirrorlist_path.read_text().splitlines()
                if line.strip().startswith("Server") and "=" in line]

    def cache_servers(self, repo: str) -> list[str]:
        return [self._expand(s, repo) for s in self.box.cache_servers]

    def _expand(self, template: str, repo: str) -> str:
        return template.replace("$repo", repo).replace("$arch", self.box.architecture).rstrip("/")

    def targets(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """``(repo, file name)`` of every package of ``pacman -S names`` in transaction order, from the
        sandbox's pacman 6.0.2 (``-Sp --print-format '%r %l'``) and the dbs in its DBPath."""
        result = self.box.run("-Sp", "--print-format", "%r %l", *names)
        if result.returncode != 0:
            raise RuntimeError(f"pacman -Sp {' '.join(names)} failed:\n{result.stdout}\n{result.stderr}")
        found = []
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and "/" in parts[1]:
                found.append((parts[0], parts[1].rsplit("/", 1)[1]))
        return found

    def needs_download(self, file: str) -> bool:
        """``find_dl_candidates``: not in CacheDir, or its ``.sig`` is not while package signatures
        are requested (§4)."""
        cache = self.box.cachedir
        return not (cache / file).is_file() or (self.siglevel.package is not None
                                                 and not (cache / f"{file}.sig").is_file())

    # -- transactions ------------------------------------------------------
    def refresh(self, force: bool = False) -> Transaction:
        """``pacman -Sy`` (``-Syy`` with ``force``)."""
        return self.sync(refresh=2 if force else 1)

    def download(self, *names: str, interrupt: Interrupt | None = None) -> Transaction:
        """``pacman -Sw NAMES``: the packages' downloads (dependencies included, as pacman resolves them)."""
        return self.sync(*names, interrupt=interrupt)

    def sync(self, *names: str, refresh: int = 0, interrupt: Interrupt | None = None) -> Transaction:
        """``pacman -S[y[y]]w NAMES``: with ``refresh`` the databases first, then (if that worked and
        names are given) the packages, all from one pacman process."""
        flags = "-S" + "y" * refresh + ("w" if names else "")
        tx = Transaction(" ".join([flags, *names]))
        process = PacmanProcess(self.box.command(flags, *names)[1:], self.workdir / "pacman-process.log")
        tx.pacman_pid = process.pid
        start = time.monotonic()
        try:
            if refresh:
                payloads = [_Payload(f"{repo}.db", self.servers(repo), signature=self.siglevel.database,
                                     force=refresh >= 2) for repo in self.box.repos]
                self._download(process, tx, payloads, self.box.dbpath / "sync", interrupt,
                               "failed to synchronize all databases (error invoking external downloader)")
            if tx.ok and names:
                payloads = [_Payload(file, self.servers(repo), self.cache_servers(repo), self.siglevel.package)
                            for repo, file in self.targets(names) if self.needs_download(file)]
                self._download(process, tx, payloads, self.box.cachedir, interrupt, "failed to retrieve some files")
        finally:
            process.close()
            tx.seconds = time.monotonic() - start
        return tx

    # -- _alpm_download with a fetch callback ------------------------------
    def _download(self, process: PacmanProcess, tx: Transaction, payloads: list[_Payload], dest: Path,
                  interrupt: Interrupt | None, error: str) -> None:
        local = dest
        if self.sandboxed:
            local = _mkdtemp(dest)
            info = pwd.getpwnam(self.download_user)
            os.chown(local, info.pw_uid, info.pw_gid)
            tx.sandbox_dirs.append(local)
            if not payloads:  # 7.1 creates it anyway and leaves it (§1.5 "Empty temp dirs")
                tx.leaked.append(local)
                return
            for payload in payloads:  # prepare_resumable_downloads (§1.5)
                part = dest / f"{payload.file}.part"
                if part.is_file() and part.stat().st_size > 0:
                    size = part.stat().st_size
                    os.rename(part, local / part.name)
                    os.chown(local / part.name, info.pw_uid, info.pw_gid)
                    tx.moved_in.append((part, local / part.name, size))
        for payload in payloads:
            ok = False
            for server in payload.cache_servers + payload.servers:
                ok = self._fetch(process, tx, f"{server}/{payload.file}", local, payload.force, interrupt)
                if ok:
                    if payload.signature is not None:
                        sig_ok = self._fetch(process, tx, f"{server}/{payload.file}.sig", local, payload.force, None)
                        if payload.signature == "required":
                            ok = sig_ok
                    break  # the file came from this server: no other server, for the file or its .sig (§4)
            if not ok:
                tx.ok, tx.error = False, error
                if local != dest:
                    tx.leaked.append(local)  # returned early: neither moved nor removed (§1.5)
                return
        if local != dest:  # finalize_download_locations, then the dir is removed (§1.3)
            mode = 0o666 & ~_umask()
            for payload in payloads:
                for name in (payload.file, f"{payload.file}.sig"):
                    path = local / name
                    if not path.is_file():
                        continue
                    if path.stat().st_size == 0:
                        path.unlink()
                        continue
                    os.chown(path, 0, 0)
                    os.chmod(path, mode)
                    os.rename(path, dest / name)
            _remove_dir(local)

    # -- download_with_xfercommand ----------------------------------------
    def _fetch(self, process: PacmanProcess, tx: Transaction, url: str, local: Path, force: bool,
               interrupt: Interrupt | None) -> bool:
        name = url.rsplit("/", 1)[1]
        tempfile, destfile = local / f"{name}.part", local / name
        if force:
            tempfile.unlink(missing_ok=True)
            destfile.unlink(missing_ok=True)
        words = shlex.split(self.box.xfercommand)
        usepart = "%o" in words
        argv = [url if w == "%u" else str(tempfile) if w == "%o" else w for w in words]
        self.calls += 1
        call = Call(len(tx.calls), name, url, tempfile, local, argv, self.download_user or "root")
        tx.calls.append(call)
        env = dict(os.environ, HOME="/root", LANG="C", LC_ALL="C", no_proxy=LOOPBACK_NO_PROXY,
                   NO_PROXY=LOOPBACK_NO_PROXY)
        env.setdefault("HTTP_USER_AGENT", USER_AGENT)
        out, err = self.workdir / f"call-{self.calls}.out", self.workdir / f"call-{self.calls}.err"
        call.started = time.monotonic()
        pid = process.start(argv, local, env, self.download_user if self.sandboxed else None, out, err)
        if isinstance(pid, str):
            call.error = pid  # §1.2: "warning: running XferCommand: fork failed!"
        else:
            watch = interrupt if interrupt is not None and interrupt.file == name else None
            deadline = call.started + self.call_timeout
            while True:
                done = process.wait(0.02)
                if done is not None:
                    call.returncode, call.seconds = done["returncode"], done["seconds"]
                    break
                if watch is not None and call.interrupted is None:
                    size = _partial_size(local, name)
                    if size >= watch.after_bytes:
                        os.kill(pid, watch.signal)
                        call.interrupted, call.partial_at_interrupt = watch.signal, size
                if time.monotonic() > deadline and not call.timed_out:
                    os.kill(pid, signals.SIGKILL)
                    call.timed_out = True
            call.stdout = out.read_text(errors="replace")
            call.stderr = err.read_text(errors="replace")
            if call.returncode != 0:
                call.error = f"XferCommand command returned non-zero status code ({call.returncode})"
            elif usepart:
                try:
                    os.rename(tempfile, destfile)
                except OSError as exc:
                    call.error = f"could not rename {tempfile} to {destfile} ({exc.strerror})"
        if call.ok:
            return True
        begin = time.monotonic()
        self.sleep(FAILURE_SLEEP)  # "to let an user the time to cancel a download" (§1.2)
        tx.sleeps.append(time.monotonic() - begin)
        return False


def _partial_size(directory: Path, name: str) -> int:
    """The largest partial of ``name`` in ``directory``: ``<name>.part`` or ``.<name>.part…``."""
    best = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if entry.name == f"{name}.part" or entry.name.startswith(f".{name}.part"):
            try:
                best = max(best, entry.stat(follow_symlinks=False).st_size)
            except OSError:
                pass
    return best


if __name__ == "__main__":
    sys.exit(_pacman_process_main())
