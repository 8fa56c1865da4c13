"""RedirectTo through real requests: status forms, query handling, relative targets, no open redirects, config."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from gateway.settings import Settings
from tests.conftest import GatewayUnderTest, StartGateway, Upstream
from tests.helpers import Reply, config_issues, config_only_route, one_route


async def fetch(gw: GatewayUnderTest, path: str, *, method: str = "GET", data: bytes | None = None) -> Reply:
    """As tests.helpers.fetch, without following redirects: the redirect itself is what is under test."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.request(method, URL(gw.url(path), encoded=True), data=data, allow_redirects=False) as resp,
    ):
        return Reply(resp.status, resp.reason, resp.headers, resp.raw_headers, await resp.read())


def redirecting(uri: str, filters: str, pattern: str = "/**", metadata: str = "{}") -> str:
    return f"""
routes:
  - id: redirect
    uri: {uri}
    predicates: ["Path={pattern}"]
    filters: {filters}
    metadata: {metadata}
"""


async def test_scg_example_never_contacts_the_upstream(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, '["RedirectTo=302, https://acme.org"]'))
    reply = await fetch(gw, "/anything?skip=10")
    assert reply.status == 302
    assert reply.headers.getall("Location") == ["https://acme.org"]  # the query is not carried by default
    assert reply.body == b""
    assert upstream.hits == []


@pytest.mark.parametrize(
    ("status", "code"),
    [("301", 301), ("MOVED_PERMANENTLY", 301), ("found", 302), ("MOVED_TEMPORARILY", 302), ("SEE_OTHER", 303),
     ("TEMPORARY_REDIRECT", 307), ("PERMANENT_REDIRECT", 308)],
)  # fmt: skip
async def test_status_as_number_or_name(start_gateway: StartGateway, status: str, code: int) -> None:
    gw = await start_gateway(one_route("no://op", f'["RedirectTo={status}, https://acme.org/"]'))
    assert (await fetch(gw, "/x")).status == code


@pytest.mark.parametrize(
    ("url", "sent", "location"),
    [
        ("https://acme.org", "/x?skip=10", "https://acme.org?skip=10"),  # SCG's documented example
        ("https://acme.org/p?a=1", "/x?b=2&c=%2F", "https://acme.org/p?a=1&b=2&c=%2F"),
        ("https://acme.org/p#top", "/x?b=2", "https://acme.org/p?b=2#top"),
        ("https://acme.org/p?a=1", "/x", "https://acme.org/p?a=1"),
    ],
)
async def test_include_request_params(start_gateway: StartGateway, url: str, sent: str, location: str) -> None:
    gw = await start_gateway(one_route("no://op", f'["RedirectTo=302, {url}, true"]'))
    assert (await fetch(gw, sent)).headers["Location"] == location


async def test_expanded_form(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            "no://op",
            "[{name: RedirectTo, args: {status: 308, url: 'https://acme.org/new?x=1', includeRequestParams: false}}]",
        )
    )
    reply = await fetch(gw, "/old?y=2", method="POST", data=b"body")
    assert (reply.status, reply.headers["Location"]) == (308, "https://acme.org/new?x=1")


@pytest.mark.parametrize(
    ("sent", "location"),
    [
        ("/old/blue", "/new/blue"),
        ("/old/a%20b", "/new/a%20b"),
        ("/old/%3Fx=1", "/new/%3Fx=1"),  # data, never a query
        ("/old/caf%C3%A9", "/new/caf%C3%A9"),
    ],
)
async def test_relative_target_with_a_path_variable(start_gateway: StartGateway, sent: str, location: str) -> None:
    gw = await start_gateway(redirecting("no://op", '["RedirectTo=301, /new/{segment}"]', "/old/{segment}"))
    reply = await fetch(gw, sent)
    assert (reply.status, reply.headers["Location"]) == (301, location)


async def test_variables_in_path_query_and_fragment_of_an_absolute_url(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        redirecting("no://op", '["RedirectTo=302, https://acme.org/s/{q}?q={q}#{q}"]', "/search/{q}")
    )
    location = (await fetch(gw, "/search/a%26b%3Dc%20d")).headers["Location"]
    assert location == "https://acme.org/s/a&b=c%20d?q=a%26b%3Dc%20d#a%26b%3Dc%20d"


