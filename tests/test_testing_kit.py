"""The plugin test kit (gateway.testing): it builds as the gateway does, and its contract check catches broken filters.

Every broken spec here is a small, realistic mistake a team could make; the check must name it. A well-formed spec
next to each proves the check does not simply fail everything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import pytest
from multidict import CIMultiDict
from pydantic import ConfigDict, Field

from gateway import testing
from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Forbidden,
    Headers,
    Next,
    PeerIdentity,
    PredicateSpec,
    Response,
    UpstreamTimeout,
)
from gateway.registry import load_registry
from gateway.testing import (
    CONTRACT,
    BuildError,
    ContractViolation,
    ScriptedUpstream,
    build_filter,
    build_predicate,
    check_contract,
    contract_problems,
    echo_upstream,
    make_exchange,
    read_body,
    running_gateway,
)
from tests.helpers import config_issues, config_only_route
from tests.test_plugin_api import EXAMPLE, ROOT, gateway_imports

# -- specs for the contract check: one good, and one per mistake ---------------------------------------------------


class TagConfig(ComponentConfig):
    value: str = Field("x", description="The tag.", max_length=16)


async def _passes_through(exchange: Exchange, call_next: Next) -> Response:
    exchange.headers.set("X-Tag", "x")
    response = await call_next(exchange)
    response.headers.set("X-Tagged", "yes")
    return response


def _spec(filter_: Any, config: type[ComponentConfig] = TagConfig, **changes: Any) -> FilterSpec[Any]:
    fields: dict[str, Any] = {
        "name": "KitProbe",
        "order": 950,
        "config": config,
        "build": lambda c, ctx: filter_,
        "summary": "A filter for the kit's own tests.",
        "example": {},
        "shortcut": ("value",),
    }
    return FilterSpec(**{**fields, **changes})


GOOD = _spec(_passes_through)


async def _problems(spec: FilterSpec[Any] | PredicateSpec[Any]) -> list[str]:
    return await contract_problems(spec, installed=False)


async def test_a_well_formed_filter_passes_the_contract() -> None:
    assert await _problems(GOOD) == []
    await check_contract(GOOD, installed=False)


async def test_calling_call_next_twice_without_replays_breaks_the_contract() -> None:
    async def twice(exchange: Exchange, call_next: Next) -> Response:
        await call_next(exchange.fork())
        return await call_next(exchange.fork())

    with pytest.raises(ContractViolation) as caught:
        await check_contract(_spec(twice), installed=False)
    assert caught.value.problems == ["calls call_next 2 times for one request, but its spec does not say replays=True"]
    # The same filter is fine once its spec declares that it replays.
    assert await _problems(_spec(twice, replays=True)) == []


async def test_a_config_field_without_a_description_or_bounds_breaks_the_contract() -> None:
    class Undocumented(ComponentConfig):
        value: str = Field("x", max_length=16)
        limit: int = Field(3, description="Unbounded above.", ge=0)

    problems = await _problems(_spec(_passes_through, Undocumented))
    assert problems == ["config field 'value' has no description", "config field 'limit' has no bounds"]


async def test_a_filter_that_returns_a_new_response_breaks_the_contract() -> None:
    async def replaces(exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        return Response(response.status, response.headers, response.body)

    assert await _problems(_spec(replaces)) == ["returns a new Response instead of the one call_next returned"]


async def test_a_filter_whose_state_compounds_across_attempts_breaks_the_contract() -> None:
    count = 0

    async def counting(exchange: Exchange, call_next: Next) -> Response:
        nonlocal count
        count += 1
        exchange.headers.set("X-Seen", str(count))
        return await call_next(exchange)

    (problem,) = await _problems(_spec(counting))
    assert problem.startswith("compounds across attempts")


async def test_a_filter_leaking_aiohttp_types_or_not_answering_a_response_breaks_the_contract() -> None:
    async def multidict_headers(exchange: Exchange, call_next: Next) -> Response:
        response = await call_next(exchange)
        response.headers = CIMultiDict(response.headers.items())  # type: ignore[assignment]
        return response

    async def answers_none(exchange: Exchange, call_next: Next) -> Any:
        await call_next(exchange)

    problems = await _problems(_spec(multidict_headers))
    assert "the response headers are a CIMultiDict, not gateway Headers" in problems
    assert "the response carries a multidict object (CIMultiDict)" in problems
    assert await _problems(_spec(answers_none)) == ["returns a NoneType, not a Response"]


async def test_a_filter_crashing_on_a_plain_request_breaks_the_contract_but_a_refusal_does_not() -> None:
    async def crashes(exchange: Exchange, call_next: Next) -> Response:
        raise KeyError("authorization")

    async def refuses(exchange: Exchange, call_next: Next) -> Response:
        raise Forbidden("no credentials")

    def broken_build(config: TagConfig, context: BuildContext) -> Any:
        raise RuntimeError("no key file")

    assert await _problems(_spec(crashes)) == [
        "raises KeyError ('authorization') on a plain GET: only a gateway error may escape"
    ]
    assert await _problems(_spec(refuses)) == []
    assert await _problems(_spec(None, build=broken_build)) == ["its build function raised RuntimeError: no key file"]


async def test_spec_shape_mistakes_break_the_contract() -> None:
    class Lenient(ComponentConfig):
        model_config = ConfigDict(extra="ignore")
        value: str = Field("x", description="The tag.", max_length=16)

    assert await _problems(_spec(_passes_through, order=50)) == ["order 50 lies outside the known bands 100-999"]
    assert await _problems(_spec(_passes_through, summary="")) == ["the spec has no summary"]
    assert await _problems(_spec(_passes_through, shortcut=("valu",))) == [
        "shortcut names ['valu'] are not fields of its config"
    ]
    assert await _problems(_spec(_passes_through, Lenient)) == ["an unknown argument (noSuchArgument) is accepted"]
    (problem,) = await _problems(_spec(_passes_through, example={"value": "far too long for the field"}))
    assert problem.startswith("does not build from its example") and "filters[0].args.value" in problem


async def test_the_entry_point_rule_finds_installed_specs_and_refuses_strangers() -> None:
    strip_prefix = load_registry().filters["StripPrefix"]
    assert await contract_problems(strip_prefix) == []
    (problem,) = await contract_problems(GOOD)
    assert problem.startswith("no entry point 'KitProbe' in group sluicegate.filters")
    (problem,) = await contract_problems(_spec(_passes_through, name="StripPrefix", order=901))
    assert problem.startswith("entry point 'StripPrefix' (filters.strip_prefix:SPEC) loads another object")


async def test_a_predicate_that_answers_no_bool_breaks_the_contract() -> None:
    def spec(answer: object) -> PredicateSpec[Any]:
        def build(config: TagConfig, context: BuildContext) -> Any:
            return lambda exchange: answer  # typed Any: the point is a predicate that breaks its type

        return PredicateSpec(name="KitWhen", config=TagConfig, build=build, summary="s", example={})

    assert await _problems(spec(True)) == []
    assert await _problems(spec("yes")) == ["answers a str, not a bool"]


def test_the_contract_check_runs_under_plain_asyncio_run() -> None:
    asyncio.run(check_contract(GOOD, installed=False))
    with pytest.raises(ContractViolation):
        asyncio.run(check_contract(_spec(_passes_through, order=50), installed=False))
    assert len(CONTRACT) >= 10


# -- building from config --------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["StripPrefix=2", {"name": "StripPrefix", "args": {"parts": 2}}])
async def test_build_filter_reads_the_shortcut_and_the_expanded_form(entry: Any) -> None:
    upstream = ScriptedUpstream()
    await build_filter(entry)(make_exchange("GET", "/a/b/c?x=1"), upstream)
    assert (upstream.last.path, upstream.last.query) == ("/c", "x=1")


@pytest.mark.parametrize(
    "entry",
    ["StripPrefix=x", "StripPrefx=1", "AddRequestHeader=X-A", {"name": "StripPrefix", "args": {"prts": 1}}],
)
def test_build_errors_read_as_the_gateway_reports_them(entry: Any) -> None:
    """The kit parses through the gateway's own path: the same messages, at the same place under the route."""
    with pytest.raises(BuildError) as caught:
        build_filter(entry)
    written = repr(entry) if isinstance(entry, dict) else entry
    gateway = config_issues(config_only_route(filters=f"[{written}]"))
    assert [(f"routes[0].{path}", message) for path, message in caught.value.problems] == gateway


