"""CircuitBreaker through real requests: a real upstream made to fail, stall or hold calls, and the state machine.

The upstream (`Service`) answers 200, 500, slowly, or holds each call until the test releases it, and counts the
calls that reached it: "rejected while open" means that count did not move. Timing never decides an assertion:
the open wait is short and the test sleeps well past it; "slow" upstreams sleep far beyond the threshold.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.metrics import METRICS, WorkerMetrics, render
from gateway.resilience.breaker import Breaker, BreakerConfig, State, Window
from gateway.services import WORKER
from tests.conftest import GatewayUnderTest, StartGateway, StartUpstream, Upstream
from tests.helpers import Reply, config_issues, config_only_route, fetch, free_port
from tests.resilience.servers import Script, counters, delta

GUARD = 10.0  # seconds: only a guard against a hang
#: The CircuitBreaker filter's keyed state in this process: its breakers by (route id, pool).
BREAKERS = WORKER.scoped("CircuitBreaker").state


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    """Breakers are per process and keyed by route id: each test starts without any left by another."""
    BREAKERS.forget()
    yield
    BREAKERS.forget()


@dataclass
class Service:
    """A controllable upstream: `mode` is ok, fail (500), slow (sleeps `delay`) or hold (waits for `release`)."""

    mode: str = "ok"
    delay: float = 0.3
    calls: int = 0
    entered: int = 0
    cancelled: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.mode == "fail":
            return web.Response(status=500, text="boom")
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "hold":
            self.entered += 1
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return web.Response(text="fine")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


async def service(start_upstream: StartUpstream) -> tuple[Service, Upstream]:
    svc = Service()
    return svc, await start_upstream(svc.app())


def routes(uri: str, args: str, *, rid: str = "svc", extra: str = "") -> str:
    return f"""
