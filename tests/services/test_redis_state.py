"""Filters' keyed values: one behavioural suite run against MemoryBackend and RedisBackend (the machine's Redis at
127.0.0.1:6379, a random key prefix per test, its keys deleted after), plus Redis' failure modes on a private
redis-server this module starts and stops."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from gateway.api import ScriptStore, StateUnavailable
from gateway.services import StateBackend, WorkerServices
from gateway.services.redis_state import RedisBackend, shared_backend
from gateway.services.state import KeyedState, LocalObjects, MemoryBackend
from gateway.settings import Settings
from tests.helpers import free_port

T = TypeVar("T")
REDIS_URL = "redis://127.0.0.1:6379/0"
GUARD = 10.0  # seconds: a hang fails the test instead of stalling the suite; never a performance threshold


async def guarded(call: Awaitable[T]) -> T:
    return await asyncio.wait_for(call, GUARD)


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` until it holds (expiry is the server's business: poll, do not sleep a fixed time)."""
    async with asyncio.timeout(GUARD):
        while not await check():
            await asyncio.sleep(0.05)


@dataclass
class Store:
    """Two "workers" on one store: `a` and `b` are two backends on one Redis (two clients), or one memory backend
    (memory is per worker: the two names are the same process's store)."""

    kind: str
    a: StateBackend
    b: StateBackend
    prefix: str

    def state(
        self, filter_name: str = "Probe", route_id: str = "r1", backend: StateBackend | None = None
    ) -> KeyedState:
        return KeyedState(backend or self.a, LocalObjects(), filter_name, route_id)


