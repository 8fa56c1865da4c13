"""Pool state on its own (real Pool objects, a clock the test advances): ejection arithmetic, limits, return."""

from __future__ import annotations

import pytest

from gateway.errors import NoHealthyInstance
from gateway.exchange import Exchange
from gateway.headers import Headers
from gateway.lb.config import PoolConfig
from gateway.lb.pool import Pool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def exchange_for() -> Exchange:
    return Exchange("GET", "/", "", Headers(), client_host="127.0.0.1")


def make(n: int, outlier: dict[str, object] | None = None, clock: Clock | None = None) -> Pool:
    config = PoolConfig.model_validate(
        {
            "instances": [{"url": f"http://10.0.0.{i + 1}"} for i in range(n)],
            "outlier-detection": outlier or {},
        }
    )
    return Pool("p", config, clock or Clock())


def test_ejection_time_grows_with_each_ejection_and_is_capped() -> None:
    clock = Clock()
    pool = make(
        2,
        {"consecutive-5xx": 2, "base-ejection-time": "10s", "max-ejection-time": "25s", "max-ejection-percent": 50},
        clock,
    )
    bad = pool.instances[0]
    expected = [10.0, 20.0, 25.0]
    for seconds in expected:
        pool.report(bad, "5xx")
        assert bad.ejected_until is None  # one 5xx is not yet consecutive enough
        pool.report(bad, "5xx")
        assert bad.ejected_until == clock.now + seconds
        clock.now += seconds - 0.001
        assert bad not in pool.eligible()  # not a moment early
        clock.now += 0.001
        assert bad in pool.eligible()  # back exactly at its time


def test_a_success_resets_the_consecutive_count_and_aborts_count_for_nothing() -> None:
    pool = make(2, {"consecutive-5xx": 3, "max-ejection-percent": 50})
    bad = pool.instances[0]
    for outcome in ("5xx", "5xx", "success", "5xx", "5xx", "ignored", "ignored"):
        pool.report(bad, outcome)
    assert bad.ejected_until is None
    pool.report(bad, "5xx")
    assert bad.ejected_until is not None


def test_connect_failures_count_on_their_own() -> None:
    pool = make(2, {"consecutive-5xx": 0, "consecutive-connect-failures": 2, "max-ejection-percent": 50})
    bad = pool.instances[0]
    for _ in range(10):
        pool.report(bad, "5xx")  # consecutive-5xx 0: off
    assert bad.ejected_until is None
    pool.report(bad, "connect_failure")
    pool.report(bad, "connect_failure")
    assert bad.ejected_until is not None


@pytest.mark.parametrize(("n", "percent", "most"), [(10, 10, 1), (10, 35, 4), (4, 50, 2), (3, 0, 1), (2, 100, 1)])
def test_max_ejection_percent_holds_and_one_instance_always_serves(n: int, percent: int, most: int) -> None:
    pool = make(n, {"consecutive-5xx": 1, "max-ejection-percent": percent})
    for instance in pool.instances:
        pool.report(instance, "5xx")
    ejected = sum(1 for i in pool.instances if i.ejected_until is not None)
    # Envoy: one ejection is always allowed, more while below the percentage; never the last serving instance
    assert ejected == most
    assert pool.eligible()


def test_a_single_instance_pool_is_never_ejected() -> None:
    pool = make(1, {"consecutive-5xx": 1})
    pool.report(pool.instances[0], "5xx")
    assert pool.eligible() == pool.instances


def test_no_eligible_instance_raises_the_503_error() -> None:
    pool = make(2)
    for instance in pool.instances:
        instance.healthy = False
    with pytest.raises(NoHealthyInstance) as info:
        pool.pick([], None)
    assert info.value.status == 503 and info.value.detail == "no healthy instance in pool p"


def test_in_flight_counts_go_up_on_pick_and_down_on_release() -> None:
    pool = make(1)
    instance = pool.pick([], None)
    assert instance.inflight == 1
    pool.release(instance)
    pool.release(instance)
    assert instance.inflight == 0


def test_the_forwarder_classifies_attempt_failures_for_outlier_detection() -> None:
    import asyncio

    from gateway.errors import (
        BadRequest,
        UpstreamConnectError,
        UpstreamDnsError,
        UpstreamError,
        UpstreamPoolExhausted,
        UpstreamTimeout,
    )
    from gateway.upstream.forwarder import _failure

    assert _failure(UpstreamConnectError("refused"), connected=False) == "connect_failure"
    assert _failure(UpstreamDnsError("nxdomain"), connected=False) == "connect_failure"
    assert _failure(UpstreamTimeout("connect"), connected=False) == "connect_failure"
    assert _failure(UpstreamTimeout("no head"), connected=True) == "5xx"
    assert _failure(UpstreamError("reset"), connected=True) == "5xx"
    assert _failure(UpstreamPoolExhausted("our limit"), connected=False) == "ignored"
    assert _failure(asyncio.CancelledError(), connected=True) == "ignored"  # the client left (499)
    assert _failure(BadRequest("client body"), connected=True) == "ignored"
