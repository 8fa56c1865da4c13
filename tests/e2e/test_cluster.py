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

import asyncio
import functools
import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartUpstream
from tests.e2e.admin_helpers import Recorder, call, get, ok, problem, start_recorder
from tests.e2e.cluster_helpers import (
    PREFIX,
    RedisServer,
    redis_server,
    routes_of,
    run_cluster,
    serves_everywhere,
    versions_of,
)
from tests.e2e.ops_helpers import GatewayProcess, eventually, routes_yaml, wait_until

pytestmark = pytest.mark.timeout(300)  # a guard against a hang: three gateways of two workers each per test

V1 = "/admin/v1"
WRITE_GUARD = 10.0  # seconds for a write to answer while Redis is away: a guard against a hang, not the SLO


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
        assert int(await redis.get(f"{PREFIX}{{config}}:current")) == 5


async def test_concurrent_writers_with_if_match_one_wins_the_other_gets_412(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    static, one, two = [await start_recorder(start_upstream, n) for n in ("static", "one", "two")]
    async with (
        redis_server(tmp_path / "redis") as redis,
        run_cluster(tmp_path, static_routes(static), redis, count=2) as gws,
    ):
        for attempt in range(5):  # the race, several times: each time one instance wins
            current = (await ok(gws[0], "GET", f"{V1}/versions"))["current"]
            await eventually(functools.partial(_at, gws[1], current), f"instance 1 at version {current}")
            tag = {"If-Match": f'"{current}"'}
            answers = await asyncio.gather(
                call(gws[0], "PUT", f"{V1}/routes/w", route(one.url, f"/w{attempt}/**"), headers=tag),
                call(gws[1], "PUT", f"{V1}/routes/w", route(two.url, f"/w{attempt}/**"), headers=tag),
            )
            statuses = sorted(a.status for a in answers)
            assert statuses in ([200, 412], [201, 412]), [(a.status, a.text) for a in answers]
            winner = next(i for i, a in enumerate(answers) if a.status < 300)
            loser = answers[1 - winner]
            # The loser says why: either its CAS lost ("the version moved: another replica wrote version N first")
            # or it had already followed the winner ("the current version is N, not M").
            detail = problem(loser, 412)["detail"]
            assert f"version {current + 1}" in detail, detail
            assert "moved" in detail or f"not {current}" in detail, detail
            assert answers[winner].json() == {"version": current + 1}
            # The winner's route serves everywhere; the loser's change is nowhere.
            expected = (200, f"{(one, two)[winner].name} /w{attempt}/x")
            await serves_everywhere(gws, f"/w{attempt}/x", expected)
            for gw in gws:
                config = await ok(gw, "GET", f"{V1}/config")
                assert config["version"] == current + 1
                assert routes_of(config) == {"w": (one, two)[winner].url}


async def test_concurrent_writers_without_if_match_lose_nothing(tmp_path: Path, start_upstream: StartUpstream) -> None:
    static, upstream = await start_recorder(start_upstream, "static"), await start_recorder(start_upstream, "up")
    per_instance = 10
    async with (
        redis_server(tmp_path / "redis") as redis,
        run_cluster(tmp_path, static_routes(static), redis, count=2) as gws,
    ):
        first = (await ok(gws[0], "GET", f"{V1}/versions"))["current"]
        puts = [
            (gw, f"i{n}-{k}")
            for k in range(per_instance)
            for n, gw in enumerate(gws)  # interleaved: both instances write at the same time
        ]
        answers = await asyncio.gather(
            *(call(gw, "PUT", f"{V1}/routes/{i}?reason=put-{i}", route(upstream.url, f"/{i}/**")) for gw, i in puts)
        )
        by_id = {i: a for (_, i), a in zip(puts, answers, strict=True)}
        accepted = {i: a.json()["version"] for i, a in by_id.items() if a.status == 201}
        refused = {i: a for i, a in by_id.items() if a.status != 201}
        # A put that lost the compare-and-set more often than the retries allow says so (503, retry): not a loss.
        for i, answer in refused.items():
            assert "other replicas kept writing first" in problem(answer, 503)["detail"], (i, answer.text)
        assert {i.split("-")[0] for i in accepted} == {"i0", "i1"}  # both instances got changes in
        # Every accepted change has its own version, and the versions are consecutive after `first`.
        assert sorted(accepted.values()) == list(range(first + 1, first + 1 + len(accepted)))
        last = first + len(accepted)
        await eventually(lambda: _all_at(gws, last), f"both instances at version {last}")
        for gw in gws:
            listed = await ok(gw, "GET", f"{V1}/versions")
            assert listed["current"] == last
            history = {v["version"]: v["reason"] for v in listed["versions"] if v["version"] > first}
            assert history == {v: f"put-{i}" for i, v in accepted.items()}
            config = await ok(gw, "GET", f"{V1}/config")
            assert routes_of(config) == dict.fromkeys(accepted, upstream.url)
            for i in by_id:
                status, body = await get(gw, f"/{i}/x")
                assert (status, body if i in accepted else "") == ((200, f"up /{i}/x") if i in accepted else (404, ""))


async def _at(gw: GatewayProcess, version: int) -> bool | None:
    return True if (await gw.routes())["version"] == version else None


async def _all_at(gws: list[GatewayProcess], version: int) -> bool | None:
    return True if set((await versions_of(gws)).values()) == {version} else None


@dataclass
class Traffic:
    """Fresh-connection GETs of `paths` on every instance, round after round, until stopped; every answer checked."""

    gws: list[GatewayProcess]
    expected: dict[str, tuple[int, str]]
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stop.is_set():
            for gw in self.gws:
                for path, expected in self.expected.items():
                    try:
                        got = await get(gw, path)
                    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                        got = (0, repr(exc))
                    if got == expected:
                        self.ok += 1
                    else:
                        self.failures.append(f"{gw.config.parent.name} {path}: {got}")
            await asyncio.sleep(0.02)


async def test_redis_outage_serving_goes_on_writes_503_then_replicas_reseed_an_empty_redis(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    """Redis goes away and comes back EMPTY (the test's server has no persistence).

    While it is away every replica keeps serving its last good version (static and dynamic routes alike), the views
    answer from the replica's own copy, and every write answers 503 problem+json naming the store (nothing changes).
    When it is back, each replica notices on its next poll (`store.poll_interval`) that Redis has no current
    version and seeds it again with its own last good version, logging "has no config (Redis restarted empty?):
    seeding it again with version N, the last good one". Seeding is a compare-and-set too (only where there is no
    current version): the first replica to reach Redis wins, the others find it seeded and load it, so all of them
    are on one version again, without a restart. The history in Redis then starts at that version (older versions
    were lost with Redis's data). Writes work again, and a change on one instance reaches all of them.
    """
    static, one, two = [await start_recorder(start_upstream, n) for n in ("static", "one", "two")]
    async with redis_server(tmp_path / "redis") as redis, run_cluster(tmp_path, static_routes(static), redis) as gws:
        await ok(gws[0], "PUT", f"{V1}/routes/d", route(one.url, "/d/**"), expected=201)  # version 2
        await serves_everywhere(gws, "/d/x", (200, "one /d/x"))
        before = [await ok(gw, "GET", f"{V1}/config") for gw in gws]
        traffic = Traffic(gws, {"/s/x": (200, "static /s/x"), "/d/x": (200, "one /d/x")})
        running = asyncio.create_task(traffic.run())
        try:
            await redis.stop()
            served_before_writes = traffic.ok
            for gw in gws:
                async with asyncio.timeout(WRITE_GUARD):
                    answer = await call(gw, "PUT", f"{V1}/routes/e", route(two.url, "/e/**"))
                assert f"store redis://127.0.0.1:{redis.port}/0 is unavailable" in problem(answer, 503)["detail"]
                async with asyncio.timeout(WRITE_GUARD):
                    answer = await call(gw, "DELETE", f"{V1}/routes/d")
                problem(answer, 503)
            # Nothing changed: the views answer from the replica's copy, and serving went on throughout.
            assert [await ok(gw, "GET", f"{V1}/config") for gw in gws] == before
            await wait_until(lambda: traffic.ok > served_before_writes + 6, "serving while Redis is away")

            await redis.start()  # same port, no data
            assert redis.starts == 2

            async def reseeded() -> bool | None:
                async with redis.client() as client:
                    return True if await client.get(f"{PREFIX}{{config}}:current") == b"2" else None

            await eventually(reseeded, "a replica seeded the restarted Redis with version 2")
            seeding = "has no config (Redis restarted empty?): seeding it again with version 2, the last good one"
            await wait_until(lambda: any(seeding in gw.stderr() for gw in gws), "the seeding logged")
            # Writes work again once a replica reseeded (one right after the restart may still get 503).
            put = await eventually(lambda: _accepted(gws[1], "e", route(two.url, "/e/**")), "a write after the restart")
            assert put == {"version": 3}
            await serves_everywhere(gws, "/e/x", (200, "two /e/x"))
            await ok(gws[2], "PUT", f"{V1}/routes/f", route(two.url, "/f/**"), expected=201)  # 4, on another instance
            await serves_everywhere(gws, "/f/x", (200, "two /f/x"))
        finally:
            traffic.stop.set()
            await running
        assert traffic.failures == [], traffic.failures[:10]
        assert traffic.ok > served_before_writes
        for gw in gws:
            listed = await ok(gw, "GET", f"{V1}/versions")
            assert listed["current"] == 4
            assert [v["version"] for v in listed["versions"]] == [2, 3, 4]  # Redis's history restarts at the seed
            assert routes_of(await ok(gw, "GET", f"{V1}/config")) == {"d": one.url, "e": two.url, "f": two.url}
        # One replica seeded Redis, and only it says so: an operator reading the logs must not see three seedings.
        seeded = [gw.config.parent.name for gw in gws if seeding in gw.stderr()]
        assert len(seeded) == 1, seeded


async def _accepted(gw: GatewayProcess, route_id: str, body: dict[str, Any]) -> Any:
    """The answer of PUT /routes/<id> when it is 2xx, None while it answers 503 (AssertionError otherwise)."""
    answer = await call(gw, "PUT", f"{V1}/routes/{route_id}", body)
    if answer.status == 503:
        return None
    if answer.status not in (200, 201):
        raise AssertionError(f"answered {answer.status}: {answer.text}")
    return answer.json()


async def test_a_version_stored_without_its_message_is_caught_by_the_poll(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    """A lost pub/sub message: version n+1 is written straight into Redis (record and current version), as the
    append script would, but nothing is published. Every replica still serves it: the poll (every
    `store.poll_interval`, 0.5 s here) is the safety net."""
    static, one, two = [await start_recorder(start_upstream, n) for n in ("static", "one", "two")]
    async with (
        redis_server(tmp_path / "redis") as redis,
        run_cluster(tmp_path, static_routes(static), redis, poll_interval=0.5) as gws,
    ):
        await ok(gws[0], "PUT", f"{V1}/routes/d", route(one.url, "/d/**", "StripPrefix=1"), expected=201)
        await serves_everywhere(gws, "/d/x", (200, "one /x"))
        async with redis.client() as client:
            current = int(await redis.get(f"{PREFIX}{{config}}:current"))
            record = json.loads(await redis.get(f"{PREFIX}{{config}}:v:{current}"))
            [stored] = record["dynamic"]  # the wire shape of a route put through the API
            assert set(stored) == {"id", "uri", "order", "predicates", "filters", "metadata"}, stored
            assert stored["predicates"][0]["name"] == "Path"
            missed = {
                **stored,
                "id": "m",
                "uri": two.url,
                "predicates": [{"name": "Path", "args": {"patterns": ["/m/**"]}, "shortcut": "/m/**"}],
            }
            assert set(stored["predicates"][0]) == {"name", "args", "shortcut"}, stored["predicates"][0]
            following = {
                **record,
                "version": current + 1,
                "author": "test",
                "reason": "written without a pub/sub message",
                "dynamic": [stored, missed],
                "changed": ["m"],
            }
            subscribers = await client.pubsub_numsub(f"{PREFIX}config:versions")
            assert subscribers == [(f"{PREFIX}config:versions".encode(), 3)]  # each replica listens: none is told
            await client.set(f"{PREFIX}{{config}}:v:{current + 1}", json.dumps(following))
            await client.set(f"{PREFIX}{{config}}:current", current + 1)
        await serves_everywhere(gws, "/m/x", (200, "two /x"))  # with d's StripPrefix=1
        await serves_everywhere(gws, "/d/x", (200, "one /x"))
        for gw in gws:
            assert (await gw.routes())["version"] == current + 1
            latest = (await ok(gw, "GET", f"{V1}/versions"))["versions"][-1]
            assert (latest["version"], latest["reason"]) == (current + 1, "written without a pub/sub message")
            assert routes_of(await ok(gw, "GET", f"{V1}/config")) == {"d": one.url, "m": two.url}


@pytest.mark.parametrize("then", ["nothing", "b_writes"])
async def test_a_lagging_replica_that_reseeds_an_empty_redis_does_not_split_the_cluster(
    tmp_path: Path, start_upstream: StartUpstream, then: str
) -> None:
    """Redis restarts empty while replica B has not yet applied A's last change (B's supervisor is SIGSTOP'ed:
    a replica that lags, as one under load or paused would). B reaches Redis first and seeds it with *its* last
    good version 2, older than A's 3; with `b_writes`, B then stores a change of its own (another version 3).
    Whatever the cluster settles on, it must settle: A and B must end up serving the same routes, those of the
    version Redis holds, without a restart (else A serves a config no other replica has, and A's next write,
    planned on its own version, silently drops what B stored)."""
    static, one, two = [await start_recorder(start_upstream, n) for n in ("static", "one", "two")]
    async with (
        redis_server(tmp_path / "redis") as redis,
        run_cluster(tmp_path, static_routes(static), redis, count=2) as gws,
    ):
        a, b = gws
        await ok(a, "PUT", f"{V1}/routes/d", route(one.url, "/d/**"), expected=201)  # version 2, everywhere
        await serves_everywhere(gws, "/d/x", (200, "one /d/x"))
        b.signal(signal.SIGSTOP)  # B's supervisor only: its workers keep serving version 2
        try:
            await ok(a, "PUT", f"{V1}/routes/d", route(two.url, "/d/**"))  # version 3: B does not learn of it
            a.signal(signal.SIGSTOP)
            try:
                await redis.stop()
                await redis.start()  # empty
                b.signal(signal.SIGCONT)
                await eventually(
                    functools.partial(_redis_at, redis, 2), "B seeded the restarted Redis with its version 2"
                )
                if then == "b_writes":
                    put = await eventually(functools.partial(_accepted, b, "e", route(one.url, "/e/**")), "B writes")
                    assert put == {"version": 3}
            finally:
                a.signal(signal.SIGCONT)
        finally:
            b.signal(signal.SIGCONT)

        async def agreed() -> bool | None:
            current = int(await redis.get(f"{PREFIX}{{config}}:current"))
            record = json.loads(await redis.get(f"{PREFIX}{{config}}:v:{current}"))
            stored = {r["id"]: r["uri"] for r in record["dynamic"]}
            views = [await ok(gw, "GET", f"{V1}/config") for gw in gws]
            return True if all((v["version"], routes_of(v)) == (current, stored) for v in views) else None

        try:
            await eventually(agreed, "both replicas serve the routes of the version Redis holds", guard=20.0)
        except AssertionError as exc:
            views = {gw.config.parent.name: await ok(gw, "GET", f"{V1}/config") for gw in gws}
            shown = {name: (v["version"], routes_of(v)) for name, v in views.items()}
            answers = {gw.config.parent.name: await get(gw, "/d/x") for gw in gws}
            current = int(await redis.get(f"{PREFIX}{{config}}:current"))
            record = json.loads(await redis.get(f"{PREFIX}{{config}}:v:{current}"))
            stored = {r["id"]: r["uri"] for r in record["dynamic"]}
            raise AssertionError(
                f"{exc}: config views {shown}, /d/x {answers}, Redis at version {current}: {stored}"
            ) from None
        configs = [routes_of(await ok(gw, "GET", f"{V1}/config")) for gw in gws]
        served = (200, f"{'one' if configs[0]['d'] == one.url else 'two'} /d/x")
        await serves_everywhere(gws, "/d/x", served)


async def _redis_at(redis: RedisServer, version: int) -> bool | None:
    async with redis.client() as client:
        return True if await client.get(f"{PREFIX}{{config}}:current") == str(version).encode() else None
