"""Cookie predicate through real requests: full-match regex, several cookies and lines, quoting, config errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import StartGateway, Upstream, raw_exchange, status_of
from tests.helpers import config_issues, config_only_route, fetch, route


async def test_shortcut_regex_must_match_the_whole_value(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Cookie=chocolate, ch.p"]'))
    for cookie in ("chocolate=chip", "a=1; chocolate=chip; b=2", "chocolate=x; chocolate=chop", 'chocolate="chip"'):
        reply = await fetch(gw, "/a", headers={"Cookie": cookie})
        assert reply.status == 200, cookie
        assert reply.upstream_got("Cookie") == [cookie]  # the predicate does not consume the cookie
    for cookie in ("chocolate=chips", "chocolate=xchip", "Chocolate=chip", "other=chip", "chocolate", "chocolate="):
        assert (await fetch(gw, "/a", headers={"Cookie": cookie})).status == 404, cookie
    assert (await fetch(gw, "/a")).status == 404


async def test_any_value_for_presence(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes:" + route(upstream, '["Cookie=session, .*"]'))
    assert (await fetch(gw, "/", headers={"Cookie": "session=abc"})).status == 200
    assert (await fetch(gw, "/", headers={"Cookie": "session="})).status == 200
    assert (await fetch(gw, "/", headers={"Cookie": "session"})).status == 200  # a bare name has the empty value
    assert (await fetch(gw, "/", headers={"Cookie": "sessions=abc"})).status == 404


async def test_every_cookie_line_is_read(upstream: Upstream, start_gateway: StartGateway) -> None:
    # HTTP/2 clients (and proxies translating for them) may send one Cookie line per cookie.
    gw = await start_gateway("routes:" + route(upstream, '["Cookie=flavour, vanilla"]'))
    raw = await raw_exchange(
        gw.port,
        b"GET /a HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: flavour=vanilla\r\nConnection: close\r\n\r\n",
    )
    assert status_of(raw) == 200, raw[:200]
    seen = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert [v for k, v in seen["headers"] if k.lower() == "cookie"] == ["a=1", "flavour=vanilla"]


async def test_expanded_form_routes_by_cookie(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: beta
    uri: {upstream.url}
    predicates:
      - name: Cookie
        args: {{name: beta, regexp: "on|yes"}}
    filters: ["AddRequestHeader=X-Side, beta"]
  - id: stable
    uri: {upstream.url}
    order: 1
    predicates: [Path=/**]
    filters: ["AddRequestHeader=X-Side, stable"]
"""
    )
    assert (await fetch(gw, "/x", headers={"Cookie": "beta=on"})).upstream_got("X-Side") == ["beta"]
    assert (await fetch(gw, "/x", headers={"Cookie": "beta=yes"})).upstream_got("X-Side") == ["beta"]
    assert (await fetch(gw, "/x", headers={"Cookie": "beta=only"})).upstream_got("X-Side") == ["stable"]
    assert (await fetch(gw, "/x")).upstream_got("X-Side") == ["stable"]


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        # SCG accepts this and never matches; here it is refused (see filters/predicates/cookie.py).
        ('["Cookie=chocolate"]', "routes[0].predicates[0].args.regexp", "required"),
        ('["Cookie=chocolate,"]', "routes[0].predicates[0].args.regexp", "required"),  # empty token dropped
        ('["Cookie"]', "routes[0].predicates[0].args.name", "required"),
        ('["Cookie=choc late, x"]', "routes[0].predicates[0].args.name", "pattern"),
        ('["Cookie=chocolate, [a-"]', "routes[0].predicates[0].args.regexp", "invalid regular expression"),
        ('["Cookie=chocolate, (?<=a)b"]', "routes[0].predicates[0].args.regexp", "RE2"),
        ('["Cookie=a, b, c"]', "routes[0].predicates[0]", "at most 2"),
        ("[{name: Cookie, args: {name: a, regexp: b, x: 1}}]", "routes[0].predicates[0].args.x", "unknown argument"),
    ],
)
def test_invalid_cookie_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues
