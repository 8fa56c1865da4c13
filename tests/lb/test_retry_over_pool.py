"""The Retry filter over a pool: each retry goes to an instance not tried yet (the resolver honours
`exchange.tried`), and every attempt's outcome reaches outlier detection."""

from __future__ import annotations

from gateway.metrics import METRICS
from tests.conftest import StartGateway, StartUpstream
from tests.lb.support import pool_of, pool_routes, start_instance
from tests.lb.test_health_outlier import statuses_and_names

RETRY = "[{name: Retry, args: {retries: 1, statuses: BAD_GATEWAY, backoff: {firstBackoff: 1ms}}}]"


async def test_a_retry_goes_to_the_instance_not_tried(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    bad, knobs = await start_instance(start_upstream, "bad")
    good, _ = await start_instance(start_upstream, "good")
    knobs.status = 502
    # weight 10: round robin alone would send most retries back to `bad`; outlier detection off to isolate the rule
    extra = "    outlier-detection: {consecutive-5xx: 0}"
    gw = await start_gateway(pool_routes([(bad, "weight: 10"), (good, "")], extra, filters=RETRY))
    results = await statuses_and_names(gw, 20)
    assert results == [(200, "good")] * 20
    assert len(bad.hits) >= 10  # the first attempts mostly went to `bad`, and each retry went elsewhere


async def test_retried_attempts_feed_outlier_detection(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    bad, knobs = await start_instance(start_upstream, "bad")
    good, _ = await start_instance(start_upstream, "good")
    knobs.status = 502
    extra = "    outlier-detection: {consecutive-5xx: 3, base-ejection-time: 1m, max-ejection-percent: 50}"
    gw = await start_gateway(pool_routes([(bad, "weight: 10"), (good, "")], extra, filters=RETRY))
    before = METRICS.outlier_ejections.get("p", 0)
    results = await statuses_and_names(gw, 20)
    assert results == [(200, "good")] * 20
    assert len([h for h in bad.hits if h.path == "/who"]) == 3  # ejected after its third 502
    assert METRICS.outlier_ejections.get("p", 0) == before + 1
    assert pool_of(gw.gateway).instances[0].ejected_until is not None
