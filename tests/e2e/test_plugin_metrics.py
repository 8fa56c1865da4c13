"""A plugin's metric from the services' factory on the real `/metrics` (issue 10, item 2): a filter from its own
distribution counts its calls; the family is declared before the first request and summed over two workers."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import StartUpstream
from tests.e2e.ops_helpers import Metrics, one_request, routes_yaml, run_gateway, start_text_upstream
from tests.plugins import write_distribution

COUNTER = """
from gateway.api import BuildContext, ComponentConfig, CounterChild, Exchange, FilterSpec, Next, Response


class Config(ComponentConfig):
    pass


class CallCounter:
    def __init__(self, context: BuildContext) -> None:
        metrics = context.services.metrics
        # Bound once here, at build time: per request only an addition runs.
        self.calls: CounterChild = metrics.counter(
            "calls", "Requests through CallCounter, by route.", ["route"]
        ).labels(context.route_id)
        # Each worker that built the filter says so: summed on /metrics, this is the number of workers.
        metrics.gauge("workers", "Workers that built CallCounter.").labels().set(1)

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        self.calls.inc()
        return await call_next(exchange)


SPEC = FilterSpec(name="CallCounter", order=900, config=Config, build=lambda c, ctx: CallCounter(ctx),
                  summary="counts its calls", example={})
"""

CALLS = "gateway_filter_call_counter_calls"


async def test_a_plugin_counter_is_declared_before_its_first_sample_and_summed_over_workers(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_text_upstream(start_upstream, "hello")
    site = tmp_path / "site"
    write_distribution(
        site, "team-counter", {"sluicegate.filters": {"CallCounter": "team_counter:SPEC"}}, {"team_counter": COUNTER}
    )
    routes = routes_yaml(
        {"id": "counted", "uri": upstream.url, "predicates": ["Path=/c/**"], "filters": ["CallCounter"]},
        {"id": "plain", "uri": upstream.url, "predicates": ["Path=/**"]},
    )
    async with run_gateway(tmp_path, routes, "--workers", "2", env={"PYTHONPATH": str(site)}) as gw:
        _, before = await gw.admin_get("/metrics")
        assert f"# HELP {CALLS}_total Requests through CallCounter, by route.\n" in before
        assert f"# TYPE {CALLS}_total counter\n" in before
        assert Metrics.parse(before).value(f"{CALLS}_total", route="counted") == 0.0
        assert Metrics.parse(before).value("gateway_filter_call_counter_workers") == 2.0  # both workers reported

        requests = 12
        for _ in range(requests):  # a new connection each: the kernel spreads them over the workers
            assert (await one_request(gw.port, "GET", "/c/x")).status == 200
        assert (await one_request(gw.port, "GET", "/other")).status == 200  # not through the filter

        after = await gw.metrics()
        assert after.value(f"{CALLS}_total", route="counted") == requests
        assert after.types[CALLS] == "counter"
