"""Hot reload of routes.yaml in the whole `sluicegate run` process tree (issue 4, "Hot reload").

A steady keep-alive load runs while the file is rewritten and SIGHUP'd 100 times between two valid versions that
both keep the loaded route (only an AddResponseHeader value changes): no request fails, every reload reaches every
worker, and /routes shows each worker's version. A refused file keeps the old version and logs every error with its
location; `--watch` reloads on a file change without a signal.
"""

from __future__ import annotations

import asyncio
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.conftest import StartUpstream, Upstream
from tests.e2e.ops_helpers import GUARD, GatewayProcess, eventually, routes_yaml, run_gateway, wait_until

RELOADS = 100
LOAD_CLIENTS = 4
COLOURS = ("blue", "green")


async def start_pong(start_upstream: StartUpstream) -> Upstream:
    async def pong(request: web.Request) -> web.Response:
        return web.Response(text=f"pong {request.path}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", pong)
    return await start_upstream(app)


def versioned_routes(upstream: Upstream, colour: str) -> str:
    return routes_yaml(
        {
            "id": "api",
            "uri": upstream.url,
            "predicates": ["Path=/api/**"],
            "filters": [f"AddResponseHeader=X-Colour, {colour}"],
        }
    )


def rewrite(path: Path, text: str) -> None:
    """Replace the file the way an editor or a ConfigMap update does: a new file renamed over the old one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


@dataclass
class Load:
    """Keep-alive clients looping GET /api/...; every response is checked as it arrives."""

    url: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    colours: set[str] = field(default_factory=set)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, number: int) -> None:
        timeout = aiohttp.ClientTimeout(total=GUARD)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=1)) as session:
            sequence = 0
            while not self.stop.is_set():
                path = f"/api/c{number}/{sequence}"
                sequence += 1
                try:
                    async with session.get(self.url + path) as resp:
                        body = await resp.text()
                        colour = resp.headers.get("X-Colour", "")
                        if resp.status != 200 or body != f"pong {path}" or colour not in COLOURS:
                            self.failures.append(f"{path}: {resp.status} colour={colour!r} body={body[:80]!r}")
                        else:
                            self.ok += 1
                            self.colours.add(colour)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failures.append(f"{path}: {exc!r}")


async def colour_now(gw: GatewayProcess) -> str:
    async with gw.session.get(gw.url("/api/probe"), timeout=aiohttp.ClientTimeout(total=GUARD)) as resp:
        assert resp.status == 200
        return resp.headers.get("X-Colour", "")


async def test_hundred_reloads_under_load_fail_no_request(tmp_path: Path, start_upstream: StartUpstream) -> None:
    upstream = await start_pong(start_upstream)
    async with run_gateway(tmp_path, versioned_routes(upstream, COLOURS[0]), "--workers", "3") as gw:
        load = Load(gw.url(""))
        clients = [asyncio.create_task(load.client(i)) for i in range(LOAD_CLIENTS)]
        try:
            await wait_until(lambda: load.ok > 0, "the load is running")
            for reload in range(1, RELOADS + 1):
                version = reload + 1
                colour = COLOURS[reload % 2]
                rewrite(gw.config, versioned_routes(upstream, colour))
                gw.signal(signal.SIGHUP)
                view = await gw.wait_for_version(version)
                assert len(view["workers"]) == 3
                # Every worker swapped: whichever serves this request answers with the new version.
                assert await colour_now(gw) == colour, f"reload {reload}"
            served_during_reloads = load.ok
        finally:
            load.stop.set()
            async with asyncio.timeout(GUARD):
                await asyncio.gather(*clients)
        view = await gw.routes()
        metrics = await gw.metrics()
    assert load.failures == [], f"{len(load.failures)} failed requests, first: {load.failures[:5]}"
    assert served_during_reloads > RELOADS  # the load really ran through the reloads
    assert load.colours == set(COLOURS)
    assert view["version"] == RELOADS + 1
    assert [w["version"] for w in view["workers"]] == [RELOADS + 1] * 3
    assert metrics.value("gateway_reloads_total", result="success") == RELOADS
    assert metrics.value("gateway_reloads_total", result="failure") == 0


def _some(condition: bool) -> bool | None:
    return True if condition else None


async def test_invalid_reload_keeps_the_old_version_and_logs_every_error(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_pong(start_upstream)
    async with run_gateway(tmp_path, versioned_routes(upstream, "blue"), "--workers", "2") as gw:
        invalid = (
            "routes:\n"
            "  - id: api\n"
            f"    uri: {upstream.url}\n"
            "    predicates: [Path=/api/**]\n"
            "    filters:\n"
            "      - StripPrefix=-2\n"
            "      - NoSuchFilter=1\n"
        )
        rewrite(gw.config, invalid)
        gw.signal(signal.SIGHUP)

        async def refused() -> bool | None:
            metrics = await gw.metrics()
            return _some(metrics.value("gateway_reloads_total", result="failure") == 1)

        await eventually(refused, "the reload is counted as a failure")
        view = await gw.routes()
        assert view["version"] == 1
        assert [w["version"] for w in view["workers"]] == [1, 1]
        assert all(w["ready"] for w in view["workers"])
        assert await colour_now(gw) == "blue"
        assert await gw.ready_status() == 200
        stderr = gw.stderr()
        source = re.escape(str(gw.config))
        # Every error, each with file, line and YAML path.
        assert re.search(rf"{source}:6: routes\[0\]\.filters\[0\]\.args\.parts: ", stderr), stderr
        assert re.search(rf"{source}:7: routes\[0\]\.filters\[1\]: unknown filter 'NoSuchFilter'", stderr), stderr

        # A later valid file is taken as the next version: the refused one did not use up or break anything.
        rewrite(gw.config, versioned_routes(upstream, "green"))
        gw.signal(signal.SIGHUP)
        await gw.wait_for_version(2)
        assert await colour_now(gw) == "green"
        metrics = await gw.metrics()
    assert metrics.value("gateway_reloads_total", result="failure") == 1
    assert metrics.value("gateway_reloads_total", result="success") == 1


async def test_watch_reloads_on_a_file_change_without_a_signal(tmp_path: Path, start_upstream: StartUpstream) -> None:
    upstream = await start_pong(start_upstream)
    async with run_gateway(tmp_path, versioned_routes(upstream, "blue"), "--workers", "2", "--watch") as gw:
        assert await colour_now(gw) == "blue"
        gw.config.write_text(versioned_routes(upstream, "green"), encoding="utf-8")  # in place, as `vi` would
        await gw.wait_for_version(2)
        assert await colour_now(gw) == "green"
        rewrite(gw.config, versioned_routes(upstream, "blue"))  # renamed over, as a ConfigMap update would
        await gw.wait_for_version(3)
        assert await colour_now(gw) == "blue"
        metrics = await gw.metrics()
    assert metrics.value("gateway_reloads_total", result="success") == 2