async def delete_prefix(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    prefix = f"test-{uuid.uuid4().hex}:"
    if request.param == "memory":
        memory = MemoryBackend(time.monotonic)
        yield Store("memory", memory, memory, prefix)
        return
    a = RedisBackend(REDIS_URL, key_prefix=prefix, timeout=2.0)
    b = RedisBackend(REDIS_URL, key_prefix=prefix, timeout=2.0)
    try:
        yield Store("redis", a, b, prefix)
    finally:
        await a.aclose()
        await b.aclose()
        await delete_prefix(prefix)


async def test_values_round_trip_as_json(store: Store) -> None:
    state = store.state()
    assert await state.get("missing") is None
    for value in ({"b": [1, 2.5, "x"], "a": None}, [1, "two"], "text", 7, 2.5, True):
        await state.set("k", value)
        assert await state.get("k") == value
    await state.delete("k")
    assert await state.get("k") is None
    await state.delete("k")  # deleting what is absent is no error


async def test_a_value_with_a_ttl_expires(store: Store) -> None:
    state = store.state()
    await state.set("short", "v", ttl=0.3)
    await state.set("kept", "v")
    await eventually(lambda: _is_none(state, "short"))
    assert await state.get("kept") == "v"


async def test_a_set_without_ttl_clears_the_expiry(store: Store) -> None:
    state = store.state()
    await state.set("k", 1, ttl=0.3)
    await state.set("k", 2)
    await state.set("marker", 0, ttl=0.3)  # set after: once it is gone, "k"'s old expiry has passed too
    await eventually(lambda: _is_none(state, "marker"))
    assert await state.get("k") == 2


async def test_incr_with_ttl_sets_the_expiry_once_when_it_creates_the_key(store: Store) -> None:
    state = store.state()
    assert await state.incr("window", ttl=0.3) == 1
    assert await state.incr("window", 2, ttl=3600) == 3  # an existing key keeps its expiry: not extended to 1 h
    await eventually(lambda: _is_none(state, "window"))
    assert await state.incr("window", 5, ttl=3600) == 5  # expired, so this call creates it again
    assert await state.incr("plain") == 1 and await state.incr("plain", -3) == -2
    await state.set("text", "abc")
    with pytest.raises(ValueError, match="not an integer"):
        await state.incr("text")
    with pytest.raises(ValueError, match="ttl"):
        await state.incr("window", ttl=0)


async def test_concurrent_increments_lose_nothing(store: Store) -> None:
    a, b = store.state(backend=store.a), store.state(backend=store.b)
    results = await guarded(asyncio.gather(*(s.incr("n", ttl=60) for s in [a, b] * 100)))
    assert sorted(results) == list(range(1, 201))
    assert await b.get("n") == 200


async def test_compare_and_set(store: Store) -> None:
    state = store.state()
    assert await state.compare_and_set("k", None, {"v": 1, "w": 2}) is True  # None: only if absent
    assert await state.compare_and_set("k", None, {"v": 9}) is False
    assert await state.compare_and_set("k", {"v": 2, "w": 2}, {"v": 9}) is False
    assert await state.compare_and_set("k", {"w": 2, "v": 1}, {"v": 3}, ttl=0.3) is True  # key order is no difference
    assert await state.get("k") == {"v": 3}
    assert await state.compare_and_set("k", {"v": 3.0}, {"v": 4}) is False  # canonical JSON: 3 and 3.0 differ
    await eventually(lambda: _is_none(state, "k"))  # the winner's ttl applies to the new value
    assert await state.compare_and_set("k", None, "again") is True


async def test_of_many_concurrent_compare_and_sets_exactly_one_wins_per_round(store: Store) -> None:
    a, b = store.state(backend=store.a), store.state(backend=store.b)
    await a.set("version", 0)
    for round_ in range(20):
        attempts = [s.compare_and_set("version", round_, round_ + 1) for s in [a, b] * 25]
        wins = await guarded(asyncio.gather(*attempts))
        assert wins.count(True) == 1, (round_, wins.count(True))
        assert await b.get("version") == round_ + 1


# A token bucket: KEYS[1] holds [tokens, updated]; ARGV: capacity, refill per second, cost. Returns
# [1 if allowed else 0, whole tokens left]. Lua reads Redis' clock, its twin the backend's.
BUCKET_LUA = """
local capacity, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tokens, updated = capacity, now
local raw = redis.call('GET', KEYS[1])
if raw then
  local saved = cjson.decode(raw)
  tokens, updated = saved[1], saved[2]
end
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('SET', KEYS[1], cjson.encode({tokens, now}), 'PX', math.ceil(capacity / rate * 1000) + 1000)
return {allowed, math.floor(tokens)}
"""


def bucket_python(store: ScriptStore, keys: list[str], args: list[Any]) -> list[int]:
    capacity, rate, cost = (float(a) for a in args)
    now = store.now()
    saved = store.get(keys[0])
    tokens, updated = (capacity, now) if saved is None else saved
    tokens = min(capacity, tokens + max(0.0, now - updated) * rate)
    allowed = 0
    if tokens >= cost:
        tokens -= cost
        allowed = 1
    store.set(keys[0], [tokens, now], ttl=math.ceil(capacity / rate * 1000) / 1000 + 1)
    return [allowed, math.floor(tokens)]


async def test_a_token_bucket_script_and_its_python_twin_give_the_same_answers(store: Store) -> None:
    state = store.state()
    state.script("bucket", BUCKET_LUA, bucket_python)
    # a refill too slow to matter within the test: the answers are exact on both backends
    answers = [await state.run("bucket", ["client-1"], [5, 0.001, 1]) for _ in range(7)]
    assert answers == [[1, 4], [1, 3], [1, 2], [1, 1], [1, 0], [0, 0], [0, 0]]
    assert await state.run("bucket", ["client-2"], [5, 0.001, 2]) == [1, 3]  # another key: another bucket
    saved = await state.get("client-1")  # the script's keys are the filter's keys
    assert isinstance(saved, list) and saved[0] < 1

    # refilling: empty a fast bucket, then it admits again
    while (await state.run("bucket", ["fast"], [2, 20, 1]))[0] == 1:
        pass

    async def admitted() -> bool:
        return bool((await state.run("bucket", ["fast"], [2, 20, 1]))[0] == 1)

    await eventually(admitted)
    with pytest.raises(KeyError, match="no state script"):
        await state.run("unknown", ["k"], [])


async def test_scripts_are_shared_by_the_filter_and_its_route_view(store: Store) -> None:
    state = store.state()
    state.script("bucket", BUCKET_LUA, bucket_python)
    assert await state.route.run("bucket", ["k"], [3, 0.001, 1]) == [1, 2]
    assert await state.get("k") is None and await state.route.get("k") is not None


async def test_two_workers_see_each_others_values(store: Store) -> None:
    a, b = store.state(backend=store.a), store.state(backend=store.b)
    await a.set("shared", {"from": "a"})
    assert await b.get("shared") == {"from": "a"}
    await a.incr("hits")
    await b.incr("hits")
    assert await a.get("hits") == 2
    await b.delete("shared")
    assert await a.get("shared") is None


async def test_memory_is_per_worker() -> None:
    one, two = WorkerServices.isolated(), WorkerServices.isolated()
    await one.scoped("Probe", "r").state.set("k", 1)
    assert await two.scoped("Probe", "r").state.get("k") is None


async def test_two_filters_and_two_routes_never_collide(store: Store) -> None:
    first, second = store.state("First", "r1"), store.state("Second", "r1")
    await first.set("k", "first")
    await second.set("k", "second")
    assert await first.get("k") == "first" and await second.get("k") == "second"
    on_r1, on_r2 = first.route, store.state("First", "r2").route
    await on_r1.set("k", "r1")
    await on_r2.set("k", "r2")
    assert (await on_r1.get("k"), await on_r2.get("k"), await first.get("k")) == ("r1", "r2", "first")
    # route ids with the separators in them: route "a:b" key "c" is not route "a" key "b:c"
    await store.state("First", "a:b").route.set("c", "a:b/c")
    assert await store.state("First", "a").route.get("b:c") is None
    await store.state("First", "a@b").route.set("c", "a@b/c")
    assert await store.state("First", "a").route.get("c") is None


async def test_redis_keys_carry_the_prefix_and_the_namespace() -> None:
    prefix = f"test-{uuid.uuid4().hex}:"
    backend = RedisBackend(REDIS_URL, key_prefix=prefix, timeout=2.0)
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        state = KeyedState(backend, LocalObjects(), "Limiter", "orders:v1")
        await state.set("k", {"b": 1, "a": 2})
        await state.route.incr("n", ttl=60)
        keys = sorted([key async for key in client.scan_iter(match=f"{prefix}*")])
        assert keys == [f"{prefix}state:Limiter:k", f"{prefix}state:Limiter@orders%3Av1:n"]
        assert await client.get(f"{prefix}state:Limiter:k") == '{"a":2,"b":1}'  # canonical JSON
        assert 0 < await client.pttl(f"{prefix}state:Limiter@orders%3Av1:n") <= 60_000
    finally:
        await backend.aclose()
        await client.aclose()
        await delete_prefix(prefix)


def test_the_shared_backend_comes_from_state_redis_url_else_store_redis_url() -> None:
    assert shared_backend(Settings()) is None  # memory by default
    own = shared_backend(Settings.model_validate({"state": {"redis_url": REDIS_URL, "key_prefix": "x:", "timeout": 1}}))
    assert own is not None and own.timeout == 1 and own._key("F:k") == "x:state:F:k"
    inherited = shared_backend(Settings.model_validate({"store": {"redis_url": "redis://127.0.0.1:1/0"}}))
    assert inherited is not None and inherited._redis.connection_pool.connection_kwargs["port"] == 1
    both = shared_backend(
        Settings.model_validate({"store": {"redis_url": "redis://127.0.0.1:1/0"}, "state": {"redis_url": REDIS_URL}})
    )
    assert both is not None and both._redis.connection_pool.connection_kwargs["port"] == 6379


# -- failures: a private redis-server -------------------------------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + GUARD
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
            assert process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield process, port
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)  # a test may leave it stopped
            process.terminate()
        process.wait(GUARD)


