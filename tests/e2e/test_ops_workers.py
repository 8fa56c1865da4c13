"""Worker processes of `sluicegate run` (issue 4, "Workers"): a worker killed with SIGKILL is logged and restarted
on the current routes version, and the others keep serving meanwhile."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import StartUpstream
from tests.e2e.ops_helpers import (
    GUARD,
    GatewayProcess,
    children_of,
    eventually,
    routes_yaml,
    run_gateway,
    start_text_upstream,
    wait_until,
)


def hello_routes(url: str, version: str) -> str:
    return routes_yaml(
        {"id": "hello", "uri": url, "predicates": ["Path=/**"], "filters": [f"AddResponseHeader=X-Version, {version}"]}
    )


async def test_a_killed_worker_is_restarted_while_the_others_serve(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_text_upstream(start_upstream, "hello")
    async with run_gateway(tmp_path, hello_routes(upstream.url, "v1"), "--workers", "3") as gw:
        # A reload first: the replacement must start on the current version, not the one the process started with.
        gw.config.write_text(hello_routes(upstream.url, "v2"), encoding="utf-8")
        gw.signal(signal.SIGHUP)
        before = (await gw.wait_for_version(2))["workers"]
        assert [w["index"] for w in before] == [0, 1, 2] and all(w["ready"] for w in before)
        victim = before[1]
        os.kill(victim["pid"], signal.SIGKILL)

        async def reaped() -> bool | None:
            try:
                os.kill(victim["pid"], 0)
            except ProcessLookupError:
                return True  # gone and reaped by the supervisor
            return None

        await eventually(reaped, "the killed worker is reaped")

        # New connections while the worker is being replaced: the other workers take every one of them. Failures
        # are recorded here, not raised: `eventually` would take a client error for "not yet" and retry.
        served: list[str] = []

        async def restarted() -> dict[str, Any] | None:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                for _ in range(5):
                    try:
                        async with session.get(gw.url("/x"), timeout=aiohttp.ClientTimeout(total=GUARD)) as resp:
                            served.append(f"{resp.status} {await resp.text()}")
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        served.append(repr(exc))
            workers = (await gw.routes())["workers"]
            replacement: dict[str, Any] = workers[1]
            if replacement["pid"] != victim["pid"] and replacement["ready"]:
                return replacement
            return None

        replacement = await eventually(restarted, "worker 1 restarted and ready", guard=30.0)
        after = (await gw.routes())["workers"]

        async def ready_again() -> int | None:
            status = await gw.ready_status()
            return status if status == 200 else None

        ready = await eventually(ready_again, "readiness after the restart")
        # The replacement serves too: with every other worker stopped (SIGSTOP), only it accepts connections.
        for other in (after[0], after[2]):
            os.kill(other["pid"], signal.SIGSTOP)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(gw.url("/y"), timeout=aiohttp.ClientTimeout(total=GUARD)) as resp,
            ):
                via_replacement = resp.status, resp.headers.get("X-Version"), await resp.text()
        finally:
            for other in (after[0], after[2]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(other["pid"], signal.SIGCONT)
        code = await gw.stop()
    assert served and set(served) == {"200 hello"}, served
    assert replacement["version"] == 2
    assert [(w["index"], w["pid"]) for w in after if w["index"] != 1] == [
        (w["index"], w["pid"]) for w in before if w["index"] != 1
    ]
    assert ready == 200
    assert via_replacement == (200, "v2", "hello")
    assert f"worker 1 (pid {victim['pid']}) exited with -9; restarting" in gw.stderr()
    assert f"worker 1 (pid {replacement['pid']}) serving routes version 2" in gw.stderr()
    assert code == 0


async def test_a_reload_while_a_worker_restarts_reaches_every_worker(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    """SIGHUP while a killed worker awaits its restart: the valid file becomes the version of every worker (the
    replacement starts on it) and the reload counts as a success, not a refused file."""

    upstream = await start_text_upstream(start_upstream, "hello")
    async with run_gateway(tmp_path, hello_routes(upstream.url, "v1"), "--workers", "2") as gw:
        victim = (await gw.routes())["workers"][0]
        os.kill(victim["pid"], signal.SIGKILL)

        async def noticed() -> bool | None:
            worker = (await gw.routes())["workers"][0]
            return True if worker["pid"] == victim["pid"] and not worker["ready"] else None

        await eventually(noticed, "the supervisor noticed the dead worker")  # its restart waits a back-off
        gw.config.write_text(hello_routes(upstream.url, "v2"), encoding="utf-8")
        gw.signal(signal.SIGHUP)
        view = await gw.wait_for_version(2, guard=30.0)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            versions = set()
            for _ in range(10):
                async with session.get(gw.url("/x"), timeout=aiohttp.ClientTimeout(total=GUARD)) as resp:
                    versions.add(resp.headers.get("X-Version"))
        metrics = await gw.metrics()
    assert view["workers"][0]["pid"] != victim["pid"]
    assert versions == {"v2"}
    assert metrics.value("gateway_reloads_total", result="failure") == 0
    assert metrics.value("gateway_reloads_total", result="success") == 1


async def start_hello(start_upstream: StartUpstream) -> str:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    return (await start_upstream(app)).url


async def version_served_by(gw: GatewayProcess, pid: int, others: list[int]) -> str | None:
    """The X-Version a request on a fresh connection gets while every worker but `pid` is stopped (SIGSTOP), so
    that only `pid` can accept it."""
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
            session.get(gw.url("/probe"), timeout=aiohttp.ClientTimeout(total=GUARD)) as resp,
        ):
            assert resp.status == 200
            return resp.headers.get("X-Version")
    finally:
        for other in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(other, signal.SIGCONT)


async def versions_served(gw: GatewayProcess) -> dict[int, str | None]:
    """Each worker's X-Version, by worker index, proved through a real request that only that worker can take."""
    workers = (await gw.routes())["workers"]
    pids = [w["pid"] for w in workers]
    return {w["index"]: await version_served_by(gw, w["pid"], [p for p in pids if p != w["pid"]]) for w in workers}