def test_build_predicate_and_path_variables() -> None:
    predicate = build_predicate("Path=/red/{segment}/**")
    assert predicate(make_exchange("GET", "/red/blue/x")) is True
    assert predicate(make_exchange("GET", "/green/blue")) is False
    with pytest.raises(BuildError, match=r"predicates\[0\]: unknown predicate 'Pth'"):
        build_predicate("Pth=/x")


def test_build_filter_passes_the_route_to_the_build_context() -> None:
    seen: list[BuildContext] = []

    def build(config: TagConfig, context: BuildContext) -> Any:
        seen.append(context)
        return _passes_through

    build_filter("KitProbe=y", spec=_spec(None, build=build), route_id="orders", metadata={"team": "t"})
    assert (seen[0].route_id, dict(seen[0].metadata)) == ("orders", {"team": "t"})


# -- the exchange and the scripted upstream ---------------------------------------------------------------------


async def test_make_exchange_is_a_request_as_the_server_builds_it() -> None:
    exchange = make_exchange(
        "POST", "/a%2Fb?q=1&r", headers={"X-A": "1"}, body=b"hello", client=("10.0.0.7", 4321), path_vars={"id": "7"}
    )
    assert (exchange.method, exchange.path, exchange.query) == ("POST", "/a%2Fb", "q=1&r")
    assert list(exchange.headers.items()) == [("Host", "gateway.test"), ("X-A", "1"), ("Content-Length", "5")]
    assert (exchange.host, exchange.client_host, exchange.client_port) == ("gateway.test", "10.0.0.7", 4321)
    assert exchange.path_vars == {"id": "7"} and await exchange.body.read() == b"hello"
    assert make_exchange(headers=[("host", "api.example.org")]).host == "api.example.org"
    assert make_exchange(peer=PeerIdentity(spiffe_id="spiffe://t/a")).peer == PeerIdentity(spiffe_id="spiffe://t/a")
    assert make_exchange(scheme="https").scheme == "https" and make_exchange().body.is_empty


