"""Upstreams of other stacks as real processes on 127.0.0.1: httpbin (Flask/Werkzeug) under gunicorn, and nginx.

Each writes its logs under a temporary directory; `Service.seen` reads the access log, so a test can tell whether
a request reached the upstream at all (the pipelining tests need "never executed", not only "not answered").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

START_GUARD = 30.0  # seconds: how long a server may take to start answering; a guard, not a measurement
LARGE_FILE_BYTES = 40 * 1024 * 1024 + 17  # tens of MiB, and not a multiple of any buffer size
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
SMALL_TEXT = b"a small static document from nginx\n" * 40


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    root: Path
    access_log: Path
    error_log: Path

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}"

    def seen(self, marker: str) -> bool:
        """Whether a request whose target contains `marker` is in the access log."""
        return self.access_log.exists() and marker.encode() in self.access_log.read_bytes()

    def stop(self) -> None:
        """Terminate the server (and, for gunicorn, its worker through the arbiter); kill it if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def describe(self) -> str:
        log = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
        return f"{self.name} (exit {self.proc.poll()}):\n{log[-4000:]}"


def _answers(port: int, request: bytes) -> bool:
    """One request on a fresh connection; True when any HTTP response comes back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(request)
            return sock.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


def _wait_until_answering(service: Service, path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {service.authority}\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + START_GUARD
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise RuntimeError(f"{service.describe()}")
        if _answers(service.port, request):
            return
        time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"not answering after {START_GUARD:g}s: {service.describe()}")


def start_httpbin(root: Path) -> Service:
    """httpbin's Flask app under gunicorn (threaded worker: keep-alive, concurrent slow requests).

    The listening socket is bound here and handed over as a file descriptor: an ephemeral port without the race
    of picking a free one and hoping nobody takes it before gunicorn binds it.
    """
    root.mkdir(parents=True, exist_ok=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = int(sock.getsockname()[1])
    fd = sock.fileno()
    access, errors = root / "access.log", root / "error.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        f"--bind=fd://{fd}",
        "--workers=1",
        "--worker-class=gthread",
        "--threads=8",
        "--no-control-socket",
        f"--worker-tmp-dir={root}",
        f"--access-logfile={access}",
        f"--error-logfile={errors}",
        "httpbin:app",
    ]
    try:
        with errors.open("ab") as stderr:  # start-up failures (an import error) land next to gunicorn's own log
            proc = subprocess.Popen(
                command, pass_fds=(fd,), cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
    finally:
        sock.close()  # gunicorn holds its own copy
    service = Service("gunicorn/httpbin", proc, port, root, access, errors)
    _wait_until_answering(service, "/status/200")
    return service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_conf(root: Path, port: int) -> str:
    """A foreground single-process nginx with every path under `root`; only modules nginx-light has."""
    temp = "".join(
        f"  {kind}_temp_path {root}/tmp/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\nmaster_process off;\npid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"{temp}"
        f"  access_log {root}/access.log;\n"
        "  types { text/plain txt; application/octet-stream bin; }\n"
        "  default_type application/octet-stream;\n"
        "  sendfile on;\n"
        "  server {\n"
        f"    listen 127.0.0.1:{port};\n"
        f"    location /static/ {{ alias {root}/static/; }}\n"
        f"    location /gzip/ {{ alias {root}/static/; gzip on; gzip_types text/plain; gzip_min_length 1; }}\n"
        '    location = /ok { default_type text/plain; return 200 "ok\\n"; }\n'
        "    location = /no-content { return 204; }\n"
        "    location = /redirect { return 302 /ok; }\n"
        "    location = /multi { add_header X-Multi one; add_header X-Multi two;"
        ' default_type text/plain; return 200 "multi\\n"; }\n'
        "  }\n"
        "}\n"
    )


def write_static(root: Path) -> str:
    """The files nginx serves; returns the sha256 of /static/large.bin."""
    static = root / "static"
    static.mkdir(parents=True, exist_ok=True)
    (static / "small.txt").write_bytes(SMALL_TEXT)
    digest = hashlib.sha256()
    with (static / "large.bin").open("wb") as out:
        left = LARGE_FILE_BYTES
        while left:
            piece = os.urandom(min(left, 1 << 20))
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return digest.hexdigest()


def start_nginx(root: Path) -> Service:
    """nginx on a free port; retried on another port if that one was taken in between."""
    for kind in TEMP_KINDS:
        (root / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    error: RuntimeError | None = None
    for _ in range(3):
        port = _free_port()
        (root / "nginx.conf").write_text(nginx_conf(root, port))
        command = ["nginx", "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        service = Service("nginx", proc, port, root, root / "access.log", root / "error.log")
        try:
            _wait_until_answering(service, "/ok")
            return service
        except RuntimeError as exc:
            error = exc
            with contextlib.suppress(Exception):
                service.stop()
    assert error is not None
    raise error
