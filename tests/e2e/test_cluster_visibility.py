"""Visibility of the config and the cluster (issue 12, item 4) on the real `sluicegate run`: the version each worker
serves, how long versions took to reach the workers, store errors and health, and `GET /admin/v1/cluster`, with
the memory store (this replica alone), two replicas on the machine's Redis (each lists both), and a private Redis
the test stops (store_up 0, errors counted, the cluster view says it is incomplete) and starts again."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import asyncio as aioredis

from tests.e2e.admin_helpers import ok
from tests.e2e.ops_helpers import GUARD, GatewayProcess, Metrics, eventually, routes_yaml, run_gateway
from tests.helpers import free_port

SHARED_REDIS = "redis://127.0.0.1:6379/0"
ROUTES = routes_yaml({"id": "static", "uri": "http://127.0.0.1:9", "predicates": ["Path=/static/**"]})
FAMILIES = {
    "gateway_config_version": "gauge",
    "gateway_config_propagation_seconds": "histogram",
    "gateway_store_errors": "counter",
    "gateway_store_up": "gauge",
}


def dynamic_route(n: int) -> dict[str, Any]:
    return {"uri": "http://127.0.0.1:9", "predicates": [f"Path=/dyn{n}/**"]}


def worker_versions(metrics: Metrics) -> dict[str, float]:
    return {labels[0]: v for labels, v in metrics.values("gateway_config_version", ["worker"]).items()}


def propagated(metrics: Metrics) -> float:
    return metrics.value("gateway_config_propagation_seconds_count") or 0.0


async def versions_reach(gw: GatewayProcess, version: int, workers: int) -> Metrics:
    """The scrape once every one of `workers` worker slots reports serving `version`."""

    async def probe() -> Metrics | None:
        metrics = await gw.metrics()
        served = worker_versions(metrics)
        return metrics if len(served) == workers and set(served.values()) == {version} else None

    return await eventually(probe, f"gateway_config_version {version} in {workers} workers")


async def put(gw: GatewayProcess, n: int) -> int:
    answer = await ok(gw, "PUT", f"/admin/v1/routes/dyn{n}", dynamic_route(n), expected=201)
    return int(answer["version"])


async def test_memory_store_metrics_follow_every_change_and_the_cluster_is_this_replica(tmp_path: Path) -> None:
    async with run_gateway(tmp_path, ROUTES, "--workers", "2") as gw:
        start = await gw.metrics()
        for name, kind in FAMILIES.items():
            assert start.types.get(name) == kind, (name, start.types.get(name))
        assert start.value("gateway_store_up") == 1
        assert start.values("gateway_store_errors_total", ["op"]) == {}
        current = (await gw.routes())["version"]
        assert worker_versions(await versions_reach(gw, current, 2)) == {"0": current, "1": current}
        assert propagated(start) == 0  # the version workers start on was not propagated to them

        counts = []
        for n in (1, 2):
            version = await put(gw, n)
            assert version == current + n
            metrics = await versions_reach(gw, version, 2)
            counts.append(propagated(metrics))
        assert counts == [2, 4]  # one observation per worker and version
        buckets = metrics.values("gateway_config_propagation_seconds_bucket", ["le"])
        assert buckets[("+Inf",)] == 4

        view = await ok(gw, "GET", "/admin/v1/cluster")
        assert view["current"] == current + 2 and view["complete"] is True
        [me] = view["replicas"]
        assert me["self"] is True and me["version"] == current + 2
        assert me["admin"] == f"127.0.0.1:{gw.admin_port}"
        assert str(gw.proc.pid) in me["id"].split("-")


@contextlib.asynccontextmanager
async def redis_keys(prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the machine's Redis; every key under `prefix` deleted afterwards."""
    client = aioredis.Redis.from_url(SHARED_REDIS)
    try:
        await client.ping()
    except OSError as exc:  # pragma: no cover - the machine's Redis is part of the test environment
        await client.aclose()
        pytest.fail(f"no Redis at {SHARED_REDIS}: {exc}")
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def listed(gw: GatewayProcess, ids: int, version: int) -> dict[str, Any]:
    """`GET /admin/v1/cluster` once it lists `ids` replicas, every one at `version`."""

    async def probe() -> dict[str, Any] | None:
        view = await ok(gw, "GET", "/admin/v1/cluster")
        replicas = view["replicas"]
        done = len(replicas) == ids and all(r["version"] == version for r in replicas)
        return view if done else None

    return await eventually(probe, f"{ids} replicas at version {version}")


