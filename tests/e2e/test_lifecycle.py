"""Filter lifecycle through the whole `sluicegate run` process tree: `start` before a version serves, a failing
`start` refuses the reload in every worker (two-phase hand-out), `stop` after a swapped-out version's in-flight
requests finished.

The plugin below is installed as a real distribution (tests.plugins) on the workers' PYTHONPATH. Its filter writes
"start TAG PID" / "stop TAG PID" lines to an events file the test reads, and tags every response with X-Tag.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.conftest import StartUpstream
from tests.e2e.ops_helpers import (
    CLIENT_TIMEOUT,
    GUARD,
    eventually,
    routes_yaml,
    run_gateway,
    start_text_upstream,
    wait_until,
)
from tests.e2e.test_ops_reload import rewrite
from tests.plugins import write_distribution

PLUGIN = """
import os
from pydantic import Field
from gateway.api import ComponentConfig, FilterSpec


class Config(ComponentConfig):
    tag: str = Field(description="Value of X-Tag.")
    events: str = Field(description="File the start/stop events are appended to.")
    claim: str = Field("", description="If set: start claims this file, and fails when another start claimed it.")
    die: bool = Field(False, description="start ends the worker process (a version that kills its worker).")


class Tagged:
    def __init__(self, config):
        self.config = config

    def _event(self, what):
        with open(self.config.events, "a", encoding="utf-8") as out:
            out.write(f"{what} {self.config.tag} {os.getpid()}\\n")

    async def start(self):
        if self.config.die:
            self._event("dying")
            os._exit(3)
        if self.config.claim:
            try:
                os.close(os.open(self.config.claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                self._event("start-failed")
                raise RuntimeError("the claim is taken") from None
        self._event("start")

    async def stop(self):
        self._event("stop")

    async def __call__(self, exchange, call_next):
        response = await call_next(exchange)
        response.headers.set("X-Tag", self.config.tag)
        return response


SPEC = FilterSpec(name="Tagged", order=960, config=Config, build=lambda c, ctx: Tagged(c),
                  summary="test plugin with start and stop", example={"tag": "t", "events": "/dev/null"})
"""


def _install(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    write_distribution(site, "team-tagged", {"sluicegate.filters": {"Tagged": "plug_tagged:SPEC"}},
                       {"plug_tagged": PLUGIN})  # fmt: skip
    return {"PYTHONPATH": str(site)}


def _routes(upstream_url: str, tag: str, events: Path, claim: Path | None = None, die: bool = False) -> str:
    args = {
        "tag": tag,
        "events": str(events),
        **({"claim": str(claim)} if claim else {}),
        **({"die": True} if die else {}),
    }
    route = {
        "id": "api",
        "uri": upstream_url,
        "predicates": ["Path=/api/**"],
        "filters": [{"name": "Tagged", "args": args}],
    }
    return routes_yaml(route)


def _events(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    return [(w, t, int(p)) for w, t, p in (line.split() for line in path.read_text().splitlines())]


async def _tags(url: str, count: int) -> set[str]:
    """X-Tag of `count` requests, each on a new connection (so the workers share them)."""
    tags = set()
    for _ in range(count):
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session, session.get(url) as resp:
            assert resp.status == 200, await resp.text()
            tags.add(resp.headers["X-Tag"])
    return tags


async def test_a_start_failing_in_one_worker_refuses_the_reload_in_every_worker(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_text_upstream(start_upstream)
    events, claim = tmp_path / "events", tmp_path / "claim"
    routes = _routes(upstream.url, "v1", events)
    async with run_gateway(tmp_path, routes, "--workers", "2", env=_install(tmp_path)) as gw:
        pids = {w["pid"] for w in (await gw.routes())["workers"]}
        assert sorted(e[0] for e in _events(events)) == ["start", "start"]  # each worker started v1 before serving
        assert {p for _, _, p in _events(events)} == pids
        # v2: the first worker's start claims the file, the second's fails; the first must drop v2 again.
        rewrite(gw.config, _routes(upstream.url, "v2", events, claim))
        gw.signal(signal.SIGHUP)
        await wait_until(lambda: "reload refused" in gw.stderr(), "the reload to be refused")
        assert "the claim is taken" in gw.stderr()
        v2 = [(what, pid) for what, tag, pid in _events(events) if tag == "v2"]
        assert sorted(what for what, _ in v2) == ["start", "start-failed", "stop"]  # the prepared one was aborted
        started = next(pid for what, pid in v2 if what == "start")
        assert ("stop", started) in v2
        view = await gw.routes()
        assert view["version"] == 1 and [w["version"] for w in view["workers"]] == [1, 1]
        assert await _tags(gw.url("/api/x"), 20) == {"v1"}
        assert not any(what == "stop" and tag == "v1" for what, tag, _ in _events(events))
        # The same version without the claim reloads: v2 serves everywhere, v1 stops in both workers.
        rewrite(gw.config, _routes(upstream.url, "v2", events))
        gw.signal(signal.SIGHUP)
        await gw.wait_for_version(2)
        assert await _tags(gw.url("/api/x"), 10) == {"v2"}
        await wait_until(lambda: sum(e[:2] == ("stop", "v1") for e in _events(events)) == 2, "v1 stopped twice")
    # Every start has its stop: the aborted v2, then at the drain the v2 of both workers.
    stops = sorted((tag, pid) for what, tag, pid in _events(events) if what == "stop")
    assert stops == sorted((tag, pid) for what, tag, pid in _events(events) if what == "start") and len(stops) == 5


async def test_stop_waits_for_the_in_flight_request_of_the_old_version(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(text="slow")

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    upstream = await start_upstream(app)
    events = tmp_path / "events"
    async with run_gateway(
        tmp_path, _routes(upstream.url, "v1", events), "--workers", "1", env=_install(tmp_path)
    ) as gw:
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
            pending = asyncio.ensure_future(session.get(gw.url("/api/slow")))
            await asyncio.wait_for(arrived.wait(), GUARD)
            rewrite(gw.config, _routes(upstream.url, "v2", events))
            gw.signal(signal.SIGHUP)
            await gw.wait_for_version(2)
            assert ("start", "v2") in [e[:2] for e in _events(events)]
            assert ("stop", "v1") not in [e[:2] for e in _events(events)]  # its request is still in flight
            release.set()
            resp = await asyncio.wait_for(pending, GUARD)
            assert resp.headers["X-Tag"] == "v1" and await resp.text() == "slow"
            resp.release()

        async def stopped() -> bool | None:
            return True if ("stop", "v1") in [e[:2] for e in _events(events)] else None

        await eventually(stopped, "v1 to stop after its request")
        assert ("stop", "v2") not in [e[:2] for e in _events(events)]


async def test_a_worker_dying_while_preparing_refuses_the_version_everywhere(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    """A version whose `start` kills the worker must not be committed by the survivors, nor restarted into: the
    reload is refused, and the replacements start on the version that still serves."""

    upstream = await start_text_upstream(start_upstream)
    events = tmp_path / "events"
    async with run_gateway(
        tmp_path, _routes(upstream.url, "v1", events), "--workers", "2", env=_install(tmp_path)
    ) as gw:
        rewrite(gw.config, _routes(upstream.url, "v2", events, die=True))
        gw.signal(signal.SIGHUP)
        await wait_until(lambda: "a worker died while preparing" in gw.stderr(), "the reload to be refused")

        async def back_on_v1() -> dict[str, object] | None:
            view = await gw.routes()
            workers = view["workers"]
            return view if all(w["ready"] and w["version"] == 1 for w in workers) and len(workers) == 2 else None

        view = await eventually(back_on_v1, "both workers serving v1 again")
        assert view["version"] == 1
        assert await _tags(gw.url("/api/x"), 10) == {"v1"}
        metrics = await gw.metrics()
        assert metrics.value("gateway_reloads_total", result="success") == 0
    assert "dying" in {what for what, _, _ in _events(events)}
