"""FaultInjection through real requests: aborts answered by the gateway, percentages, header gating, delays."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from filters.fault_injection import SPEC, FaultInjectionConfig, basis_points
from gateway.errors import InjectedFault
from gateway.exchange import Exchange, Response
from gateway.headers import Headers
from gateway.settings import Settings
from gateway.spec import BuildContext
from tests.conftest import StartGateway, StartRaw, StartUpstream
from tests.helpers import config_issues, config_only_route, fetch, one_route
from tests.resilience.servers import Script, counters, delta

GUARD = aiohttp.ClientTimeout(total=60)  # a guard against a hang, never a measurement


async def test_an_abort_is_answered_by_the_gateway_and_never_reaches_the_upstream(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    script = Script()
    upstream = await start_upstream(script.app())
    filters = "[{name: FaultInjection, args: {abortStatus: 503}}, Retry]"
    gw = await start_gateway(one_route(upstream.url, filters, rid="abort-all"))
    before = counters("abort-all")
    reply = await fetch(gw, "/")
    assert reply.status == 503
    assert reply.headers["Content-Type"] == "application/problem+json"
    problem = json.loads(reply.body)
    assert (problem["status"], problem["title"]) == (503, "Service Unavailable")
    assert problem["type"].endswith("/fault-injected")
    assert script.bodies == []  # not reached, and not retried: Retry runs inside FaultInjection
    assert delta(before, counters("abort-all")) == {"fault:abort": 1}


async def test_abort_percentage_over_many_requests(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    upstream = await start_upstream(Script().app())
    gw = await start_gateway(one_route(upstream.url, '["FaultInjection=418,10"]', rid="abort-10"))
    total = 2000
    statuses: list[int] = []
    async with aiohttp.ClientSession(timeout=GUARD) as session:

        async def client() -> None:
            for _ in range(total // 8):
                async with session.get(gw.url("/")) as resp:
                    await resp.read()
                    statuses.append(resp.status)

        await asyncio.gather(*(client() for _ in range(8)))
    aborted = statuses.count(418)
    # 10 % of 2000 is 200 ± 13.4 (one sigma): 6 % and 14 % are six sigma away.
    assert 120 <= aborted <= 280
    assert statuses.count(200) == total - aborted
    assert len(upstream.hits) == total - aborted  # an abort never reached the upstream


async def test_a_tenth_of_a_percent_is_possible() -> None:
    """0.1 % as basis points (10 of 10000), checked over 200,000 calls of the filter itself."""
    config = FaultInjectionConfig.model_validate({"abortStatus": 500, "abortPercent": 0.1})
    fault = SPEC.build(config, BuildContext("bp", {}, Settings()))
    assert basis_points(0.1) == 10 and basis_points(0.01) == 1

    async def terminal(exchange: Exchange) -> Response:
        return Response(200)

    aborted = 0
    for _ in range(200_000):
        try:
            await fault(Exchange("GET", "/", headers=Headers()), terminal)
        except InjectedFault as fault_error:
            assert fault_error.status == 500
            aborted += 1
    # 200 expected, one sigma 14.1: six sigma either side.
    assert 115 <= aborted <= 285


@pytest.mark.parametrize(
    ("headers", "faulted"),
    [({}, False), ({"x-fault": "on"}, True), ({"X-Fault": "on"}, True), ({"x-fault": "off"}, False)],
)
async def test_header_gating(
    start_upstream: StartUpstream, start_gateway: StartGateway, headers: dict[str, str], faulted: bool
) -> None:
    script = Script()
    upstream = await start_upstream(script.app())
    filters = "[{name: FaultInjection, args: {abortStatus: 504, header: x-fault, headerValue: 'on'}}]"
    gw = await start_gateway(one_route(upstream.url, filters, rid="gated"))
    reply = await fetch(gw, "/", headers=headers)
    assert reply.status == (504 if faulted else 200)
    assert len(script.bodies) == (0 if faulted else 1)


async def test_header_presence_alone_gates(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    upstream = await start_upstream(Script().app())
    filters = "[{name: FaultInjection, args: {abortStatus: 500, header: x-chaos}}]"
    gw = await start_gateway(one_route(upstream.url, filters, rid="present"))
    assert (await fetch(gw, "/", headers={"x-chaos": "anything"})).status == 500
    assert (await fetch(gw, "/")).status == 200


async def test_a_delayed_request_reaches_the_upstream_after_a_later_one(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    upstream = await start_upstream(Script().app())
    filters = "[{name: FaultInjection, args: {delay: 1s, header: x-slow}}]"
    gw = await start_gateway(one_route(upstream.url, filters, rid="delay"))
    before = counters("delay")
    slow = asyncio.create_task(fetch(gw, "/slow", headers={"x-slow": "1"}))
    while delta(before, counters("delay")) != {"fault:delay": 1}:  # the slow request is being held now
        await asyncio.sleep(0.005)  # pytest-timeout guards against a hang
    assert (await fetch(gw, "/fast")).status == 200
    assert (await slow).status == 200
    assert [hit.path for hit in upstream.hits] == ["/fast", "/slow"]


async def test_delay_and_abort_together(start_raw: StartRaw, start_gateway: StartGateway) -> None:
    arrivals: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrivals.append(await reader.readuntil(b"\r\n\r\n"))

    port = await start_raw(handler)
    filters = '["FaultInjection=503,100,1ms,100"]'
    gw = await start_gateway(one_route(f"http://127.0.0.1:{port}", filters, rid="both"))
    before = counters("both")
    assert (await fetch(gw, "/")).status == 503
    assert arrivals == []
    assert delta(before, counters("both")) == {"fault:delay": 1, "fault:abort": 1}


# -- config ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        '["FaultInjection=503"]',
        '["FaultInjection=503,0.01"]',
        "[{name: FaultInjection, args: {delay: 250, delayPercent: 5}}]",
        "[{name: FaultInjection, args: {delay: PT1S, abortStatus: 429, abortPercent: 0, header: x-f, headerValue: y}}]",
    ],
)
def test_accepted_configs(filters: str) -> None:
    from gateway.app import Gateway

    Gateway().load_text(config_only_route(filters=filters), "routes.yaml")


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ("[FaultInjection]", "configure a delay, an abortStatus, or both"),
        ('["FaultInjection=600"]', "less than or equal to 599"),
        ('["FaultInjection=199"]', "greater than or equal to 200"),
        ('["FaultInjection=503,101"]', "less than or equal to 100"),
        ('["FaultInjection=503,-1"]', "greater than or equal to 0"),
        ("[{name: FaultInjection, args: {delay: 5xs}}]", "not a duration"),
        ("[{name: FaultInjection, args: {delay: 0}}]", "greater than 0"),
        ("[{name: FaultInjection, args: {delay: 10m}}]", "less than or equal to 300"),
        ("[{name: FaultInjection, args: {abortStatus: 503, headerValue: x}}]", "headerValue needs header"),
        ("[{name: FaultInjection, args: {abortStatus: 503, header: 'x y'}}]", "pattern"),
        ('[{name: FaultInjection, args: {abortStatus: 503, header: x, headerValue: "a\\nb"}}]', "control"),
        ("[{name: FaultInjection, args: {abortStatus: true}}]", "boolean"),
        ("[{name: FaultInjection, args: {abortStatus: 503, percent: 5}}]", "unknown argument"),
    ],
)
def test_refused_configs(filters: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p.startswith("routes[0].filters[0]") and fragment in m for p, m in issues), issues
