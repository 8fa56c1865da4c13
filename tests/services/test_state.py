"""Keyed per-filter state and the redispatch service (gateway.services)."""

from __future__ import annotations

import gc

import pytest

from gateway.api import Exchange, Headers, InternalError
from gateway.metrics import METRICS
from gateway.services import WORKER, WorkerServices


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Live:
    """A stand-in for a breaker: a live object with state."""

    def __init__(self) -> None:
        self.calls = 0


async def test_values_are_namespaced_per_filter_and_expire() -> None:
    clock = Clock()
    worker = WorkerServices.isolated(clock)
    mine, theirs = worker.scoped("A", "r").state, worker.scoped("B", "r").state
    await mine.set("k", {"v": 1}, ttl=5)
    assert await mine.get("k") == {"v": 1}
    assert await theirs.get("k") is None  # another filter's key of the same name is another key
    assert await mine.incr("n") == 1 and await mine.incr("n", 4) == 5
    clock.now += 5
    assert await mine.get("k") is None
    assert await mine.get("n") == 5
    await mine.delete("n")
    assert await mine.get("n") is None


def test_a_live_object_survives_a_rebuild_with_an_equal_config_only() -> None:
    state = WorkerServices.isolated().scoped("CircuitBreaker", "r").state
    first = state.local("r/pool", ("cfg", 1), Live)
    first.calls = 3
    assert state.local("r/pool", ("cfg", 1), Live) is first  # a reload with the same config: state carries over
    changed = state.local("r/pool", ("cfg", 2), Live)
    assert changed is not first and changed.calls == 0
    assert state.find("r/pool") is changed
    assert dict(state.live()) == {"r/pool": changed}


def test_a_live_object_no_filter_holds_goes_away() -> None:
    state = WorkerServices.isolated().scoped("Retry", "r").state
    state.local("gone", 1, Live)  # nobody keeps it (its route was removed with the old table)
    gc.collect()
    assert state.find("gone") is None
    assert state.local("gone", 1, Live) is not None


async def test_redispatch_without_a_dispatcher_is_an_internal_error() -> None:
    redispatch = WorkerServices.isolated().scoped("CircuitBreaker", "r").redispatch
    with pytest.raises(InternalError, match="needs the dispatcher"):
        await redispatch(Exchange("GET", "/x", "", Headers()), "/fallback")


def test_every_worker_services_of_a_process_shares_its_stores() -> None:
    """However the pipeline makes the services of a new version, their metrics reach this worker's snapshot and an
    unchanged breaker or budget carries over: one worker is one process."""
    fresh = WorkerServices()
    metrics = fresh.scoped("SharedStoreProbe", "r", builtin=False).metrics
    metrics.counter("probes", "Probes.").labels().inc()
    assert "gateway_filter_shared_store_probe_probes" in {f["name"] for f in METRICS.snapshot()["families"]}
    kept = fresh.scoped("SharedStoreProbe", "r").state.local("k", 1, Live)
    assert WORKER.scoped("SharedStoreProbe", "r").state.find("k") is kept
