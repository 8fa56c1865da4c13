"""Three replicas on one Redis (issue 12, "Tests and measurements"): real `sluicegate run --workers 2` processes
sharing a private `redis-server` the test starts on a free port (tests.e2e.cluster_helpers), real upstreams.

- A change made on any instance is served by all 6 workers.
- Concurrent writers on two instances: with If-Match exactly one wins and the other gets 412 saying the version
  moved; without If-Match every accepted change is in the history and the final config, versions consecutive.
- Redis stopped and restarted empty: serving never stops, writes answer 503 problem+json, then the replicas
  re-seed Redis with their last good version and writes and propagation work again.
- A version stored without a pub/sub message (a lost message) is caught by the poll.

Nothing is timed: every wait is a guard against a hang.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartUpstream
from tests.e2e.admin_helpers import Recorder, ok, start_recorder
from tests.e2e.cluster_helpers import (
    PREFIX,
    redis_server,
    run_cluster,
    serves_everywhere,
    versions_of,
)
from tests.e2e.ops_helpers import routes_yaml

pytestmark = pytest.mark.timeout(300)  # a guard against a hang: three gateways of two workers each per test

V1 = "/admin/v1"


def route(uri: str, pattern: str, *filters: Any, **more: Any) -> dict[str, Any]:
    return {"uri": uri, "predicates": [f"Path={pattern}"], "filters": list(filters), **more}


def static_routes(upstream: Recorder) -> str:
    return routes_yaml({"id": "s", "uri": upstream.url, "predicates": ["Path=/s/**"]})


async def test_a_change_on_any_instance_serves_in_all_six_workers(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    static = await start_recorder(start_upstream, "static")
    uppers = [await start_recorder(start_upstream, f"up{i}") for i in range(3)]
    async with redis_server(tmp_path / "redis") as redis, run_cluster(tmp_path, static_routes(static), redis) as gws:
        assert set((await versions_of(gws)).values()) == {1}  # the first loaded the file, the others joined it
        for turn, gw in enumerate([*gws, gws[1]]):  # a change made on each instance (and one made again)
            upstream = uppers[turn % 3]
            await ok(gw, "PUT", f"{V1}/routes/d", route(upstream.url, "/d/**"), expected=201 if turn == 0 else 200)
            await serves_everywhere(gws, "/d/x", (200, f"{upstream.name} /d/x"))
        await serves_everywhere(gws, "/s/x", (200, "static /s/x"))
        assert set((await versions_of(gws)).values()) == {5}
        # Each replica's history is the same, and says which change each version was.
        histories = [(await ok(gw, "GET", f"{V1}/versions"))["versions"] for gw in gws]
        assert histories[0] == histories[1] == histories[2]
        assert [v["version"] for v in histories[0]] == [0, 1, 2, 3, 4, 5]
        assert all(v["author"] == "admin" for v in histories[0][2:])
        async with redis.client() as client:
            assert int(await client.get(f"{PREFIX}{{config}}:current")) == 5
