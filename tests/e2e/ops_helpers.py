"""Shared helpers of the whole-process operations tests: `python -m gateway run` as a subprocess, on free loopback
ports (data and admin), its stdout (the access log) and stderr (logs) in files, plus a raw HTTP/1.1 client that
tells a complete response from a truncated one and from a request that was never answered.

Nothing is mocked: upstreams are aiohttp apps in the test process on 127.0.0.1 (tests.conftest's `start_upstream`),
the gateway is the real `sluicegate run` process tree (supervisor and workers), clients use real sockets. Every wait
is bounded by a guard timeout; no assertion compares a measured time with a threshold.

This module is not rewritten by pytest's assertion rewriting, so it raises AssertionError with a message itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import StartUpstream, Upstream
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
START_GUARD = 40.0  # seconds for the supervisor and every worker to become ready (2 CPUs, N fresh interpreters)
GUARD = 15.0  # seconds: a guard against a hang, never a measured threshold
EXIT_GUARD = 30.0  # seconds for a stopped gateway to exit when the test does not bound it itself
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=GUARD)
#: Every field the access log promises on each line (issue 4, docs/operations.md "Access log").
ACCESS_LOG_FIELDS = frozenset(
    {
        "time",
        "request_id",
        "trace_id",
        "client",
        "method",
        "path",
        "route",
        "upstream",
        "status",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "upstream_ms",
        "user_agent",
    }
)
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

T = TypeVar("T")
#: The admin token every gateway `run_gateway` starts gets (SLUICEGATE_ADMIN__TOKEN) unless a test passes its own.
ADMIN_TOKEN = "e2e-admin-token-0123456789"


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any SLUICEGATE_* variable (they would change the gateway's settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    env.update(extra or {})
    return env


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, guard: float = GUARD) -> T:
    """Poll `probe` until it returns something other than None; AssertionError naming `what` after `guard` s."""
    deadline = time.monotonic() + guard
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = await probe()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            last_error, result = exc, None
        if result is not None:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within the {guard:g}s guard (last error: {last_error!r})")


async def wait_until(condition: Callable[[], bool], what: str, guard: float = GUARD) -> None:
    """Poll a plain condition (state this test process updates) until it holds; AssertionError after `guard` s."""

    async def probe() -> bool | None:
        return True if condition() else None

    await eventually(probe, what, guard)


# -- the gateway process --------------------------------------------------------------------------------------------


@dataclass
class GatewayProcess:
    """A running `python -m gateway run`; `port` is the data port the test expects, `admin_port` the admin one."""

    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int
    config: Path
    stdout_path: Path
    stderr_path: Path
    session: aiohttp.ClientSession = field(repr=False)
    admin_token: str | None = field(default=None, repr=False)  # sent by admin_get; None: no Authorization header

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    # -- output ---------------------------------------------------------------------------------------------------
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def access_log(self) -> list[dict[str, Any]]:
        """Every access-log line written so far, parsed (each must be one JSON object)."""
        entries: list[dict[str, Any]] = []
        for number, line in enumerate(self.stdout().splitlines(), 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AssertionError(f"stdout line {number} is not JSON: {line!r}") from exc
            if not isinstance(entry, dict):
                raise AssertionError(f"stdout line {number} is not a JSON object: {line!r}")
            entries.append(entry)
        return entries

    # -- admin ------------------------------------------------------------------------------------------------------
    async def admin_get(self, path: str) -> tuple[int, str]:
        """GET on the admin listener with this gateway's admin token (`Authorization: Bearer`)."""
        status, _, text = await self.admin_request("GET", path, self.admin_token)
        return status, text

    async def admin_request(
        self, method: str, path: str, token: str | None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Mapping[str, str], str]:
        """(status, headers, body) of one admin request with `token` as bearer token (None: no Authorization);
        requests with a body: tests.e2e.admin_helpers.call."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.admin_url(path), headers=sent, timeout=CLIENT_TIMEOUT) as resp:
            return resp.status, resp.headers, await resp.text()

    async def routes(self) -> dict[str, Any]:
        status, text = await self.admin_get("/routes")
        if status != 200:
            raise AssertionError(f"GET /routes answered {status}: {text}")
        view: dict[str, Any] = json.loads(text)
        return view

    async def ready_status(self) -> int:
        status, _ = await self.admin_get("/health/ready")
        return status

    async def metrics(self) -> Metrics:
        status, text = await self.admin_get("/metrics")
        if status != 200:
            raise AssertionError(f"GET /metrics answered {status}: {text}")
        return Metrics.parse(text)

    async def wait_for_version(self, version: int, guard: float = GUARD) -> dict[str, Any]:
        """Wait until the supervisor and every worker (all ready) show routes `version`; returns the routes view."""

        async def probe() -> dict[str, Any] | None:
            view = await self.routes()
            workers = view["workers"]
            done = (
                view["version"] == version and workers and all(w["version"] == version and w["ready"] for w in workers)
            )
            return view if done else None

        return await eventually(probe, f"every worker at routes version {version}", guard)

    # -- signals and exit -------------------------------------------------------------------------------------------
    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, guard: float = EXIT_GUARD) -> int:
        """The supervisor's exit status; AssertionError if it is still running after `guard` seconds."""
        deadline = time.monotonic() + guard
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the gateway did not exit within the {guard:g}s guard")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    async def stop(self, guard: float = EXIT_GUARD) -> int:
        """SIGTERM (drain) and wait for the exit: afterwards every access-log line is on stdout."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return await self.wait_exit(guard)


async def reloads_counted(gw: GatewayProcess, total: int) -> Metrics:
    """The metrics once `total` reloads have been counted (success or failure)."""

    async def probe() -> Metrics | None:
        metrics = await gw.metrics()
        counted = sum(metrics.values("gateway_reloads_total", ["result"]).values())
        return metrics if counted >= total else None

    return await eventually(probe, f"{total} reloads counted", guard=60.0)


def write_settings(path: Path, settings: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(settings)), encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def run_gateway(
    tmp_path: Path,
    routes: str,
    *args: str,
    port: int | None = None,
    pass_listen: bool = True,
    admin_port: int | None = None,
    pass_admin_listen: bool = True,
    settings: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    name: str = "gateway",
    wait_ready: bool = True,
    new_session: bool = False,
    console_script: bool = False,
    admin_token: str | None = ADMIN_TOKEN,
) -> AsyncIterator[GatewayProcess]:
    """Start `python -m gateway run --config <routes> [--listen 127.0.0.1:<port>] --admin-listen 127.0.0.1:<free>
    [--settings <file>] *args` and wait until /health/ready answers 200 (every worker serving).

    With `pass_listen=False` no --listen flag is given: `port` is where the test expects the settings to put the
    data port; `pass_admin_listen=False` and `admin_port` do the same for the admin listener. With
    `wait_ready=False` it yields as soon as the process is started (tests of start-up itself); with
    `new_session=True` the gateway leads a session and process group of its own, so a test may signal that
    whole group; with `console_script=True` it runs the installed `sluicegate` command instead of `python -m
    gateway`. The gateway gets `admin_token` as SLUICEGATE_ADMIN__TOKEN (None: not set; the test's `env` wins)
    and `admin_get` sends it. On exit a gateway still running is stopped (SIGTERM, then SIGKILL after a guard).
    """
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    config = directory / "routes.yaml"
    config.write_text(routes, encoding="utf-8")
    data_port = port if port is not None else free_port()
    admin_port = admin_port if admin_port is not None else free_port()
    launcher = (
        [str(Path(sys.executable).with_name("sluicegate"))] if console_script else [sys.executable, "-m", "gateway"]
    )
    command = [*launcher, "run", "--config", str(config)]
    if pass_listen:
        command += ["--listen", f"127.0.0.1:{data_port}"]
    if pass_admin_listen:
        command += ["--admin-listen", f"127.0.0.1:{admin_port}"]
    if settings is not None:
        command += ["--settings", str(write_settings(directory / "settings.yaml", settings))]
    command += list(args)
    stdout_path, stderr_path = directory / "stdout.log", directory / "stderr.log"
    environment = {"SLUICEGATE_ADMIN__TOKEN": admin_token} if admin_token is not None else {}
    environment.update(env or {})
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        # Files, not pipes: the access log can outgrow a pipe buffer nobody reads while the test runs.
        proc = subprocess.Popen(
            command, stdout=out, stderr=err, env=clean_environment(environment), cwd=ROOT, start_new_session=new_session
        )
    session = aiohttp.ClientSession()
    token = environment.get("SLUICEGATE_ADMIN__TOKEN")
    gateway = GatewayProcess(proc, data_port, admin_port, config, stdout_path, stderr_path, session, token)
    try:
        if wait_ready:
            await _wait_ready(gateway)
        yield gateway
    finally:
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await gateway.wait_exit(EXIT_GUARD)
                except AssertionError:
                    proc.kill()
                    proc.wait(GUARD)
        finally:
            await session.close()


async def _wait_ready(gateway: GatewayProcess, guard: float = START_GUARD) -> None:
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        if gateway.proc.poll() is not None:
            raise AssertionError(f"the gateway exited with {gateway.proc.returncode} at start:\n{gateway.stderr()}")
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            if await gateway.ready_status() == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the gateway was not ready within {guard:g}s:\n{gateway.stderr()}")


async def wait_ready(gateway: GatewayProcess, guard: float = START_GUARD) -> None:
    """Wait until /health/ready answers 200; AssertionError if the gateway exits or the guard runs out."""
    await _wait_ready(gateway, guard)


def children_of(pid: int) -> set[int]:
    """The pids of the live child processes of `pid` (its workers), read from /proc."""
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited while we looked
        # The command name (field 2) may contain spaces and parentheses: the fields after it follow the last ')'.
        state, ppid = text.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(stat.parent.name))
    return found


def listening_hosts(port: int) -> set[str]:
    """The local addresses on which some socket of this host listens on TCP `port` (from /proc/net/tcp{,6})."""
    hosts: set[str] = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: TCP_LISTEN
                    raw = bytes.fromhex(address)
                    # The kernel prints each 32-bit word in host (little-endian) order.
                    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                    hosts.add(socket.inet_ntop(family, raw))
    return hosts


def routes_yaml(*routes: Mapping[str, Any]) -> str:
    """A routes.yaml document with these routes."""
    return yaml.safe_dump({"routes": [dict(r) for r in routes]}, sort_keys=False)


# -- metrics --------------------------------------------------------------------------------------------------------


@dataclass
class Metrics:
    """A parsed /metrics scrape: samples by name, each with its labels (prometheus_client's own parser)."""

    types: dict[str, str]
    samples: list[tuple[str, dict[str, str], float]]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        types: dict[str, str] = {}
        samples: list[tuple[str, dict[str, str], float]] = []
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                samples.append((sample.name, dict(sample.labels), float(sample.value)))
        return cls(types, samples)

    def values(self, name: str, label_names: Sequence[str]) -> dict[tuple[str, ...], float]:
        """Sample values of `name`, keyed by the values of `label_names`."""
        return {tuple(labels[n] for n in label_names): value for n, labels, value in self.samples if n == name}

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample of `name` whose labels include `labels`, or None."""
        found = [v for n, ls, v in self.samples if n == name and all(ls.get(k) == x for k, x in labels.items())]
        if len(found) > 1:
            raise AssertionError(f"{len(found)} samples of {name} match {labels}")
        return found[0] if found else None

    def series(self) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        """Every (sample name, label set): what a Prometheus server would store as distinct series."""
        return {(n, tuple(sorted(ls.items()))) for n, ls, _ in self.samples}


# -- a raw HTTP/1.1 client ------------------------------------------------------------------------------------------


class Outcome(Enum):
    COMPLETE = "complete"  # status line, head and the whole body as framed
    REFUSED = "refused"  # connect refused: the listener was closed (not a loss)
    UNANSWERED = "unanswered"  # the connection ended before a single byte of response
    TRUNCATED = "truncated"  # some of a response arrived, then the connection ended: always a failure
    HUNG = "hung"  # nothing ended within the guard: always a failure


@dataclass
class RawResponse:
    outcome: Outcome
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; the last value wins
    body: bytes = b""
    received: bytes = b""  # raw bytes of an incomplete response
    error: str = ""

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


def request_bytes(method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway.test"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader, guard: float = GUARD) -> RawResponse:
    """Read one response (Content-Length or chunked framing); classify an early end instead of raising."""
    received = bytearray()

    async def exactly(n: int) -> bytes:
        data = await reader.readexactly(n)
        received.extend(data)
        return data

    async def until(separator: bytes) -> bytes:
        data = await reader.readuntil(separator)
        received.extend(data)
        return data

    try:
        async with asyncio.timeout(guard):
            head = await until(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if "content-length" in headers:
                body = await exactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                parts = []
                while size := int((await until(b"\r\n")).split(b";")[0], 16):
                    parts.append((await exactly(size + 2))[:-2])
                await until(b"\r\n")  # no trailers expected
                body = b"".join(parts)
            else:
                body = b""
            return RawResponse(Outcome.COMPLETE, status, headers, body)
    except asyncio.IncompleteReadError as exc:
        received.extend(exc.partial)
        error = f"connection ended: {exc!r}"
    except (ConnectionError, asyncio.LimitOverrunError) as exc:
        error = f"connection failed: {exc!r}"
    except TimeoutError:
        error = "guard timeout"
    if error == "guard timeout":
        return RawResponse(Outcome.HUNG, received=bytes(received), error=error)
    return RawResponse(Outcome.TRUNCATED if received else Outcome.UNANSWERED, received=bytes(received), error=error)


async def open_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection to 127.0.0.1:`port`, or None when it is refused."""
    try:
        async with asyncio.timeout(GUARD):
            return await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return None


async def one_request(port: int, method: str, path: str, headers: Mapping[str, str] | None = None) -> RawResponse:
    """One request on a fresh connection."""
    conn = await open_client(port)
    if conn is None:
        return RawResponse(Outcome.REFUSED)
    reader, writer = conn
    try:
        writer.write(request_bytes(method, path, headers))
        return await read_response(reader)
    finally:
        writer.close()


async def start_text_upstream(start_upstream: StartUpstream, text: str = "ok") -> Upstream:
    """An upstream answering every method and path with 200 and `text` (reading the body first)."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=text)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return await start_upstream(app)
