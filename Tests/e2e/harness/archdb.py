"""Sync databases at Arch Linux scale, fast, with real packages merged in.

Arch's ``extra.db`` lists ~14 500 packages: a gzip tar of ~9-11 MB holding ~36 MB of ``desc``
text, much of it the base64 ``%PGPSIG%`` of each package (≈760 characters, an RSA-4096 OpenPGP
signature) and long, family-alike dependency lists. :func:`make_sync_db` writes such a database in
well under 10 s, laid out as ``repo-add`` lays it out (pacman.md §8): a POSIX ustar archive with,
per package, the directory entry ``<name>-<version>/`` followed by ``<name>-<version>/desc``,
sorted by that directory name, every entry ``root:root``, mode 0755/0644; compressed with gzip
(Python's zlib, level 6 as bsdtar's default) or zstd (the ``zstd`` CLI, level 3 as repo-add's).

Most entries are *phantoms*: Arch-like names (``python-…``, ``haskell-…``, ``lib…``, sonames in
``%PROVIDES%``), versions (some with an epoch), sizes, random but valid ``%SHA256SUM%`` and
``%PGPSIG%`` values; no file exists for them. *Real* packages (:class:`RealPackage`, built with
:func:`harness.pkgrepo.build_package`) are merged in with their true ``%CSIZE%`` and
``%SHA256SUM%`` and no dependencies (their ``.PKGINFO`` has none either), so pacman can install
them. ``last=`` puts one real package's entries at the very end of the tar, out of the sorted
order: the worst case for a reader that scans the database for one file.

:func:`make_scale_mirror` builds a whole mirror of that size: ``core`` (~270 entries) and
``extra`` (≥14 000 entries) under ``<root>/<repo>/os/x86_64/`` with N real small packages
(default 300, 1–200 KiB, spread over both repos and over the alphabet) on disk, real-file
``core.db``/``extra.db``, ``lastupdate``, and one package file that no database lists.
:meth:`ScaleMirror.fake_local_db` writes a pacman local database (``local/ALPM_DB_VERSION`` = 9,
``local/<name>-<version>/{desc,files}``) in which older versions of the real packages are
installed, so ``pacman -Syu`` upgrades every one of them.

Everything is deterministic given the seed (mtimes included).
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import functools
import io
import math
import os
import random
import shutil
import subprocess
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .pkgrepo import DEFAULT_BUILDDATE, PackageSpec, build_package, sha256_file
from .pacman import _parse_desc

#: When the databases were "written" (their tar mtimes and the files' mtimes).
DB_MTIME = 1_760_000_000
ARCH = "x86_64"
#: Entries of Arch's repos (late 2025): core ~270, extra ~14 500.
CORE_ENTRIES = 270
EXTRA_ENTRIES = 14_000
#: Real packages of :func:`make_scale_mirror` and their file sizes (1–200 KiB).
REAL_PACKAGES = 300
REAL_SIZE_RANGE = (1024, 200 * 1024)
#: Package files of :func:`make_scale_mirror` that no database lists.
UNLISTED = ("ax-unlisted", "ax-unlisted-two")
#: An RSA-4096 OpenPGP v4 signature packet: 566 bytes, 756 base64 characters ("iQIzBAAB…").
PGPSIG_BYTES = 566
_PGP_HEADER = bytes([0x89, 0x02, 0x33, 0x04, 0x00, 0x01, 0x0A, 0x00, 0x1D, 0x16, 0x21, 0x04])

# ----------------------------------------------------------------------------
# vocabulary: what Arch descs are made of
# ----------------------------------------------------------------------------
_BASE_DEPS = ("glibc", "gcc-libs", "zlib", "bash", "openssl", "xz", "zstd", "bzip2", "libffi", "ncurses",
              "readline", "expat", "libxml2", "curl", "systemd-libs", "util-linux-libs", "pcre2", "icu",
              "libarchive", "sqlite", "dbus", "glib2", "libcap", "acl", "attr", "libgcrypt", "libgpg-error",
              "gnutls", "nettle", "krb5", "e2fsprogs", "keyutils", "libidn2", "libpsl", "libnghttp2",
              "libssh2", "brotli", "lz4", "json-c", "libseccomp", "audit", "pam", "libxcrypt", "gmp", "mpfr")
_FAMILIES: dict[str, dict[str, tuple[str, ...]]] = {
    "python-": {
        "depends": ("python", "python-setuptools", "python-typing_extensions", "python-packaging",
                    "python-attrs", "python-six", "python-requests", "python-urllib3", "python-idna"),
        "makedepends": ("python-build", "python-installer", "python-wheel", "python-setuptools-scm",
                        "python-hatchling", "python-poetry-core", "python-flit-core", "cython", "git"),
        "checkdepends": ("python-pytest", "python-pytest-cov", "python-pytest-xdist", "python-hypothesis",
                         "python-mock", "python-pytest-asyncio", "python-tox"),
        "optdepends": ("python-numpy: for array support", "python-pandas: for DataFrame output",
                       "python-matplotlib: for plotting", "python-pygments: for syntax highlighting",
                       "python-yaml: for YAML configuration files", "python-toml: for TOML support",
                       "ipython: for the interactive shell"),
    },
    "haskell-": {
        "depends": ("ghc-libs", "haskell-aeson", "haskell-text", "haskell-containers", "haskell-bytestring",
                    "haskell-mtl", "haskell-transformers", "haskell-vector", "haskell-unordered-containers",
                    "haskell-hashable", "haskell-scientific", "haskell-attoparsec", "haskell-data-default"),
        "makedepends": ("ghc", "uusi", "haskell-hspec", "haskell-quickcheck", "haskell-tasty",
                        "haskell-tasty-hunit", "haskell-tasty-quickcheck", "haskell-hspec-discover"),
        "checkdepends": ("haskell-hspec", "haskell-quickcheck", "haskell-tasty-golden"),
        "optdepends": (),
    },
    "perl-": {
        "depends": ("perl", "perl-uri", "perl-libwww", "perl-http-message", "perl-try-tiny",
                    "perl-moo", "perl-module-runtime", "perl-class-method-modifiers"),
        "makedepends": ("perl-module-build", "perl-extutils-makemaker", "perl-test-pod"),
        "checkdepends": ("perl-test-fatal", "perl-test-deep", "perl-test-warnings", "perl-test-exception"),
        "optdepends": ("perl-json-xs: faster JSON parsing", "perl-io-socket-ssl: for https URLs"),
    },
    "ruby-": {
        "depends": ("ruby", "ruby-bundler", "ruby-rake", "ruby-json", "ruby-minitest"),
        "makedepends": ("ruby-rdoc", "ruby-rake-compiler", "ruby-erb"),
        "checkdepends": ("ruby-rspec", "ruby-test-unit", "ruby-mocha"),
        "optdepends": (),
    },
    "nodejs-": {
        "depends": ("nodejs", "npm", "nodejs-semver", "nodejs-nopt", "nodejs-glob"),
        "makedepends": ("npm", "git", "python", "node-gyp"),
        "checkdepends": (),
        "optdepends": (),
    },
    "rust-": {
        "depends": ("gcc-libs", "glibc", "openssl", "zlib", "libgit2", "oniguruma"),
        "makedepends": ("cargo", "rust", "git", "clang", "cmake", "pkgconf"),
        "checkdepends": (),
        "optdepends": ("bash-completion: for shell completion", "zsh-completions: for zsh completion"),
    },
    "go-": {
        "depends": ("glibc",),
        "makedepends": ("go", "git", "go-md2man"),
        "checkdepends": (),
        "optdepends": (),
    },
    "texlive-": {
        "depends": ("texlive-basic", "texlive-latex", "texlive-latexrecommended", "texlive-fontsrecommended",
                    "texlive-pictures", "texlive-plaingeneric", "texlive-bin"),
        "makedepends": (),
        "checkdepends": (),
        "optdepends": ("texlive-fontsextra: extra fonts", "texlive-langextra: extra hyphenation patterns",
                       "ghostscript: for PostScript output", "perl-tk: for the GUI"),
    },
    "lib": {
        "depends": ("glibc", "gcc-libs", "zlib", "libpng", "libjpeg-turbo", "libtiff", "libwebp", "freetype2",
                    "fontconfig", "harfbuzz", "cairo", "pango", "gdk-pixbuf2", "libx11", "libxext", "libxrender"),
        "makedepends": ("meson", "ninja", "cmake", "gobject-introspection", "vala", "gtk-doc", "doxygen",
                        "git", "pkgconf"),
        "checkdepends": ("xorg-server-xvfb",),
        "optdepends": ("gtk3: for the GTK frontend", "qt6-base: for the Qt frontend"),
    },
    "": {
        "depends": ("qt6-base", "qt6-declarative", "qt6-svg", "qt6-wayland", "kcoreaddons", "ki18n",
                    "kconfig", "kwidgetsaddons", "kxmlgui", "kio", "knotifications", "gtk4", "libadwaita",
                    "gtk3", "libnotify", "libsecret", "hicolor-icon-theme", "desktop-file-utils",
                    "ffmpeg", "gst-plugins-base-libs", "gstreamer", "libpulse", "alsa-lib", "pipewire",
                    "mesa", "libglvnd", "vulkan-icd-loader", "sdl2", "wayland", "libxkbcommon"),
        "makedepends": ("cmake", "extra-cmake-modules", "qt6-tools", "ninja", "meson", "git", "python",
                        "kdoctools", "appstream", "intltool", "gobject-introspection", "rust", "cargo", "go"),
        "checkdepends": ("xorg-server-xvfb", "appstream-glib"),
        "optdepends": ("kimageformats: support for dds, xcf, exr, psd, and more image formats",
                       "gst-plugins-good: for video playback", "gst-plugins-ugly: for MP3 playback",
                       "gst-libav: for more codecs", "xdg-desktop-portal: for file dialogs",
                       "noto-fonts-emoji: for emoji", "libappindicator-gtk3: for the tray icon",
                       "pipewire-pulse: for PulseAudio applications", "cups: for printing",
                       "bluez-utils: for Bluetooth"),
    },
}
_PREFIX_WEIGHTS = (("python-", 26), ("haskell-", 6), ("perl-", 6), ("ruby-", 3), ("nodejs-", 2),
                   ("rust-", 3), ("go-", 3), ("texlive-", 1), ("lib", 14), ("", 36))
_SYLLABLES = ("ab", "ac", "al", "am", "an", "ar", "as", "at", "ba", "be", "bi", "bo", "ca", "ce", "ci", "co",
              "da", "de", "di", "do", "el", "em", "en", "er", "es", "ex", "fa", "fe", "fi", "fo", "ga", "ge",
              "gi", "go", "ha", "he", "hi", "ho", "id", "il", "im", "in", "io", "is", "ja", "ka", "ke", "ki",
              "la", "le", "li", "lo", "lu", "ma", "me", "mi", "mo", "mu", "na", "ne", "ni", "no", "nu", "ob",
              "od", "ol", "om", "on", "op", "or", "os", "pa", "pe", "pi", "po", "pu", "qu", "ra", "re", "ri",
              "ro", "ru", "sa", "se", "si", "so", "su", "ta", "te", "ti", "to", "tu", "ul", "um", "un", "ur",
              "us", "va", "ve", "vi", "vo", "wa", "we", "xa", "xe", "ya", "yo", "za", "ze", "zo", "zu")
_SUFFIXES = ("", "", "", "", "", "", "-git", "-docs", "-utils", "-common", "-data", "-libs", "2", "5", "6",
             "-qt", "-gtk", "-cli", "-plugins", "-tools")
_WORDS = ("library", "tool", "tools", "for", "the", "and", "a", "of", "to", "with", "support", "fast",
          "simple", "lightweight", "modern", "Python", "Haskell", "Perl", "Rust", "Go", "bindings",
          "implementation", "parser", "framework", "client", "server", "daemon", "utility", "utilities",
          "command-line", "graphical", "interface", "KDE", "GNOME", "Qt", "GTK", "plugin", "plugins",
          "extension", "format", "files", "data", "network", "audio", "video", "image", "text", "font",
          "fonts", "terminal", "editor", "viewer", "manager", "system", "development", "testing", "module",
          "package", "documentation", "API", "protocol", "HTTP", "JSON", "XML", "YAML", "SQL", "database")
_LICENSES = ("GPL-2.0-or-later", "GPL-3.0-or-later", "LGPL-2.1-or-later", "MIT", "BSD-3-Clause",
             "Apache-2.0", "MPL-2.0", "ISC", "GPL-2.0-only", "LGPL-3.0-or-later", "Artistic-1.0-Perl OR GPL-1.0-or-later",
             "BSD-2-Clause", "Zlib", "custom")
_PACKAGERS = tuple(f"{first} {last} <{first.lower()}@archlinux.org>" for first, last in (
    ("Antonio", "Rojas"), ("Felix", "Yan"), ("Levente", "Polyak"), ("Evangelos", "Foutras"),
    ("Jelle", "van der Waa"), ("Christian", "Hesse"), ("Frederik", "Schwan"), ("Morten", "Linderud"),
    ("David", "Runge"), ("Caleb", "Maclennan"), ("Carl", "Smedstad"), ("Robin", "Candau"),
    ("Alexander", "Rodseth"), ("Daniel", "Bermond"), ("Sven-Hendrik", "Haase"), ("Bert", "Peters"),
    ("Maxime", "Gauduin"), ("Jan", "Steffens"), ("Andreas", "Radke"), ("Giancarlo", "Razzolini"),
    ("Brett", "Cornwall"), ("George", "Rawlinson"), ("Kevin", "Mihelich"), ("Laurent", "Carlier"),
    ("Massimiliano", "Torromeo"), ("Santiago", "Torres"), ("Tobias", "Powalowski"), ("Lukas", "Fleischer"),
    ("Filipe", "Lains"), ("Daurnimator", "Arch"), ("Konstantin", "Gizdov"), ("Bruno", "Pagani"),
    ("Johannes", "Loethberg"), ("Pierre", "Schmitz"), ("Rafael", "Silva"), ("Tom", "Gundersen")))
_GROUPS = ("kde-applications", "kf6", "plasma", "gnome", "gnome-extra", "xorg", "xorg-apps", "qt6",
           "texlive", "haskell", "pro-audio", "vim-plugins", "lxqt", "xfce4", "xfce4-goodies")
_DOMAINS = ("github.com", "gitlab.com", "pypi.org/project", "hackage.haskell.org/package", "metacpan.org/dist",
            "www.gnu.org/software", "freedesktop.org", "kde.org", "gnome.org", "sourceforge.net/projects")


# ----------------------------------------------------------------------------
# packages
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RealPackage:
    """A package file that exists, as a database lists it: its true size and sha256.

    ``repo`` and ``rel_path`` (relative to a mirror root) are set by :func:`make_scale_mirror`;
    ``old_version`` is the version :meth:`ScaleMirror.fake_local_db` installs.
    """

    name: str
    version: str
    arch: str
    filename: str
    csize: int
    sha256: str
    isize: int = 0
    path: Path | None = None
    repo: str = ""
    old_version: str = ""
    payload_path: str = ""

    @property
    def dbdir(self) -> str:
        """``<name>-<version>``, the entry's directory in the database."""
        return f"{self.name}-{self.version}"

    @property
    def rel_path(self) -> str:
        """``<repo>/os/x86_64/<file>``."""
        return f"{self.repo}/os/{ARCH}/{self.filename}"

    @classmethod
    def from_built(cls, spec: PackageSpec, path: str | os.PathLike, repo: str = "", old_version: str = "") -> "RealPackage":
        """The record of ``spec`` built (by :func:`harness.pkgrepo.build_package`) at ``path``."""
        path = Path(path)
        return cls(spec.name, spec.version, spec.arch, path.name, path.stat().st_size, sha256_file(path),
                   spec.size, path, repo, old_version, spec.payload_path)


