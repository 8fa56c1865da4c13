"""DedupeResponseHeader through real requests: the three strategies, the CORS recipe, comma-joined lines, config."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import StartGateway, StartUpstream, Upstream
from tests.helpers import app_serving, config_issues, config_only_route, fetch, one_route

ACAO, ACAC = "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials"


async def echoing_headers(start_upstream: StartUpstream) -> Upstream:
    """An upstream answering with each query parameter as a response header, repeats and order kept."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="hello", headers=CIMultiDict(request.query.items()))

    return await start_upstream(app_serving("/{tail:.*}", handler))


def query(*pairs: tuple[str, str]) -> str:
    return "?" + "&".join(f"{name}={quote(value, safe='')}" for name, value in pairs)


REPEATED = query(("X-A", "1"), ("X-B", "b"), ("X-A", "2"), ("x-a", "1"), ("X-A", "3"))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ('["DedupeResponseHeader=X-A"]', [b"1"]),
        ('["DedupeResponseHeader=X-A, RETAIN_FIRST"]', [b"1"]),
        ('["DedupeResponseHeader=X-A, RETAIN_LAST"]', [b"3"]),
        ('["DedupeResponseHeader=X-A, RETAIN_UNIQUE"]', [b"1", b"2", b"3"]),
        ("[{name: DedupeResponseHeader, args: {name: x-a, strategy: retain_last}}]", [b"3"]),
        ("[{name: DedupeResponseHeader, args: {name: X-A, strategy: retain-unique}}]", [b"1", b"2", b"3"]),
    ],
)
async def test_strategies(
    start_upstream: StartUpstream, start_gateway: StartGateway, filters: str, expected: list[bytes]
) -> None:
    up = await echoing_headers(start_upstream)
    plain = await start_gateway(one_route(up.url, "[]"))
    assert (await fetch(plain, "/" + REPEATED)).values("X-A") == [b"1", b"2", b"1", b"3"]  # what the filter sees
    gw = await start_gateway(one_route(up.url, filters))
    reply = await fetch(gw, "/" + REPEATED)
    assert reply.status == 200
    assert reply.values("X-A") == expected
    assert reply.values("X-B") == [b"b"]
    assert reply.body == b"hello"


async def test_cors_recipe_leaves_one_of_each(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    # The backend sends its own CORS headers and the gateway adds the same ones: a browser refuses a response with
    # two Access-Control-Allow-Origin values. The default filter runs outermost, so it sees both.
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(
        f"""
default-filters:
  - DedupeResponseHeader=Access-Control-Allow-Credentials Access-Control-Allow-Origin
routes:
  - id: legacy
    uri: {up.url}
    predicates: ["Path=/**"]
    filters:
      - AddResponseHeader=Access-Control-Allow-Origin, https://app.example
      - AddResponseHeader=Access-Control-Allow-Credentials, true
"""
    )
    reply = await fetch(gw, "/api" + query((ACAO, "https://app.example"), (ACAC, "true"), ("Vary", "Origin")))
    assert reply.status == 200
    assert reply.values(ACAO) == [b"https://app.example"]
    assert reply.values(ACAC) == [b"true"]
    assert reply.values("Vary") == [b"Origin"]


async def test_cors_recipe_retain_first_keeps_the_backend_value(
    start_upstream: StartUpstream, start_gateway: StartGateway
) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(
        one_route(
            up.url,
            f'["DedupeResponseHeader={ACAO} {ACAC}", "AddResponseHeader={ACAO}, https://gw.example",'
            f' "AddResponseHeader={ACAC}, false"]',
        )
    )
    reply = await fetch(gw, "/" + query((ACAO, "https://backend.example"), (ACAC, "true")))
    # AddResponseHeader appends after the upstream's value, so the first one is the backend's.
    assert reply.values(ACAO) == [b"https://backend.example"]
    assert reply.values(ACAC) == [b"true"]


async def test_a_comma_joined_line_is_one_value(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    # As in SCG, values are field lines; splitting a line on commas would corrupt headers such as Set-Cookie.
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(one_route(up.url, '["DedupeResponseHeader=Set-Cookie Vary, RETAIN_FIRST"]'))
    cookie = "id=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT"
    reply = await fetch(gw, "/" + query(("Set-Cookie", cookie), ("Vary", "Origin, Origin")))
    assert reply.values("Set-Cookie") == [cookie.encode()]
    assert reply.values("Vary") == [b"Origin, Origin"]


async def test_unlisted_headers_are_untouched(start_upstream: StartUpstream, start_gateway: StartGateway) -> None:
    up = await echoing_headers(start_upstream)
    gw = await start_gateway(one_route(up.url, '["DedupeResponseHeader=X-Other  X-Missing"]'))
    assert (await fetch(gw, "/" + REPEATED)).values("X-A") == [b"1", b"2", b"1", b"3"]


async def test_no_op_route(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            "no://op",
            '["DedupeResponseHeader=X-A, RETAIN_LAST", "AddResponseHeader=X-A, 1", "AddResponseHeader=X-A, 2"]',
        )
    )
    # Response sides run innermost first: the later AddResponseHeader adds "2", then the earlier one "1".
    assert (await fetch(gw, "/")).values("X-A") == [b"1"]


ARGS = "routes[0].filters[0].args"


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["DedupeResponseHeader=X-A, RETAIN_MOST"]', f"{ARGS}.strategy", "RETAIN_FIRST"),
        ('["DedupeResponseHeader=X-A,X-B"]', f"{ARGS}.strategy", "RETAIN_FIRST"),
        ('["DedupeResponseHeader=X:A"]', f"{ARGS}.name", "separate names with spaces"),
        ('["DedupeResponseHeader"]', f"{ARGS}.name", "required"),
        ("[{name: DedupeResponseHeader, args: {name: '   '}}]", f"{ARGS}.name", "at least 1"),
        ('["DedupeResponseHeader=X-A, RETAIN_FIRST, x"]', "routes[0].filters[0]", "at most 2"),
        ("[{name: DedupeResponseHeader, args: {name: X-A, strategy: [RETAIN_LAST]}}]", f"{ARGS}.strategy", "RETAIN"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues
