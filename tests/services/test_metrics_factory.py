"""The metrics factory filters get through BuildContext.services: names, bounds, declaration and merging."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, MetricError, Next, Response
from gateway.metrics import WorkerMetrics, render
from gateway.services import WorkerServices
from gateway.services.metrics import OTHER, MetricsFactory, filter_prefix, snake_case
from gateway.settings import Settings


def factory(name: str = "CallCounter", *, builtin: bool = False) -> tuple[WorkerServices, MetricsFactory]:
    worker = WorkerServices.isolated()
    return worker, worker.scoped(name, "r1", builtin=builtin).metrics


def scrape(*workers: WorkerServices) -> str:
    """/metrics as the supervisor renders it from one snapshot per worker."""
    snapshots = [{**WorkerMetrics().snapshot(), "families": w.metrics.snapshot()} for w in workers]
    return render(snapshots, {"routes": 1, "reloads": {}}).decode()


@pytest.mark.parametrize(
    ("name", "snake"),
    [("CallCounter", "call_counter"), ("HTTPSRedirect", "https_redirect"), ("TeamTag", "team_tag"), ("x-y", "x_y")],
)
def test_filter_names_become_snake_case_prefixes(name: str, snake: str) -> None:
    assert snake_case(name) == snake
    assert filter_prefix(name) == f"gateway_filter_{snake}_"


def test_a_plugin_metric_gets_its_filter_prefix() -> None:
    _, metrics = factory()
    assert metrics.counter("calls", "Calls.").name == "gateway_filter_call_counter_calls"
    # Written with its own prefix already, it is taken as is (not prefixed twice).
    assert metrics.gauge("gateway_filter_call_counter_open", "Open.").name == "gateway_filter_call_counter_open"


@pytest.mark.parametrize("name", ["gateway_requests", "gateway_retries", "gateway_filter_other_calls", "Bad-Name", ""])
def test_a_plugin_cannot_take_a_name_outside_its_prefix(name: str) -> None:
    _, metrics = factory()
    with pytest.raises(MetricError):
        metrics.counter(name, "Calls.")


def test_a_builtin_declares_its_documented_name_and_no_other_filter_may() -> None:
    _, retry = factory("Retry", builtin=True)
    help_text = "Retry attempts sent by the Retry filter, by reason."
    family = retry.counter("gateway_retries", help_text, ["route", "reason"])
    assert family.name == "gateway_retries"
    _, impostor = factory("Retry", builtin=False)  # a plugin that calls itself Retry is still no built-in
    with pytest.raises(MetricError, match="belongs to the built-in filter Retry"):
        impostor.counter("gateway_retries", "x", ["route", "reason"])
    _, other_builtin = factory("FaultInjection", builtin=True)
    with pytest.raises(MetricError):
        other_builtin.counter("gateway_retries", "x", ["route", "reason"])


@pytest.mark.parametrize(
    ("labels", "max_series"), [(["le"], 10), (["a", "a"], 10), (["Route"], 10), (["a"], 0), (["a"], 10_001)]
)
def test_bad_labels_and_bounds_are_refused(labels: list[str], max_series: int) -> None:
    _, metrics = factory()
    with pytest.raises(MetricError):
        metrics.counter("calls", "Calls.", labels, max_series=max_series)


def test_the_same_declaration_shares_its_family_and_a_different_one_is_refused() -> None:
    worker, metrics = factory()
    first = metrics.counter("calls", "Calls.", ["route"])
    again = worker.scoped("CallCounter", "r2").metrics.counter("calls", "Calls.", ["route"])
    assert again is first
    with pytest.raises(MetricError, match="already declared differently"):
        metrics.counter("calls", "Calls, counted differently.", ["route"])
    with pytest.raises(MetricError):
        metrics.gauge("calls", "Calls.", ["route"])


def test_help_and_type_are_on_metrics_before_the_first_sample() -> None:
    worker, metrics = factory()
    metrics.counter("calls", "Calls through CallCounter.", ["route"]).labels("r1")  # pre-bound, never incremented
    metrics.histogram("size_bytes", "Body sizes.", buckets=[10, 100])
    text = scrape(worker)
    assert "# HELP gateway_filter_call_counter_calls_total Calls through CallCounter.\n" in text
    assert "# TYPE gateway_filter_call_counter_calls_total counter\n" in text
    assert "# TYPE gateway_filter_call_counter_size_bytes histogram\n" in text
    assert 'gateway_filter_call_counter_calls_total{route="r1"} 0.0' in text


def test_samples_are_summed_over_workers() -> None:
    workers = [WorkerServices.isolated(), WorkerServices.isolated()]
    for n, worker in enumerate(workers, start=1):
        metrics = worker.scoped("CallCounter", "r1").metrics
        metrics.counter("calls", "Calls.", ["route"]).labels("r1").inc(n)
        metrics.gauge("open", "Open things.").labels().set(10 * n)
        sizes = metrics.histogram("size_bytes", "Body sizes.", buckets=[10, 100]).labels()
        sizes.observe(5)
        sizes.observe(60 * n)
    text = scrape(*workers)
    assert 'gateway_filter_call_counter_calls_total{route="r1"} 3.0' in text
    assert "gateway_filter_call_counter_open 30.0" in text
    assert 'gateway_filter_call_counter_size_bytes_bucket{le="10.0"} 2.0' in text
    assert 'gateway_filter_call_counter_size_bytes_bucket{le="100.0"} 3.0' in text
    assert 'gateway_filter_call_counter_size_bytes_bucket{le="+Inf"} 4.0' in text
    assert "gateway_filter_call_counter_size_bytes_count 4.0" in text
    assert "gateway_filter_call_counter_size_bytes_sum 190.0" in text


def test_label_values_beyond_the_declared_maximum_go_to_other() -> None:
    worker, metrics = factory()
    family = metrics.counter("calls", "Calls.", ["tenant", "kind"], max_series=2)
    for tenant in ("a", "b", "c", "d"):
        family.labels(tenant, "x").inc()
    family.labels("a", "x").inc()  # a combination already held keeps its own series
    assert set(family.children) == {("a", "x"), ("b", "x"), (OTHER, OTHER)}
    text = scrape(worker)
    assert 'gateway_filter_call_counter_calls_total{kind="x",tenant="a"} 2.0' in text
    assert 'gateway_filter_call_counter_calls_total{kind="other",tenant="other"} 2.0' in text
    assert 'tenant="c"' not in text


def test_wrong_number_of_label_values_is_an_error() -> None:
    _, metrics = factory()
    with pytest.raises(MetricError):
        metrics.counter("calls", "Calls.", ["route"]).labels()


def test_a_counter_only_goes_up() -> None:
    _, metrics = factory()
    with pytest.raises(ValueError, match="only goes up"):
        metrics.counter("calls", "Calls.").labels().inc(-1)


class _Config(ComponentConfig):
    pass


def test_filter_spec_scopes_the_services_to_the_filter_and_route() -> None:
    """However a filter is built (compiler, kit, test), its services carry its own name: it never names itself."""
    seen: dict[str, Any] = {}

    async def call(exchange: Exchange, call_next: Next) -> Response:
        return await call_next(exchange)

    def build(config: _Config, ctx: BuildContext) -> Any:
        seen["metric"] = ctx.services.metrics.counter("calls", "Calls.").name
        seen["log"] = ctx.services.log.name
        return call

    spec = FilterSpec(name="TeamCounter", order=900, config=_Config, build=build, summary="s", example={})
    spec.build(_Config(), BuildContext("orders", {}, Settings(), services=WorkerServices.isolated().scoped("")))
    assert seen == {"metric": "gateway_filter_team_counter_calls", "log": "sluicegate.filter.TeamCounter.orders"}


def test_unscoped_services_refuse_to_declare() -> None:
    with pytest.raises(MetricError, match="need the filter's name"):
        WorkerServices.isolated().scoped("").metrics.counter("calls", "Calls.")
