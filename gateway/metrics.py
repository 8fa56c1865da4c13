"""Every metric the gateway exports, declared here; recorded cheaply in each worker, merged by the supervisor.

Why not prometheus_client's multiprocess mode on the hot path: a multiprocess histogram `observe` costs ~1.8 µs
here (an mmap write per bucket); a request already records a counter and two histograms. Instead each worker
keeps plain Python numbers keyed by bounded label tuples (route id — "unmatched" when none —, method from a known
set or OTHER, status class, outcome), and the supervisor asks every worker for a snapshot when /metrics is
scraped, adds them up and renders them with prometheus_client's exposition code. Counters are per worker process
lifetime: a restarted worker starts from zero, which Prometheus' rate() reads as a reset.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from gateway.services import WORKER
from gateway.services.metrics import families as declared_families

PREFIX = "gateway_"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: SCG's outcome names (HttpStatus.Series), by status class.
OUTCOMES = ("INFORMATIONAL", "SUCCESSFUL", "REDIRECTION", "CLIENT_ERROR", "SERVER_ERROR")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: gateway_config_propagation_seconds: from a version's write to a worker serving it (target: under 1 s)
PROPAGATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"


class Histogram:
    """Bucket counts (not cumulative) over `bounds` (BUCKETS unless given), a sum and a count."""

    __slots__ = ("bounds", "buckets", "total", "count")

    def __init__(self, bounds: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1


class WorkerMetrics:
    """The numbers one worker process keeps. Hot-path methods are a dict lookup and a few additions."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], Histogram] = {}
        self.upstream: dict[str, Histogram] = {}
        self.upstream_errors: dict[tuple[str, str], int] = {}
        self.upstream_resends: dict[tuple[str, str], int] = {}
        self.shed: dict[str, int] = {}
        self.client_aborts: dict[str, int] = {}
        # CircuitBreaker (issue 6): state 0/1/2 by (route, pool); transitions by (route, pool, to); rejections.
        self.breaker_states: dict[tuple[str, str], int] = {}
        self.breaker_transitions: dict[tuple[str, str, str], int] = {}
        self.breaker_rejections: dict[tuple[str, str], int] = {}
        self.active_requests = 0
        self.open_connections = 0
        self.routes_loaded = 0
        self.table_version = 0  # the routes version this worker serves (gateway_config_version)
        self.propagation = Histogram(PROPAGATION_BUCKETS)
        # upstream pools (gateway/lb): healthy instances as this worker sees them, ejections, health-check results
        self.pool_healthy: dict[str, int] = {}
        self.outlier_ejections: dict[str, int] = {}
        self.health_checks: dict[tuple[str, str], int] = {}
        #: called before each snapshot, so gauges computed from state (a lapsed ejection) are current
        self.refreshers: list[Callable[[], None]] = []

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request finished (status 499 when the client went away)."""
        key = (route, method if method in METHODS else "OTHER", status)
        histogram = self.requests.get(key)
        if histogram is None:
            histogram = self.requests[key] = Histogram()
        histogram.observe(seconds)
        if status == 499:
            self.client_aborts[route] = self.client_aborts.get(route, 0) + 1

    def upstream_time(self, route: str, seconds: float) -> None:
        """Time from sending the request to the upstream's response head."""
        histogram = self.upstream.get(route)
        if histogram is None:
            histogram = self.upstream[route] = Histogram()
        histogram.observe(seconds)

    def upstream_error(self, route: str, kind: str) -> None:
        key = (route, kind)
        self.upstream_errors[key] = self.upstream_errors.get(key, 0) + 1

    def upstream_resend(self, route: str, reason: str) -> None:
        """The one resend below the Retry filter happened (`write_refused` or `eof_before_response`)."""
        key = (route, reason)
        self.upstream_resends[key] = self.upstream_resends.get(key, 0) + 1

    def outlier_ejection(self, pool: str) -> None:
        self.outlier_ejections[pool] = self.outlier_ejections.get(pool, 0) + 1

    def health_check(self, pool: str, result: str) -> None:
        """One active health check of an instance of `pool`: `success` or `failure`."""
        key = (pool, result)
        self.health_checks[key] = self.health_checks.get(key, 0) + 1

    def breaker_state(self, route: str, pool: str, state: int) -> None:
        """A circuit breaker exists in `state` (0 closed, 1 open, 2 half-open), e.g. just created."""
        self.breaker_states[(route, pool)] = state

    def breaker_transition(self, route: str, pool: str, state: int, to: str) -> None:
        """A circuit breaker moved to `state`, named `to` (CLOSED, OPEN, HALF_OPEN)."""
        self.breaker_states[(route, pool)] = state
        key = (route, pool, to)
        self.breaker_transitions[key] = self.breaker_transitions.get(key, 0) + 1

    def breaker_rejected(self, route: str, pool: str) -> None:
        """A call was not admitted by an open (or full half-open) circuit breaker."""
        key = (route, pool)
        self.breaker_rejections[key] = self.breaker_rejections.get(key, 0) + 1

    def served_version(self, version: int, written: float | None) -> None:
        """This worker now serves `version`, written (stored, as seconds since the epoch) at `written`, if known.
        A clock behind the writer's (another replica's) counts as zero, never as a negative time."""
        self.table_version = version
        if written is not None:
            self.propagation.observe(max(0.0, time.time() - written))

    def shed_request(self, reason: str) -> None:
        self.shed[reason] = self.shed.get(reason, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-serialisable numbers for the supervisor."""
        for refresh in self.refreshers:
            refresh()
        return {
            "requests": [[*key, h.buckets, h.total, h.count] for key, h in self.requests.items()],
            "upstream": [[route, h.buckets, h.total, h.count] for route, h in self.upstream.items()],
            "upstream_errors": [[*key, n] for key, n in self.upstream_errors.items()],
            "upstream_resends": [[*key, n] for key, n in self.upstream_resends.items()],
            "shed": self.shed,
            "client_aborts": self.client_aborts,
            "breaker_states": [[*key, n] for key, n in self.breaker_states.items()],
            "breaker_transitions": [[*key, n] for key, n in self.breaker_transitions.items()],
            "breaker_rejections": [[*key, n] for key, n in self.breaker_rejections.items()],
            "active_requests": self.active_requests,
            "open_connections": self.open_connections,
            "routes_loaded": self.routes_loaded,
            "config_version": self.table_version,
            "propagation": [self.propagation.buckets, self.propagation.total, self.propagation.count],
            "pool_healthy": self.pool_healthy,
            "outlier_ejections": self.outlier_ejections,
            "health_checks": [[*key, n] for key, n in self.health_checks.items()],
            # Families filters declared through their services' metrics factory (gateway.services.metrics).
            "families": WORKER.metrics.snapshot(),
        }


#: This process's numbers (a worker), recorded by the server, dispatcher and forwarder.
METRICS = WorkerMetrics()


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def outcome(status: int) -> str:
    return OUTCOMES[min(max(status // 100, 1), 5) - 1]


# -- the supervisor's side: merge snapshots, render ---------------------------------------------------------------
def _merge_histograms(rows: Iterable[Sequence[Any]], key_len: int) -> dict[tuple[Any, ...], Histogram]:
    merged: dict[tuple[Any, ...], Histogram] = {}
    for row in rows:
        key, (buckets, total, count) = tuple(row[:key_len]), row[key_len:]
        histogram = merged.setdefault(key, Histogram())
        histogram.buckets = [a + b for a, b in zip(histogram.buckets, buckets, strict=True)]
        histogram.total += total
        histogram.count += count
    return merged


def _cumulative(histogram: Histogram) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*histogram.bounds, float("inf")], histogram.buckets, strict=True):
        running += count
        out.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return out


def _request_families(snapshots: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    merged = _merge_histograms((row for s in snapshots for row in s["requests"]), 3)
    total = CounterMetricFamily(
        PREFIX + "requests",
        "Requests answered, by route, method, status class and outcome.",
        labels=["route", "method", "status", "outcome"],
    )
    duration = HistogramMetricFamily(
        PREFIX + "request_duration_seconds",
        "Time from the request head to the end of the response.",
        labels=["route", "method", "status", "outcome"],
    )
    by_class: dict[tuple[str, str, str, str], Histogram] = {}
    for (route, method, status), histogram in merged.items():
        key = (route, method, status_class(status), outcome(status))
        into = by_class.setdefault(key, Histogram())
        into.buckets = [a + b for a, b in zip(into.buckets, histogram.buckets, strict=True)]
        into.total += histogram.total
        into.count += histogram.count
    for labels, histogram in by_class.items():
        total.add_metric(list(labels), histogram.count)
        duration.add_metric(list(labels), _cumulative(histogram), histogram.total)
    yield total
    yield duration


def _upstream_families(snapshots: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    merged = _merge_histograms((row for s in snapshots for row in s["upstream"]), 1)
    duration = HistogramMetricFamily(
        PREFIX + "upstream_request_duration_seconds", "Time to the upstream's response head.", labels=["route"]
    )
    for (route,), histogram in merged.items():
        duration.add_metric([route], _cumulative(histogram), histogram.total)
    yield duration
    yield _counter(
        snapshots,
        "upstream_errors",
        "upstream_errors",
        "Upstream failures by kind (connect, dns, timeout, tls, protocol, reset, pool).",
        ["route", "kind"],
    )
    yield _counter(
        snapshots,
        "upstream_resends",
        "upstream_resends",
        "Requests sent once more on a fresh connection after their pooled connection failed before any response.",
        ["route", "reason"],
    )


def _counter(
    snapshots: Sequence[Mapping[str, Any]], field: str, name: str, help_text: str, labels: Sequence[str]
) -> CounterMetricFamily:
    """A counter family summed over the workers' snapshots.

    `field` holds rows `[*label_values, n]`, or for one label a `{value: n}` mapping; a worker of an older
    version that does not report the field counts as zero.
    """
    totals: dict[tuple[str, ...], int] = {}
    for s in snapshots:
        data = s.get(field, ())
        rows = ([key, n] for key, n in data.items()) if isinstance(data, Mapping) else data
        for *values, n in rows:
            key = tuple(values)
            totals[key] = totals.get(key, 0) + n
    family = CounterMetricFamily(PREFIX + name, help_text, labels=list(labels))
    for key, n in totals.items():
        family.add_metric(list(key), n)
    return family


def _simple_families(snapshots: Sequence[Mapping[str, Any]], supervisor: Mapping[str, Any]) -> Iterator[Metric]:
    yield _counter(snapshots, "shed", "shed_requests", "Requests refused with 503 by a limit.", ["reason"])
    yield _counter(snapshots, "client_aborts", "client_aborts", "Clients gone before their response (499).", ["route"])
    for name, help_text in (
        ("active_requests", "Requests being served now."),
        ("open_connections", "Client connections open now."),
    ):
        yield GaugeMetricFamily(PREFIX + name, help_text, value=sum(s[name] for s in snapshots))
    dropped = CounterMetricFamily(PREFIX + "access_log_dropped", "Access-log lines stdout could not take in time.")
    dropped.add_metric([], sum(s.get("access_log_dropped", 0) for s in snapshots))
    yield dropped
    yield GaugeMetricFamily(PREFIX + "routes_loaded", "Routes in the current table.", value=supervisor["routes"])
    yield GaugeMetricFamily(PREFIX + "workers", "Worker processes running.", value=len(snapshots))
    reloads = CounterMetricFamily(PREFIX + "reloads", "Route reloads by result.", labels=["result"])
    for result, n in supervisor["reloads"].items():
        reloads.add_metric([result], n)
    yield reloads


def _pool_families(snapshots: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    healthy = GaugeMetricFamily(
        PREFIX + "upstream_healthy_instances",
        "Instances of an upstream pool taking traffic (not down, not ejected); the lowest count of any worker.",
        labels=["pool"],
    )
    lowest: dict[str, int] = {}
    for s in snapshots:
        for pool, n in s.get("pool_healthy", {}).items():
            lowest[pool] = min(n, lowest.get(pool, n))
    for pool, n in lowest.items():
        healthy.add_metric([pool], n)
    yield healthy
    yield _counter(
        snapshots,
        "outlier_ejections",
        "outlier_ejections",
        "Instances ejected by outlier detection, summed over workers.",
        ["pool"],
    )
    yield _counter(
        snapshots,
        "health_checks",
        "health_checks",
        "Active health checks by result (success, failure).",
        ["pool", "result"],
    )


#: Which breaker state the merged gauge shows when workers disagree: open, else half-open, else closed.
_BREAKER_SEVERITY = {0: 0, 2: 1, 1: 2}


def _breaker_families(snapshots: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    """CircuitBreaker state, transitions and rejections; breakers are per worker (see gateway.resilience.breaker)."""
    state = GaugeMetricFamily(
        PREFIX + "circuit_breaker_state",
        "Circuit breaker state (0 closed, 1 open, 2 half-open); open if any worker's is, else half-open if any.",
        labels=["route", "pool"],
    )
    worst: dict[tuple[str, str], int] = {}
    for s in snapshots:
        for route, pool, value in s.get("breaker_states", ()):
            if _BREAKER_SEVERITY.get(value, 0) >= _BREAKER_SEVERITY.get(worst.get((route, pool), 0), 0):
                worst[(route, pool)] = value
    for labels, value in worst.items():
        state.add_metric(list(labels), value)
    yield state
    yield _counter(
        snapshots,
        "breaker_transitions",
        "circuit_breaker_transitions",
        "Circuit breaker state changes, by the state entered.",
        ["route", "pool", "to"],
    )
    yield _counter(
        snapshots,
        "breaker_rejections",
        "circuit_breaker_rejected",
        "Calls not admitted by an open or full half-open circuit breaker.",
        ["route", "pool"],
    )


def _config_families(snapshots: Sequence[Mapping[str, Any]], supervisor: Mapping[str, Any]) -> Iterator[Metric]:
    """Which version each worker serves, how long versions took to get there, and the store's health. Declared
    whatever the store's kind: a memory or file store has one writer (this supervisor), a Redis store many."""
    version = GaugeMetricFamily(
        PREFIX + "config_version", "The routes version each worker serves, by worker slot.", labels=["worker"]
    )
    propagation = Histogram(PROPAGATION_BUCKETS)
    for s in snapshots:
        if "config_version" in s:  # a worker of an older version does not report it
            version.add_metric([str(s.get("worker", ""))], s["config_version"])
        buckets, total, count = s.get("propagation", (None, 0.0, 0))
        if buckets is not None and len(buckets) == len(propagation.buckets):
            propagation.buckets = [a + b for a, b in zip(propagation.buckets, buckets, strict=True)]
            propagation.total += total
            propagation.count += count
    yield version
    seconds = HistogramMetricFamily(
        PREFIX + "config_propagation_seconds",
        "From a version's write to the store (this replica's append, or the record's time for a version another "
        "replica stored) to a worker serving it; one observation per worker and version.",
    )
    seconds.add_metric([], _cumulative(propagation), propagation.total)
    yield seconds
    errors = CounterMetricFamily(PREFIX + "store_errors", "Store operations that failed, by operation.", labels=["op"])
    for op, n in sorted(supervisor.get("store_errors", {}).items()):
        errors.add_metric([op], n)
    yield errors
    yield GaugeMetricFamily(
        PREFIX + "store_up",
        "1 when the store answered its last call (always 1 for a memory or file store), else 0.",
        value=supervisor.get("store_up", 1),
    )


class SnapshotCollector:
    """A prometheus_client collector over merged worker snapshots (built per scrape)."""

    def __init__(self, snapshots: Sequence[Mapping[str, Any]], supervisor: Mapping[str, Any]) -> None:
        self.snapshots, self.supervisor = snapshots, supervisor

    def collect(self) -> Iterator[Metric]:
        yield from _request_families(self.snapshots)
        yield from _upstream_families(self.snapshots)
        yield from _simple_families(self.snapshots, self.supervisor)
        yield from _breaker_families(self.snapshots)
        yield from _pool_families(self.snapshots)
        yield from _config_families(self.snapshots, self.supervisor)
        yield from declared_families(self.snapshots)


def render(snapshots: Sequence[Mapping[str, Any]], supervisor: Mapping[str, Any]) -> bytes:
    """Prometheus text exposition of the merged snapshots."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshots, supervisor))
    return bytes(generate_latest(registry))
