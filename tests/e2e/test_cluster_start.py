"""A replica starting while its Redis store is down (issue 12, item 2): it refuses to start, naming the store and
never its password, unless `store.start_without_redis` — then it serves its routes file alone, says so on
/health/ready, answers writes with 503, and joins the store once Redis answers, without a restart."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import StartUpstream
from tests.e2e.admin_helpers import call
from tests.e2e.ops_helpers import GUARD, eventually, routes_yaml, run_gateway
from tests.helpers import free_port

PASSWORD = "s3cret-redis-pw"


@contextmanager
def redis_server(port: int) -> Iterator[None]:
    """A private redis-server on `port` that keeps nothing on disk, with a password, stopped afterwards."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(GUARD)


def settings(port: int, **store: object) -> dict[str, object]:
    return {"store": {"redis_url": f"redis://:{PASSWORD}@127.0.0.1:{port}/0", **store}}


async def test_a_replica_refuses_to_start_without_its_store_and_never_shows_the_password(tmp_path: Path) -> None:
    port = free_port()
    routes = routes_yaml({"id": "s", "uri": "http://127.0.0.1:9", "predicates": ["Path=/s/**"]})
    async with run_gateway(tmp_path, routes, settings=settings(port), wait_ready=False) as gw:
        code = await gw.wait_exit()
        stderr = gw.stderr()
    assert code == 1, stderr
    assert f"store redis://127.0.0.1:{port}/0 is unavailable (open)" in stderr, stderr
    assert PASSWORD not in stderr + gw.stdout()


async def test_start_without_redis_serves_the_file_then_joins_the_store(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_upstream()
    port = free_port()
    routes = routes_yaml({"id": "s", "uri": upstream.url, "predicates": ["Path=/s/**"]})
    route = {"uri": upstream.url, "predicates": ["Path=/d/**"]}
    conf = settings(port, start_without_redis=True, poll_interval=0.2)
    async with run_gateway(tmp_path, routes, "--workers", "2", settings=conf) as gw:
        status, ready = await gw.admin_get("/health/ready")
        assert status == 200 and "serving the routes file only" in json.loads(ready)["store"]
        async with gw.session.get(gw.url("/s/x")) as resp:
            assert resp.status == 200
        refused = await call(gw, "PUT", "/admin/v1/routes/d", route)
        assert refused.status == 503 and "unavailable" in refused.json()["detail"]
        with redis_server(port):

            async def joined() -> bool | None:
                _, body = await gw.admin_get("/health/ready")
                return True if "store" not in json.loads(body) else None

            await eventually(joined, "the replica joins the store")
            versions = (await call(gw, "GET", "/admin/v1/versions")).json()
            assert versions["versions"][-1]["author"] == "file"
            assert (await call(gw, "PUT", "/admin/v1/routes/d", route)).status == 201
            async with gw.session.get(gw.url("/d/x")) as resp:
                assert resp.status == 200
    assert PASSWORD not in gw.stderr()
