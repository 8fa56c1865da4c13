"""Helpers of the admin API end-to-end tests (issue 11): JSON calls on the admin listener with the bearer token,
snapshots of everything the API shows (for "bad input changes nothing"), recording upstreams, and a request that
only one chosen worker can take (the others are SIGSTOP'ed), to show a change serves in every worker.

Nothing is mocked: the gateway is the real `sluicegate run` (tests.e2e.ops_helpers.run_gateway), upstreams are
aiohttp apps on 127.0.0.1. This module is not rewritten by pytest, so it raises AssertionError with a message.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import StartUpstream, Upstream
from tests.e2e.ops_helpers import ADMIN_TOKEN, CLIENT_TIMEOUT, GatewayProcess

#: the three views whose bytes must not change when a request is refused (issue 11 item 4)
STATE_PATHS = ("/admin/v1/config", "/admin/v1/versions", "/actuator/gateway/routedefinitions")


@dataclass
class Answer:
    """One admin response: status, headers, body text."""

    status: int
    headers: CIMultiDict[str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def call(
    gw: GatewayProcess,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    token: str = ADMIN_TOKEN,
) -> Answer:
    """`method path` on the admin listener with `token`; `body` sent as JSON, or `raw` bytes as they are."""
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    data: io.BytesIO | bytes | None = None if body is None else json.dumps(body).encode()
    if raw is not None:
        data = io.BytesIO(raw)  # sent with its Content-Length (a large bytes body would make aiohttp warn)
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    async with gw.session.request(method, gw.admin_url(path), data=data, headers=sent, timeout=CLIENT_TIMEOUT) as r:
        return Answer(r.status, CIMultiDict(r.headers), await r.text())


async def ok(gw: GatewayProcess, method: str, path: str, body: Any = None, expected: int = 200, **kw: Any) -> Any:
    """`call` that must answer `expected`; the parsed JSON body (None when empty)."""
    answer = await call(gw, method, path, body, **kw)
    if answer.status != expected:
        raise AssertionError(f"{method} {path} answered {answer.status}, not {expected}: {answer.text}")
    return answer.json() if answer.text else None


async def state(gw: GatewayProcess) -> dict[str, str]:
    """The bodies of the config, the version list and SCG's route definitions, as text."""
    found = {}
    for path in STATE_PATHS:
        answer = await call(gw, "GET", path)
        if answer.status != 200:
            raise AssertionError(f"GET {path} answered {answer.status}: {answer.text}")
        found[path] = answer.text
    return found


def problem(answer: Answer, status: int) -> dict[str, Any]:
    """The problem+json document of a refused request, checked to be one with `status`."""
    if answer.status != status:
        raise AssertionError(f"answered {answer.status}, not {status}: {answer.text}")
    if not answer.headers.get("Content-Type", "").startswith("application/problem+json"):
        raise AssertionError(f"not problem+json: {answer.headers.get('Content-Type')!r}")
    document: dict[str, Any] = answer.json()
    if document["status"] != status:
        raise AssertionError(f"the document's status is {document['status']}, not {status}")
    return document


@dataclass
class Recorder:
    """An upstream answering `<name> <path>` to every request, keeping each request's path and headers."""

    name: str
    upstream: Upstream | None = None
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.upstream is not None
        return self.upstream.url

    def header(self, path: str, name: str) -> list[str]:
        """Every value of header `name` the request to `path` (the last one that arrived there) carried."""
        found = [h for p, h in self.seen if p == path]
        if not found:
            raise AssertionError(f"no request to {path} reached upstream {self.name}: {[p for p, _ in self.seen]}")
        return [v for k, v in found[-1].items() if k.lower() == name.lower()]


async def start_recorder(start_upstream: StartUpstream, name: str) -> Recorder:
    recorder = Recorder(name)

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        recorder.seen.append((request.path_qs, dict(request.headers)))
        return web.Response(text=f"{name} {request.path_qs}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    recorder.upstream = await start_upstream(app)
    return recorder


async def get(gw: GatewayProcess, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, str]:
    """GET `path` on the data port on a fresh connection: (status, body)."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(gw.url(path), headers=headers, timeout=CLIENT_TIMEOUT) as resp,
    ):
        return resp.status, await resp.text()


async def served_by(gw: GatewayProcess, pid: int, others: list[int], path: str) -> tuple[int, str]:
    """GET `path` while every worker but `pid` is stopped (SIGSTOP): only `pid` can accept the connection."""
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        return await get(gw, path)
    finally:
        for other in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(other, signal.SIGCONT)


async def served_by_each(gw: GatewayProcess, path: str) -> dict[int, tuple[int, str]]:
    """What each worker (by pid) answers to GET `path`, each proved through a request only it can take."""
    pids = [w["pid"] for w in (await gw.routes())["workers"]]
    if len(pids) < 2:
        raise AssertionError(f"expected several workers, got {pids}")
    return {pid: await served_by(gw, pid, [p for p in pids if p != pid], path) for pid in pids}


def scg_body(uri: str, pattern: str, order: int = 0) -> dict[str, Any]:
    """The RouteDefinition JSON SCG's actuator takes (`_genkey_N` args), as the issue gives it."""
    return {
        "predicates": [{"name": "Path", "args": {"_genkey_0": pattern}}],
        "filters": [{"name": "StripPrefix", "args": {"_genkey_0": "1"}}],
        "uri": uri,
        "order": order,
    }
