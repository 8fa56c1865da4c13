"""The metrics factory: counters, gauges and histograms a filter declares at build time, merged by the supervisor.

It keeps the core's design (gateway.metrics): each worker holds plain numbers, the supervisor asks every worker
for a snapshot when `/metrics` is scraped, adds them up and renders them. A family is declared when a route's
filter is built, so its `# HELP`/`# TYPE` lines are on `/metrics` before its first sample.

Names. A built-in filter declares its documented `gateway_…` name (owned: no other filter may take it); any other
filter's names get the prefix `gateway_filter_<filter name in snake case>_`, which the factory adds and enforces.
This keeps names from colliding; it is not a sandbox (a plugin's code runs in the worker).

Cardinality. A family takes at most `max_series` label-value combinations per worker; any further combination is
recorded under the label value `other` in every label (the documented overflow bucket), so a label fed from
request data cannot grow a worker's memory or the scrape without bound.

Hot path. `labels(...)` is called at build time and returns a child whose `inc`/`set`/`observe` are a few
additions; no string is formatted per request.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

Kind = Literal["counter", "gauge", "histogram"]
#: The label value every label of a family takes once its `max_series` combinations are used up.
OTHER = "other"
DEFAULT_MAX_SERIES = 100
#: Upper bound a filter may ask for: a worker holds at most this many series per family.
MAX_SERIES_LIMIT = 10_000
MAX_LABELS = 8
DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_LABEL = re.compile(r"[a-z][a-z0-9_]*\Z")
#: Labels Prometheus or the exposition reserves (`le` on histograms; `__…` internal).
_RESERVED_LABELS = frozenset({"le", "quantile"})
#: Suffixes prometheus_client appends or reserves; a declared name ending in one would render confusingly.
_RESERVED_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_info")


@dataclass(frozen=True)
class BuiltinFamily:
    """A built-in filter's documented family: on `/metrics` (without samples) even before a route uses it, as
    before the factory existed; the owning filter declares exactly this."""

    owner: str
    kind: Kind
    help: str
    labels: tuple[str, ...]


#: Documented `gateway_…` families of built-in filters (docs/operations.md), by name.
BUILTIN_FAMILIES: Mapping[str, BuiltinFamily] = {
    "gateway_retries": BuiltinFamily(
        "Retry", "counter", "Retry attempts sent by the Retry filter, by reason.", ("route", "reason")
    ),
    "gateway_retry_budget_exhausted": BuiltinFamily(
        "Retry", "counter", "Retries not made because the route's retry budget was spent.", ("route",)
    ),
    "gateway_faults_injected": BuiltinFamily(
        "FaultInjection", "counter", "Faults applied by FaultInjection (delay, abort).", ("route", "kind")
    ),
}


class MetricError(ValueError):
    """A declaration the factory refuses (bad name, labels, bounds, or a clash with an existing family)."""


def snake_case(name: str) -> str:
    """`MyFilter` → `my_filter`, `HTTPSRedirect` → `https_redirect`, `my-filter` → `my_filter`."""
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def filter_prefix(filter_name: str) -> str:
    """The prefix every metric of the third-party filter `filter_name` gets."""
    return f"gateway_filter_{snake_case(filter_name)}_"


class CounterChild:
    """One series of a counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class GaugeChild:
    """One series of a gauge (summed over workers on `/metrics`)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class HistogramChild:
    """One series of a histogram: bucket counts (not cumulative), a sum and a count."""

    __slots__ = ("bounds", "buckets", "total", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1


Child = CounterChild | GaugeChild | HistogramChild
ChildT = TypeVar("ChildT", CounterChild, GaugeChild, HistogramChild)


class Family(Generic[ChildT]):
    """A declared metric family in one worker; `labels(...)` gives (and keeps) the child for a combination.

    Call `labels` at build time and keep the child: per request only its `inc`/`set`/`observe` run.
    """

    def __init__(
        self,
        name: str,
        kind: Kind,
        help_text: str,
        label_names: tuple[str, ...],
        max_series: int,
        buckets: tuple[float, ...],
        owner: str,
    ) -> None:
        self.name, self.kind, self.help, self.label_names = name, kind, help_text, label_names
        self.max_series, self.buckets, self.owner = max_series, buckets, owner
        self.children: dict[tuple[str, ...], ChildT] = {}

    def signature(self) -> tuple[Any, ...]:
        return (self.kind, self.help, self.label_names, self.max_series, self.buckets, self.owner)

    def labels(self, *values: str) -> ChildT:
        """The child for these label values (in declaration order); beyond `max_series`, the `other` child."""
        if len(values) != len(self.label_names):
            raise MetricError(f"{self.name} takes labels {list(self.label_names)}, got {len(values)} values")
        key = tuple(str(v) for v in values)
        child = self.children.get(key)
        if child is None:
            if len(self.children) >= self.max_series:
                key = (OTHER,) * len(self.label_names)
                child = self.children.get(key)
            if child is None:
                child = self.children[key] = self._new_child()
        return child

    def _new_child(self) -> Any:
        if self.kind == "counter":
            return CounterChild()
        if self.kind == "gauge":
            return GaugeChild()
        return HistogramChild(self.buckets)

    def snapshot(self) -> dict[str, Any]:
        series: list[list[Any]] = []
        for key, child in self.children.items():
            if isinstance(child, HistogramChild):
                series.append([list(key), [child.buckets, child.total, child.count]])
            else:
                series.append([list(key), child.value])
        return {
            "name": self.name,
            "kind": self.kind,
            "help": self.help,
            "labels": list(self.label_names),
            "buckets": list(self.buckets),
            "series": series,
        }


class MetricRegistry:
    """The declared families of one worker process (gateway.metrics' snapshot carries them to the supervisor)."""

    def __init__(self) -> None:
        self.families: dict[str, Family[Any]] = {}

    def declare(self, family: Family[ChildT]) -> Family[ChildT]:
        """Register `family`, or return the one already declared under its name when it is the same declaration
        (a filter of another route, or a rebuilt one after a reload, shares the family and its series)."""
        existing = self.families.get(family.name)
        if existing is None:
            self.families[family.name] = family
            return family
        if existing.signature() != family.signature():
            raise MetricError(
                f"metric {family.name} is already declared differently (by {existing.owner}): same name, same "
                "kind, help, labels, max_series and buckets are required"
            )
        return cast(Family[ChildT], existing)

    def snapshot(self) -> list[dict[str, Any]]:
        return [family.snapshot() for family in self.families.values()]


class MetricsFactory:
    """What a filter's `services.metrics` is: declares families for one filter (its name decides the prefix)."""

    def __init__(self, registry: MetricRegistry, filter_name: str, builtin: bool) -> None:
        self._registry, self.filter_name, self.builtin = registry, filter_name, builtin

    @property
    def prefix(self) -> str:
        """The prefix this filter's metric names get (a built-in may instead use its documented name)."""
        return filter_prefix(self.filter_name)

    def counter(
        self, name: str, help: str, labels: Sequence[str] = (), *, max_series: int = DEFAULT_MAX_SERIES
    ) -> Family[CounterChild]:
        """A counter family (rendered with the `_total` suffix); `name` without the prefix (or a built-in's own)."""
        family: Family[CounterChild] = self._family(name, "counter", help, labels, max_series, ())
        return self._registry.declare(family)

    def gauge(
        self, name: str, help: str, labels: Sequence[str] = (), *, max_series: int = DEFAULT_MAX_SERIES
    ) -> Family[GaugeChild]:
        """A gauge family; the values of all workers are summed on `/metrics`."""
        family: Family[GaugeChild] = self._family(name, "gauge", help, labels, max_series, ())
        return self._registry.declare(family)

    def histogram(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> Family[HistogramChild]:
        """A histogram family with these upper bucket bounds (ascending; `+Inf` is added)."""
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or bounds[-1] == float("inf"):
            raise MetricError(f"histogram {name}: buckets must be finite, distinct and ascending")
        family: Family[HistogramChild] = self._family(name, "histogram", help, labels, max_series, bounds)
        return self._registry.declare(family)

    def _family(
        self, name: str, kind: Kind, help_text: str, labels: Sequence[str], max_series: int, buckets: tuple[float, ...]
    ) -> Family[Any]:
        full = self._full_name(name)
        label_names = tuple(labels)
        if len(label_names) > MAX_LABELS or len(set(label_names)) != len(label_names):
            raise MetricError(f"{full}: at most {MAX_LABELS} distinct label names")
        for label in label_names:
            if not _LABEL.match(label) or label in _RESERVED_LABELS:
                raise MetricError(f"{full}: label name {label!r} is not allowed (lower snake case, not le/quantile)")
        if not 1 <= max_series <= MAX_SERIES_LIMIT:
            raise MetricError(f"{full}: max_series must be between 1 and {MAX_SERIES_LIMIT}")
        if not help_text.strip():
            raise MetricError(f"{full}: a help text is required")
        builtin = BUILTIN_FAMILIES.get(full)
        if builtin is not None and (builtin.kind, builtin.help, builtin.labels) != (kind, help_text, label_names):
            raise MetricError(f"{full} is documented as a {builtin.kind} {builtin.help!r} with labels {builtin.labels}")
        return Family(full, kind, help_text, label_names, max_series, buckets, self.filter_name)

    def _full_name(self, name: str) -> str:
        """The exposed name: a built-in's own documented name, else the filter's prefix + `name` (enforced)."""
        if not self.filter_name:
            raise MetricError("metrics need the filter's name: build the filter through its FilterSpec")
        if name in BUILTIN_FAMILIES:
            if not self.builtin or BUILTIN_FAMILIES[name].owner != self.filter_name:
                raise MetricError(f"{name} belongs to the built-in filter {BUILTIN_FAMILIES[name].owner}")
            return name
        prefix = self.prefix
        # A name already carrying this filter's prefix is taken as written; any other `gateway_` name is refused.
        full = name if name.startswith(prefix) else prefix + name
        if name.startswith("gateway_") and not name.startswith(prefix):
            raise MetricError(f"metric {name!r}: a filter's metrics are named {prefix}<name>; give only <name>")
        if not _NAME.match(full) or full.endswith(_RESERVED_SUFFIXES) or full == prefix:
            raise MetricError(f"metric name {name!r} is not allowed (lower snake case, no reserved suffix)")
        return full


# -- the supervisor's side: merge the workers' declared families, render ------------------------------------------
def _merged(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[tuple[str, ...], Any]]]:
    """name → (declaration, series summed over workers); a family whose declaration differs between workers (a
    reload in progress) takes the first worker's declaration and only the series of workers that agree."""
    merged: dict[str, tuple[dict[str, Any], dict[tuple[str, ...], Any]]] = {}
    for snapshot in snapshots:
        for family in snapshot.get("families", ()):
            name = family["name"]
            if name not in merged:
                merged[name] = (family, {})
            declared, totals = merged[name]
            if (declared["kind"], declared["labels"], declared["buckets"]) != (
                family["kind"],
                family["labels"],
                family["buckets"],
            ):
                continue
            for values, data in family["series"]:
                key = tuple(values)
                if family["kind"] == "histogram":
                    buckets, total, count = data
                    into = totals.get(key)
                    if into is None:
                        totals[key] = [list(buckets), total, count]
                    else:
                        into[0] = [a + b for a, b in zip(into[0], buckets, strict=True)]
                        into[1] += total
                        into[2] += count
                else:
                    totals[key] = totals.get(key, 0) + data
    return merged


def _cumulative(bounds: Sequence[float], buckets: Sequence[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*bounds, float("inf")], buckets, strict=True):
        running += count
        out.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return out


def families(snapshots: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    """The declared families of all workers as prometheus_client families (declared ones without samples too),
    and the built-ins' documented families no worker declared yet (no route uses their filter)."""
    merged = _merged(snapshots)
    for name, builtin in BUILTIN_FAMILIES.items():
        if name not in merged:
            declaration = {"kind": builtin.kind, "help": builtin.help, "labels": builtin.labels, "buckets": []}
            merged[name] = (declaration, {})
    for name, (declared, totals) in sorted(merged.items()):
        labels, kind = list(declared["labels"]), declared["kind"]
        metric: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
        if kind == "counter":
            metric = CounterMetricFamily(name, declared["help"], labels=labels)
            for key, value in totals.items():
                metric.add_metric(list(key), value)
        elif kind == "gauge":
            metric = GaugeMetricFamily(name, declared["help"], labels=labels)
            for key, value in totals.items():
                metric.add_metric(list(key), value)
        else:
            metric = HistogramMetricFamily(name, declared["help"], labels=labels)
            for key, (buckets, total, _) in totals.items():
                metric.add_metric(list(key), _cumulative(declared["buckets"], buckets), total)
        yield metric
