"""1,000 admin API route changes with two workers under steady traffic (issue 11, "Tests and measurements").

A real `sluicegate run --workers 2`: a static route that exists throughout gets steady traffic from keep-alive
clients and a fresh-connection client the whole time, while one client sends 1,000 changes through `/admin/v1` —
single puts of new and existing dynamic ids, deletes, batches of several operations and rollbacks to earlier
versions — with the memory store and with the file store. Nothing may fail: no background request, every change
answered with the status it must have and the next version; after each answer the changed routes answer as the
change says on fresh connections (a put route from its upstream with its tag, a deleted one 404) in 8 consecutive
rounds and from *both* workers (told apart by the per-process prefix of the request id they generate), with not
one stale answer after the API answered; and `GET /routes` shows both workers at the answered version or later.

The change mix, probes and load are benchmarks/admin_changes.py's, which measures the same run; here nothing is
timed except guards against a hang.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from benchmarks.admin_changes import (
    Admin,
    ChangeMix,
    Load,
    Outcome,
    apply_changes,
    final_problems,
    problems_of,
    static_routes,
)
from tests.conftest import StartUpstream
from tests.e2e.ops_helpers import ADMIN_TOKEN, GUARD, run_gateway, wait_until
from tests.e2e.test_ops_reload import start_pong

CHANGES = 1000
CHANGES_GUARD = 300.0  # seconds for all changes: a guard against a hang (they take 40-60 s on 2 CPUs)
LOAD_CLIENTS = 3
LOAD_PAUSE = 0.005  # seconds between one client's requests: steady, without starving the change client's loop


def empty_diff() -> dict[str, Any]:
    return {"from": 0, "to": 0, "added": [], "removed": [], "changed": []}


def kinds(outcomes: list[Outcome]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for outcome in outcomes:
        counted[outcome.change.kind] = counted.get(outcome.change.kind, 0) + 1
    return counted


@pytest.mark.slow
@pytest.mark.timeout(900)  # a guard against a hang: two gateways, 1,000 changes each
@pytest.mark.parametrize("store", ["memory", "file"])
async def test_thousand_changes_under_load_fail_no_request(
    tmp_path: Path, start_upstream: StartUpstream, store: str
) -> None:
    upstream = await start_pong(start_upstream)
    settings: dict[str, Any] | None = None
    if store == "file":
        settings = {"store": {"path": str(tmp_path / "store.json")}}
    mix = ChangeMix(seed=11, upstream=upstream.url)
    routes = static_routes(upstream.url)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=GUARD)) as session,
        run_gateway(tmp_path, routes, "--workers", "2", settings=settings) as gw,
    ):
        admin = Admin(session, gw.admin_port, ADMIN_TOKEN)
        pids = sorted(w["pid"] for w in (await gw.routes())["workers"])
        load = Load(gw.port, LOAD_PAUSE)
        traffic = asyncio.create_task(load.run(LOAD_CLIENTS))
        try:
            await wait_until(lambda: load.ok > 0, "the load is running")
            async with asyncio.timeout(CHANGES_GUARD):
                outcomes = await apply_changes(admin, gw.port, mix, CHANGES)
            served_during_changes = load.ok
        finally:
            load.stop.set()
            async with asyncio.timeout(GUARD):
                await traffic
        final = await final_problems(gw.port, mix)
        versions = await admin.json("/admin/v1/versions")
        view = await gw.routes()

    assert load.failures == [], f"{len(load.failures)} failed requests, first: {load.failures[:5]}"
    assert served_during_changes > CHANGES  # the load really ran through the changes
    problems = problems_of(outcomes)
    assert problems == [], f"{len(problems)} problems, first: {problems[:5]}"
    assert final == []
    assert versions["current"] == 1 + CHANGES
    assert view["version"] == 1 + CHANGES
    assert [w["version"] for w in view["workers"]] == [1 + CHANGES] * 2
    assert sorted(w["pid"] for w in view["workers"]) == pids  # no worker was replaced on the way
    # Both workers answered probes, and the mix really mixed: new and replaced puts, deletes, batches, rollbacks.
    assert len({w for o in outcomes for w in o.probe.workers}) == 2
    counted = kinds(outcomes)
    assert all(counted.get(k, 0) >= 100 for k in ("put", "delete", "batch", "rollback")), counted
    assert {o.status for o in outcomes if o.change.kind == "put"} == {200, 201}
    batches = [o.change.body for o in outcomes if o.change.kind == "batch" and o.change.body is not None]
    assert any(op["op"] == "delete" for body in batches for op in body["operations"])

    if store == "file":
        # The file store kept the last of the 1,000 versions: a new gateway on it serves exactly those routes.
        # (It may add a version of its own, author "file", with an empty diff: see test_admin_restart_version.py.)
        async with run_gateway(tmp_path, routes, "--workers", "2", settings=settings) as again:
            assert await final_problems(again.port, mix) == []
            last = json.loads((await again.admin_get(f"/admin/v1/versions/{1 + CHANGES}"))[1])
            assert last["author"] == "admin"
            assert {r["id"] for r in last["routes"] if r["source"] == "dynamic"} == set(mix.state)
            status, text = await again.admin_get(f"/admin/v1/diff?from={1 + CHANGES}")
            assert status == 200 and json.loads(text) | {"from": 0, "to": 0} == empty_diff(), text
