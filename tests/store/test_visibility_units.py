"""Issue 12 item 4 without a server: version times in milliseconds that parse back (and the older second form
still reads), store errors counted by operation (a conflict is not one), the config metrics rendered from worker
snapshots, and the cluster view of a store only this gateway writes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.cluster import Cluster, _glob_escaped, _well_formed
from gateway.metrics import PROPAGATION_BUCKETS, WorkerMetrics, render
from gateway.settings import Settings
from gateway.store import StoreError, VersionRecord
from gateway.store.base import STORE_ERRORS, epoch, now
from gateway.store.file import FileStore
from gateway.store.memory import MemoryStore


def record(version: int, time_text: str) -> VersionRecord:
    return VersionRecord(version, time_text, "ops", "why", f"sum{version}")


def test_now_has_milliseconds_and_parses_back() -> None:
    before = time.time()
    stamp = now()
    after = time.time()
    assert len(stamp) == len("2026-12-07T23:40:00.123Z") and stamp.endswith("Z") and stamp[19] == "."
    parsed = epoch(stamp)
    assert parsed is not None
    assert before - 0.001 <= parsed <= after  # truncated to the millisecond, never later than it was


def test_both_time_forms_parse_and_records_of_either_form_load() -> None:
    assert epoch("2026-12-07T23:40:00Z") == epoch("2026-12-07T23:40:00.000Z")
    assert epoch("2026-12-07T23:40:00.250Z") == pytest.approx(epoch("2026-12-07T23:40:00Z") + 0.25)  # type: ignore[operator]
    for text in ("2026-12-07T23:40:00Z", "2026-12-07T23:40:00.123Z"):
        data = {**record(3, text).to_data()}
        assert VersionRecord.from_data(data).time == text
    assert epoch("yesterday") is None
    assert epoch("2026-12-07T23:40:00") is None  # no zone: not a time this store writes


async def test_store_errors_are_counted_by_operation(tmp_path: Path) -> None:
    memory = MemoryStore(history=3)
    await memory.open()
    before = dict(STORE_ERRORS.counts)
    with pytest.raises(StoreError):
        await memory.append(record(5, now()))  # not current + 1
    assert STORE_ERRORS.counts.get("append", 0) == before.get("append", 0) + 1
    blocked = tmp_path / "missing-directory" / "store.json"  # its directory does not exist
    store = FileStore(blocked, history=3)
    with pytest.raises(StoreError):
        await store.open()
    assert STORE_ERRORS.counts.get("open", 0) == before.get("open", 0) + 1


def test_config_metrics_render_per_worker_and_merge_propagation() -> None:
    one, two = WorkerMetrics(), WorkerMetrics()
    written = time.time()
    one.served_version(4, written)
    two.served_version(4, written)
    two.served_version(5, None)  # a version without a write time (a start) is not a propagation
    one.served_version(6, time.time() + 3600)  # a writer's clock ahead of ours: counted as zero, not negative
    snapshots = [{**one.snapshot(), "worker": 0}, {**two.snapshot(), "worker": 1}]
    supervisor = {"routes": 0, "reloads": {}, "store_errors": {"refresh": 2, "heartbeat": 1}, "store_up": 0}
    families = {f.name: f for f in text_string_to_metric_families(render(snapshots, supervisor).decode())}
    versions = {s.labels["worker"]: s.value for s in families["gateway_config_version"].samples}
    assert versions == {"0": 6, "1": 5}
    samples = {(s.name, s.labels.get("le")): s.value for s in families["gateway_config_propagation_seconds"].samples}
    assert samples[("gateway_config_propagation_seconds_count", None)] == 3
    assert samples[("gateway_config_propagation_seconds_bucket", repr(PROPAGATION_BUCKETS[0]))] >= 1  # the zero
    assert samples[("gateway_config_propagation_seconds_bucket", "+Inf")] == 3
    errors = {s.labels["op"]: s.value for s in families["gateway_store_errors"].samples if s.name.endswith("_total")}
    assert errors == {"refresh": 2, "heartbeat": 1}
    assert [s.value for s in families["gateway_store_up"].samples] == [0]


def test_config_metrics_are_declared_with_no_worker_and_no_error() -> None:
    families = {f.name: f for f in text_string_to_metric_families(render([], {"routes": 0, "reloads": {}}).decode())}
    assert {"gateway_config_version", "gateway_config_propagation_seconds", "gateway_store_errors"} <= set(families)
    assert [s.value for s in families["gateway_store_up"].samples] == [1]


async def test_a_store_only_this_gateway_writes_lists_this_replica_alone() -> None:
    store = MemoryStore(history=3)
    await store.open()
    cluster = Cluster(store, Settings(), lambda: 7)
    assert await cluster.beat()
    view = await cluster.view()
    assert view["current"] == 0 and view["complete"] is True
    [me] = view["replicas"]
    assert me["id"] == cluster.id and me["self"] is True and me["version"] == 7
    assert set(me) == {"id", "host", "admin", "version", "started", "seen", "self"}


def test_heartbeats_of_other_shapes_are_left_out_and_prefixes_match_literally() -> None:
    good = {"id": "a", "host": "h", "admin": "127.0.0.1:9090", "version": 3, "started": now(), "seen": now()}
    assert _well_formed(good)
    assert not _well_formed({**good, "version": "3"})
    assert not _well_formed({**good, "version": True})
    assert not _well_formed({k: v for k, v in good.items() if k != "seen"})
    assert not _well_formed(["a"])
    assert _glob_escaped("a*b?[c]\\:") == "a\\*b\\?\\[c\\]\\\\:"
