"""The retry budget: Envoy's semantics as a unit, kept across reloads, and bounding a total outage end to end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from gateway.app import Gateway
from gateway.resilience.budget import RetryBudget
from gateway.services import WORKER
from tests.conftest import StartGateway, StartUpstream
from tests.helpers import config_only_route, fetch, one_route
from tests.resilience.servers import Script, counters, delta

GUARD = aiohttp.ClientTimeout(total=30)  # a guard against a hang, never a measurement


def test_budget_allows_percent_of_active_but_never_below_the_minimum() -> None:
    budget = RetryBudget(20.0, 3)
    for active, allowed in [(0, 3), (1, 3), (15, 3), (20, 4), (24, 4), (25, 5), (100, 20)]:
        budget.active = active
        assert budget.allowed == allowed, active
    budget.active = 20
    assert [budget.try_acquire() for _ in range(5)] == [True, True, True, True, False]
    budget.release()
    assert budget.try_acquire()
    assert not budget.try_acquire()


def test_zero_budget_refuses_every_retry() -> None:
    budget = RetryBudget(0.0, 0)
    budget.active = 1000
    assert not budget.try_acquire()


def test_budget_state_survives_a_reload_that_keeps_its_config() -> None:
    gateway = Gateway()
    retry = "[{name: Retry, args: {budgetPercent: 30, minRetryConcurrency: 2}}]"
    gateway.load_text(config_only_route(filters=retry).replace("id: r", "id: kept"), "routes.yaml")
    budgets = WORKER.scoped("Retry").state  # Retry's keyed state in this worker: its budgets by route id
    first = budgets.find("kept")
    assert isinstance(first, RetryBudget) and (first.percent, first.min_concurrency) == (30.0, 2)
    first.active = 7  # in-flight requests the old table started
    gateway.load_text(config_only_route(filters=retry).replace("id: r", "id: kept"), "routes.yaml")
    assert budgets.find("kept") is first
    changed = retry.replace("30", "50")
    gateway.load_text(config_only_route(filters=changed).replace("id: r", "id: kept"), "routes.yaml")
    fresh = budgets.find("kept")
    assert isinstance(fresh, RetryBudget) and fresh is not first and fresh.active == 0 and fresh.percent == 50.0
    first.active = 0


async def test_low_traffic_still_retries_thanks_to_the_minimum(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    script = Script(then=503)
    upstream = await start_upstream(script.app())
    gw = await start_gateway(one_route(upstream.url, "[Retry]", rid="low-traffic"))
    before = counters("low-traffic")
    for _ in range(3):  # one request at a time: 20 % of 1 active is 0, the minimum of 3 applies
        assert (await fetch(gw, "/")).status == 503
    assert len(script.bodies) == 3 * 4
    assert delta(before, counters("low-traffic")) == {"retry:status": 9}


async def test_a_refused_retry_returns_the_last_response_and_is_counted(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    script = Script(then=503)
    upstream = await start_upstream(script.app())
    filters = "[{name: Retry, args: {budgetPercent: 0, minRetryConcurrency: 0}}]"
    gw = await start_gateway(one_route(upstream.url, filters, rid="no-budget"))
    before = counters("no-budget")
    reply = await fetch(gw, "/")
    assert (reply.status, reply.body) == (503, b"status 503")  # the upstream's own answer
    assert len(script.bodies) == 1
    assert delta(before, counters("no-budget")) == {"exhausted": 1}


@dataclass
class Outage:
    """Every instance down (503): holds the first `wave` requests until all arrived, then answers each at once.

    Retries (every request after the wave) are held briefly so that those in flight overlap and can be counted.
    """

    wave: int
    arrived: int = 0
    retries_in_flight: int = 0
    peak_retries: int = 0
    all_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived += 1
        if self.arrived <= self.wave:
            if self.arrived == self.wave:
                self.all_arrived.set()
            await asyncio.wait_for(self.all_arrived.wait(), 20)
            return web.Response(status=503, text="down")
        self.retries_in_flight += 1
        self.peak_retries = max(self.peak_retries, self.retries_in_flight)
        try:
            await asyncio.sleep(0.05)  # lets concurrent retries overlap; nothing is measured
        finally:
            self.retries_in_flight -= 1
        return web.Response(status=503, text="down")


async def test_a_total_outage_stays_within_the_budget(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    requests = 20
    outage = Outage(wave=requests)
    upstream = await start_upstream(outage.app())
    gw = await start_gateway(one_route(upstream.url, "[Retry]", rid="outage"))
    before = counters("outage")
    async with aiohttp.ClientSession(timeout=GUARD, connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> int:
            async with session.get(gw.url("/")) as resp:
                await resp.read()
                return resp.status

        statuses = await asyncio.gather(*(one() for _ in range(requests)))
    assert statuses == [503] * requests
    changed = delta(before, counters("outage"))
    retries = changed.get("retry:status", 0)
    assert outage.arrived == requests + retries  # every retry the metrics count reached the upstream, no more
    # Envoy's budget: with at most 20 requests active, 20 % allows 4 retries in flight (the minimum is 3).
    assert 1 <= outage.peak_retries <= 4
    assert changed["exhausted"] >= 1  # some of the wave got no retry: the budget, not the count, stopped them
    assert retries < requests * 3  # without a budget every request would have retried 3 times


def test_counters_are_exported_with_bounded_labels() -> None:
    """Retry's and FaultInjection's counters come from the metrics factory under their documented names, summed
    over workers; a worker that has no Retry route reports none of them, and they are declared all the same."""
    from filters.fault_injection import SPEC as FAULTS
    from filters.fault_injection import FaultInjection
    from filters.retry import SPEC as RETRY
    from filters.retry import Retry
    from gateway.api import BuildContext
    from gateway.metrics import WorkerMetrics, render
    from gateway.services import WorkerServices
    from gateway.settings import Settings

    def worker() -> WorkerServices:
        services = WorkerServices.isolated()
        context = BuildContext("r1", {}, Settings(), services=services.scoped(""))
        retry = RETRY.build(RETRY.config(), context)
        faults = FAULTS.build(FAULTS.config.model_validate({"abortStatus": 503, "abortPercent": 100}), context)
        assert isinstance(retry, Retry) and isinstance(faults, FaultInjection)
        retry.metrics.retries["connect"].inc()
        retry.metrics.retries["connect"].inc()
        retry.metrics.refused.inc()
        faults.aborts.inc()
        return services

    def snapshot(services: WorkerServices) -> dict[str, object]:
        return {**WorkerMetrics().snapshot(), "families": services.metrics.snapshot()}

    text = render(
        [snapshot(worker()), snapshot(worker()), snapshot(WorkerServices.isolated())], {"routes": 1, "reloads": {}}
    )
    assert 'gateway_retries_total{reason="connect",route="r1"} 4.0' in text.decode()
    assert 'gateway_retry_budget_exhausted_total{route="r1"} 2.0' in text.decode()
    assert 'gateway_faults_injected_total{kind="abort",route="r1"} 2.0' in text.decode()
    idle = render([snapshot(WorkerServices.isolated())], {"routes": 0, "reloads": {}}).decode()
    for name in ("gateway_retries", "gateway_retry_budget_exhausted", "gateway_faults_injected"):
        assert f"# TYPE {name}_total counter\n" in idle  # documented families show before any route uses them
