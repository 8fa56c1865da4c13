"""Helpers of the cluster tests (issue 12): a private `redis-server` per test, on a free port, that a test may stop
and start again on the same port (it has no persistence, so it comes back empty), and several real gateways
(`sluicegate run`) sharing it as their store.

Nothing is mocked: Redis is the real server binary, the gateways are real process trees, upstreams are aiohttp
apps on 127.0.0.1. Every wait is bounded by a guard; no assertion compares a measured time with a threshold.
This module is not rewritten by pytest, so it raises AssertionError with a message itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from tests.e2e.admin_helpers import served_by_each
from tests.e2e.ops_helpers import GUARD, GatewayProcess, run_gateway
from tests.helpers import free_port

REDIS_SERVER = shutil.which("redis-server")
PREFIX = "sluicegate-test:"  # store.key_prefix of the cluster tests (not the default: shows the setting is used)
CONVERGE_GUARD = 30.0  # seconds for every worker of every instance to serve a change: a guard against a hang


@dataclass
class RedisServer:
    """A `redis-server` this test owns on 127.0.0.1:`port`, without persistence (`--save ''`, no AOF)."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    password: str | None = None  # `--requirepass`: the URL carries it, as a deployment's secret URL would

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self, guard: float = GUARD) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if REDIS_SERVER is None:
            raise AssertionError("redis-server is not installed")
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("redis-server is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--daemonize", "no", "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")]
        if self.password:
            command += ["--requirepass", self.password]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + guard
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(RedisError, OSError):
                async with self.client() as client:
                    if await client.ping():
                        return
            await asyncio.sleep(0.05)
        raise AssertionError(f"redis-server on port {self.port} did not answer within {guard:g}s:\n{self.log()}")

    async def stop(self, guard: float = GUARD) -> None:
        """Stop the server (SIGTERM; SIGKILL after the guard) and wait until it has exited: its data is gone."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        deadline = time.monotonic() + guard
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait(guard)

    async def get(self, key: str) -> bytes:
        """The value of `key` (AssertionError when there is none)."""
        async with self.client() as client:
            value = await client.get(key)
        if not isinstance(value, bytes):
            raise AssertionError(f"redis has no {key!r}")
        return value

    def client(self) -> aioredis.Redis:
        """A client of this server (close it: `async with server.client() as c`); answers are bytes."""
        return aioredis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=GUARD,
            socket_connect_timeout=GUARD,
        )


@contextlib.asynccontextmanager
async def redis_server(directory: Path, password: str | None = None) -> AsyncIterator[RedisServer]:
    """A started private redis-server, stopped on exit whatever happened."""
    server = RedisServer(directory, password=password)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


def cluster_settings(redis: RedisServer, **store: Any) -> dict[str, Any]:
    """Gateway settings for the Redis store on `redis` (`store` adds or overrides `store.*` fields)."""
    return {"store": {"redis_url": redis.url, "key_prefix": PREFIX, **store}}


@contextlib.asynccontextmanager
async def run_cluster(
    tmp_path: Path, routes: str, redis: RedisServer, count: int = 3, **store: Any
) -> AsyncIterator[list[GatewayProcess]]:
    """`count` gateways (`--workers 2` each, named gw0, gw1, ...) on `redis`, every one ready; stopped on exit."""
    settings = cluster_settings(redis, **store)
    async with contextlib.AsyncExitStack() as stack:
        gateways = [
            await stack.enter_async_context(
                run_gateway(tmp_path, routes, "--workers", "2", settings=settings, name=f"gw{i}")
            )
            for i in range(count)
        ]
        yield gateways


async def serves_everywhere(
    gateways: Sequence[GatewayProcess], path: str, expected: tuple[int, str], guard: float = CONVERGE_GUARD
) -> dict[str, dict[int, tuple[int, str]]]:
    """Wait until every worker of every gateway answers GET `path` with `expected` (status, body), each worker
    proved by a request only it can take (the others SIGSTOP'ed). Returns the last answers by gateway and pid;
    AssertionError with what each worker answered when the guard runs out."""
    deadline = time.monotonic() + guard
    answers: dict[str, dict[int, tuple[int, str]]] = {}
    while True:
        for gw in gateways:
            name = gw.config.parent.name
            if all(a == expected for a in answers.get(name, {}).values()) and name in answers:
                continue  # a worker serving a version keeps it: no need to prove it again
            answers[name] = await served_by_each(gw, path)
        if all(a == expected for by_pid in answers.values() for a in by_pid.values()):
            return answers
        if time.monotonic() > deadline:
            raise AssertionError(f"GET {path} not {expected} in every worker within {guard:g}s: {answers}")
        await asyncio.sleep(0.1)


async def versions_of(gateways: Sequence[GatewayProcess]) -> dict[str, int]:
    """Each gateway's routes version (the supervisor's), by its name."""
    return {gw.config.parent.name: (await gw.routes())["version"] for gw in gateways}


def routes_of(config: Mapping[str, Any], source: str = "dynamic") -> dict[str, str]:
    """id -> uri of the routes of `source` in a `GET /admin/v1/config` or `/versions/<n>` document."""
    return {r["id"]: r["uri"] for r in config["routes"] if r["source"] == source}