routes:
  - id: {rid}
    uri: {uri}
    predicates: [Path=/svc/**]
    filters: [{{name: CircuitBreaker, args: {args}}}]
{extra}"""


def pool(upstream: Upstream) -> str:
    return f"127.0.0.1:{upstream.port}"


def breaker_of(rid: str, upstream_pool: str) -> Breaker:
    breaker = BREAKERS.find((rid, upstream_pool))
    assert isinstance(breaker, Breaker)
    return breaker


async def statuses(gw: GatewayUnderTest, n: int) -> list[int]:
    return [(await fetch(gw, "/svc/x")).status for _ in range(n)]


async def wait_for(condition: object, what: str) -> None:
    """Poll `condition()` until true; fails (never passes) if the guard runs out."""
    assert callable(condition)
    async with asyncio.timeout(GUARD):
        while not condition():
            await asyncio.sleep(0.005)


WINDOW4 = "{statusCodes: [500], slidingWindowSize: 4, minimumNumberOfCalls: 4, failureRateThreshold: 50}"


# -- closed → open ---------------------------------------------------------------------------------------------
async def test_opens_at_the_failure_rate_and_rejects_without_calling_the_upstream(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    svc, up = await service(start_upstream)
    gw = await start_gateway(routes(up.url, WINDOW4))
    for mode in ("ok", "ok", "fail", "ok"):  # 1 of 4 failed: 25 % < 50 %
        svc.mode = mode
        await fetch(gw, "/svc/x")
    assert breaker_of("svc", pool(up)).state is State.CLOSED
    svc.mode = "fail"
    assert (await fetch(gw, "/svc/x")).status == 500  # window ok, fail, ok, fail: 50 % → open
    assert breaker_of("svc", pool(up)).state is State.OPEN
    calls = svc.calls
    svc.mode = "ok"
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 503
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert json.loads(reply.body)["type"].endswith("circuit-open")
    assert 1 <= int(reply.headers["Retry-After"]) <= 60  # default wait 60 s
    assert svc.calls == calls  # rejected: the upstream never saw it
    assert METRICS.breaker_states[("svc", pool(up))] == 1
    assert METRICS.breaker_rejections[("svc", pool(up))] >= 1


async def test_below_the_minimum_number_of_calls_nothing_opens(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    svc, up = await service(start_upstream)
    svc.mode = "fail"
    gw = await start_gateway(routes(up.url, "{statusCodes: [500], minimumNumberOfCalls: 5, slidingWindowSize: 10}"))
    assert await statuses(gw, 4) == [500] * 4  # 100 % failed, but only 4 calls
    assert breaker_of("svc", pool(up)).state is State.CLOSED
    assert await statuses(gw, 1) == [500]
    assert breaker_of("svc", pool(up)).state is State.OPEN


async def test_a_5xx_response_is_not_a_failure_unless_listed(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    svc, up = await service(start_upstream)
    svc.mode = "fail"
    gw = await start_gateway(routes(up.url, "{slidingWindowSize: 2, minimumNumberOfCalls: 2}"))
    assert await statuses(gw, 5) == [500] * 5  # SCG: only exceptions and statusCodes count
    assert breaker_of("svc", pool(up)).state is State.CLOSED


async def test_connect_failures_open_in_consecutive_mode(start_gateway: StartGateway) -> None:
    port = free_port()
    gw = await start_gateway(
        routes(f"http://127.0.0.1:{port}", "{slidingWindowType: CONSECUTIVE_FAILURES, consecutiveFailures: 3}")
    )
    assert await statuses(gw, 3) == [502, 502, 502]
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 503
    assert "Retry-After" in reply.headers


async def test_a_success_resets_the_consecutive_count(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    svc, up = await service(start_upstream)
    gw = await start_gateway(
        routes(up.url, "{statusCodes: [500], slidingWindowType: CONSECUTIVE_FAILURES, consecutiveFailures: 2}")
    )
    for mode in ("fail", "ok", "fail", "ok", "fail"):
        svc.mode = mode
        await fetch(gw, "/svc/x")
    assert breaker_of("svc", pool(up)).state is State.CLOSED
    svc.mode = "fail"
    await fetch(gw, "/svc/x")  # two in a row
    assert breaker_of("svc", pool(up)).state is State.OPEN


async def test_slow_calls_open_it(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    svc, up = await service(start_upstream)
    svc.mode, svc.delay = "slow", 0.3
    args = (
        "{slowCallDurationThreshold: 20ms, slowCallRateThreshold: 100, slidingWindowSize: 2, minimumNumberOfCalls: 2}"
    )
    gw = await start_gateway(routes(up.url, args))
    assert await statuses(gw, 2) == [200, 200]  # slow, but answered: slow calls are not failures
    assert breaker_of("svc", pool(up)).state is State.OPEN
    assert (await fetch(gw, "/svc/x")).status == 503


async def test_fast_calls_are_not_slow(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    svc, up = await service(start_upstream)
    gw = await start_gateway(
        routes(up.url, "{slowCallDurationThreshold: 30s, slidingWindowSize: 2, minimumNumberOfCalls: 2}")
    )
    assert await statuses(gw, 4) == [200] * 4
    assert breaker_of("svc", pool(up)).state is State.CLOSED


# -- half-open ---------------------------------------------------------------------------------------------------
HALF = (
    "{statusCodes: [500], slidingWindowType: CONSECUTIVE_FAILURES, consecutiveFailures: 1, "
    "waitDurationInOpenState: 50ms, permittedNumberOfCallsInHalfOpenState: %d}"
)


async def open_then_wait(gw: GatewayUnderTest, svc: Service, up: Upstream) -> None:
    svc.mode = "fail"
    await fetch(gw, "/svc/x")
    assert breaker_of("svc", pool(up)).state is State.OPEN
    await asyncio.sleep(0.2)  # well past the 50 ms wait (monotonic clock)


async def test_half_open_admits_exactly_n_concurrent_probes(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    n, extra = 3, 5
    svc, up = await service(start_upstream)
    gw = await start_gateway(routes(up.url, HALF % n))
    await open_then_wait(gw, svc, up)
    svc.mode = "hold"
    tasks = [asyncio.create_task(fetch(gw, "/svc/x")) for _ in range(n + extra)]
    done: set[asyncio.Task[Reply]] = set()
    try:
        async with asyncio.timeout(GUARD):
            while len(done) < extra:  # the rejected ones come back while the probes are held
                finished, _ = await asyncio.wait(set(tasks) - done, return_when=asyncio.FIRST_COMPLETED)
                done |= finished
        await wait_for(lambda: svc.entered == n, "probes held")
        assert breaker_of("svc", pool(up)).state is State.HALF_OPEN
    finally:
        svc.release.set()  # on failure too: no request is left hanging
    assert len(done) == extra
    assert sorted(t.result().status for t in done) == [503] * extra
    held = await asyncio.gather(*(t for t in tasks if t not in done))
    assert [r.status for r in held] == [200] * n
    assert svc.entered == n  # nothing else ever reached the upstream
    assert breaker_of("svc", pool(up)).state is State.CLOSED  # all probes succeeded
    svc.mode = "ok"
    assert await statuses(gw, 3) == [200] * 3


async def test_half_open_reopens_on_failed_probes(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    svc, up = await service(start_upstream)
    gw = await start_gateway(routes(up.url, HALF % 2))
    before = METRICS.breaker_transitions.get(("svc", pool(up), "OPEN"), 0)
    await open_then_wait(gw, svc, up)
    assert await statuses(gw, 2) == [500, 500]  # two failing probes: 100 % ≥ 50 %
    assert breaker_of("svc", pool(up)).state is State.OPEN
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 503
    assert METRICS.breaker_transitions[("svc", pool(up), "OPEN")] == before + 2
    assert METRICS.breaker_transitions[("svc", pool(up), "HALF_OPEN")] >= 1


async def test_half_open_waits_for_all_probes_before_deciding(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    svc, up = await service(start_upstream)
    gw = await start_gateway(routes(up.url, HALF % 2))
    await open_then_wait(gw, svc, up)
    svc.mode = "ok"
    assert await statuses(gw, 1) == [200]
    assert breaker_of("svc", pool(up)).state is State.HALF_OPEN
    svc.mode = "fail"
    assert await statuses(gw, 1) == [500]  # 1 of 2 failed: 50 % ≥ 50 % → open
    assert breaker_of("svc", pool(up)).state is State.OPEN


# -- client aborts ------------------------------------------------------------------------------------------------
async def abort_one(gw: GatewayUnderTest, svc: Service) -> None:
    """Send a request the upstream holds, then hang up; returns once the gateway gave up on it."""
    aborts = sum(METRICS.client_aborts.values())
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /svc/x HTTP/1.1\r\nHost: gw\r\n\r\n")
    await writer.drain()
    entered = svc.entered
    await wait_for(lambda: svc.entered == entered + 1, "request held upstream")
    writer.close()
    await wait_for(lambda: sum(METRICS.client_aborts.values()) > aborts, "gateway saw the abort")


async def test_a_client_abort_counts_for_nothing(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    svc, up = await service(start_upstream)
    gw = await start_gateway(
        routes(up.url, "{slowCallDurationThreshold: 1ms, slidingWindowSize: 1, minimumNumberOfCalls: 1}")
    )
    svc.mode = "hold"
    await abort_one(gw, svc)  # also slower than 1 ms: recorded, it would have opened the breaker
    breaker = breaker_of("svc", pool(up))
    assert breaker.state is State.CLOSED
    assert breaker.window.calls == 0


async def test_an_aborted_probe_hands_its_permit_back(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    svc, up = await service(start_upstream)
    gw = await start_gateway(routes(up.url, HALF % 1))
    await open_then_wait(gw, svc, up)
    svc.mode = "hold"
    await abort_one(gw, svc)  # took the only permit, then the client left
    svc.mode = "ok"
    assert await statuses(gw, 1) == [200]  # admitted: the permit came back
    assert breaker_of("svc", pool(up)).state is State.CLOSED


async def test_each_transition_is_logged_once_with_the_breaker_name_and_route(
    start_upstream: StartUpstream, start_gateway: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """closed→open, open→half-open, half-open→open and half-open→closed: one line each, none per request."""
    caplog.set_level(logging.INFO, logger="sluicegate.breaker")
    svc, up = await service(start_upstream)
    args = (HALF % 1).replace("{", "{name: ordersBreaker, ").replace("50ms", "300ms")
    gw = await start_gateway(routes(up.url, args))
    key = ("svc", pool(up))
    before = sum(n for (r, p, _), n in METRICS.breaker_transitions.items() if (r, p) == key)
    svc.mode = "fail"
    await statuses(gw, 1)  # closed -> open
    await statuses(gw, 5)  # rejected while open: no line
    await asyncio.sleep(0.5)
    await statuses(gw, 1)  # open -> half-open, the failed probe: half-open -> open
    await asyncio.sleep(0.5)
    svc.mode = "ok"
    await statuses(gw, 6)  # open -> half-open, the good probe: half-open -> closed; then five plain calls
    transitions = sum(n for (r, p, _), n in METRICS.breaker_transitions.items() if (r, p) == key) - before
    lines = [r for r in caplog.records if r.name == "sluicegate.breaker"]
    assert len(lines) == transitions, [r.getMessage() for r in lines]  # one line per transition, not per request
    for record in lines:
        message = record.getMessage()
        assert "'ordersBreaker'" in message and "route 'svc'" in message and pool(up) in message, message
        assert record.levelno == (logging.WARNING if message.endswith("-> OPEN") else logging.INFO), message
    seen = [r.getMessage().rsplit(": ", 1)[1] for r in lines]
    expected = ["CLOSED -> OPEN", "OPEN -> HALF_OPEN", "HALF_OPEN -> OPEN", "OPEN -> HALF_OPEN", "HALF_OPEN -> CLOSED"]
    remaining = iter(seen)
    assert all(step in remaining for step in expected), seen  # in this order (a slow machine may add more)
    assert breaker_of(*key).state is State.CLOSED


# -- fallbacks --------------------------------------------------------------------------------------------------
def with_fallback(uri: str, args: str, fallback_upstream: Upstream, fallback_filters: str = "[FallbackHeaders]") -> str:
    extra = f"""
  - id: fb
    uri: {fallback_upstream.url}
    predicates: [Path=/fallback/**]
    filters: {fallback_filters}
"""
    return routes(uri, args, extra=extra)


async def test_forward_fallback_on_failure_and_while_open(upstream: Upstream, start_gateway: StartGateway) -> None:
    port = free_port()
    args = (
        "{fallbackUri: 'forward:/fallback/{segment}', slidingWindowType: CONSECUTIVE_FAILURES, consecutiveFailures: 2}"
    )
    text = with_fallback(f"http://127.0.0.1:{port}", args, upstream).replace("Path=/svc/**", "'Path=/svc/{segment}'")
    gw = await start_gateway(text)
    spoof = {"Execution-Exception-Type": "spoofed", "Root-Cause-Exception-Message": "spoofed"}
    first = await fetch(gw, "/svc/orders?q=1", headers=spoof)
    assert first.status == 200
    seen = first.seen()
    assert seen["path"] == "/fallback/orders"
    assert first.upstream_got("Execution-Exception-Type") == ["UpstreamConnectError"]
    assert first.upstream_got("Root-Cause-Exception-Type") != ["spoofed"]
    assert first.upstream_got("Root-Cause-Exception-Message") != ["spoofed"]
    assert first.upstream_got("Execution-Exception-Message") != []
    await fetch(gw, "/svc/orders")
    assert breaker_of("svc", f"127.0.0.1:{port}").state is State.OPEN
    hits = len(upstream.hits)
    while_open = await fetch(gw, "/svc/orders")
    assert while_open.status == 200
    assert while_open.upstream_got("Execution-Exception-Type") == ["CircuitOpen"]
    assert len(upstream.hits) == hits + 1  # only the fallback upstream was called


async def test_status_code_failure_goes_to_the_fallback(
    start_upstream: StartUpstream, upstream: Upstream, start_gateway: StartGateway
) -> None:
    svc, up = await service(start_upstream)
    svc.mode = "fail"
    gw = await start_gateway(
        with_fallback(up.url, "{statusCodes: [INTERNAL_SERVER_ERROR], fallbackUri: forward:/fallback}", upstream)
    )
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 200
    assert reply.upstream_got("Execution-Exception-Type") == ["FailureStatus"]
    assert reply.upstream_got("Execution-Exception-Message") == ["500"]


async def test_fallback_gets_the_request_as_it_entered(
    start_upstream: StartUpstream, upstream: Upstream, start_gateway: StartGateway
) -> None:
    svc, up = await service(start_upstream)
    svc.mode = "fail"
    text = f"""
routes:
  - id: svc
    uri: {up.url}
    predicates: [Path=/svc/**]
    filters: [{{name: CircuitBreaker, args: {{statusCodes: [500], fallbackUri: forward:/fallback}}}},
              "SetRequestHeader=X-Inner,set-by-inner-filter"]
  - id: fb
    uri: {upstream.url}
    predicates: [Path=/fallback]
"""
    gw = await start_gateway(text)
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 200
    assert reply.upstream_got("X-Inner") == []  # inner filters ran on a copy
    assert svc.calls == 1


async def test_static_fallback_on_failure_and_while_open(start_gateway: StartGateway) -> None:
    port = free_port()
    args = (
        "{fallbackStatus: 503, fallbackBody: 'try later', fallbackContentType: text/plain, "
        "slidingWindowType: CONSECUTIVE_FAILURES, consecutiveFailures: 1}"
    )
    gw = await start_gateway(routes(f"http://127.0.0.1:{port}", args))
    for _ in range(2):  # the failed call, then a rejected one
        reply = await fetch(gw, "/svc/x")
        assert (reply.status, reply.body, reply.headers["Content-Type"]) == (503, b"try later", "text/plain")
    assert breaker_of("svc", f"127.0.0.1:{port}").state is State.OPEN


# -- inside Retry: the fallback answers only when no retry follows -------------------------------------------------
def retried(uri: str, retry: str, breaker: str, fallback_upstream: Upstream) -> str:
    """Route `svc`: Retry (band 600) around CircuitBreaker (band 700) with `forward:/fallback`; route `fb` echoes."""
    return f"""
routes:
  - id: svc
    uri: {uri}
    predicates: [Path=/svc/**]
    filters: [{{name: Retry, args: {retry}}}, {{name: CircuitBreaker, args: {breaker}}}]
  - id: fb
    uri: {fallback_upstream.url}
    predicates: [Path=/fallback]
    filters: [FallbackHeaders]
"""


BREAKER_500 = "{name: svcBreaker, statusCodes: [500], fallbackUri: forward:/fallback}"


async def test_inside_retry_a_recovering_upstream_is_retried_and_the_fallback_never_called(
    start_upstream: StartUpstream, upstream: Upstream, start_gateway: StartGateway
) -> None:
    script = Script(plan=[500, 500])  # fails twice, then answers 200
    up = await start_upstream(script.app())
    gw = await start_gateway(retried(up.url, "{retries: 3}", BREAKER_500, upstream))
    before = counters("svc")
    reply = await fetch(gw, "/svc/x")
    assert (reply.status, reply.body) == (200, b"status 200")  # the upstream's own answer
    assert len(up.hits) == 3
    assert upstream.hits == []  # the fallback route was never called
    assert delta(before, counters("svc")) == {"retry:status": 2}


async def test_inside_retry_a_failing_upstream_gets_the_fallback_once_after_the_last_attempt(
    start_upstream: StartUpstream, upstream: Upstream, start_gateway: StartGateway
) -> None:
    up = await start_upstream(Script(then=500).app())
    gw = await start_gateway(retried(up.url, "{retries: 3}", BREAKER_500, upstream))
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 200
    assert reply.seen()["path"] == "/fallback"
    assert reply.upstream_got("Execution-Exception-Type") == ["FailureStatus"]
    assert len(up.hits) == 4  # 1 + 3 retries, every one of them failed
    assert len(upstream.hits) == 1  # the fallback answered once, after the last attempt


async def test_inside_retry_the_fallback_answers_when_retry_gives_up_early(
    start_upstream: StartUpstream, upstream: Upstream, start_gateway: StartGateway
) -> None:
    """Not retryable by Retry's rules (a 500 with `series: []`): Retry gives up at once, the fallback answers."""
    up = await start_upstream(Script(then=500).app())
    gw = await start_gateway(retried(up.url, "{retries: 3, series: [], statuses: [502]}", BREAKER_500, upstream))
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 200 and reply.seen()["path"] == "/fallback"
    assert (len(up.hits), len(upstream.hits)) == (1, 1)


async def test_inside_retry_an_open_breaker_answers_with_the_fallback_at_once(
    start_upstream: StartUpstream, upstream: Upstream, start_gateway: StartGateway
) -> None:
    up = await start_upstream(Script(then=500).app())
    breaker = (
        "{statusCodes: [500], slidingWindowType: CONSECUTIVE_FAILURES, consecutiveFailures: 2, "
        "fallbackUri: forward:/fallback}"
    )
    gw = await start_gateway(retried(up.url, "{retries: 3}", breaker, upstream))
    before = counters("svc")
    first = await fetch(gw, "/svc/x")  # attempt 2 opens the breaker; attempt 3 is answered by the fallback
    assert first.status == 200 and first.upstream_got("Execution-Exception-Type") == ["CircuitOpen"]
    assert (len(up.hits), len(upstream.hits)) == (2, 1)
    assert delta(before, counters("svc")) == {"retry:status": 2}
    second = await fetch(gw, "/svc/x")  # open: the fallback at once, no retry
    assert second.status == 200 and second.upstream_got("Execution-Exception-Type") == ["CircuitOpen"]
    assert (len(up.hits), len(upstream.hits)) == (2, 2)
    assert delta(before, counters("svc")) == {"retry:status": 2}


async def test_inside_retry_a_static_fallback_of_an_open_breaker_is_not_retried(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    """A 503 static fallback is a 5xx Retry would retry; an open breaker's answer is final all the same."""
    up = await start_upstream(Script(then=500).app())
    breaker = (
        "{statusCodes: [500], slidingWindowType: CONSECUTIVE_FAILURES, consecutiveFailures: 1, "
        "fallbackStatus: 503, fallbackBody: later}"
    )
    gw = await start_gateway(routes(up.url, breaker).replace("filters: [", "filters: [Retry=3, ", 1))
    before = counters("svc")
    reply = await fetch(gw, "/svc/x")  # attempt 1 fails and opens; attempt 2 meets the open breaker
    assert (reply.status, reply.body) == (503, b"later")
    assert len(up.hits) == 1
    assert delta(before, counters("svc")) == {"retry:status": 1}


# -- reload, metrics ------------------------------------------------------------------------------------------
async def test_reload_keeps_an_unchanged_breaker_and_resets_a_changed_one(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    svc, up = await service(start_upstream)
    args = "{statusCodes: [500], slidingWindowType: CONSECUTIVE_FAILURES, consecutiveFailures: 1}"
    gw = await start_gateway(routes(up.url, args))
    svc.mode = "fail"
    await fetch(gw, "/svc/x")
    svc.mode = "ok"
    gw.gateway.load_text(routes(up.url, args))  # same config: state kept
    calls = svc.calls
    assert (await fetch(gw, "/svc/x")).status == 503
    assert svc.calls == calls
    gw.gateway.load_text(routes(up.url, args.replace("consecutiveFailures: 1", "consecutiveFailures: 2")))
    assert (await fetch(gw, "/svc/x")).status == 200  # a changed config starts closed
    assert svc.calls == calls + 1


async def test_metrics_render(start_gateway: StartGateway) -> None:
    port = free_port()
    gw = await start_gateway(
        routes(f"http://127.0.0.1:{port}", "{slidingWindowType: CONSECUTIVE_FAILURES, consecutiveFailures: 1}", rid="m")
    )
    await statuses(gw, 2)
    text = render([METRICS.snapshot()], {"routes": 1, "reloads": {}}).decode()
    labels = f'pool="127.0.0.1:{port}",route="m"'
    assert f"gateway_circuit_breaker_state{{{labels}}} 1.0" in text
    assert f'gateway_circuit_breaker_transitions_total{{{labels},to="OPEN"}} 1.0' in text
    assert f"gateway_circuit_breaker_rejected_total{{{labels}}} 1.0" in text


def worker_snapshots(*states: int) -> list[dict[str, object]]:
    """One snapshot per worker, each with the breaker (r, p) in the given state."""
    return [{**WorkerMetrics().snapshot(), "breaker_states": [["r", "p", state]]} for state in states]


def test_merged_state_shows_open_if_any_worker_is_open() -> None:
    gauge = 'gateway_circuit_breaker_state{pool="p",route="r"} '
    assert gauge + "1.0" in render(worker_snapshots(0, 2, 1, 0), {"routes": 1, "reloads": {}}).decode()
    assert gauge + "2.0" in render(worker_snapshots(0, 2), {"routes": 1, "reloads": {}}).decode()
    assert gauge + "0.0" in render(worker_snapshots(0, 0), {"routes": 1, "reloads": {}}).decode()


# -- the window, against a recount ---------------------------------------------------------------------------
@settings(deadline=None)
@given(st.integers(1, 8), st.lists(st.integers(0, 3), max_size=40))
def test_window_counts_the_last_size_outcomes(size: int, outcomes: list[int]) -> None:
    window = Window(size)
    for flags in outcomes:
        window.add(flags)
    last = outcomes[-size:]
    assert window.calls == len(last)
    assert window.failed == sum(f & 1 for f in last)
    assert window.slow == sum(f >> 1 for f in last)


def state(breaker: Breaker) -> State:
    return breaker.state


def test_outcomes_of_calls_admitted_before_a_transition_are_ignored() -> None:
    now = [0.0]
    config = BreakerConfig(
        mode="CONSECUTIVE_FAILURES", consecutive_failures=1, wait_in_open=10.0, permitted_in_half_open=1
    )
    breaker = Breaker(config, "unit", "p", clock=lambda: now[0])
    early = breaker.try_acquire()
    failing = breaker.try_acquire()
    assert early is not None and failing is not None
    breaker.record(failing, failed=True, seconds=0)
    assert state(breaker) is State.OPEN
    assert breaker.retry_after() == 10
    now[0] = 9.5
    assert breaker.try_acquire() is None
    assert breaker.retry_after() == 1  # rounded up, never 0
    now[0] = 10.0
    probe = breaker.try_acquire()
    assert probe is not None and state(breaker) is State.HALF_OPEN
    assert breaker.try_acquire() is None  # exactly one permit
    breaker.record(early, failed=False, seconds=0)  # from the closed era: not a probe
    assert state(breaker) is State.HALF_OPEN
    breaker.record(probe, failed=False, seconds=0)
    assert state(breaker) is State.CLOSED


# -- config --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "filters",
    [
        '["CircuitBreaker=myCircuitBreaker"]',
        '["CircuitBreaker=myCircuitBreaker,forward:/fallback"]',
        "[CircuitBreaker]",
        '[{name: CircuitBreaker, args: {statusCodes: "500,BAD_GATEWAY", waitDurationInOpenState: 2s}}]',
        "[{name: CircuitBreaker, args: {slidingWindowType: consecutive-failures, consecutiveFailures: 3}}]",
        "[{name: CircuitBreaker, args: {slow-call-duration-threshold: PT0.5S, slowCallRateThreshold: 80}}]",
        "[{name: CircuitBreaker, args: {fallbackStatus: 503, fallbackBody: sorry}}]",
    ],
)
def test_config_accepted(filters: str) -> None:
    from gateway.app import Gateway

    Gateway().load_text(config_only_route(filters=filters))


@pytest.mark.parametrize(
    ("args", "field", "message"),
    [
        ("{fallbackUri: 'http://elsewhere/'}", "fallbackUri", "forward:/path"),
        ("{fallbackUri: forward:/a, fallbackStatus: 503}", "", "not both"),
        ("{failureRateThreshold: 0}", "failureRateThreshold", "greater than 0"),
        ("{failureRateThreshold: 101}", "failureRateThreshold", "less than or equal"),
        ("{permittedNumberOfCallsInHalfOpenState: 0}", "permittedNumberOfCallsInHalfOpenState", "greater than"),
        ("{slidingWindowSize: 0}", "slidingWindowSize", "greater than"),
        ("{statusCodes: [NOT_A_STATUS]}", "statusCodes", "unknown HTTP status"),
        ("{statusCodes: [700]}", "statusCodes", "not an HTTP status"),
        ("{slidingWindowType: TIME_BASED}", "slidingWindowType", "COUNT_BASED"),
        ("{waitDurationInOpenState: soon}", "waitDurationInOpenState", "not a duration"),
        ("{resumeWithoutError: true}", "resumeWithoutError", "not supported"),
        ('{fallbackStatus: 503, fallbackContentType: "text/plain\\r\\nX-Evil: 1"}', "fallbackContentType", ""),
        ("{minimumNumberOfCalls: true}", "minimumNumberOfCalls", "boolean"),
    ],
)
def test_config_rejected(args: str, field: str, message: str) -> None:
    issues = config_issues(config_only_route(filters=f"[{{name: CircuitBreaker, args: {args}}}]"))
    assert len(issues) == 1
    path, text = issues[0]
    assert path == "routes[0].filters[0].args" + (f".{field}" if field else "")
    assert message in text
