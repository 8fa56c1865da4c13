"""The upstream metrics added with the pool: resends and the new error kinds, per worker and merged at scrape."""

from __future__ import annotations

from gateway.metrics import WorkerMetrics, render


def test_resends_are_counted_per_worker_and_summed_at_scrape() -> None:
    one, two = WorkerMetrics(), WorkerMetrics()
    one.upstream_resend("r", "eof_before_response")
    one.upstream_resend("r", "eof_before_response")
    two.upstream_resend("r", "eof_before_response")
    two.upstream_resend("r", "write_refused")
    two.upstream_error("r", "pool")
    text = render([one.snapshot(), two.snapshot()], {"routes": 1, "reloads": {}}).decode()
    assert 'gateway_upstream_resends_total{reason="eof_before_response",route="r"} 3.0' in text
    assert 'gateway_upstream_resends_total{reason="write_refused",route="r"} 1.0' in text
    assert 'gateway_upstream_errors_total{kind="pool",route="r"} 1.0' in text


def test_a_snapshot_without_resends_still_renders() -> None:
    # A worker of the previous version, mid-upgrade, reports no resends field: the scrape must not fail.
    old = WorkerMetrics().snapshot()
    del old["upstream_resends"]
    text = render([old], {"routes": 0, "reloads": {}}).decode()
    assert not [line for line in text.splitlines() if line.startswith("gateway_upstream_resends_total")]
