"""Self-tests of the Arch-scale database builder (:mod:`harness.archdb`): sizes and fields as Arch's,
repo-add's layout, the real packages' true records, the last position, both compressions readable
by bsdtar and by Debian's pacman 6.0.2, and a local database that makes ``pacman -Syu`` upgrade
every real package. No ipfs-xfer here."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time

import pytest

from harness.archdb import (ARCH, EXTRA_ENTRIES, PGPSIG_BYTES, RealPackage, UNLISTED, make_sync_db, mirror_variant,
                            parse_desc, read_sync_db)
from harness.pacman import PacmanSandbox
from harness.pkgrepo import PackageSpec, build_package, sha256_file

MB = 1_000_000
#: Every desc repo-add writes has these (pacman.md §8); GROUPS, DEPENDS … only some.
ALWAYS = ("FILENAME", "NAME", "BASE", "VERSION", "DESC", "CSIZE", "ISIZE", "SHA256SUM", "PGPSIG", "URL", "LICENSE",
          "ARCH", "BUILDDATE", "PACKAGER")
SOMETIMES = ("GROUPS", "DEPENDS", "OPTDEPENDS", "MAKEDEPENDS", "CHECKDEPENDS", "PROVIDES", "CONFLICTS", "REPLACES")


@pytest.fixture(scope="module")
def two_real(tmp_path_factory) -> list[RealPackage]:
    """Two real packages: a 1 KiB one (to be listed last) and a 64 KiB one."""
    out = tmp_path_factory.mktemp("archdb-real")
    specs = [PackageSpec("zz-check-tiny", version="2.0-1", size=1024), PackageSpec("aa-check-mid", size=65536)]
    return [RealPackage.from_built(s, build_package(s, out)) for s in specs]


def pacman_list(box: PacmanSandbox, repo: str) -> list[str]:
    result = box.run("-Sl", repo)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_an_extra_db_at_arch_scale(compression, tmp_path, two_real):
    start = time.monotonic()
    db = make_sync_db(tmp_path / "extra.db", EXTRA_ENTRIES, compression, two_real, last="zz-check-tiny")
    elapsed = time.monotonic() - start
    print(f"\n{compression}: {db.entries} entries, {db.size / MB:.2f} MB, {db.desc_bytes / MB:.1f} MB of desc, "
          f"tar {db.tar_bytes / MB:.1f} MB, built in {elapsed:.1f} s")
    assert elapsed < 10
    assert db.entries == EXTRA_ENTRIES
    assert 33 * MB <= db.desc_bytes <= 39 * MB
    magic = db.path.read_bytes()[:4]
    if compression == "gz":
        assert magic[:2] == b"\x1f\x8b"
        assert 9 * MB <= db.size <= 11.5 * MB
    else:
        assert magic == b"\x28\xb5\x2f\xfd"
        assert 7 * MB <= db.size <= 12 * MB

    members = read_sync_db(db.path)
    assert len(members) == 2 * EXTRA_ENTRIES
    dirs = [name for name, body in members[0::2]]
    assert all(body is None and name.endswith("/") for name, body in members[0::2])  # a directory entry ...
    assert all(name == d + "desc" for (name, _), d in zip(members[1::2], dirs))  # ... then its desc
    assert [d.rstrip("/") for d in dirs] == db.order
    assert db.order[-1] == "zz-check-tiny-2.0-1"  # listed last (it sorts last anyway) ...
    assert db.order[:-1] == sorted(db.order[:-1], key=str.encode)  # ... the rest sorted as repo-add's
    descs = [parse_desc(body.decode()) for _, body in members[1::2]]
    assert sum(len(body) for _, body in members[1::2]) == db.desc_bytes
    for fields in descs:
        assert all(key in fields for key in ALWAYS), fields.keys()
        sig = fields["PGPSIG"][0]
        assert 740 <= len(sig) <= 780
        assert len(base64.b64decode(sig, validate=True)) == PGPSIG_BYTES
        assert re.fullmatch(r"[0-9a-f]{64}", fields["SHA256SUM"][0])
        assert fields["FILENAME"][0] == f"{fields['NAME'][0]}-{fields['VERSION'][0]}-{fields['ARCH'][0]}.pkg.tar.zst"
    for key in SOMETIMES:
        share = sum(key in fields for fields in descs) / len(descs)
        assert 0.01 < share, key
    assert 0.05 < sum("GROUPS" in f for f in descs) / len(descs) < 0.3
    assert len({f["NAME"][0] for f in descs}) == EXTRA_ENTRIES
    by_name = {f["NAME"][0]: f for f in descs}
    for pkg in two_real:
        fields = by_name[pkg.name]
        assert fields["CSIZE"] == [str(pkg.path.stat().st_size)]
        assert fields["SHA256SUM"] == [sha256_file(pkg.path)]
        assert db.records[pkg.filename] == (pkg.csize, pkg.sha256)

    listing = subprocess.run(["bsdtar", "-tf", str(db.path)], capture_output=True, text=True, check=True).stdout
    assert len(listing.splitlines()) == 2 * EXTRA_ENTRIES
    assert listing.splitlines()[-1] == "zz-check-tiny-2.0-1/desc"
    verbose = subprocess.run(["bsdtar", "-tvvf", str(db.path)], capture_output=True, text=True, check=True).stdout
    assert "POSIX ustar format" in verbose

    box = PacmanSandbox(tmp_path / "pacman", repos=("extra",))
    os.link(db.path, box.dbpath / "sync" / "extra.db")
    listed = pacman_list(box, "extra")
    assert len(listed) == EXTRA_ENTRIES
    assert "extra zz-check-tiny 2.0-1" in listed
    info = box.run("-Si", "aa-check-mid")
    assert info.returncode == 0 and "Validated By    : SHA-256 Sum  Signature" in info.stdout


def test_padding_gives_two_databases_the_same_size(tmp_path, two_real):
    tiny = two_real[0]
    other = RealPackage(tiny.name, tiny.version, tiny.arch, tiny.filename, tiny.csize, "0" * 64)
    first = make_sync_db(tmp_path / "a.db", 2000, real_packages=two_real)
    second = make_sync_db(tmp_path / "b.db", 2000, real_packages=two_real, overrides={tiny.name: other})
    size = max(first.size, second.size) + 2
    first = make_sync_db(tmp_path / "a.db", 2000, real_packages=two_real, pad_to=size)
    inode = first.path.stat().st_ino
    second = make_sync_db(tmp_path / "a.db", 2000, real_packages=two_real, overrides={tiny.name: other}, pad_to=size,
                          mtime=first.path.stat().st_mtime_ns // 10**9 + 100)
    assert second.path.stat().st_ino == inode and second.size == size  # rewritten in place
    assert second.records[tiny.filename] == (tiny.csize, "0" * 64)
    box = PacmanSandbox(tmp_path / "pacman", repos=("extra",))
    os.link(second.path, box.dbpath / "sync" / "extra.db")
    assert len(pacman_list(box, "extra")) == 2000
    assert "gzip compressed data" in subprocess.run(["file", str(second.path)], capture_output=True, text=True).stdout \
        or subprocess.run(["gzip", "-t", str(second.path)]).returncode == 0


def test_the_scale_mirror(scale_mirror):
    mirror = scale_mirror
    assert len(mirror.packages) == 300
    core = mirror.in_repo("core")
    extra = mirror.in_repo("extra")
    assert len(core) >= 20 and len(extra) >= 250
    assert mirror.dbs["core"].entries == 270 and mirror.dbs["extra"].entries >= 14_000
    assert mirror.dbs["core"].compression == "zst" and mirror.dbs["extra"].compression == "gz"
    for repo in ("core", "extra"):
        path = mirror.db_file(repo)
        assert path.is_file() and not path.is_symlink()
        members = read_sync_db(path)
        records = {}
        for name, body in members[1::2]:
            fields = parse_desc(body.decode())
            records[fields["FILENAME"][0]] = (int(fields["CSIZE"][0]), fields["SHA256SUM"][0])
        for pkg in mirror.in_repo(repo):
            on_disk = mirror.root / pkg.rel_path
            assert on_disk.is_file() and not on_disk.is_symlink()
            assert 1024 <= on_disk.stat().st_size <= 200 * 1024
            assert records[pkg.filename] == (on_disk.stat().st_size, sha256_file(on_disk))
        last = mirror.packages[mirror.last[repo]]
        assert members[-1][0] == f"{last.dbdir}/desc"
        for rel in mirror.unlisted:
            assert rel.rsplit("/", 1)[1] not in records
        # the real packages are spread over the sorted database, not bunched at one end
        positions = [mirror.dbs[repo].order.index(p.dbdir) for p in mirror.in_repo(repo)]
        assert min(positions) < 0.1 * len(members) / 2 and max(positions[:-1] or [0]) > 0.5 * len(members) / 2
    assert mirror.packages[mirror.last["extra"]].csize < 1200  # a ~1 KiB package, listed last in extra.db
    assert sorted(rel.rsplit("/", 1)[1].split("-1.0-1")[0] for rel in mirror.unlisted) == sorted(UNLISTED)
    for rel, digest in mirror.unlisted.items():
        assert sha256_file(mirror.root / rel) == digest
    assert (mirror.root / "lastupdate").read_text().strip().isdigit()
    assert all(p.old_version and p.old_version != p.version for p in mirror.packages.values())
    assert {p.arch for p in mirror.packages.values()} == {ARCH}


def test_the_local_db_makes_every_real_package_an_upgrade(scale_mirror, tmp_path):
    box = PacmanSandbox(tmp_path / "pacman")
    scale_mirror.install_sync_dbs(box.dbpath)
    written = scale_mirror.fake_local_db(box.dbpath)
    assert len(written) == 300
    assert (box.dbpath / "local" / "ALPM_DB_VERSION").read_text().strip() == "9"
    assert len(pacman_list(box, "core")) == 270
    assert len(pacman_list(box, "extra")) == scale_mirror.dbs["extra"].entries
    installed = box.run("-Q")
    assert installed.returncode == 0 and len(installed.stdout.splitlines()) == 300
    upgrades = box.run("-Qu")
    assert upgrades.returncode == 0, upgrades.stderr
    lines = upgrades.stdout.splitlines()
    assert len(lines) == 300
    expected = {f"{p.name} {p.old_version} -> {p.version}" for p in scale_mirror.packages.values()}
    assert set(lines) == expected
    # what pacman -Syu would download: every real package, nothing else
    printed = box.run("-Sup", "--print-format", "%n %v")  # (%f is pacman 6.1+)
    assert printed.returncode == 0, printed.stderr
    assert set(printed.stdout.splitlines()) == {f"{p.name} {p.version}" for p in scale_mirror.packages.values()}


def test_a_variant_with_other_compressions_lists_the_same(scale_mirror, tmp_path):
    variant = mirror_variant(scale_mirror, tmp_path / "variant", {"core": "gz", "extra": "zst"})
    assert variant.dbs["extra"].compression == "zst" and variant.dbs["core"].compression == "gz"
    for repo in ("core", "extra"):
        assert variant.dbs[repo].order == scale_mirror.dbs[repo].order
        assert variant.dbs[repo].records == scale_mirror.dbs[repo].records
        assert read_sync_db(variant.db_file(repo)) == read_sync_db(scale_mirror.db_file(repo))
    pkg = scale_mirror.packages[scale_mirror.last["extra"]]
    assert os.path.samefile(variant.root / pkg.rel_path, scale_mirror.root / pkg.rel_path)
