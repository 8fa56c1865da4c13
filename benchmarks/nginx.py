"""Generated nginx configurations: the static upstream and the reference proxy, each in its own directory.

Both run in the foreground (`daemon off`) as the current user with their own pid, error log and temp paths under
a temporary directory, one worker each. Keep-alive is effectively unlimited on both sides (nginx closes a client
connection after 1,000 requests by default, which would add reconnections to every run).
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from benchmarks.procs import Service, spawn, wait_port
from benchmarks.tools import pinned

SMALL_BODY = b"sluicegate benchmark: 64 bytes from the nginx upstream".ljust(64, b".")
LARGE_BODY_BYTES = 64 * 1024
LARGE_SUFFIX = "/large"  # a request path ending in this gets the large body


def _common(root: Path) -> str:
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""  # root: keep workers as root, not nobody
    temp = "\n".join(
        f"  {kind}_temp_path {root}/tmp/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n{temp}\n  keepalive_requests 1000000;\n  keepalive_timeout 75s;\n"
    )


def upstream_conf(root: Path, port: int) -> str:
    """Any path answers the 64-byte body from memory; a path ending in /large gets a 64 KiB file (sendfile)."""
    small = SMALL_BODY.decode()
    return _common(root) + (
        "  access_log off;\n  sendfile on;\n  open_file_cache max=16;\n"
        f"  server {{\n    listen 127.0.0.1:{port} backlog=4096;\n"
        f"    location ~ {LARGE_SUFFIX}$ {{ root {root}; default_type application/octet-stream;"
        " try_files /large.bin =404; }\n"
        f'    location / {{ default_type text/plain; return 200 "{small}"; }}\n  }}\n}}\n'
    )


def proxy_conf(root: Path, port: int, upstream_port: int, access_log: Path) -> str:
    """proxy_pass to the upstream through a keep-alive pool; one access-log line per request, like the gateway."""
    return _common(root) + (
        f"  access_log {access_log};\n"
        f"  upstream sluicegate_bench {{\n    server 127.0.0.1:{upstream_port};\n    keepalive 64;\n"
        "    keepalive_requests 1000000;\n  }\n"
        f"  server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    location / {{\n"
        "      proxy_pass http://sluicegate_bench;\n      proxy_http_version 1.1;\n"
        '      proxy_set_header Connection "";\n'
        "      proxy_buffers 16 8k;\n      proxy_max_temp_file_size 0;\n    }\n  }\n}\n"
    )


def start_nginx(name: str, root: Path, conf: str, port: int, cpus: str | None) -> Service:
    """Write `conf` under `root`, start nginx pinned to `cpus` and wait for its port."""
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    (root / "large.bin").write_bytes(b"x" * LARGE_BODY_BYTES)
    (root / "nginx.conf").write_text(conf)
    cmd = ["nginx", "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
    service = spawn(name, pinned(cmd, cpus), root)
    try:
        wait_port(port, service.proc, timeout=10)
    except RuntimeError as exc:
        service.stop()
        raise RuntimeError(f"{name}: {exc}\n{(root / 'error.log').read_text(errors='replace')}") from exc
    return service