async def test_two_replicas_on_redis_list_each_other_with_their_versions(tmp_path: Path) -> None:
    prefix = f"test-visibility-{secrets.token_hex(6)}:"
    settings = {"store": {"redis_url": SHARED_REDIS, "key_prefix": prefix}}
    async with (
        redis_keys(prefix) as client,
        run_gateway(tmp_path, ROUTES, settings=settings, name="a") as a,
        run_gateway(tmp_path, ROUTES, settings=settings, name="b") as b,
    ):
        current = (await a.routes())["version"]
        await b.wait_for_version(current)
        views = [await listed(gw, 2, current) for gw in (a, b)]
        ids = [r["id"] for r in views[0]["replicas"]]
        assert ids == sorted(ids) and ids == [r["id"] for r in views[1]["replicas"]]
        for gw, view in zip((a, b), views, strict=True):
            mine = [r for r in view["replicas"] if r["self"]]
            assert len(mine) == 1 and mine[0]["admin"] == f"127.0.0.1:{gw.admin_port}"
            assert view["current"] == current and view["complete"] is True
        assert len(await client.keys(prefix + "replica:*")) == 2
        before = propagated(await b.metrics())

        version = await put(a, 1)
        await b.wait_for_version(version)
        for gw in (a, b):
            metrics = await versions_reach(gw, version, 1)
            assert metrics.value("gateway_store_up") == 1
        assert propagated(await b.metrics()) == before + 1  # learned from the store: timed from the record's time
        for gw in (a, b):
            view = await listed(gw, 2, version)
            assert view["current"] == version


@contextlib.contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of this test's own on `port`, keeping nothing on disk; stopped afterwards."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(GUARD)


async def redis_answers(url: str) -> None:
    client = aioredis.Redis.from_url(url)

    async def probe() -> bool | None:
        with contextlib.suppress(OSError, aioredis.RedisError):
            return bool(await client.ping())
        return None

    try:
        await eventually(probe, f"{url} answers")
    finally:
        await client.aclose()


async def test_a_redis_outage_turns_store_up_to_0_counts_errors_and_recovers(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    settings = {"store": {"redis_url": url, "key_prefix": "outage:"}}
    with private_redis(port) as server:
        await redis_answers(url)
        async with run_gateway(tmp_path, ROUTES, settings=settings) as gw:
            assert (await gw.metrics()).value("gateway_store_up") == 1
            assert (await listed(gw, 1, (await gw.routes())["version"]))["complete"] is True
            server.terminate()
            server.wait(GUARD)

            async def down() -> Metrics | None:
                metrics = await gw.metrics()
                errors = metrics.values("gateway_store_errors_total", ["op"])
                counted = errors.get(("heartbeat",), 0) >= 1 and errors.get(("refresh",), 0) >= 1
                return metrics if metrics.value("gateway_store_up") == 0 and counted else None

            await eventually(down, "store_up 0 with heartbeat and refresh errors counted")
            view = await ok(gw, "GET", "/admin/v1/cluster")
            assert view["complete"] is False and [r["self"] for r in view["replicas"]] == [True]
            assert await gw.ready_status() == 200  # serving goes on

            with private_redis(port):  # back, empty: the replica seeds it again and says it is up
                await redis_answers(url)

                async def up() -> bool | None:
                    return (await gw.metrics()).value("gateway_store_up") == 1 or None

                await eventually(up, "store_up 1 again")

                async def complete() -> bool | None:
                    return (await ok(gw, "GET", "/admin/v1/cluster"))["complete"] or None

                await eventually(complete, "the cluster view read from the store again")