async def test_a_reload_while_the_replacement_worker_starts_reaches_it(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    """SIGHUP while the replacement of a killed worker is starting (its interpreter exists, it has not said ready):
    the replacement serves the new version too, readiness waits for it, and the reload counts as one success."""
    url = await start_hello(start_upstream)
    async with run_gateway(tmp_path, hello_routes(url, "v1"), "--workers", "2") as gw:
        workers = (await gw.routes())["workers"]
        victim, survivor = workers[0]["pid"], workers[1]["pid"]
        os.kill(victim, signal.SIGKILL)

        async def replacement_process() -> int | None:
            fresh = children_of(gw.proc.pid) - {victim, survivor}
            return min(fresh) if fresh else None

        # The restart waits RESTART_BACKOFF (1 s); the new interpreter then needs a while before it says ready.
        replacement = await eventually(replacement_process, "the replacement worker process exists", guard=30.0)
        os.kill(replacement, signal.SIGSTOP)  # holds it before "ready" for as long as the test needs
        try:
            slot = (await gw.routes())["workers"][0]
            assert not slot["ready"], "the replacement was already serving: the test missed its start-up"
            assert await gw.ready_status() == 503
            gw.config.write_text(hello_routes(url, "v2"), encoding="utf-8")
            gw.signal(signal.SIGHUP)

            async def received() -> bool | None:  # today's code compiles at once; the fix logs and waits its turn
                seen = "SIGHUP: reload requested" in gw.stderr() or (await gw.routes())["version"] == 2
                return True if seen else None

            await eventually(received, "the supervisor received the SIGHUP")
        finally:
            os.kill(replacement, signal.SIGCONT)

        async def ready() -> int | None:
            status = await gw.ready_status()
            return status if status == 200 else None

        await eventually(ready, "ready after the restart", guard=30.0)
        view = await gw.routes()
        served = await versions_served(gw)
        metrics = await gw.metrics()
    assert [(w["pid"], w["version"], w["ready"]) for w in view["workers"]] == [
        (replacement, 2, True),
        (survivor, 2, True),
    ]
    assert served == {0: "v2", 1: "v2"}, "a worker serves an old version"
    assert metrics.value("gateway_reloads_total", result="success") == 1
    assert metrics.value("gateway_reloads_total", result="failure") == 0


async def test_no_worker_serves_a_version_before_every_worker_has_prepared_it(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    """The hand-out is two-phase: while one worker cannot answer (stopped), the other has built version 2 but
    keeps serving version 1, and readiness is false (a new version is being handed out); once the stopped worker
    prepares it too, both swap, and the reload is counted once."""
    url = await start_hello(start_upstream)
    async with run_gateway(tmp_path, hello_routes(url, "v1"), "--workers", "2") as gw:
        workers = (await gw.routes())["workers"]
        fast, slow = workers[0]["pid"], workers[1]["pid"]
        os.kill(slow, signal.SIGSTOP)
        try:
            gw.config.write_text(hello_routes(url, "v2"), encoding="utf-8")
            gw.signal(signal.SIGHUP)
            prepared = f"[worker {fast}] sluicegate.worker: routes version 2 prepared"
            await wait_until(lambda: prepared in gw.stderr(), "the running worker to prepare version 2")
            view = await gw.routes()
            served_meanwhile = await version_served_by(gw, fast, [])  # the other is stopped already
            status_meanwhile = await gw.ready_status()
        finally:
            os.kill(slow, signal.SIGCONT)
        after = await gw.wait_for_version(2)
        served = await versions_served(gw)
        metrics = await gw.metrics()
    assert view["version"] == 1 and [w["version"] for w in view["workers"]] == [1, 1]
    assert served_meanwhile == "v1"
    assert status_meanwhile == 503, "ready while a new version is being handed out"
    assert [w["pid"] for w in after["workers"]] == [fast, slow]
    assert served == {0: "v2", 1: "v2"}
    assert metrics.value("gateway_reloads_total", result="success") == 1
