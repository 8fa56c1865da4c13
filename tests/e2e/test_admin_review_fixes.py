"""Problems a fresh-eyes review of the admin API found (issue 11), each pinned against a real `sluicegate run`."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from redis import asyncio as aioredis

from tests.e2e.admin_helpers import STATE_PATHS, call
from tests.e2e.cluster_helpers import cluster_settings, redis_server
from tests.e2e.ops_helpers import GatewayProcess, reloads_counted, routes_yaml, run_gateway, wait_ready

ROUTES = routes_yaml({"id": "static-r", "uri": "http://127.0.0.1:9", "predicates": ["Path=/r/**"]})
ROUTE = {"uri": "http://127.0.0.1:9", "predicates": ["Path=/d/**"]}


async def snapshot(gw: GatewayProcess) -> list[str]:
    return [(await call(gw, "GET", path)).text for path in STATE_PATHS]


async def test_no_change_is_stored_while_a_worker_slot_is_restarting(tmp_path: Path) -> None:
    # With every worker dead the prepare ran over no worker at all, so nothing could refuse: the change was stored
    # and answered 201 although no worker had built it (one that cannot build would then fail every restart).
    async with run_gateway(tmp_path, ROUTES, "--workers", "2") as gw:
        before = await snapshot(gw)
        for worker in (await gw.routes())["workers"]:
            os.kill(worker["pid"], signal.SIGKILL)
        answer = await call(gw, "PUT", "/admin/v1/routes/d", ROUTE)  # within the 1 s restart back-off
        assert answer.status == 503, answer.text
        assert answer.json()["title"] == "Service Unavailable"
        assert "version 2 applied" not in gw.stderr()
        await wait_ready(gw)
        assert await snapshot(gw) == before
        assert (await call(gw, "PUT", "/admin/v1/routes/d", ROUTE)).status == 201


async def test_unknown_paths_and_methods_are_problem_json(tmp_path: Path) -> None:
    async with run_gateway(tmp_path, ROUTES) as gw:
        missing = await call(gw, "GET", "/admin/v1/nope")
        wrong = await call(gw, "PATCH", "/admin/v1/routes/x", ROUTE)
    assert missing.status == 404 and missing.headers["Content-Type"] == "application/problem+json"
    assert wrong.status == 405 and wrong.headers["Content-Type"] == "application/problem+json"
    assert "PUT" in wrong.headers["Allow"]


async def test_a_reason_over_1000_characters_is_refused(tmp_path: Path) -> None:
    async with run_gateway(tmp_path, ROUTES) as gw:
        before = await snapshot(gw)
        answer = await call(
            gw, "POST", "/admin/v1/batch", {"operations": [{"op": "delete", "id": "x"}], "reason": "r" * 1001}
        )
        assert answer.status == 400 and answer.json()["errors"][0]["pointer"] == "/reason"
        assert await snapshot(gw) == before


async def test_a_refusal_does_not_quote_a_credential_the_views_would_hide(tmp_path: Path) -> None:
    # The regex validator quoted the refused value: "invalid regular expression: missing ): Bearer (s3cr3t-token".
    secret = "Bearer (s3cr3t-token"
    route = {**ROUTE, "predicates": ["Path=/d/**", f"Header=Authorization, {secret}"]}
    async with run_gateway(tmp_path, ROUTES) as gw:
        for method, path, body in (
            ("PUT", "/admin/v1/routes/d", route),
            ("POST", "/admin/v1/validate", {"operations": [{"op": "put", "route": {**route, "id": "d"}}]}),
        ):
            answer = await call(gw, method, path, body)
            assert answer.status in (200, 400) and "regular expression" in answer.text, answer.text
            assert "s3cr3t" not in answer.text, answer.text
        assert "s3cr3t" not in gw.stderr()


async def test_a_reload_that_changes_nothing_that_serves_is_no_new_version(tmp_path: Path) -> None:
    # Every SIGHUP (and every touch under --watch) made a version, pushing real rollback targets out of the history.
    async with run_gateway(tmp_path, ROUTES) as gw:
        gw.config.write_text("# a comment moves every line\n" + ROUTES, encoding="utf-8")
        gw.signal(signal.SIGHUP)
        metrics = await reloads_counted(gw, 1)
        assert metrics.value("gateway_reloads_total", result="success") == 1
        assert (await call(gw, "GET", "/admin/v1/versions")).json()["current"] == 1
        assert "routes file unchanged: version 1 keeps serving (ok)" in gw.stderr()
        gw.config.write_text(ROUTES.replace("/r/**", "/r2/**"), encoding="utf-8")
        gw.signal(signal.SIGHUP)
        await gw.wait_for_version(2)
        assert (await call(gw, "GET", "/admin/v1/versions")).json()["versions"][-1]["author"] == "file"


async def test_a_reload_refused_by_a_store_outage_runs_again_when_the_store_answers(tmp_path: Path) -> None:
    # A ConfigMap update during a Redis blip was dropped: the reload was refused (append failed) and nothing
    # retried it once Redis answered, so the old static routes kept serving until the next SIGHUP.
    async with (
        redis_server(tmp_path / "redis") as redis,
        run_gateway(tmp_path, ROUTES, settings=cluster_settings(redis, poll_interval=0.2)) as gw,
    ):
        await redis.stop()
        gw.config.write_text(ROUTES.replace("/r/**", "/moved/**"), encoding="utf-8")
        gw.signal(signal.SIGHUP)
        await reloads_counted(gw, 1)
        assert "store" in gw.stderr() and "unavailable" in gw.stderr()
        await redis.start()
        view = await gw.wait_for_version(2)
        assert [r["predicates"] for r in view["routes"]] == [["Path=/moved/**"]]


async def test_workers_do_not_inherit_the_supervisors_secrets(tmp_path: Path) -> None:
    env = {
        "SLUICEGATE_STORE__REDIS_URL": "redis://:s3cret-pw@127.0.0.1:6379/0",
        "SLUICEGATE_STORE__KEY_PREFIX": "envtest:",
    }
    async with run_gateway(tmp_path, ROUTES, "--workers", "2", env=env) as gw:
        pids = [w["pid"] for w in (await gw.routes())["workers"]]
        environments = [Path(f"/proc/{pid}/environ").read_bytes() for pid in pids]
    assert environments and all(b"s3cret-pw" not in e and b"ADMIN__TOKEN" not in e for e in environments)
    async with redis_client() as client:
        keys = await client.keys("envtest:*")
        if keys:
            await client.delete(*keys)


def redis_client() -> aioredis.Redis:
    """The machine's Redis (every machine runs one at 127.0.0.1:6379)."""
    return aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
