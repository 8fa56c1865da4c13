"""Signals and start-up of the whole `sluicegate run` process tree (issue 9, findings 1, 3 and 5).

- A SIGHUP or SIGTERM that arrives while the workers are starting is handled, not fatal: a reload asked for during
  start-up runs once start-up completes; a drain asked for during start-up drains and exits 0.
- Workers ignore SIGHUP (the supervisor alone reloads), whether it is sent to a worker or to the whole process
  group as a terminal hang-up or `kill -HUP -PGID` does; their requests in flight complete.
- A busy data or admin port stops start-up with one line naming the address and a non-zero status, before any
  worker starts.

Start-up is held at a known point without any timing: either the settings file is a named pipe the test writes only
after sending the signal (the supervisor is still reading its settings, before its event loop runs), or the test
stops (SIGSTOP) the first worker as soon as it exists, so the supervisor is still waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import StartUpstream, Upstream
from tests.e2e.ops_helpers import (
    GUARD,
    ROOT,
    GatewayProcess,
    Outcome,
    RawResponse,
    children_of,
    clean_environment,
    eventually,
    open_client,
    read_response,
    reloads_counted,
    request_bytes,
    routes_yaml,
    run_gateway,
    wait_ready,
)
from tests.helpers import free_port


def versioned_routes(url: str, version: str) -> str:
    return routes_yaml(
        {"id": "api", "uri": url, "predicates": ["Path=/**"], "filters": [f"AddResponseHeader=X-Version, {version}"]}
    )


async def start_held_upstream(start_upstream: StartUpstream) -> tuple[Upstream, asyncio.Event, asyncio.Event]:
    """An upstream whose /hold requests wait for `release`; `arrived` is set when one is waiting."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/hold":
            arrived.set()
            await release.wait()
        return web.Response(text=f"done {request.path}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return await start_upstream(app), arrived, release


async def stop_first_worker(gw: GatewayProcess) -> int:
    """SIGSTOP the first worker process as soon as it exists: start-up cannot complete until it is continued."""

    async def spawned() -> int | None:
        if gw.proc.poll() is not None:
            raise AssertionError(f"the gateway exited with {gw.proc.returncode}:\n{gw.stderr()}")
        pids = children_of(gw.proc.pid)
        return min(pids) if pids else None

    pid = await eventually(spawned, "the first worker process started")
    os.kill(pid, signal.SIGSTOP)
    return pid


async def signal_handled(gw: GatewayProcess, sig: signal.Signals, evidence: str) -> None:
    """Send `sig` to the supervisor and wait until it either logged `evidence` or died of the signal."""
    gw.signal(sig)

    async def outcome() -> bool | None:
        return True if gw.proc.poll() is not None or evidence in gw.stderr() else None

    await eventually(outcome, f"the supervisor handled {sig.name}")


@contextlib.contextmanager
def continued(pid: int) -> Iterator[None]:
    """Continue a stopped worker however the test block ends."""
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


async def test_sighup_during_start_up_reloads_once_start_up_completes(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream, _, _ = await start_held_upstream(start_upstream)
    routes = versioned_routes(upstream.url, "v1")
    async with run_gateway(tmp_path, routes, "--workers", "2", wait_ready=False) as gw:
        worker = await stop_first_worker(gw)
        with continued(worker):
            gw.config.write_text(versioned_routes(upstream.url, "v2"), encoding="utf-8")
            await signal_handled(gw, signal.SIGHUP, "SIGHUP: reload requested")
            assert gw.proc.poll() is None, f"SIGHUP during start-up killed the supervisor:\n{gw.stderr()}"
        view = await gw.wait_for_version(2, guard=40.0)
        await wait_ready(gw)
        async with gw.session.get(gw.url("/x")) as resp:
            version = resp.headers.get("X-Version")
        metrics = await gw.metrics()
        code = await gw.stop()
    assert [w["version"] for w in view["workers"]] == [2, 2]
    assert version == "v2"
    assert metrics.value("gateway_reloads_total", result="success") == 1
    assert code == 0


async def test_sigterm_during_start_up_drains_and_exits_zero(tmp_path: Path, start_upstream: StartUpstream) -> None:
    upstream, _, _ = await start_held_upstream(start_upstream)
    async with run_gateway(tmp_path, versioned_routes(upstream.url, "v1"), wait_ready=False) as gw:
        worker = await stop_first_worker(gw)
        with continued(worker):
            await signal_handled(gw, signal.SIGTERM, "drain requested")
            assert gw.proc.poll() is None, f"SIGTERM during start-up killed the supervisor:\n{gw.stderr()}"
        code = await gw.wait_exit()

        async def worker_gone() -> bool | None:
            return True if not children_of(gw.proc.pid) and not Path(f"/proc/{worker}").exists() else None

        await eventually(worker_gone, "the worker exited with the supervisor")
    assert code == 0, gw.stderr()
    assert "Traceback" not in gw.stderr()


async def open_settings_pipe(gw: GatewayProcess, fifo: Path) -> int:
    """The write end of the settings pipe, once the supervisor has opened it to read its settings."""

    async def reader_waiting() -> int | None:
        if gw.proc.poll() is not None:
            raise AssertionError(f"the gateway exited with {gw.proc.returncode}:\n{gw.stderr()}")
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until a reader has the pipe open
        except OSError:
            return None

    return await eventually(reader_waiting, "the supervisor reads its settings file", guard=40.0)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["SIGHUP", "SIGTERM"])
async def test_a_signal_while_the_settings_are_read_is_acted_on_after(tmp_path: Path, sig: signal.Signals) -> None:
    """Before the event loop runs (settings, plugins and routes being read) a signal is recorded, not fatal: a
    SIGHUP reloads once start-up completes, a SIGTERM ends start-up before any worker, with status 0."""
    fifo = tmp_path / "settings.yaml"
    os.mkfifo(fifo)
    noop = routes_yaml({"id": "noop", "uri": "no://op", "predicates": ["Path=/noop"]})
    async with run_gateway(tmp_path, noop, "--settings", str(fifo), wait_ready=False) as gw:
        pipe = await open_settings_pipe(gw, fifo)
        try:
            gw.signal(sig)  # the supervisor is blocked reading the pipe: the signal interrupts that read
            os.write(pipe, b"workers: 1\n")
        finally:
            os.close(pipe)
        if sig == signal.SIGHUP:
            await wait_ready(gw)
            metrics = await reloads_counted(gw, 1)  # an unchanged file: acted on, no new version
            view = await gw.wait_for_version(1)
            code = await gw.stop()
            assert len(view["workers"]) == 1
            assert metrics.value("gateway_reloads_total", result="success") == 1
        else:
            code = await gw.wait_exit()
            assert "serving routes version" not in gw.stderr(), "a worker was started after SIGTERM"
    assert code == 0, gw.stderr()
    assert "Traceback" not in gw.stderr()


async def hold_request(port: int, arrived: asyncio.Event) -> asyncio.Task[RawResponse]:
    """A GET /hold on a fresh connection, in flight (waiting at the upstream) when this returns."""
    conn = await open_client(port)
    assert conn is not None
    reader, writer = conn
    writer.write(request_bytes("GET", "/hold"))

    async def answer() -> RawResponse:
        try:
            return await read_response(reader)
        finally:
            writer.close()

    task = asyncio.get_running_loop().create_task(answer())
    async with asyncio.timeout(GUARD):
        await arrived.wait()
    return task


async def test_workers_ignore_sighup_and_finish_requests_in_flight(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream, arrived, release = await start_held_upstream(start_upstream)
    async with run_gateway(tmp_path, versioned_routes(upstream.url, "v1"), "--workers", "2", new_session=True) as gw:
        before = [(w["index"], w["pid"]) for w in (await gw.routes())["workers"]]
        outcomes = []
        # First to each worker, then to the whole process group (a terminal hang-up, `kill -HUP -PGID`).
        for send in ("workers", "group"):
            arrived.clear()
            release.clear()
            in_flight = await hold_request(gw.port, arrived)
            if send == "workers":
                for _, pid in before:
                    os.kill(pid, signal.SIGHUP)
            else:
                gw.config.write_text(versioned_routes(upstream.url, "v2"), encoding="utf-8")
                os.killpg(gw.proc.pid, signal.SIGHUP)
            # A scrape makes every worker answer on its control channel: a worker killed by the signal is gone.
            await gw.metrics()
            release.set()
            outcomes.append(await in_flight)
        view = await gw.wait_for_version(2)
        after = [(w["index"], w["pid"]) for w in view["workers"]]
        code = await gw.stop()
    assert [(o.outcome, o.status, o.body) for o in outcomes] == [(Outcome.COMPLETE, 200, b"done /hold")] * 2
    assert after == before, "a worker was restarted"
    assert "exited with" not in gw.stderr()
    assert code == 0


def busy_listener() -> socket.socket:
    """A socket listening on a free loopback port: that port is busy for the gateway."""
    return socket.create_server(("127.0.0.1", 0))


@pytest.mark.parametrize("busy", ["data", "admin"])
def test_a_busy_port_stops_start_up_with_one_line_naming_it(tmp_path: Path, busy: str) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text(routes_yaml({"id": "noop", "uri": "no://op", "predicates": ["Path=/noop"]}), encoding="utf-8")
    with busy_listener() as holder:
        taken = f"127.0.0.1:{holder.getsockname()[1]}"
        data = taken if busy == "data" else f"127.0.0.1:{free_port()}"
        admin = taken if busy == "admin" else f"127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "gateway", "run", "--config", str(config), "--listen", data]
        command += ["--admin-listen", admin, "--workers", "2"]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=GUARD, env=clean_environment(), cwd=ROOT
        )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr  # no traceback, and no worker was started before the failure
    assert taken in lines[0] and busy in lines[0] and "in use" in lines[0], lines
