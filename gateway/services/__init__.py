"""Services a filter gets through `BuildContext.services` instead of process-wide globals.

`FilterServices` is what a filter's build function sees: `metrics` (a factory for its counters, gauges and
histograms), `state` (keyed state: values behind an async interface, live per-worker objects), `redispatch`
(`forward:` to a local route), `log` (a logger named for the filter and route) and `clock` (monotonic seconds).

`WorkerServices` is the per-process side that `FilterServices` views share: one metric registry (carried to the
supervisor in the worker's metrics snapshot), one state store; every `WorkerServices()` of a process shares them
(`WORKER` is the default one). The values store is memory unless the worker was started with a Redis URL
(`use_backend`, gateway.services.redis_state). `FilterSpec` scopes it to the filter and route before calling `build`
(gateway.spec), so a filter never names itself and cannot declare metrics under another's name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.services.metrics import MetricError, MetricRegistry, MetricsFactory, snake_case
from gateway.services.redispatch import Redispatch
from gateway.services.state import (
    KeyedState,
    LocalObjects,
    MemoryBackend,
    PythonScript,
    ScriptStore,
    StateBackend,
    StateUnavailable,
)

__all__ = [
    "FilterServices",
    "KeyedState",
    "MetricError",
    "MetricsFactory",
    "PythonScript",
    "Redispatch",
    "ScriptStore",
    "StateBackend",
    "StateUnavailable",
    "WORKER",
    "WorkerServices",
    "default_services",
    "snake_case",
    "use_backend",
]

Clock = Callable[[], float]
#: Parent of every filter's logger: `sluicegate.filter.<FilterName>.<route id>`.
LOGGER = "sluicegate.filter"


#: The process's stores. A worker is one process, so every `WorkerServices` made without stores of its own shares
#: them: whoever builds the filters of a new routes version (per version or not), the metric families reach the
#: worker's snapshot (gateway.metrics) and unchanged breakers and budgets carry over.
_METRICS = MetricRegistry()
_LOCAL = LocalObjects()
_VALUES: StateBackend = MemoryBackend(time.monotonic)


@dataclass
class WorkerServices:
    """One worker process's service state. `WorkerServices()` shares the process's stores; tests that need their
    own use `WorkerServices.isolated()`."""

    clock: Clock = time.monotonic
    metrics: MetricRegistry = field(default_factory=lambda: _METRICS)
    local: LocalObjects = field(default_factory=lambda: _LOCAL)
    backend: StateBackend | None = None
    redispatch: Redispatch = field(default_factory=Redispatch)

    def __post_init__(self) -> None:
        if self.backend is None:
            self.backend = _VALUES if self.clock is time.monotonic else MemoryBackend(self.clock)

    @classmethod
    def isolated(cls, clock: Clock = time.monotonic) -> WorkerServices:
        """Services with stores of their own (tests: two "workers" in one process, a fake clock)."""
        return cls(clock, MetricRegistry(), LocalObjects(), MemoryBackend(clock))

    def scoped(self, filter_name: str, route_id: str = "", *, builtin: bool = False) -> FilterServices:
        """The services one filter of one route sees."""
        assert self.backend is not None
        return FilterServices(
            metrics=MetricsFactory(self.metrics, filter_name, builtin),
            state=KeyedState(self.backend, self.local, filter_name, route_id),
            redispatch=self.redispatch,
            log=logging.getLogger(f"{LOGGER}.{filter_name or '-'}.{route_id or '-'}"),
            clock=self.clock,
            worker=self,
        )


@dataclass(frozen=True)
class FilterServices:
    """What a filter may use at build time and per request (the plugin API's services)."""

    #: Declares this filter's metric families (`counter`, `gauge`, `histogram`); see gateway.services.metrics.
    metrics: MetricsFactory
    #: This filter's keyed state in this worker (namespaced by the filter's name); see gateway.services.state.
    state: KeyedState
    #: `await redispatch(exchange, "/path")`: the response of the local route matching the path (`forward:`).
    redispatch: Redispatch
    #: A logger named `sluicegate.filter.<FilterName>.<route id>`.
    log: logging.Logger
    #: Monotonic seconds (time.monotonic unless a test supplies its own).
    clock: Clock
    #: The process-wide side these views share (the pipeline scopes it per filter).
    worker: WorkerServices

    def scoped(self, filter_name: str, route_id: str, *, builtin: bool) -> FilterServices:
        """The same worker's services seen by `filter_name` on `route_id`."""
        return self.worker.scoped(filter_name, route_id, builtin=builtin)


#: This process's services (a worker's; the supervisor never builds filters after issue 10's item 1).
WORKER = WorkerServices()


def use_backend(backend: StateBackend) -> None:
    """Make `backend` this process's values store (a worker with `state.redis_url`: gateway.worker), before any
    filter is built: every `WorkerServices()` from now on, and `WORKER`, use it. Live objects stay per worker."""
    global _VALUES
    _VALUES = backend
    WORKER.backend = backend


def default_services() -> FilterServices:
    """The default `BuildContext.services`: this process's in-memory services, not yet scoped to a filter."""
    return WORKER.scoped("")
