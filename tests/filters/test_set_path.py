"""SetPath through real requests: templates, variable encoding, multi-segment captures, %2F routes, config."""

from __future__ import annotations

import pytest

from gateway.settings import Settings
from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, one_route


def setting(upstream: Upstream, template: str, pattern: str, metadata: str = "{}") -> str:
    return f"""
routes:
  - id: set
    uri: {upstream.url}
    predicates: ["Path={pattern}"]
    filters: ["SetPath={template}"]
    metadata: {metadata}
"""


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        ("/red/blue", "/blue"),
        ("/red/a%20b", "/a%20b"),
        ("/red/caf%C3%A9", "/caf%C3%A9"),
        ("/red/%3Fx%23y", "/%3Fx%23y"),  # '?' and '#' stay data
        ("/red/a%25b", "/a%25b"),  # a decoded '%' is escaped again, never read as an escape
        ("/red/a+b=c:d@e", "/a+b=c:d@e"),  # sub-delimiters a segment may carry stay as they are
        ("/red/~x", "/~x"),
    ],
)
async def test_scg_example(upstream: Upstream, start_gateway: StartGateway, sent: str, forwarded: str) -> None:
    gw = await start_gateway(setting(upstream, "/{segment}", "/red/{segment}"))
    reply = await fetch(gw, sent)
    assert reply.status == 200
    assert reply.seen()["path"] == forwarded


async def test_query_and_forwarded_prefix(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(setting(upstream, "/{segment}", "/red/{segment}"))
    reply = await fetch(gw, "/red/blue?a=1")
    assert (reply.seen()["path"], reply.seen()["query"]) == ("/blue", "a=1")
    assert reply.upstream_got("X-Forwarded-Prefix") == ["/red"]  # what was removed from the front, as SCG


async def test_static_template_and_expanded_form(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(one_route(upstream.url, "[{name: SetPath, args: {template: /fixed/path/}}]"))
    assert (await fetch(gw, "/anything/else")).seen()["path"] == "/fixed/path/"


async def test_several_variables(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        one_route(
            upstream.url, '["SetPath=/t/{tenant}/{kind}-{id}.json"]', '["Path=/{kind}/{id}", "Host={tenant}.x.org"]'
        )
    )
    reply = await fetch(gw, "/orders/42", headers={"Host": "acme.x.org"})
    assert reply.seen()["path"] == "/t/acme/orders-42.json"


@pytest.mark.parametrize(
    ("template", "sent", "forwarded"),
    [
        ("/store{rest}", "/files/a/b", "/store/a/b"),
        ("/store/{rest}", "/files/a/b", "/store/a/b"),  # the capture's leading '/' never doubles the joint
        ("/store/{rest}", "/files/a/b/", "/store/a/b/"),
        ("/store{rest}", "/files", "/store"),  # an empty capture
        ("{rest}", "/files/x%20y/z", "/x%20y/z"),
        ("/{rest}", "/files", "/"),
    ],
)
async def test_multi_segment_capture_keeps_its_separators(
    upstream: Upstream, start_gateway: StartGateway, template: str, sent: str, forwarded: str
) -> None:
    gw = await start_gateway(setting(upstream, template, "/files/{*rest}"))
    assert (await fetch(gw, sent)).seen()["path"] == forwarded


async def test_empty_segments_from_a_capture_are_merged(upstream: Upstream, start_gateway: StartGateway) -> None:
    # With merge_slashes off a capture can hold "//"; a built path never has empty segments (a leading "//" reads
    # as a host to many URL parsers).
    gw = await start_gateway(setting(upstream, "/{rest}", "/files/{*rest}"), Settings(merge_slashes=False))
    assert (await fetch(gw, "/files//evil.example//x")).seen()["path"] == "/evil.example/x"


async def test_encoded_slash_stays_data_on_routes_that_allow_it(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # SECURITY: with allow-encoded %2F, "@scope%2Fname" is decoded to "@scope/name"; re-inserting that "/" as a
    # separator would change which resource the upstream sees.
    gw = await start_gateway(setting(upstream, "/v2/{name}", "/pkg/{name}", '{allow-encoded: ["%2F"]}'))
    assert (await fetch(gw, "/pkg/%40scope%2Fname")).seen()["path"] == "/v2/@scope%2Fname"
    assert (await fetch(gw, "/pkg/plain")).seen()["path"] == "/v2/plain"


async def test_multi_segment_capture_with_an_encoded_slash_becomes_one_segment(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # The decoded capture cannot tell its real separators from the %2F, so it is kept whole (documented).
    gw = await start_gateway(setting(upstream, "/store{rest}", "/files/{*rest}", '{allow-encoded: ["%2F"]}'))
    assert (await fetch(gw, "/files/a%2Fb/c")).seen()["path"] == "/store%2Fa%2Fb%2Fc"
    assert (await fetch(gw, "/files/a/c")).seen()["path"] == "/store/a/c"


async def test_unknown_variable_stays_escaped(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(setting(upstream, "/{nope}/{segment}", "/red/{segment}"))
    assert (await fetch(gw, "/red/x")).seen()["path"] == "/%7Bnope%7D/x"


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ("[SetPath=foo]", "must start with '/' or a variable"),
        ("['SetPath=/a?b={x}']", "no query"),
        ("['SetPath=/a/../{x}']", "'..'"),
        ("['SetPath=/{x}/./b']", "'.'"),
        ("['SetPath=/a//{x}']", "'//'"),
        ("['SetPath=/a {x}']", "percent-encode"),
        ("['SetPath=/{x:[a-z]+}']", "percent-encode"),
        ("['SetPath=/\u00e9/{x}']", "percent-encode"),
    ],
)
def test_invalid_template(filters: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == "routes[0].filters[0].args.template" and fragment in m for p, m in issues), issues


@pytest.mark.parametrize(
    ("filters", "path", "fragment"),
    [
        ("[SetPath]", "routes[0].filters[0].args.template", "required"),
        ('["SetPath=/a, /b"]', "routes[0].filters[0]", "at most 1"),
        ("[{name: SetPath, args: {template: /a, path: /b}}]", "routes[0].filters[0].args.path", "unknown argument"),
    ],
)
def test_invalid_config(filters: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(filters=filters))
    assert any(p == path and fragment in m for p, m in issues), issues


async def test_a_template_repeating_a_variable_cannot_build_a_huge_path(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    # Four copies of a 2100-character segment are 8404 > 8192 (limits.max_request_line): 414, nothing forwarded.
    gw = await start_gateway(setting(upstream, "/{s}/{s}/{s}/{s}", "/x/{s}"))
    reply = await fetch(gw, "/x/" + "a" * 2100)
    assert reply.status == 414
    assert upstream.hits == []
    assert (await fetch(gw, "/x/" + "a" * 2000)).seen()["path"] == ("/" + "a" * 2000) * 4