def build_real_packages(specs: Iterable[PackageSpec], outdir: str | os.PathLike, repo: str = "",
                        old_versions: dict[str, str] | None = None, jobs: int = 4,
                        builddate: int = DEFAULT_BUILDDATE) -> list[RealPackage]:
    """Builds every spec into ``outdir`` (bsdtar runs ``jobs`` at a time); returns their records in order."""
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    specs = list(specs)
    old_versions = old_versions or {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        paths = list(pool.map(lambda s: build_package(s, outdir, builddate), specs))
    return [RealPackage.from_built(s, p, repo, old_versions.get(s.name, "")) for s, p in zip(specs, paths)]


def _pgpsig(rng: random.Random) -> str:
    return base64.b64encode(_PGP_HEADER + rng.randbytes(PGPSIG_BYTES - len(_PGP_HEADER))).decode()


def _family(name: str) -> str:
    for prefix, _ in _PREFIX_WEIGHTS:
        if prefix and name.startswith(prefix):
            return prefix
    return ""


#: Dependency blocks per family: packages of one family depend on much the same things, which is
#: what makes a real database compress as well as it does. PROFILE_SCALE sets their length (0.75:
#: ~2.6 KB of desc per entry, ~36 MB in a 14 000-entry extra.db); HOOD_SHARE is the share of
#: entries that take maintainer, licence, description and block from their sorted neighbourhood
#: (0.95: ~10.7 MB of gzip for that extra.db).
PROFILES_PER_FAMILY = 5
PROFILE_SCALE = 0.75
HOOD_SHARE = 0.95


@functools.lru_cache(maxsize=None)
def _family_pool(family: str) -> list[str]:
    """More dependency names of a family (its libraries, plugins, fonts …)."""
    rng = random.Random(f"pool:{family}")
    return phantom_names(60, rng, set(), prefix_weights=((family or "lib", 1),))


@functools.lru_cache(maxsize=None)
def _profiles(family: str) -> tuple[str, ...]:
    """A few fixed ``%DEPENDS%``…``%CHECKDEPENDS%`` blocks of ``family``, of different lengths."""
    templates = _FAMILIES[family]
    rng = random.Random(f"profiles:{family}")
    blocks = []
    for k in range(PROFILES_PER_FAMILY):
        out: list[str] = []
        share = (k + 1) / PROFILES_PER_FAMILY
        if rng.random() < 0.4:
            _field(out, "PROVIDES", [f"lib{family.strip('-') or 'core'}{k}.so={k + 1}-64"])
        depends = list(templates["depends"]) + [d for d in _BASE_DEPS if rng.random() < 0.5]
        pool = _family_pool(family)
        depends += pool[:round(len(pool) * share * PROFILE_SCALE)]
        _field(out, "DEPENDS", depends)
        optdepends = list(templates["optdepends"]) + [
            f"{dep}: {rng.choice(_WORDS)} {rng.choice(_WORDS)} support" for dep in pool[::-1][:round(12 * share * PROFILE_SCALE)]]
        _field(out, "OPTDEPENDS", optdepends)
        _field(out, "MAKEDEPENDS", list(templates["makedepends"])[:round(len(templates["makedepends"]) * min(1, share * 1.5))])
        _field(out, "CHECKDEPENDS", list(templates["checkdepends"])[:round(len(templates["checkdepends"]) * share)])
        blocks.append("".join(out))
    return tuple(blocks)


def phantom_names(count: int, rng: random.Random, taken: set[str] | None = None,
                  prefix_weights: Sequence[tuple[str, int]] = _PREFIX_WEIGHTS) -> list[str]:
    """``count`` unique Arch-like package names (not in ``taken``, which is updated)."""
    taken = taken if taken is not None else set()
    prefixes = [p for p, _ in prefix_weights]
    weights = [w for _, w in prefix_weights]
    names = []
    while len(names) < count:
        prefix = rng.choices(prefixes, weights)[0]
        stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        name = prefix + stem + rng.choice(_SUFFIXES)
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def _version(rng: random.Random) -> str:
    version = f"{rng.randint(0, 30)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}-{rng.randint(1, 4)}"
    if rng.random() < 0.03:
        version = f"{rng.randint(1, 3)}:{version}"
    return version


def _field(out: list[str], key: str, values: Iterable[str]) -> None:
    values = list(values)
    if values:
        out.append(f"%{key}%\n" + "\n".join(values) + "\n\n")


def phantom_desc(name: str, version: str, rng: random.Random) -> str:
    """An Arch-like ``desc`` for a package that does not exist.

    Neighbours in the sorted database (same family, same first letters: ``python-py…``) mostly
    share a maintainer, a licence, a description and a dependency block, as split packages and
    language families do in Arch; that is what lets ~36 MB of text gzip to ~10 MB.
    """
    family = _family(name)
    stem = name.removeprefix(family) if family else name
    hood = random.Random(f"hood:{family}:{stem[:2]}")
    local = hood if rng.random() < HOOD_SHARE else rng
    arch = "any" if family in ("python-", "perl-", "ruby-", "nodejs-", "texlive-") or local.random() < 0.1 else ARCH
    base = name.removesuffix("-docs").removesuffix("-utils").removesuffix("-common").removesuffix("-data")
    csize = int(math.exp(rng.uniform(math.log(8_000), math.log(40_000_000))))
    words = " ".join(local.choice(_WORDS) for _ in range(local.randint(4, 11)))
    out: list[str] = []
    _field(out, "FILENAME", [f"{name}-{version}-{arch}.pkg.tar.zst"])
    _field(out, "NAME", [name])
    _field(out, "BASE", [base])
    _field(out, "VERSION", [version])
    _field(out, "DESC", [f"{words[0].upper()}{words[1:]} ({stem})"])
    if local.random() < 0.12:
        _field(out, "GROUPS", local.sample(_GROUPS, local.randint(1, 2)))
    _field(out, "CSIZE", [str(csize)])
    _field(out, "ISIZE", [str(int(csize * rng.uniform(1.5, 4.5)))])
    _field(out, "SHA256SUM", [rng.randbytes(32).hex()])
    _field(out, "PGPSIG", [_pgpsig(rng)])
    _field(out, "URL", [f"https://{local.choice(_DOMAINS)}/{stem}"])
    _field(out, "LICENSE", local.sample(_LICENSES, local.choice((1, 1, 1, 2))))
    _field(out, "ARCH", [arch])
    _field(out, "BUILDDATE", [str(DB_MTIME - hood.randint(3600, 600 * 86400) - rng.randint(0, 7200))])
    _field(out, "PACKAGER", [local.choice(_PACKAGERS)])
    if rng.random() < 0.05:
        _field(out, "REPLACES", [f"{base}-legacy"])
    if rng.random() < 0.08:
        _field(out, "CONFLICTS", [f"{base}-git"])
    out.append(local.choice(_profiles(family)))
    return "".join(out)


def real_desc(pkg: RealPackage, rng: random.Random) -> str:
    """The ``desc`` of a real package: its true name, version, size and sha256; no dependencies."""
    out: list[str] = []
    _field(out, "FILENAME", [pkg.filename])
    _field(out, "NAME", [pkg.name])
    _field(out, "BASE", [pkg.name])
    _field(out, "VERSION", [pkg.version])
    _field(out, "DESC", [f"ipfs-xfer e2e test package {pkg.name}"])
    _field(out, "CSIZE", [str(pkg.csize)])
    _field(out, "ISIZE", [str(pkg.isize or pkg.csize)])
    _field(out, "SHA256SUM", [pkg.sha256])
    _field(out, "PGPSIG", [_pgpsig(rng)])
    _field(out, "URL", ["https://example.invalid/ipfs-xfer"])
    _field(out, "LICENSE", ["custom"])
    _field(out, "ARCH", [pkg.arch])
    _field(out, "BUILDDATE", [str(DEFAULT_BUILDDATE)])
    _field(out, "PACKAGER", ["ipfs-xfer e2e harness <e2e@localhost>"])
    _field(out, "OPTDEPENDS", ["python: for the helper scripts"])
    return "".join(out)


# ----------------------------------------------------------------------------
# databases
# ----------------------------------------------------------------------------
@dataclass
class SyncDb:
    """What :func:`make_sync_db` wrote.

    ``order``: the ``<name>-<version>`` directories in tar order; ``records``: file name →
    (``%CSIZE%``, ``%SHA256SUM%``) for every entry; ``real``: the real packages by name;
    ``desc_bytes``: the total size of the ``desc`` texts; ``tar_bytes``: the uncompressed tar.
    """

    path: Path
    compression: str
    order: list[str]
    records: dict[str, tuple[int, str]]
    real: dict[str, RealPackage]
    desc_bytes: int
    tar_bytes: int

    @property
    def entries(self) -> int:
        """Number of packages (``desc`` entries) in the database."""
        return len(self.order)

    @property
    def size(self) -> int:
        """Size of the compressed file."""
        return self.path.stat().st_size


def _tar_member(name: str, body: bytes | None, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "root", "root"
    if body is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    info.size, info.mode = len(body), 0o644
    header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    return header + body + b"\0" * (-len(body) % tarfile.BLOCKSIZE)


def compress(data: bytes, compression: str, mtime: int = DB_MTIME, name: bytes = b"") -> bytes:
    """``data`` as a gzip member (``name``: the gzip header's FNAME field, for padding) or a zstd frame."""
    if compression == "gz":
        flags = 0x08 if name else 0
        header = b"\x1f\x8b\x08" + bytes([flags]) + mtime.to_bytes(4, "little") + b"\x00\x03"
        if name:
            header += name + b"\0"
        deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = deflate.compress(data) + deflate.flush()
        return header + body + zlib.crc32(data).to_bytes(4, "little") + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")
    if compression == "zst":
        if shutil.which("zstd") is None:
            raise RuntimeError("the zstd command is missing (apt package zstd)")
        return subprocess.run(["zstd", "-q", "-3", "-T0", "-c", "-"], input=data, capture_output=True,
                              check=True).stdout
    raise ValueError(f"unknown compression {compression!r} (gz or zst)")


def decompress(data: bytes) -> bytes:
    """The tar inside a gzip or zstd database (by its magic)."""
    if data[:2] == b"\x1f\x8b":
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return subprocess.run(["zstd", "-q", "-d", "-c", "-"], input=data, capture_output=True, check=True).stdout
    raise ValueError("neither gzip nor zstd")


def make_sync_db(path: str | os.PathLike, entries: int, compression: str = "gz",
                 real_packages: Iterable[RealPackage] = (), last: str | None = None, seed: object = 0,
                 mtime: int = DB_MTIME, overrides: dict[str, RealPackage] | None = None,
                 pad_to: int | None = None) -> SyncDb:
    """Writes a pacman sync database of ``entries`` packages to ``path``; returns its :class:`SyncDb`.

    ``entries`` counts every package, real ones included (phantoms fill up the rest; at least
    the real ones are written). ``real_packages`` are listed with their true size and sha256;
    ``last`` (a real package's name) moves that package's entries to the end of the tar;
    ``compression``: ``"gz"`` or ``"zst"``; ``seed``: the phantoms (same seed and ``entries``, same
    phantoms); ``mtime``: of the tar entries and the file. ``overrides`` replaces the records of
    real packages by name (e.g. the same file name with another sha256, for a changed database).
    ``pad_to`` (gzip only) grows the file to exactly that size with the gzip header's file name
    field, so two different databases can have the same size. The file is written in place
    (same inode when it exists).
    """
    path = Path(path)
    rng = random.Random(f"archdb:{seed}:{entries}")
    real = {p.name: p for p in real_packages}
    real.update(overrides or {})
    if last is not None and last not in real:
        raise ValueError(f"last={last!r} is not one of the real packages")
    taken = set(real)
    names = phantom_names(max(0, entries - len(real)), rng, taken)
    listing = [(f"{n}-{v}", n, v) for n, v in ((n, _version(rng)) for n in names)]
    listing += [(p.dbdir, p.name, p.version) for p in real.values()]
    listing.sort(key=lambda e: e[0].encode())
    if last is not None:
        listing.sort(key=lambda e: e[1] == last)  # stable: everything else stays sorted
    parts: list[bytes] = []
    records: dict[str, tuple[int, str]] = {}
    desc_total = 0
    for dbdir, name, version in listing:
        desc_rng = random.Random(f"archdb:{seed}:{dbdir}")
        if name in real:
            pkg = real[name]
            text = real_desc(pkg, desc_rng)
            records[pkg.filename] = (pkg.csize, pkg.sha256)
        else:
            text = phantom_desc(name, version, desc_rng)
            fields = text.split("\n")
            records[fields[1]] = (int(fields[fields.index("%CSIZE%") + 1]), fields[fields.index("%SHA256SUM%") + 1])
        body = text.encode()
        desc_total += len(body)
        parts.append(_tar_member(dbdir + "/", None, mtime))
        parts.append(_tar_member(f"{dbdir}/desc", body, mtime))
    parts.append(b"\0" * (2 * tarfile.BLOCKSIZE))
    raw = b"".join(parts)
    raw += b"\0" * (-len(raw) % tarfile.RECORDSIZE)  # bsdtar pads to whole 10 KiB records too
    data = compress(raw, compression, mtime)
    if pad_to is not None:
        if compression != "gz":
            raise ValueError("pad_to works for gzip only")
        missing = pad_to - len(data)
        if missing == 1 or missing < 0:
            raise ValueError(f"cannot pad {len(data)} bytes to {pad_to}")
        if missing:
            data = compress(raw, compression, mtime, name=b"p" * (missing - 1))
        assert len(data) == pad_to
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "r+b" if path.exists() else "wb") as out:
        out.write(data)
        out.truncate()
    os.utime(path, (mtime, mtime))
    return SyncDb(path, compression, [e[0] for e in listing], records, real, desc_total, len(raw))


def read_sync_db(path: str | os.PathLike) -> list[tuple[str, bytes | None]]:
    """The members of a database in order: (name, desc bytes or None for a directory, whose name
    ends in ``/`` as in the archive)."""
    raw = decompress(Path(path).read_bytes())
    members = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for member in tar:
            if member.isdir():
                members.append((member.name + "/", None))
            else:
                members.append((member.name, tar.extractfile(member).read()))
    return members


def parse_desc(text: str) -> dict[str, list[str]]:
    """``{KEY: [lines]}`` of a ``desc`` text (the sandbox's own parser)."""
    return _parse_desc(text)


# ----------------------------------------------------------------------------
# a whole mirror, and a local database
# ----------------------------------------------------------------------------
@dataclass
class ScaleMirror:
    """What :func:`make_scale_mirror` wrote.

    ``packages``: the real packages by name (``repo``, ``rel_path``, ``csize``, ``sha256``,
    ``old_version``); ``dbs``: repo → :class:`SyncDb`; ``unlisted``: package files no database
    lists (path relative to the root → sha256); ``last``: repo → the real package listed last.
    """

    root: Path
    packages: dict[str, RealPackage]
    dbs: dict[str, SyncDb]
    unlisted: dict[str, str]
    last: dict[str, str]
    seed: object = 17
    lastupdate: int = DB_MTIME
    repos: tuple[str, ...] = ("core", "extra")

    def repo_dir(self, repo: str) -> Path:
        """``<root>/<repo>/os/x86_64``."""
        return self.root / repo / "os" / ARCH

    def db_file(self, repo: str) -> Path:
        """``<root>/<repo>/os/x86_64/<repo>.db``."""
        return self.repo_dir(repo) / f"{repo}.db"

    def in_repo(self, repo: str) -> list[RealPackage]:
        """The real packages of ``repo``, by name."""
        return sorted((p for p in self.packages.values() if p.repo == repo), key=lambda p: p.name)

    def by_filename(self) -> dict[str, RealPackage]:
        """File name → real package."""
        return {p.filename: p for p in self.packages.values()}

    def install_sync_dbs(self, dbpath: str | os.PathLike) -> None:
        """Copies ``core.db`` and ``extra.db`` into ``<dbpath>/sync/`` (as ``pacman -Sy`` would leave them)."""
        sync = Path(dbpath) / "sync"
        sync.mkdir(parents=True, exist_ok=True)
        for repo in self.repos:
            shutil.copy2(self.db_file(repo), sync / f"{repo}.db")

    def fake_local_db(self, dbpath: str | os.PathLike, packages: Iterable[RealPackage] | None = None,
                      installdate: int = DB_MTIME) -> list[str]:
        """Writes ``<dbpath>/local/`` as pacman 6 keeps it, with ``old_version`` of each package
        installed (default: every real package); returns the ``<name>-<version>`` entries written."""
        return fake_local_db(dbpath, packages if packages is not None else self.packages.values(), installdate)


def fake_local_db(dbpath: str | os.PathLike, packages: Iterable[RealPackage], installdate: int = DB_MTIME) -> list[str]:
    """A pacman local database (``local/ALPM_DB_VERSION`` = 9, ``local/<name>-<version>/desc`` and
    ``files``) in which ``old_version`` of each package is installed: ``pacman -Qu`` lists each
    of them against a sync db that has ``version``. Files listed are the package's own paths; none
    needs to exist under the root."""
    local = Path(dbpath) / "local"
    local.mkdir(parents=True, exist_ok=True)
    (local / "ALPM_DB_VERSION").write_text("9\n")
    written = []
    for pkg in packages:
        version = pkg.old_version or pkg.version
        entry = local / f"{pkg.name}-{version}"
        entry.mkdir(exist_ok=True)
        out: list[str] = []
        _field(out, "NAME", [pkg.name])
        _field(out, "VERSION", [version])
        _field(out, "BASE", [pkg.name])
        _field(out, "DESC", [f"ipfs-xfer e2e test package {pkg.name}"])
        _field(out, "URL", ["https://example.invalid/ipfs-xfer"])
        _field(out, "ARCH", [pkg.arch])
        _field(out, "BUILDDATE", [str(DEFAULT_BUILDDATE - 86400)])
        _field(out, "INSTALLDATE", [str(installdate)])
        _field(out, "PACKAGER", ["ipfs-xfer e2e harness <e2e@localhost>"])
        _field(out, "SIZE", [str(pkg.isize or pkg.csize)])
        _field(out, "LICENSE", ["custom"])
        _field(out, "VALIDATION", ["none"])
        (entry / "desc").write_text("".join(out))
        payload = pkg.payload_path or f"usr/share/{pkg.name}/payload"
        dirs = payload.split("/")[:-1]
        listed = ["/".join(dirs[:i + 1]) + "/" for i in range(len(dirs))] + [payload]
        (entry / "files").write_text("%FILES%\n" + "\n".join(listed) + "\n\n")
        written.append(entry.name)
    return written


def real_sizes(count: int, rng: random.Random, size_range: tuple[int, int] = REAL_SIZE_RANGE) -> list[int]:
    """Payload sizes whose package files are within ``size_range``, log-uniform, always including the
    smallest (so a 1 KiB package exists)."""
    lo, hi = size_range
    lo_payload, hi_payload = max(1, lo - 700), hi - 2048  # bsdtar/zstd add ~600 to 1500 bytes
    sizes = [int(math.exp(rng.uniform(math.log(lo_payload), math.log(hi_payload)))) for _ in range(count)]
    if sizes:
        sizes[0] = lo_payload
    return sizes


def make_scale_mirror(root: str | os.PathLike, real: int = REAL_PACKAGES, core_entries: int = CORE_ENTRIES,
                      extra_entries: int = EXTRA_ENTRIES, compressions: dict[str, str] | None = None,
                      core_share: float = 0.1, size_range: tuple[int, int] = REAL_SIZE_RANGE, seed: object = 17,
                      last: dict[str, str] | None = None, jobs: int = 4) -> ScaleMirror:
    """An Arch-scale mirror under ``root``: ``core`` and ``extra`` with ``real`` real packages on disk.

    ``core_share`` of the real packages go to core, the rest to extra; their names are drawn like
    the phantoms' (so they are spread over the sorted databases) and their file sizes are within
    ``size_range``. Each real package has ``version`` ``<x.y.z>-2`` and ``old_version`` ``<x.y.z>-1``.
    ``compressions``: repo → ``"gz"``/``"zst"`` (default core zst, extra gz, as a mirror may mix);
    ``last``: repo → real package name listed last (default: the smallest real package of each
    repo, a ~1 KiB one in extra). The databases are real files ``<repo>.db``; ``lastupdate`` is
    written; ``extra/os/x86_64/ax-unlisted*-1.0-1-x86_64.pkg.tar.zst`` are package files no
    database lists (:data:`UNLISTED`).
    """
    root = Path(root)
    compressions = {"core": "zst", "extra": "gz", **(compressions or {})}
    rng = random.Random(f"scale:{seed}")
    names = phantom_names(real, rng, set(UNLISTED))
    sizes = real_sizes(real, rng, size_range)
    core_count = max(1, round(real * core_share)) if real else 0
    by_repo: dict[str, list[PackageSpec]] = {"core": [], "extra": []}
    old: dict[str, str] = {}
    for i, (name, size) in enumerate(zip(names, sizes)):
        base = f"{rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}"
        spec = PackageSpec(name, version=f"{base}-2", size=size, seed=f"scale:{seed}:{name}")
        old[name] = f"{base}-1"
        # the smallest package (i == 0) goes to extra; core gets every n-th one after it
        repo = "core" if i and i % max(1, real // core_count) == 1 and len(by_repo["core"]) < core_count else "extra"
        by_repo[repo].append(spec)
    packages: dict[str, RealPackage] = {}
    for repo, specs in by_repo.items():
        for pkg in build_real_packages(specs, root / repo / "os" / ARCH, repo, old, jobs):
            packages[pkg.name] = pkg
    for pkg in packages.values():
        if not size_range[0] <= pkg.csize <= size_range[1]:
            raise AssertionError(f"{pkg.filename} is {pkg.csize} bytes, outside {size_range}")
    chosen_last = dict(last or {})
    dbs: dict[str, SyncDb] = {}
    for repo, entries in (("core", core_entries), ("extra", extra_entries)):
        members = [p for p in packages.values() if p.repo == repo]
        if repo not in chosen_last and members:
            chosen_last[repo] = min(members, key=lambda p: (p.csize, p.name)).name
        dbs[repo] = make_sync_db(root / repo / "os" / ARCH / f"{repo}.db", entries, compressions[repo], members,
                                 last=chosen_last.get(repo), seed=f"{seed}:{repo}")
    unlisted: dict[str, str] = {}
    for name in UNLISTED:
        spec = PackageSpec(name, version="1.0-1", size=4096, seed=f"scale:{seed}:{name}")
        path = build_package(spec, (root / "extra" / "os" / ARCH).resolve())
        unlisted[f"extra/os/{ARCH}/{path.name}"] = sha256_file(path)
    (root / "lastupdate").write_text(f"{DB_MTIME}\n")
    os.utime(root / "lastupdate", (DB_MTIME, DB_MTIME))
    return ScaleMirror(root, packages, dbs, unlisted, chosen_last, seed=seed)


def mirror_variant(mirror: ScaleMirror, root: str | os.PathLike, compressions: dict[str, str]) -> ScaleMirror:
    """The same mirror under ``root`` (package files hard-linked) with its databases compressed
    otherwise, e.g. ``{"core": "gz", "extra": "zst"}``: the same entries in the same order."""
    root = Path(root)
    for path in sorted(mirror.root.rglob("*")):
        target = root / path.relative_to(mirror.root)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif not path.name.endswith(".db"):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    packages = {name: dataclasses.replace(p, path=root / p.rel_path) for name, p in mirror.packages.items()}
    dbs = {}
    for repo, db in mirror.dbs.items():
        members = [p for p in packages.values() if p.repo == repo]
        dbs[repo] = make_sync_db(root / repo / "os" / ARCH / f"{repo}.db", db.entries, compressions.get(repo, db.compression),
                                 members, last=mirror.last.get(repo), seed=f"{mirror.seed}:{repo}")
    return ScaleMirror(root, packages, dbs, dict(mirror.unlisted), dict(mirror.last), seed=mirror.seed)