@pytest.mark.parametrize(
    ("sent", "location"),
    [
        ("/go/evil.example", "/evil.example"),
        ("/go//evil.example/x", "/evil.example/x"),  # merge_slashes off: the capture is "//evil.example/x"
        ("/go/%5Cevil.example", "/%5Cevil.example"),  # a backslash stays escaped (browsers read "/\\" as "//")
        # With a %2F in the request every "/" of the decoded capture is data again (its own leading one too).
        ("/go/%2F%2Fevil.example", "/%2F%2F%2Fevil.example"),
    ],
)
async def test_a_relative_target_never_becomes_protocol_relative(
    start_gateway: StartGateway, sent: str, location: str
) -> None:
    # SECURITY: "/{rest}" with rest = "//evil.example" would be "//evil.example", which browsers follow off-site.
    routes = redirecting("no://op", '["RedirectTo=302, /{rest}"]', "/go/{*rest}", '{allow-encoded: ["%2F", "%5C"]}')
    gw = await start_gateway(routes, Settings(merge_slashes=False))
    assert (await fetch(gw, sent)).headers["Location"] == location


async def test_variable_host_only_when_allowed_and_fully_encoded(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        redirecting(
            "no://op",
            "[{name: RedirectTo, args: {status: 302, url: 'https://{h}.example.org/x', allowVariableHost: true}}]",
            "/to/{h}",
        )
    )
    assert (await fetch(gw, "/to/eu")).headers["Location"] == "https://eu.example.org/x"
    # SECURITY: '@' and ':' cannot turn the value into user-info or a port of another host.
    assert (await fetch(gw, "/to/evil.com%40a")).headers["Location"] == "https://evil.com%40a.example.org/x"
    assert (await fetch(gw, "/to/evil.com:1")).headers["Location"] == "https://evil.com%3A1.example.org/x"


async def test_response_filters_still_apply(start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route("no://op", '["AddResponseHeader=X-Why, moved", "RedirectTo=302, https://acme.org/"]')
    )
    reply = await fetch(gw, "/x")
    assert (reply.status, reply.headers["X-Why"]) == (302, "moved")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://{sub}.example.org/", "open redirects"),
        ("https://example.org{path}", "open redirects"),  # right after the host is still the host
        ("https://user@{h}/", "open redirects"),
        ("{scheme}://example.org/", "must be absolute"),
        ("acme.org/x", "must be absolute"),
        ("//acme.org/x", "must be absolute"),
        ("javascript:alert(1)", "must be absolute"),
        ("https:///x", "needs a host"),
        ("https://acme.org/a b", "percent-encode"),
        ("https://acme.org/a/../b", "'..'"),
        ("https://acme.org/x?a=<b>", "query characters"),
        ("https://acme.org/x#a b", "query characters"),
    ],
)
def test_invalid_url(url: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=f"[{{name: RedirectTo, args: {{status: 302, url: '{url}'}}}}]"))
    assert any(p == "routes[0].filters[0].args.url" and fragment in m for p, m in issues), issues


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ('["RedirectTo=200, https://acme.org"]', "status", "3xx"),
        ('["RedirectTo=400, https://acme.org"]', "status", "3xx"),
        ('["RedirectTo=NOT_FOUND, https://acme.org"]', "status", "3xx"),
        ('["RedirectTo=NOPE, https://acme.org"]', "status", "unknown HTTP status"),
        ("[{name: RedirectTo, args: {status: true, url: /x}}]", "status", "number or"),
        ('["RedirectTo=302"]', "url", "required"),
        ('["RedirectTo=302, https://acme.org, maybe"]', "includeRequestParams", "boolean"),
        ("[{name: RedirectTo, args: {status: 302, url: /x, uri: /y}}]", "uri", "unknown argument"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    where = f"routes[0].filters[0].args.{path}"
    assert any(p == where and fragment in m for p, m in issues), issues


async def test_a_target_repeating_a_variable_cannot_build_a_huge_location(start_gateway: StartGateway) -> None:
    gw = await start_gateway(redirecting("no://op", '["RedirectTo=302, /r/{s}/{s}/{s}/{s}"]', "/x/{s}"))
    assert (await fetch(gw, "/x/" + "a" * 2100)).status == 414
    reply = await fetch(gw, "/x/b")
    assert (reply.status, reply.headers["Location"]) == (302, "/r/b/b/b/b")


@pytest.mark.parametrize(
    ("include", "sent", "location"),
    [
        ("false", "/p?q=1", "https://acme.org/a%20b/c?x=1&y=%2F#frag"),
        ("true", "/p", "https://acme.org/a%20b/c?x=1&y=%2F#frag"),
        ("true", "/p?q=1", "https://acme.org/a%20b/c?x=1&y=%2F&q=1#frag"),
    ],
)
async def test_a_static_target_is_the_url_as_written(
    start_gateway: StartGateway, include: str, sent: str, location: str
) -> None:
    # Built once at load; the request's query is added per request, and only when asked for.
    url = "https://acme.org/a%20b/c?x=1&y=%2F#frag"
    gw = await start_gateway(redirecting("no://op", f"['RedirectTo=302, {url}, {include}']"))
    assert (await fetch(gw, sent)).headers["Location"] == location
