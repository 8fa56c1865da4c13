"""The kit: a real gateway and a real echo upstream on 127.0.0.1 free ports, for end-to-end tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from gateway.app import Gateway
from gateway.demo import demo_app
from gateway.errors import ConfigError
from gateway.headers import Headers
from gateway.registry import Registry, load_registry
from gateway.settings import Settings
from gateway.spec import FilterSpec, PredicateSpec
from gateway.testing._build import BuildError, Spec
from gateway.testing._exchange import HeaderItems

# -- a real gateway and a real upstream on sockets ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A response as a client received it from the gateway, read to the end."""

    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def upstream_got(self, name: str) -> list[str]:
        """Every value of header `name` as the echo upstream received it (when it answered), in order."""
        return [str(v) for k, v in self.json()["headers"] if str(k).lower() == name.lower()]


@dataclass
class EchoUpstream:
    """The demo echo server on 127.0.0.1: any path but its own few (`/bytes/N`, `/status/N`, `/delay/S`, `/sse`,
    `/ws`) answers JSON with the method, path, query, headers (`Reply.upstream_got`), body digest and peer."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def echo_upstream() -> AsyncIterator[EchoUpstream]:
    """The gateway's demo echo backend on a free port of 127.0.0.1, stopped on exit."""
    runner = web.AppRunner(demo_app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield EchoUpstream(int(runner.addresses[0][1]))
    finally:
        await runner.cleanup()


@dataclass
class RunningGateway:
    """A gateway serving on 127.0.0.1:`port` in this process."""

    gateway: Gateway
    port: int
    guard: float = 15.0

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def request(self, method: str, path: str, *, headers: HeaderItems = (), body: bytes | None = None) -> Reply:
        """Send one request (`path` as written, already percent-encoded) and read the reply to the end.

        `guard` (seconds) only guards against a hang; it is never a measurement.
        """
        items = list(headers.items() if isinstance(headers, Mapping) else headers)
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.guard)) as session,
            session.request(method, URL(self.url(path), encoded=True), headers=items, data=body) as resp,
        ):
            raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
            return Reply(resp.status, Headers(raw), await resp.read())

    async def get(self, path: str, *, headers: HeaderItems = ()) -> Reply:
        return await self.request("GET", path, headers=headers)


def _routes_text(routes: str | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    if isinstance(routes, str):
        return routes
    document = {"routes": list(routes)} if isinstance(routes, Sequence) else dict(routes)
    return json.dumps(document)  # JSON is YAML: the gateway reads it as it reads routes.yaml


@asynccontextmanager
async def running_gateway(
    routes: str | Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    settings: Settings | None = None,
    specs: Iterable[Spec] = (),
) -> AsyncIterator[RunningGateway]:
    """A gateway on a free port of 127.0.0.1 serving `routes`, stopped on exit.

    `routes` is routes.yaml text, a whole document as a mapping, or a list of route mappings. The installed
    filters and predicates are available, plus `specs` (for a spec not installed yet). A refused config raises
    BuildError before anything listens.
    """
    registry = load_registry()
    extra = list(specs)
    if extra:
        registry = Registry(
            filters={**registry.filters, **{s.name: s for s in extra if isinstance(s, FilterSpec)}},
            predicates={**registry.predicates, **{s.name: s for s in extra if isinstance(s, PredicateSpec)}},
            origins=registry.origins,
        )
    gateway = Gateway(settings or Settings(), registry)
    try:
        gateway.load_text(_routes_text(routes), "routes.yaml")
    except ConfigError as exc:
        raise BuildError([(issue.path, issue.message) for issue in exc.issues]) from None
    server = await gateway.start("127.0.0.1", 0)
    try:
        yield RunningGateway(gateway, server.port)
    finally:
        await gateway.stop()