def every_operation(state: KeyedState) -> list[Callable[[], Awaitable[Any]]]:
    return [
        lambda: state.get("k"),
        lambda: state.set("k", 1),
        lambda: state.set("k", 1, ttl=5),
        lambda: state.incr("n"),
        lambda: state.incr("n", ttl=5),
        lambda: state.compare_and_set("k", None, 1),
        lambda: state.delete("k"),
        lambda: state.run("bucket", ["b"], [5, 1, 1]),
    ]


async def test_a_stopped_redis_raises_state_unavailable(private_redis: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = private_redis
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    try:
        state = KeyedState(backend, LocalObjects(), "Probe")
        state.script("bucket", BUCKET_LUA, bucket_python)
        await state.set("k", "before")
        assert await state.run("bucket", ["b"], [5, 1, 1]) == [1, 4]
        process.terminate()
        process.wait(GUARD)
        for operation in every_operation(state):
            with pytest.raises(StateUnavailable, match="Redis unavailable"):
                await guarded(operation())
    finally:
        await backend.aclose()


async def test_a_hung_redis_raises_state_unavailable_at_the_timeout_and_recovers(
    private_redis: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = private_redis
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        state = KeyedState(backend, LocalObjects(), "Probe")
        state.script("bucket", BUCKET_LUA, bucket_python)
        await state.set("k", "before")
        os.kill(process.pid, signal.SIGSTOP)  # accepts nothing, answers nothing: only the timeout ends a call
        try:
            for operation in every_operation(state):
                with pytest.raises(StateUnavailable):
                    await guarded(operation())
        finally:
            os.kill(process.pid, signal.SIGCONT)

        async def answers() -> bool:
            try:
                return bool(await state.get("k") == "before")
            except StateUnavailable:
                return False

        await eventually(answers)  # the same backend works again once Redis does: no restart
        assert await state.run("bucket", ["b"], [5, 1, 1]) == [1, 4]
    finally:
        await backend.aclose()


async def test_no_redis_at_all_raises_state_unavailable() -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        with pytest.raises(StateUnavailable, match="Redis unavailable"):
            await guarded(backend.incr("k", ttl=1))
    finally:
        await backend.aclose()


async def test_a_failing_script(store: Store) -> None:
    """A Lua error is Redis refusing the call (StateUnavailable naming the script); a Python twin's exception
    propagates as it is (memory never raises StateUnavailable)."""
    state = store.state()
    state.script("broken", "return redis.call('NOPE')", lambda s, k, a: 1 // 0)
    if store.kind == "redis":
        with pytest.raises(StateUnavailable, match="Probe:broken"):
            await state.run("broken", ["k"], [])
    else:
        with pytest.raises(ZeroDivisionError):
            await state.run("broken", ["k"], [])


async def _is_none(state: KeyedState, key: str) -> bool:
    return await state.get(key) is None


def test_workers_get_the_state_url_and_no_other_secret() -> None:
    settings = Settings.model_validate(
        {"store": {"redis_url": "redis://:store-pw@127.0.0.1:1/0"}, "admin": {"token": "t" * 32}}
    )
    sent = settings.for_workers()
    assert sent["state"]["redis_url"] == "redis://:store-pw@127.0.0.1:1/0"  # the default: store.redis_url
    assert sent["store"] == {"key_prefix": "sluicegate:"} and sent["admin"]["token"] == "**********"
    received = shared_backend(Settings.model_validate(sent))
    assert received is not None and received._redis.connection_pool.connection_kwargs["port"] == 1
    with pytest.raises(ValueError, match="redis_url"):  # what plain model_dump would send: a masked URL, refused
        Settings.model_validate(settings.model_dump(mode="json"))
