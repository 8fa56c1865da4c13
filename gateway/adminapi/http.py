"""What both admin APIs share: JSON in (bounded, parsed strictly), JSON and problem+json out, If-Match."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import orjson
from aiohttp import web

from gateway.changes import ChangeRefused, Plan, Problem
from gateway.cluster import Cluster
from gateway.config.definitions import GatewayConfig
from gateway.config.snapshot import Snapshot
from gateway.problem import PROBLEM_TYPE_BASE
from gateway.registry import Registry
from gateway.store import ConfigStore, VersionRecord

#: The request key holding the name of the token the request authenticated with (`admin` for a single token).
AUTHOR: Final = web.RequestKey("author", str)
#: request bodies larger than this are refused with 413 (a route table of thousands of routes fits easily)
MAX_BODY = 1 << 20
JSON = "application/json"
_TITLES = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    503: "Service Unavailable",
}
_KINDS = {
    400: "invalid-request",
    404: "not-found",
    405: "method-not-allowed",
    409: "static-route",
    412: "version-moved",
    413: "too-large",
    503: "unavailable",
}


class ConfigSource(Protocol):
    """What the admin APIs read and change (the supervisor)."""

    snapshot: Snapshot
    registry: Registry
    cluster: Cluster

    @property
    def static(self) -> GatewayConfig: ...

    @property
    def config_store(self) -> ConfigStore: ...

    async def change(self, plan_of: Any, author: str, reason: str, expected: int | None) -> tuple[int, Plan]: ...

    def check(self, plan_of: Any) -> Plan: ...


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type=JSON, headers=headers)


def problem_response(
    status: int, detail: str, problems: Sequence[Problem] = (), headers: Mapping[str, str] | None = None
) -> web.Response:
    """RFC 9457 problem+json; for a 400, `errors` names every field at fault by JSON pointer."""
    document: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + _KINDS.get(status, "error"),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if problems:
        document["errors"] = [p.to_data() for p in problems]
    return web.Response(
        status=status,
        body=orjson.dumps(document),
        headers={"Content-Type": "application/problem+json", "Cache-Control": "no-store", **(headers or {})},
    )


def refused(exc: ChangeRefused) -> web.Response:
    return problem_response(exc.status, exc.detail, exc.problems)


async def read_json(request: web.Request, *, optional: bool = False) -> Any:
    """The request body as JSON. ChangeRefused: 413 over MAX_BODY (read no further), 400 for a body that is not
    JSON (with where it broke). An empty body is None when `optional`."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ChangeRefused(413, f"the body is over {MAX_BODY} bytes")
    # read(n) answers with what has arrived (a chunk of a chunked body), not n bytes: read on to the end.
    body = bytearray()
    while len(body) <= MAX_BODY and (chunk := await request.content.read(MAX_BODY + 1 - len(body))):
        body += chunk
    if len(body) > MAX_BODY:
        raise ChangeRefused(413, f"the body is over {MAX_BODY} bytes")
    if optional and not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ChangeRefused(400, f"the body is not JSON: {exc}", [Problem("", f"not JSON: {exc}")]) from None


def if_match(request: web.Request) -> int | None:
    """The version `If-Match` asks for (`"7"`, `W/"7"` or `7`; `*` or absent: None). ChangeRefused(400) otherwise."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not _decimal(text):
        raise ChangeRefused(400, f'If-Match must be a version as an entity tag ("7"), got {header!r}')
    return int(text)


def _decimal(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also holds for "²", which `int` refuses (a 500 before this check)."""
    return text.isascii() and text.isdigit()


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def static_ids(config: GatewayConfig) -> dict[str, str]:
    """Static route id -> where the routes file defines it (`routes.yaml: routes[2]`): what a 409 names."""
    return {r.id: f"{config.source}: {config.path_of(i)}" for i, r in enumerate(config.routes)}


def record_or_404(store: ConfigStore, text: str) -> VersionRecord:
    if not _decimal(text):
        raise ChangeRefused(400, f"a version is a non-negative integer, got {text!r}")
    record = store.get(int(text))
    if record is None:
        raise ChangeRefused(404, f"no version {text} (kept: {_kept(store)})")
    return record


def _kept(store: ConfigStore) -> str:
    versions = store.versions()
    return f"{versions[0].version}..{versions[-1].version}" if versions else "none"


_Handler = Callable[[web.Request], Awaitable[web.Response]]


def author_of(request: web.Request) -> str:
    """The name of the token the request authenticated with: the author its change is recorded with."""
    return str(request.get(AUTHOR, "admin"))


def answers(handler: _Handler) -> _Handler:
    """`handler` with a refused change (or a bad request) answered as its problem+json response: how both admin
    APIs' handlers end."""

    async def answered(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except ChangeRefused as exc:
            return refused(exc)

    return answered
