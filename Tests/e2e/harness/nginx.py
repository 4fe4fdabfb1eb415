"""Serve mirror trees over HTTP with a private nginx on 127.0.0.1.

One nginx process (foreground, ``-p PREFIX``, everything under a temp
prefix) runs one ``server`` per mirror, each on its own free port, each with
its own JSON-lines access log.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .procutil import die_with_parent, free_port, port_open, stop_process

LOG_FORMAT = (
    "log_format e2e escape=json '{"
    '"time":$msec,"method":"$request_method","path":"$request_uri",'
    '"status":$status,"bytes":$body_bytes_sent,"range":"$http_range",'
    '"request_time":$request_time'
    "}';"
)


@dataclass
class NginxMirror:
    """Options of one mirror server.

    ``limit_rate`` is an nginx rate (``"200k"`` or bytes/s as int);
    ``down=True`` reserves a port but serves nothing there (connection
    refused); ``extra`` is raw nginx directives added to the server block.
    """

    root: str | os.PathLike
    limit_rate: str | int | None = None
    down: bool = False
    extra: str = ""


class Nginx:
    """A foreground nginx serving one or more mirror roots.

    Usage::

        with Nginx(tmp / "nginx", {"m1": manifest.root,
                                   "slow": NginxMirror(manifest.root, limit_rate="50k"),
                                   "dead": NginxMirror(manifest.root, down=True)}) as ngx:
            url = ngx.url("m1") + "/core/os/x86_64/core.db"
            ngx.requests("m1")   # [{"method", "path", "status", "bytes", "range", …}]
    """

    def __init__(self, prefix: str | os.PathLike, mirrors: Mapping[str, NginxMirror | str | os.PathLike]):
        """Configure (not start) nginx under ``prefix`` for ``{name: root or NginxMirror}``."""
        self.prefix = Path(prefix)
        self.mirrors = {
            name: m if isinstance(m, NginxMirror) else NginxMirror(m) for name, m in mirrors.items()
        }
        self.ports = {name: free_port() for name in self.mirrors}
        self.proc: subprocess.Popen | None = None
        self.conf = self.prefix / "nginx.conf"

    def url(self, name: str) -> str:
        """Base URL of mirror ``name`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def port(self, name: str) -> int:
        """TCP port of mirror ``name``."""
        return self.ports[name]

    def access_log(self, name: str) -> Path:
        """Path of mirror ``name``'s JSON-lines access log."""
        return self.prefix / "logs" / f"access-{name}.log"

    def _config(self) -> str:
        p = self.prefix
        servers = []
        for name, mirror in self.mirrors.items():
            if mirror.down:
                continue
            lines = [
                "    server {",
                f"        listen 127.0.0.1:{self.ports[name]};",
                f"        root {Path(mirror.root).resolve()};",
                f"        access_log {self.access_log(name)} e2e;",
                "        autoindex on;",
            ]
            if mirror.limit_rate is not None:
                lines.append(f"        limit_rate {mirror.limit_rate};")
            if mirror.extra:
                lines.append("        " + mirror.extra)
            lines.append("    }")
            servers.append("\n".join(lines))
        return "\n".join(
            [
                "user root;",
                "worker_processes 1;",
                f"pid {p}/nginx.pid;",
                f"error_log {p}/logs/error.log warn;",
                "events { worker_connections 256; }",
                "http {",
                "    default_type application/octet-stream;",
                "    types { text/html html; }",
                "    sendfile on;",
                "    keepalive_timeout 30s;",
                f"    client_body_temp_path {p}/tmp/body;",
                f"    proxy_temp_path {p}/tmp/proxy;",
                f"    fastcgi_temp_path {p}/tmp/fastcgi;",
                f"    uwsgi_temp_path {p}/tmp/uwsgi;",
                f"    scgi_temp_path {p}/tmp/scgi;",
                "    " + LOG_FORMAT,
                "    access_log off;",
                *servers,
                "}",
                "",
            ]
        )

    def start(self, timeout: float = 10.0) -> "Nginx":
        """Write the config, start nginx and wait until every live server listens."""
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self._config())
        stderr = open(self.prefix / "logs" / "stderr.log", "ab")
        cmd = ["nginx", "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.prefix / "logs" / "error.log"),
               "-g", "daemon off;"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=die_with_parent)
        stderr.close()
        live = [name for name, m in self.mirrors.items() if not m.down]
        deadline = time.monotonic() + timeout
        while not all(port_open(self.ports[n]) for n in live):
            if self.proc.poll() is not None:
                err = (self.prefix / "logs" / "error.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {err}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("nginx did not start listening in time")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop nginx (SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self) -> "Nginx":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def requests(self, name: str) -> list[dict[str, Any]]:
        """Parsed access-log entries of mirror ``name`` (oldest first).

        nginx writes an entry just after it has sent the response, so a caller that has just got
        its answer may look before the entry is there: the log is read until it has stayed the
        same for 50 ms (at most 2 s)."""
        path = self.access_log(name)
        if not path.exists():
            return []
        text, deadline = path.read_text(), time.monotonic() + 2
        while time.monotonic() < deadline:
            time.sleep(0.05)
            again = path.read_text()
            if again == text:
                break
            text = again
        entries = []
        for line in text.splitlines():
            if line.strip():
                entry = json.loads(line)
                entry["range"] = entry.get("range") or None
                entries.append(entry)
        return entries

    def clear_requests(self, name: str | None = None) -> None:
        """Truncate the access log of ``name`` (or of every mirror)."""
        for n in [name] if name else list(self.mirrors):
            path = self.access_log(n)
            if path.exists():
                path.write_text("")
