"""A replica starting while its Redis store is down (issue 12, item 2): it refuses to start, naming the store and
never its password, unless `store.start_without_redis` — then it serves its routes file alone, says so on
/health/ready, answers writes with 503, and joins the store once Redis answers, without a restart."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import StartUpstream
from tests.e2e.admin_helpers import call
from tests.e2e.cluster_helpers import RedisServer
from tests.e2e.ops_helpers import eventually, routes_yaml, run_gateway

PASSWORD = "s3cret-redis-pw"


def settings(redis: RedisServer, **store: object) -> dict[str, object]:
    return {"store": {"redis_url": redis.url, **store}}


async def test_a_replica_refuses_to_start_without_its_store_and_never_shows_the_password(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", password=PASSWORD)  # never started: nothing listens on its port
    routes = routes_yaml({"id": "s", "uri": "http://127.0.0.1:9", "predicates": ["Path=/s/**"]})
    async with run_gateway(tmp_path, routes, settings=settings(redis), wait_ready=False) as gw:
        code = await gw.wait_exit()
        stderr = gw.stderr()
    assert code == 1, stderr
    assert f"store redis://127.0.0.1:{redis.port}/0 is unavailable (open)" in stderr, stderr
    assert PASSWORD not in stderr + gw.stdout()


async def test_start_without_redis_serves_the_file_then_joins_the_store(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_upstream()
    redis = RedisServer(tmp_path / "redis", password=PASSWORD)
    routes = routes_yaml({"id": "s", "uri": upstream.url, "predicates": ["Path=/s/**"]})
    route = {"uri": upstream.url, "predicates": ["Path=/d/**"]}
    conf = settings(redis, start_without_redis=True, poll_interval=0.2)
    async with run_gateway(tmp_path, routes, "--workers", "2", settings=conf) as gw:
        status, ready = await gw.admin_get("/health/ready")
        assert status == 200 and "serving the routes file only" in json.loads(ready)["store"]
        async with gw.session.get(gw.url("/s/x")) as resp:
            assert resp.status == 200
        refused = await call(gw, "PUT", "/admin/v1/routes/d", route)
        assert refused.status == 503 and "unavailable" in refused.json()["detail"]
        await redis.start()
        try:

            async def joined() -> bool | None:
                _, body = await gw.admin_get("/health/ready")
                return True if "store" not in json.loads(body) else None

            await eventually(joined, "the replica joins the store")
            versions = (await call(gw, "GET", "/admin/v1/versions")).json()
            assert versions["versions"][-1]["author"] == "file"
            assert (await call(gw, "PUT", "/admin/v1/routes/d", route)).status == 201
            async with gw.session.get(gw.url("/d/x")) as resp:
                assert resp.status == 200
        finally:
            await redis.stop()
    assert PASSWORD not in gw.stderr()
