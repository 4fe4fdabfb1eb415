"""ipfs-xfer with untrusted gateways: pacman installs through CARs of real kubo blocks, verified
block by block by the streaming walk; every kind of bad stream is refused and the fallback wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from xfer import XferSetup, assert_cache_clean, closed_port_url, file_requests


def pacman_ok(box, *args, timeout=120):
    result = box.run(*args, timeout=timeout)
    assert result.returncode == 0, f"pacman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def trustless_setup(box, ipfs_mirror, gateway, **kwargs):
    """Only the trustless gateway on the IPFS side: no trusted gateway, no mount."""
    return XferSetup(box, ipfs_mirror.root_cid, gateways=[closed_port_url()],
                     extra=[f"TrustlessGateway = {gateway.url}"], **kwargs)


def install_big_with_fault(fault, make_pacman, nginx, gateway, ipfs_mirror, mirror):
    """Syncs, arms `fault` on ipx-big's requests and installs it; returns the setup and file name."""
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = trustless_setup(box, ipfs_mirror, gateway)
    pacman_ok(box, "-Sy")
    big = Path(mirror.package("ipx-big").path).name
    gateway.set_fault(match=big, **fault)
    pacman_ok(box, "-S", "ipx-big")
    print("\n" + setup.report())
    assert_cache_clean(box, mirror)
    return setup, big


def test_installs_through_a_verified_car(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = trustless_setup(box, ipfs_mirror, gateway)
    pacman_ok(box, "-Sy")
    pacman_ok(box, "-S", "ipx-big", "ipx-epoch", "ipx-libc++")
    print("\n" + setup.report())
    served = setup.served_by()
    big = Path(mirror.package("ipx-big").path).name
    assert served[big] == "trustless"
    assert set(served.values()) == {"trustless"}
    assert file_requests(nginx, "m1") == []
    car_requests = [entry for entry in gateway.log() if "format=car" in entry["path"]]
    assert any(big in entry["path"] for entry in car_requests)
    assert_cache_clean(box, mirror)


CAR_FAULTS = [
    pytest.param({"mode": "car-corrupt"}, id="corrupt-block"),
    pytest.param({"mode": "car-reorder"}, id="reordered"),
    pytest.param({"mode": "car-duplicate"}, id="duplicated"),
    pytest.param({"mode": "car-foreign"}, id="foreign-block"),
    pytest.param({"mode": "car-pad"}, id="padded"),
    pytest.param({"mode": "car-oversize"}, id="block-over-2MiB"),
]


@pytest.mark.parametrize("fault", CAR_FAULTS)
def test_a_bad_car_is_refused_and_the_mirror_serves_the_rest(fault, make_pacman, nginx, gateway, ipfs_mirror, mirror):
    setup, big = install_big_with_fault(fault, make_pacman, nginx, gateway, ipfs_mirror, mirror)
    # The blocks verified before the bad one are kept; the mirror sends the rest (for junk after
    # the file's last block, nothing is left to send).
    lines = [t for t in setup.transfers() if t.file == big and t.bytes > 0]
    assert {t.kind for t in lines} <= {"mirror", "trustless"}
    assert sum(t.bytes for t in lines) == mirror.package("ipx-big").size
    assert f"trustless {gateway.url}" in (setup.state_dir / "sources").read_text()  # remembered as bad


@pytest.mark.parametrize("fault", [
    pytest.param({"mode": "car-drop"}, id="dropped-block"),
    pytest.param({"mode": "car-truncate"}, id="cut-mid-section"),
])
def test_a_short_car_is_completed_with_raw_blocks(fault, make_pacman, nginx, gateway, ipfs_mirror, mirror):
    setup, big = install_big_with_fault(fault, make_pacman, nginx, gateway, ipfs_mirror, mirror)
    if fault["mode"] == "car-truncate":
        assert setup.served_by()[big] == "trustless"
        assert any("format=raw" in entry["path"] for entry in gateway.log())
    else:
        # A dropped block is an unexpected next block: the gateway is refused (Lassie's rule).
        assert setup.served_by()[big] in {"trustless", "mirror"}


def test_a_corrupt_raw_block_fails_the_gap_fill(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = trustless_setup(box, ipfs_mirror, gateway)
    pacman_ok(box, "-Sy")
    big = Path(mirror.package("ipx-big").path).name
    gateway.set_fault(match=big, mode="car-truncate")
    gateway.set_fault(mode="raw-corrupt", match="format=raw")
    pacman_ok(box, "-S", "ipx-big")
    assert setup.served_by()[big] == "mirror"
    assert_cache_clean(box, mirror)


def test_a_partial_file_resumes_with_entity_bytes(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    """pacman's .part from an earlier try: only the rest is asked for, and the whole is verified."""
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = trustless_setup(box, ipfs_mirror, gateway)
    pacman_ok(box, "-Sy")
    big = mirror.package("ipx-big")
    name = Path(big.path).name
    source = Path(mirror.root) / big.path
    output = box.cachedir / f"{name}.part"
    offset = 300_000  # inside a 256 KiB chunk, past the first
    output.write_bytes(source.read_bytes()[:offset])
    call = setup.run(f"{nginx.url('m1')}/{big.path}", output)
    assert call.returncode == 0, call.stderr
    assert output.read_bytes() == source.read_bytes()
    assert setup.served_by()[name] == "trustless"
    assert setup.transfers()[-1].bytes == big.size - offset
    cars = [entry["path"] for entry in gateway.log() if name in entry["path"] and "format=car" in entry["path"]]
    assert cars and all(f"entity-bytes={offset}:*" in path or f"entity-bytes={offset}%3A*" in path for path in cars), cars
    assert file_requests(nginx, "m1") == []


def test_a_partial_file_with_wrong_bytes_is_not_trusted(make_pacman, nginx, gateway, ipfs_mirror, mirror):
    """A .part whose bytes are not the package's: the resumed file fails its sha256 and is fetched anew."""
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    setup = trustless_setup(box, ipfs_mirror, gateway)
    pacman_ok(box, "-Sy")
    big = mirror.package("ipx-big")
    source = Path(mirror.root) / big.path
    output = box.cachedir / f"{Path(big.path).name}.part"
    output.write_bytes(b"\0" * 300_000)
    call = setup.run(f"{nginx.url('m1')}/{big.path}", output)
    assert call.returncode == 0, call.stderr
    assert output.read_bytes() == source.read_bytes()
