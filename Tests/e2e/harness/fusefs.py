"""Stand-in kubo ``/ipfs`` FUSE mount over a kubo flatfs block store.

Run as a subprocess::

    python3 -m harness.fusefs --blocks DIR --mount MNT --control FILE [--log FILE]

Like ``ipfs mount``: ``<MNT>/<cid>/<path…>`` looks up any CID at the top
level (listing the top level is refused with EPERM), everything is
read-only (files 0444, directories 0555, symlinks reported with their
target). The filesystem is multithreaded, so a hung operation does not block
other paths.

Hangs are controlled at run time through the JSON control file (written
atomically by :class:`Mount`)::

    {"hang": [{"match": "ipx-big", "ops": ["read"]}]}

Any ``read`` (or ``open``/``getattr`` when listed in ``ops``) of a path
containing ``match`` blocks until the rule is removed, the mount is
stopping, or 120 s have passed (then it fails with EIO).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from .blockstore import BlockCorrupt, BlockNotFound, BlockStore
from .cid import CID, CIDError
from .procutil import die_with_parent, harness_env, stop_process
from .unixfs import InvalidDAG, Node, NotADirectory, PathNotFound, SymlinkInPath, UnixFS

MAX_HANG_SECONDS = 120.0
HANG_OPS = ("read", "open", "getattr")


class ControlFile:
    """Reads the JSON control file, re-parsing only when it changes."""

    def __init__(self, path: str | os.PathLike):
        """Watch ``path`` (a missing file means no rules)."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._state: dict[str, Any] = {}

    def state(self) -> dict[str, Any]:
        """Current control state (``{}`` if the file is absent or invalid)."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            return {}
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._state = json.loads(self.path.read_text() or "{}")
                except (ValueError, OSError):
                    self._state = {}
                self._stamp = stamp
            return self._state

    def hang_rule(self, op: str, path: str) -> dict | None:
        """The first hang rule covering ``op`` on ``path``, or None."""
        state = self.state()
        if state.get("stopping"):
            return None
        for rule in state.get("hang") or []:
            if op in rule.get("ops", ["read"]) and rule.get("match", "") in path:
                return rule
        return None


def _import_mfusepy():
    import mfusepy  # imported lazily: the test process only needs Mount

    return mfusepy


class IpfsFS:
    """FUSE operations (mfusepy ``Operations`` protocol) for ``/ipfs``."""

    use_ns = True

    def __init__(self, blocks: str | os.PathLike, control: ControlFile, log_path: str | None = None):
        """Serve ``blocks``; hang rules come from ``control``; ops are logged to ``log_path``."""
        self.fs = UnixFS(BlockStore(blocks))
        self.control = control
        self.handles: dict[int, Node] = {}
        self.next_fh = 1
        self.lock = threading.Lock()
        self.log_file = open(log_path, "a", buffering=1) if log_path else None
        self.uid = os.getuid()
        self.gid = os.getgid()

    # -- helpers --------------------------------------------------------
    def _log(self, **entry: Any) -> None:
        if self.log_file is not None:
            entry["time"] = time.time()
            with self.lock:
                self.log_file.write(json.dumps(entry) + "\n")

    def _maybe_hang(self, op: str, path: str) -> None:
        rule = self.control.hang_rule(op, path)
        if rule is None:
            return
        self._log(op="hang", path=path, hung_op=op)
        deadline = time.monotonic() + min(float(rule.get("max_seconds", MAX_HANG_SECONDS)), MAX_HANG_SECONDS)
        while self.control.hang_rule(op, path) is not None:
            if time.monotonic() > deadline:
                self._log(op="hang-timeout", path=path, hung_op=op)
                raise self._error(errno.EIO)
            time.sleep(0.05)
        self._log(op="unhang", path=path, hung_op=op)

    @staticmethod
    def _error(code: int) -> OSError:
        return _import_mfusepy().FuseOSError(code)

    def _resolve(self, path: str) -> Node:
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise self._error(errno.ENOENT)
        try:
            cid = CID.parse(parts[0])
        except (CIDError, ValueError):
            raise self._error(errno.ENOENT) from None
        try:
            return self.fs.resolve(cid, parts[1:]).node
        except (PathNotFound, BlockNotFound):
            raise self._error(errno.ENOENT) from None
        except (NotADirectory, SymlinkInPath):
            raise self._error(errno.ENOTDIR) from None
        except (BlockCorrupt, InvalidDAG):
            raise self._error(errno.EIO) from None

    def _attrs(self, node: Node) -> dict[str, Any]:
        mtime = 0
        if node.unixfs is not None and node.unixfs.mtime is not None:
            secs, nanos = node.unixfs.mtime
            mtime = secs * 1_000_000_000 + nanos
        if node.is_dir:
            mode, nlink, size = stat.S_IFDIR | 0o555, 2, node.block_size
        elif node.kind == "symlink":
            mode, nlink, size = stat.S_IFLNK | 0o777, 1, node.size
        else:
            mode, nlink, size = stat.S_IFREG | 0o444, 1, node.size
        return {
            "st_mode": mode,
            "st_nlink": nlink,
            "st_size": size,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_mtime": mtime,
            "st_atime": mtime,
            "st_ctime": mtime,
            "st_blksize": 262144,
            "st_blocks": (size + 511) // 512,
        }

    # -- FUSE operations -------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        """Attributes of ``/``, ``/<cid>`` or ``/<cid>/<path…>``."""
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2, "st_uid": self.uid, "st_gid": self.gid}
        self._maybe_hang("getattr", path)
        if fh and fh in self.handles:
            return self._attrs(self.handles[fh])
        return self._attrs(self._resolve(path))

    def readdir(self, path: str, fh: int) -> list[str]:
        """List a directory (HAMT included); the top level is refused."""
        if path == "/":
            raise self._error(errno.EPERM)
        node = self._resolve(path)
        if not node.is_dir:
            raise self._error(errno.ENOTDIR)
        return [".", ".."] + [link.name for link in self.fs.listdir(node)]

    def readlink(self, path: str) -> str:
        """Target of a UnixFS symlink."""
        node = self._resolve(path)
        if node.kind != "symlink":
            raise self._error(errno.EINVAL)
        return node.symlink_target

    def open(self, path: str, flags: int) -> int:
        """Open a file read-only and return a handle."""
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise self._error(errno.EROFS)
        self._maybe_hang("open", path)
        node = self._resolve(path)
        if node.is_dir:
            raise self._error(errno.EISDIR)
        with self.lock:
            fh = self.next_fh
            self.next_fh += 1
            self.handles[fh] = node
        self._log(op="open", path=path)
        return fh

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        """Read ``size`` bytes at ``offset`` (hangs if a rule matches)."""
        self._maybe_hang("read", path)
        node = self.handles.get(fh) or self._resolve(path)
        try:
            data = b"".join(self.fs.read(node, offset, size))
        except (BlockNotFound, BlockCorrupt, InvalidDAG):
            raise self._error(errno.EIO) from None
        self._log(op="read", path=path, offset=offset, size=size, returned=len(data))
        return data

    def release(self, path: str, fh: int) -> int:
        """Forget a file handle."""
        with self.lock:
            self.handles.pop(fh, None)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        """Plausible statfs values for a read-only filesystem."""
        return {"f_bsize": 262144, "f_frsize": 262144, "f_blocks": 0, "f_bfree": 0, "f_bavail": 0, "f_namemax": 255}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: mount in the foreground until unmounted."""
    parser = argparse.ArgumentParser(prog="python3 -m harness.fusefs", description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", required=True)
    parser.add_argument("--mount", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--log", help="JSON-lines log of open/read/hang events")
    parser.add_argument("--no-allow-other", action="store_true", help="only the mounting user may access")
    args = parser.parse_args(argv)
    mfusepy = _import_mfusepy()

    ops_class = type("IpfsOperations", (IpfsFS, mfusepy.Operations), {})
    ops = ops_class(args.blocks, ControlFile(args.control), args.log)
    options = dict(foreground=True, ro=True, fsname="ipfs-standin", subtype="ipfs")
    if not args.no_allow_other:
        options["allow_other"] = True
    mfusepy.FUSE(ops, args.mount, **options)
    return 0


# ----------------------------------------------------------------------------
# test-side helper
# ----------------------------------------------------------------------------
def is_mounted(path: str | os.PathLike) -> bool:
    """True if ``path`` is a mount point listed in /proc/self/mountinfo."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mount_point = fields[4].encode().decode("unicode_escape")
            if mount_point == target:
                return True
    return False


class Mount:
    """Runs the stand-in FUSE mount in a subprocess.

    Usage::

        with Mount(repo.blocks, tmp / "ipfs") as mnt:
            data = (mnt.path / root_cid / "core/os/x86_64/core.db").read_bytes()
            mnt.set_hang("ipx-big")          # reads of matching paths block
            mnt.clear()
            mnt.ops()                         # [{"op": "read", "path": …}, …]
    """

    def __init__(self, blocks: str | os.PathLike, mountpoint: str | os.PathLike, workdir: str | os.PathLike | None = None):
        """Configure (not start) a mount of ``blocks`` at ``mountpoint``."""
        self.blocks = Path(blocks)
        self.path = Path(mountpoint)
        self.workdir = Path(workdir) if workdir else self.path.parent
        self.control_path = self.workdir / f"{self.path.name}.control.json"
        self.log_path = self.workdir / f"{self.path.name}.ops.jsonl"
        self.proc: subprocess.Popen | None = None
        self._stderr = None

    def _write_control(self, state: dict[str, Any]) -> None:
        tmp = self.control_path.with_name(self.control_path.name + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.control_path)

    def start(self, timeout: float = 15.0) -> "Mount":
        """Mount and wait until the kernel lists the mount point."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_control({"hang": []})
        self.log_path.write_text("")
        cmd = [sys.executable, "-m", "harness.fusefs", "--blocks", str(self.blocks), "--mount", str(self.path),
               "--control", str(self.control_path), "--log", str(self.log_path)]
        self._stderr = open(self.workdir / f"{self.path.name}.stderr", "ab")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=self._stderr, env=harness_env(), preexec_fn=die_with_parent
        )
        deadline = time.monotonic() + timeout
        while not is_mounted(self.path):
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"FUSE process exited with {self.proc and self.proc.returncode}; see stderr")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.path} was not mounted within {timeout} s")
            time.sleep(0.05)
        return self

    def set_hang(self, match: str, ops: Iterable[str] = ("read",), max_seconds: float = MAX_HANG_SECONDS) -> None:
        """Make ``ops`` (``read``/``open``/``getattr``) on paths containing ``match`` hang."""
        ops = list(ops)
        bad = [op for op in ops if op not in HANG_OPS]
        if bad:
            raise ValueError(f"unsupported hang ops {bad}")
        self._write_control({"hang": [{"match": match, "ops": ops, "max_seconds": max_seconds}]})

    def clear(self) -> None:
        """Remove every hang rule (hung operations continue normally)."""
        self._write_control({"hang": []})

    def ops(self) -> list[dict[str, Any]]:
        """Logged FUSE events (open, read, hang, unhang, hang-timeout)."""
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        """Release hangs, unmount (lazily if busy) and end the FUSE process."""
        if self.control_path.parent.exists():
            self._write_control({"hang": [], "stopping": True})
        if is_mounted(self.path):
            res = subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True, timeout=30)
            if res.returncode != 0:
                subprocess.run(["fusermount3", "-uz", str(self.path)], capture_output=True, timeout=30)
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                stop_process(self.proc)
            self.proc = None
        if is_mounted(self.path):  # process died without unmounting
            subprocess.run(["fusermount3", "-uz", str(self.path)], capture_output=True, timeout=30)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> "Mount":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
