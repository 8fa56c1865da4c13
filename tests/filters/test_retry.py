"""Retry against real misbehaving upstreams: failover, idempotency, body replay, backoff, Retry-After, timeouts.

Assertions are on counts the upstreams observed and on the metrics, never on durations.
"""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.resilience.backoff import backoff_delays, retry_after_seconds
from tests.conftest import StartGateway, StartRaw, StartUpstream
from tests.helpers import config_issues, config_only_route, fetch, free_port, one_route
from tests.resilience.servers import Script, counters, delta, reset_after_body

GUARD = aiohttp.ClientTimeout(total=15)  # a guard against a hang, never a measurement


def pool_route(rid: str, urls: list[str], filters: str) -> str:
    """A whole routes.yaml: route `rid` to the pool `svc` of `urls` (round robin, no health checks)."""
    instances = ", ".join(f"{{url: {url}}}" for url in urls)
    return f"""
upstreams:
  svc:
    instances: [{instances}]
routes:
  - id: {rid}
    uri: lb://svc
    predicates: [Path=/**]
    filters: {filters}
"""


async def test_an_instance_that_dies_under_steady_traffic_fails_no_request(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    a, b = await start_upstream(Script().app()), await start_upstream(Script().app())
    gw = await start_gateway(pool_route("failover", [a.url, b.url], "[Retry]"))
    before = counters("failover")
    statuses: list[int] = []

    async def client(session: aiohttp.ClientSession) -> None:
        for _ in range(40):
            async with session.get(gw.url("/steady")) as resp:
                await resp.read()
                statuses.append(resp.status)

    async with aiohttp.ClientSession(timeout=GUARD) as session:
        clients = [asyncio.create_task(client(session)) for _ in range(4)]
        while len(b.hits) < 20:  # the dying instance has served its share of the stream
            await asyncio.sleep(0.01)
        await b.runner.cleanup()  # stopped while requests keep coming
        served_by_b = len(b.hits)
        await asyncio.gather(*clients)
    assert statuses == [200] * 160
    assert len(b.hits) == served_by_b  # nothing reached it after it stopped
    assert len(a.hits) + served_by_b == 160
    changed = delta(before, counters("failover"))
    assert changed.get("retry:connect", 0) + changed.get("retry:reset", 0) >= 1  # failover did happen


async def test_post_is_sent_once_to_an_upstream_that_resets_after_reading_it(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    arrivals: list[bytes] = []
    port = await start_raw(reset_after_body(arrivals))
    gw = await start_gateway(one_route(f"http://127.0.0.1:{port}", "[Retry]", rid="post-reset"))
    reply = await fetch(gw, "/orders", method="POST", data=b"order-1")
    assert reply.status == 502
    assert arrivals == [b"POST order-1"]
    # The same upstream with GET: retried (1 + 3 attempts), so the count above could have been more than one.
    assert (await fetch(gw, "/orders")).status == 502
    assert arrivals.count(b"GET ") == 4


async def test_post_is_sent_once_to_an_upstream_answering_503(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    script = Script(then=503)
    upstream = await start_upstream(script.app())
    gw = await start_gateway(one_route(upstream.url, "[Retry]", rid="post-503"))
    before = counters("post-503")
    assert (await fetch(gw, "/orders", method="POST", data=b"order-2")).status == 503
    assert script.bodies == [b"order-2"]
    assert delta(before, counters("post-503")) == {}


async def test_post_opted_in_is_retried_with_its_body_replayed(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    script = Script(plan=[503, 502])
    upstream = await start_upstream(script.app())
    gw = await start_gateway(one_route(upstream.url, "[{name: Retry, args: {methods: 'GET,POST'}}]", rid="replay"))
    before = counters("replay")
    reply = await fetch(gw, "/orders", method="POST", data=b"x" * 5000)
    assert reply.status == 200
    assert script.bodies == [b"x" * 5000] * 3
    assert delta(before, counters("replay")) == {"retry:status": 2}


async def test_chunked_or_oversized_bodies_are_never_retried(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    script = Script(then=503)
    upstream = await start_upstream(script.app())
    filters = "[{name: Retry, args: {methods: [POST], maxBodySize: 1KB}}]"
    gw = await start_gateway(one_route(upstream.url, filters, rid="no-replay"))

    async def chunked() -> object:
        yield b"part-1"
        yield b"part-2"

    async with aiohttp.ClientSession(timeout=GUARD) as session, session.post(gw.url("/c"), data=chunked()) as resp:
        assert resp.status == 503
    assert script.bodies == [b"part-1part-2"]
    assert (await fetch(gw, "/big", method="POST", data=b"y" * 1025)).status == 503
    assert len(script.bodies) == 2
    assert (await fetch(gw, "/small", method="POST", data=b"y" * 1024)).status == 503
    assert len(script.bodies) == 2 + 4  # within the limit: buffered and retried


async def test_status_rules_statuses_and_series(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    script = Script(then=500)
    upstream = await start_upstream(script.app())
    filters = "[{name: Retry, args: {retries: 2, statuses: [BAD_GATEWAY, 429], series: []}}]"
    gw = await start_gateway(one_route(upstream.url, filters, rid="statuses"))
    assert (await fetch(gw, "/")).status == 500  # 5xx series not listed: not retried
    assert len(script.bodies) == 1
    script.then = 502
    assert (await fetch(gw, "/")).status == 502
    assert len(script.bodies) == 1 + 3
    script.plan = [429]
    script.then = 404
    assert (await fetch(gw, "/")).status == 404
    assert len(script.bodies) == 4 + 2


async def test_connect_errors_are_retried_and_counted(start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(f"http://127.0.0.1:{free_port()}", "[Retry=2]", rid="refused"))
    before = counters("refused")
    reply = await fetch(gw, "/")
    assert reply.status == 502
    assert json.loads(reply.body)["type"].endswith("/upstream-connect")
    assert delta(before, counters("refused")) == {"retry:connect": 2}


async def test_backoff_is_applied_between_each_attempt(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    script = Script(plan=[503, 503, 503])
    upstream = await start_upstream(script.app())
    gw = await start_gateway(one_route(upstream.url, '["Retry=3,SERVICE_UNAVAILABLE,GET,5ms,20ms,2,false"]', rid="bo"))
    before = counters("bo")
    assert (await fetch(gw, "/")).status == 200
    assert len(script.bodies) == 4
    assert delta(before, counters("bo")) == {"retry:status": 3}


def test_backoff_sequence_follows_scg() -> None:
    rng = random.Random(7)
    plain = backoff_delays(0.01, 0.05, 2, False, None, rng)
    assert [round(next(plain), 6) for _ in range(5)] == [0.01, 0.02, 0.04, 0.05, 0.05]
    off = backoff_delays(None, None, 2, True, 0.5, rng)
    assert [next(off) for _ in range(3)] == [0.0, 0.0, 0.0]
    jittered = backoff_delays(0.1, None, 3, True, 0.5, rng)
    previous = None
    for _ in range(6):
        delay = next(jittered)
        base = 0.1 if previous is None else previous * 3  # based on the previous *actual* delay
        assert base * 0.5 <= delay <= base * 1.5
        previous = delay


def test_retry_after_values() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-1") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert retry_after_seconds("\xb3") is None  # a latin-1 superscript digit: isdigit() but not a number
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00") is None  # no zone


@settings(deadline=None, max_examples=300)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF)))
def test_retry_after_never_raises_on_what_an_upstream_sends(value: str) -> None:
    wait = retry_after_seconds(value)
    assert wait is None or wait >= 0


@settings(deadline=None)
@given(
    first=st.floats(0, 600),
    maximum=st.none() | st.floats(0, 600),
    factor=st.integers(1, 100),
    previous=st.booleans(),
    jitter=st.none() | st.floats(0, 1),
)
def test_backoff_delays_stay_within_their_cap(
    first: float, maximum: float | None, factor: int, previous: bool, jitter: float | None
) -> None:
    delays = backoff_delays(first, maximum, factor, previous, jitter, random.Random(1))
    for _ in range(12):
        delay = next(delays)
        assert delay >= 0
        if maximum is not None:
            assert delay <= maximum * (1 + (jitter or 0)) + 1e-9


@pytest.mark.parametrize(("retry_after", "attempts", "status"), [("1", 2, 200), ("30", 1, 503)])
async def test_retry_after_is_honoured_up_to_the_cap(
    start_upstream: StartUpstream, start_gateway: StartGateway, retry_after: str, attempts: int, status: int
) -> None:
    script = Script(plan=[503], headers={"Retry-After": retry_after})
    upstream = await start_upstream(script.app())
    gw = await start_gateway(one_route(upstream.url, "[{name: Retry, args: {maxRetryAfter: 2s}}]", rid="ra"))
    reply = await fetch(gw, "/")
    assert reply.status == status
    assert len(script.bodies) == attempts
    if status == 503:
        assert reply.headers["Retry-After"] == retry_after  # the upstream's own answer goes back as it was


async def test_per_try_timeout_against_a_stalling_server(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    script = Script(plan=["stall"])
    upstream = await start_upstream(script.app())
    gw = await start_gateway(one_route(upstream.url, "[{name: Retry, args: {perTryTimeout: 200ms}}]", rid="ptt"))
    before = counters("ptt")
    try:
        reply = await fetch(gw, "/")
    finally:
        script.release.set()
    assert reply.status == 200
    assert len(script.bodies) == 2
    assert delta(before, counters("ptt")) == {"retry:timeout": 1}


async def test_overall_deadline_ends_retrying_with_504(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    script = Script(plan=["stall"] * 20)
    upstream = await start_upstream(script.app())
    filters = "[{name: Retry, args: {retries: 10, perTryTimeout: 100ms, timeout: 350ms}}]"
    gw = await start_gateway(one_route(upstream.url, filters, rid="deadline"))
    before = counters("deadline")
    try:
        reply = await fetch(gw, "/")
    finally:
        script.release.set()
    assert reply.status == 504
    attempts = len(script.bodies)
    assert 1 <= attempts < 11  # the deadline, not the retry count, ended it
    assert delta(before, counters("deadline")).get("retry:timeout", 0) == attempts - 1


# -- config ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        "[Retry]",
        "[Retry=3]",
        '["Retry=3,INTERNAL_SERVER_ERROR,GET,10ms,50ms,2,false,0.5,100ms"]',
        "[{name: Retry, args: {retries: 3, statuses: BAD_GATEWAY, methods: 'GET,POST', backoff: {firstBackoff: 10ms, "
        "maxBackoff: 50ms, factor: 2, basedOnPreviousValue: false}}}]",
        "[{name: Retry, args: {backoff: {}, jitter: {}, exceptions: [java.io.IOException], perTryTimeout: PT0.5S}}]",
        "[{name: Retry, args: {series: [], statuses: [503], exceptions: [], budget-percent: 50, maxBodySize: 1MB}}]",
    ],
)
def test_accepted_configs(filters: str) -> None:
    from gateway.app import Gateway

    Gateway().load_text(config_only_route(filters=filters), "routes.yaml")


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ("[Retry=0]", "greater than or equal to 1"),
        ("[Retry=11]", "less than or equal to 10"),
        ('["Retry=3,NOT_A_STATUS"]', "not an HTTP status"),
        ('["Retry=3,BAD_GATEWAY,FETCH"]', "GET"),
        ("[{name: Retry, args: {exceptions: [FooException]}}]", "IOException"),
        ("[{name: Retry, args: {series: [], statuses: [], exceptions: []}}]", "may not all be empty"),
        ("[{name: Retry, args: {methods: []}}]", "at least 1"),
        ("[{name: Retry, args: {maxBackoff: 50ms}}]", "needs firstBackoff"),
        ("[{name: Retry, args: {backoff: {firstBackoff: 50ms, maxBackoff: 10ms}}}]", "must not be smaller"),
        ("[{name: Retry, args: {backoff: 10ms}}]", "must be a mapping"),
        ("[{name: Retry, args: {backoff: {first: 10ms}}}]", "unknown argument"),
        ("[{name: Retry, args: {perTryTimeout: soon}}]", "not a duration"),
        ("[{name: Retry, args: {timeout: true}}]", "boolean"),
        ("[{name: Retry, args: {budgetPercent: 101}}]", "less than or equal to 100"),
        ("[{name: Retry, args: {maxBodySize: 32MB}}]", "less than or equal to"),
        ("[{name: Retry, args: {statuses: [99]}}]", "greater than or equal to 100"),
        ('["Retry=1,500,GET,1ms,2ms,2,false,0.5,1s,extra"]', "at most 9"),
    ],
)
def test_refused_configs(filters: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p.startswith("routes[0].filters[0]") and fragment in m for p, m in issues), issues


async def test_a_discarded_response_is_closed_before_the_retry(
    start_raw: StartRaw, start_gateway: StartGateway
) -> None:
    events: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if "first" not in events:
            events.append("first")
            # A 503 whose body keeps going: unread, it would hold this connection until the exchange ended.
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nbusy.\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(), 10)  # b"" once the gateway closes its side
            events.append("first closed")
            return
        events.append("second")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    port = await start_raw(handler)
    filters = "[{name: Retry, args: {backoff: {firstBackoff: 50ms}}}]"
    gw = await start_gateway(one_route(f"http://127.0.0.1:{port}", filters, rid="discard"))
    reply = await fetch(gw, "/")
    assert (reply.status, reply.body) == (200, b"ok")
    assert events == ["first", "first closed", "second"]
