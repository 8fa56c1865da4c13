"""The admin listener and the metrics of the whole `sluicegate run` process tree (issue 4, "Admin listener",
"Metrics", "Limits"): health, Prometheus text aggregated across workers with exact counts and bounded labels,
upstream errors, load shedding, the admin port apart from the data port, and the redacted routes view."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.conftest import StartUpstream
from tests.e2e.ops_helpers import (
    CLIENT_TIMEOUT,
    GUARD,
    GatewayProcess,
    Metrics,
    Outcome,
    eventually,
    one_request,
    open_client,
    routes_yaml,
    run_gateway,
    start_text_upstream,
    wait_until,
)
from tests.helpers import free_port

TIMEOUT = CLIENT_TIMEOUT
REQUEST_LABELS = ("route", "method", "status", "outcome")
MAX_BATCHES = 10  # batches of concurrent requests sent until two workers have answered (a bound, not a target)
BATCH = 30


async def start_ok(start_upstream: StartUpstream) -> str:
    return (await start_text_upstream(start_upstream)).url


async def status_of(session: aiohttp.ClientSession, method: str, url: str, data: bytes | None = None) -> int:
    async with session.request(method, url, data=data, timeout=TIMEOUT) as resp:
        await resp.read()
        return resp.status


async def request_count(gw: GatewayProcess) -> float:
    return sum((await gw.metrics()).values("gateway_requests_total", REQUEST_LABELS).values())


async def settled(gw: GatewayProcess, expected: int) -> Metrics:
    """The scrape once the workers have recorded `expected` requests (a request is recorded right after its last
    byte is written, so a scrape may come a moment before the last one): poll up to it, never past it."""

    async def probe() -> Metrics | None:
        metrics = await gw.metrics()
        total = sum(metrics.values("gateway_requests_total", REQUEST_LABELS).values())
        return metrics if total >= expected else None

    return await eventually(probe, f"{expected} requests recorded")


async def test_metrics_count_exactly_the_requests_sent_across_workers(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    ok_url = await start_ok(start_upstream)
    closed_port = free_port()  # nothing listens there: every attempt is a connect error
    routes = routes_yaml(
        {"id": "ok", "uri": ok_url, "predicates": ["Path=/ok/**"]},
        {"id": "dead", "uri": f"http://127.0.0.1:{closed_port}", "predicates": ["Path=/dead/**"]},
    )
    async with run_gateway(tmp_path, routes, "--workers", "3") as gw:
        live = await gw.admin_get("/health/live")
        assert live[0] == 200 and json.loads(live[1]) == {"status": "UP"}
        # A connection per request, many at once, until at least two workers have answered: request ids carry a
        # per-process prefix, so they tell which worker served.
        sent_get = 0
        prefixes: set[str] = set()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=BATCH)) as session:
            for _ in range(MAX_BATCHES):

                async def one(i: int) -> str:
                    async with session.get(gw.url(f"/ok/{i}"), timeout=TIMEOUT) as resp:
                        assert resp.status == 200 and await resp.text() == "ok"
                        return resp.headers["X-Request-Id"]

                ids = await asyncio.gather(*(one(sent_get + i) for i in range(BATCH)))
                sent_get += BATCH
                prefixes |= {request_id[:12] for request_id in ids}
                if len(prefixes) >= 2:
                    break
            assert len(prefixes) >= 2, "every request went to one worker: aggregation is not exercised"
            posts = [await status_of(session, "POST", gw.url("/ok/p"), b"x" * 100) for _ in range(5)]
            unmatched = [await status_of(session, "GET", gw.url(f"/nothing/{i}")) for i in range(7)]
            dead = [await status_of(session, "GET", gw.url(f"/dead/{i}")) for i in range(3)]
        assert posts == [200] * 5 and unmatched == [404] * 7 and dead == [502] * 3
        expected = {
            ("ok", "GET", "2xx", "SUCCESSFUL"): sent_get,
            ("ok", "POST", "2xx", "SUCCESSFUL"): 5,
            ("unmatched", "GET", "4xx", "CLIENT_ERROR"): 7,
            ("dead", "GET", "5xx", "SERVER_ERROR"): 3,
        }
        metrics = await settled(gw, sum(expected.values()))
        status, metrics_text = await gw.admin_get("/metrics")

        assert metrics.types["gateway_requests"] == "counter"
        assert metrics.values("gateway_requests_total", REQUEST_LABELS) == expected
        assert metrics.types["gateway_request_duration_seconds"] == "histogram"
        assert metrics.values("gateway_request_duration_seconds_count", REQUEST_LABELS) == expected
        infinite = {k: v for k, v in _buckets(metrics).items() if k[-1] == "+Inf"}
        assert {k[:-1]: v for k, v in infinite.items()} == expected
        assert metrics.value("gateway_upstream_errors_total", route="dead", kind="connect") == 3
        assert metrics.value("gateway_upstream_request_duration_seconds_count", route="ok") == sent_get + 5
        assert metrics.value("gateway_workers") == 3
        assert metrics.value("gateway_routes_loaded") == 2
        assert status == 200 and "# TYPE gateway_requests_total counter" in metrics_text

        # 1000 random unmatched paths: counted under route="unmatched", and not one new series.
        before = metrics.series()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=10)) as session:
            statuses = await asyncio.gather(
                *(
                    status_of(session, "GET", gw.url(f"/{uuid.uuid4().hex}/{i}?q={uuid.uuid4().hex}"))
                    for i in range(1000)
                )
            )
        assert set(statuses) == {404}
        after = await settled(gw, sum(expected.values()) + 1000)
        assert after.series() == before
        assert after.value("gateway_requests_total", route="unmatched", method="GET") == 7 + 1000
        assert await request_count(gw) == sum(expected.values()) + 1000


def _buckets(metrics: Metrics) -> Mapping[tuple[str, ...], float]:
    return metrics.values("gateway_request_duration_seconds_bucket", (*REQUEST_LABELS, "le"))


async def test_requests_over_max_in_flight_are_shed_with_503_and_retry_after(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    release = asyncio.Event()
    holding: list[str] = []

    async def hold(request: web.Request) -> web.Response:
        holding.append(request.path)
        await release.wait()
        return web.Response(text="held")

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="fast")

    app = web.Application()
    app.router.add_get("/hold", hold)
    app.router.add_get("/fast/{n}", fast)
    upstream = await start_upstream(app)
    routes = routes_yaml({"id": "up", "uri": upstream.url, "predicates": ["Path=/**"]})
    settings = {"limits": {"max_in_flight": 1}}
    async with (
        run_gateway(tmp_path, routes, settings=settings) as gw,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
    ):

        async def held() -> tuple[int, str]:
            async with session.get(gw.url("/hold"), timeout=TIMEOUT) as resp:
                return resp.status, await resp.text()

        first = asyncio.create_task(held())
        await wait_until(lambda: bool(holding), "the first request is at the upstream")
        shed: list[tuple[int, str | None, str | None, bytes]] = []
        for n in range(3):
            async with session.get(gw.url(f"/fast/{n}"), timeout=TIMEOUT) as resp:
                shed.append(
                    (resp.status, resp.headers.get("Retry-After"), resp.headers.get("Content-Type"), await resp.read())
                )
        release.set()
        assert await asyncio.wait_for(first, GUARD) == (200, "held")
        assert await status_of(session, "GET", gw.url("/fast/after")) == 200  # below the limit again: served
        metrics = await settled(gw, 5)
    for status, retry_after, content_type, body in shed:
        assert status == 503
        assert retry_after is not None and retry_after.isdigit()
        assert content_type is not None and content_type.startswith("application/problem+json")
        assert json.loads(body)["status"] == 503
    assert metrics.value("gateway_shed_requests_total", reason="in_flight") == 3
    assert holding == ["/hold"]  # nothing shed reached the upstream


async def test_admin_port_is_not_the_data_port_and_routes_view_is_redacted(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    upstream = await start_upstream(app)
    env_secret, auth_secret, key_secret = "env-s3cr3t-value", "plain-credential-123", "literal-api-key-456"
    routes = (
        "default-filters:\n"
        f"  - AddRequestHeader=X-Api-Key, {key_secret}\n"
        "routes:\n"
        "  - id: secret\n"
        f"    uri: {upstream.url}\n"
        "    predicates: [Path=/s/**]\n"
        "    filters:\n"
        "      - AddRequestHeader=X-From-Env, ${env:OPS_TEST_SECRET}\n"
        f"      - SetRequestHeader=Authorization, Bearer {auth_secret}\n"
        "      - name: AddRequestHeader\n"
        "        args: {name: X-Plain, value: visible-value}\n"
    )
    async with run_gateway(tmp_path, routes, env={"OPS_TEST_SECRET": env_secret}) as gw:
        async with aiohttp.ClientSession() as session:
            assert await status_of(session, "GET", gw.url("/s/x")) == 200
            async with session.get(gw.url("/metrics"), timeout=TIMEOUT) as resp:
                data_metrics = resp.status, await resp.text()
            for path in ("/health/live", "/health/ready", "/routes"):
                assert await status_of(session, "GET", gw.url(path)) == 404, path
        assert (await gw.admin_get("/s/x"))[0] == 404  # no proxying on the admin port, even with the admin token
        status, admin_metrics = await gw.admin_get("/metrics")
        routes_status, view_text = await gw.admin_get("/routes")
    # The secrets are live on the data path ...
    assert seen[0]["X-From-Env"] == env_secret
    assert seen[0]["Authorization"] == f"Bearer {auth_secret}"
    assert seen[0]["X-Api-Key"] == key_secret
    # ... the data port's /metrics is a request like any other (unmatched), the admin port's is the exposition.
    assert data_metrics[0] == 404 and "gateway_requests" not in data_metrics[1]
    assert status == 200 and "gateway_requests_total" in admin_metrics
    # ... and the routes view shows none of them.
    assert routes_status == 200
    for secret in (env_secret, auth_secret, key_secret):
        assert secret not in view_text
    view = json.loads(view_text)
    filters = view["routes"][0]["filters"]
    assert "<redacted>" in json.dumps(filters[0]) and "<redacted>" in json.dumps(filters[1])
    assert "visible-value" in json.dumps(filters[2])  # what is not a secret stays readable
    assert "<redacted>" in json.dumps(view["default-filters"])
    assert view["routes"][0]["uri"] == upstream.url
    assert [w["version"] for w in view["workers"]] == [1]


async def test_requests_over_max_connections_are_shed_with_503(tmp_path: Path, start_upstream: StartUpstream) -> None:
    ok_url = await start_ok(start_upstream)
    routes = routes_yaml({"id": "ok", "uri": ok_url, "predicates": ["Path=/**"]})
    async with run_gateway(tmp_path, routes, settings={"limits": {"max_connections": 1}}) as gw:
        idle = await open_client(gw.port)  # holds the worker's one connection
        assert idle is not None
        try:
            await wait_until_open_connections(gw, 1)
            over = await one_request(gw.port, "GET", "/x")
        finally:
            idle[1].close()
        metrics = await settled(gw, 1)
    assert over.outcome is Outcome.COMPLETE and over.status == 503, over
    assert over.headers.get("retry-after", "").isdigit()
    assert over.headers.get("content-type", "").startswith("application/problem+json")
    assert over.closes
    assert metrics.value("gateway_shed_requests_total", reason="connections") == 1


async def wait_until_open_connections(gw: GatewayProcess, count: int) -> None:
    async def probe() -> bool | None:
        return True if (await gw.metrics()).value("gateway_open_connections") == count else None

    await eventually(probe, f"{count} open connections")