async def test_scripted_upstream_records_and_plays_its_script_in_order() -> None:
    upstream = ScriptedUpstream(Response(503), UpstreamTimeout(), Response(200, Headers([("X-N", "last")]), b"fine"))
    first = await upstream(make_exchange("PUT", "/one", body=b"abc"))
    with pytest.raises(UpstreamTimeout):
        await upstream(make_exchange("GET", "/two"))
    third, fourth = [await upstream(make_exchange("GET", f"/{n}")) for n in ("three", "four")]
    assert [first.status, third.status, fourth.status] == [503, 200, 200]  # the last item repeats
    assert [r.path for r in upstream.received] == ["/one", "/two", "/three", "/four"]
    assert upstream.received[0].body == b"abc" and upstream.received[0].header("content-length") == ["3"]
    # Each answer is a fresh copy: a filter changing one in place does not change the next.
    third.headers.set("X-N", "changed")
    assert fourth.headers.get("X-N") == "last" and third.origin == "upstream"
    assert await read_body(fourth) == b"fine"


async def test_read_body_reads_a_stream() -> None:
    async def chunks() -> Any:
        yield b"ab"
        yield b"c"

    assert await read_body(Response(200, body=chunks())) == b"abc"


# -- the in-process gateway -------------------------------------------------------------------------------------


async def test_running_gateway_routes_over_real_sockets_with_a_spec_not_installed() -> None:
    async with echo_upstream() as upstream:
        routes = [
            {"id": "r", "uri": upstream.url, "predicates": ["Path=/api/**"], "filters": ["StripPrefix=1", "KitProbe"]}
        ]
        async with running_gateway(routes, specs=[GOOD]) as gw:
            reply = await gw.get("/api/things?x=1")
            missing = await gw.get("/elsewhere")
    assert reply.status == 200 and reply.json()["path"] == "/things"
    assert reply.upstream_got("X-Tag") == ["x"] and reply.headers.get("X-Tagged") == "yes"
    assert missing.status == 404


def test_running_gateway_refuses_a_bad_config_and_runs_under_asyncio_run() -> None:
    async def scenario() -> int:
        with pytest.raises(BuildError, match=r"routes\[0\]\.filters\[0\]: unknown filter 'KitProbe'"):
            async with running_gateway("routes: [{id: r, uri: 'http://127.0.0.1:9', filters: [KitProbe]}]"):
                pass
        async with echo_upstream() as upstream, running_gateway([{"id": "r", "uri": upstream.url}]) as gw:
            return (await gw.request("POST", "/p", body=b"x")).status

    assert asyncio.run(scenario()) == 200


def test_the_example_plugins_tests_use_only_the_api_and_the_kit() -> None:
    """What a team can import: its own package, `gateway.api` and `gateway.testing` (no `tests.` of ours)."""
    example_tests = EXAMPLE.parent / "tests"
    found = list(gateway_imports(example_tests))
    assert found, "the walk found no import at all"
    assert {module for _, module, _ in found} == {"gateway.api", "gateway.testing"}, found
    assert "from tests" not in "".join(p.read_text(encoding="utf-8") for p in example_tests.rglob("*.py"))


def test_docs_plugins_lists_the_contract_the_kit_checks_and_every_spec_part() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    listed = text.split("<!-- contract:", 1)[1].split("<!-- /contract -->", 1)[0].splitlines()[1:]
    assert [line for line in listed if line] == [f"- {rule[0].upper()}{rule[1:]}." for rule in CONTRACT]
    parts = [f.name for f in dataclasses.fields(FilterSpec)] + [f.name for f in dataclasses.fields(PredicateSpec)]
    assert not [name for name in parts if f"`{name}`" not in text], "docs/plugins.md must explain every spec part"
    unexplained = [name for name in testing.__all__ if not re.search(rf"`[^`]*\b{name}\b[^`]*`", text)]
    assert not unexplained, "docs/plugins.md must show every name of the kit"
