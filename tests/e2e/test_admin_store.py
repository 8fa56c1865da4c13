"""Dynamic routes kept by the file store across a real `sluicegate run` (issue 11, item 5): they survive `kill -9`
of the whole process group mid-write, a corrupt store refuses to start, one gateway per store file, and stored
routes that no longer fit the routes file refuse to start naming both."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

from tests.conftest import StartUpstream
from tests.e2e.admin_helpers import call, ok
from tests.e2e.ops_helpers import GUARD, GatewayProcess, routes_yaml, run_gateway, wait_until
from tests.helpers import free_port

STATIC = {"id": "static", "uri": "http://127.0.0.1:9", "predicates": ["Path=/static/**"]}
ROUTES = routes_yaml(STATIC)


def dynamic(n: int, uri: str) -> dict[str, Any]:
    return {"uri": uri, "predicates": [f"Path=/d{n}/**"], "filters": ["StripPrefix=1"]}


async def exited(gw: GatewayProcess) -> int:
    """The exit status of a gateway expected to stop by itself (a refused start)."""
    code = await asyncio.wait_for(asyncio.to_thread(gw.proc.wait), GUARD)
    return code


async def test_dynamic_routes_survive_kill_9_of_the_process_group_mid_write(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_upstream()
    settings = {"store": {"path": str(tmp_path / "store.json")}}
    answered: list[int] = []  # the routes whose PUT was answered (stored and serving)
    async with run_gateway(tmp_path, ROUTES, "--workers", "2", settings=settings, new_session=True) as gw:
        routes = tmp_path / "gateway" / "routes.yaml"

        async def writer() -> None:
            n = 0
            while True:
                answer = await call(gw, "PUT", f"/admin/v1/routes/d{n}", dynamic(n, upstream.url))
                assert answer.status == 201
                answered.append(n)
                n += 1

        task = asyncio.create_task(writer())
        await wait_until(lambda: len(answered) >= 20, "20 routes are stored")
        # SIGKILL to the whole group (supervisor and workers) while the writer keeps a change in flight.
        os.killpg(gw.proc.pid, signal.SIGKILL)
        await asyncio.wait_for(asyncio.to_thread(gw.proc.wait), GUARD)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    last = answered[-1]
    async with run_gateway(tmp_path, routes.read_text(), "--workers", "2", settings=settings, name="again") as gw:
        config = await ok(gw, "GET", "/admin/v1/config")
        ids = {r["id"] for r in config["routes"] if r["source"] == "dynamic"}
        # Every answered change survived; the one in flight may or may not have (it was never answered).
        assert set(range(last + 1)) <= {int(i[1:]) for i in ids} <= set(range(last + 2))
        versions = await ok(gw, "GET", "/admin/v1/versions")
        assert [v["version"] for v in versions["versions"]] == list(range(versions["current"] + 1))
        async with gw.session.get(gw.url(f"/d{last}/x")) as resp:
            assert resp.status == 200


async def test_a_corrupt_store_refuses_to_start_and_is_left_as_it_was(tmp_path: Path) -> None:
    store = tmp_path / "store.json"
    store.write_bytes(b'{"format": "sluicegate-store/1", "versions": [')
    settings = {"store": {"path": str(store)}}
    async with run_gateway(tmp_path, ROUTES, settings=settings, wait_ready=False) as gw:
        code = await exited(gw)
        stderr = gw.stderr()
    assert code != 0
    assert str(store) in stderr and "corrupt" in stderr, stderr
    assert store.read_bytes() == b'{"format": "sluicegate-store/1", "versions": ['


async def test_a_second_gateway_on_the_same_store_fails_at_start_naming_the_path(tmp_path: Path) -> None:
    settings = {"store": {"path": str(tmp_path / "store.json")}}
    async with run_gateway(tmp_path, ROUTES, settings=settings) as first:
        async with run_gateway(tmp_path, ROUTES, settings=settings, name="second", wait_ready=False) as second:
            code = await exited(second)
            stderr = second.stderr()
        assert first.proc.poll() is None
    assert code != 0
    assert f"store {tmp_path / 'store.json'} is locked by another gateway" in stderr, stderr


async def test_stored_routes_that_clash_with_the_routes_file_refuse_to_start_naming_both(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_upstream()
    settings = {"store": {"path": str(tmp_path / "store.json")}}
    async with run_gateway(tmp_path, ROUTES, settings=settings) as gw:
        await ok(gw, "PUT", "/admin/v1/routes/mine", dynamic(1, upstream.url), expected=201)
    clash = routes_yaml(STATIC, {"id": "mine", "uri": upstream.url, "predicates": ["Path=/m/**"]})
    async with run_gateway(tmp_path, clash, settings=settings, name="clash", wait_ready=False) as gw:
        code = await exited(gw)
        stderr = gw.stderr()
    assert code != 0
    assert "'mine' is the id of a static route" in stderr and "routes[1]" in stderr, stderr


async def test_a_restart_with_an_unchanged_routes_file_keeps_the_version(tmp_path: Path) -> None:
    settings = {"store": {"path": str(tmp_path / "store.json")}}
    port = free_port()
    async with run_gateway(tmp_path, ROUTES, settings=settings, admin_port=port) as gw:
        before = await ok(gw, "GET", "/admin/v1/versions")
    async with run_gateway(tmp_path, ROUTES, settings=settings, admin_port=port) as gw:
        after = await ok(gw, "GET", "/admin/v1/versions")
        config = await ok(gw, "GET", "/admin/v1/config")
    assert before["current"] == after["current"] == 1
    assert config["version"] == 1
    assert json.dumps(before) == json.dumps(after)
