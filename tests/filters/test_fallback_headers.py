"""FallbackHeaders on a real fallback route: what a CircuitBreaker's failure looks like to the fallback's upstream.

The failing service is a port nothing listens on (connect refused) or an upstream that answers 500; the fallback
route forwards to the demo echo upstream, which reports the headers it received.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from filters.fallback_headers import MAX_MESSAGE, header_text, root_cause
from gateway.services import WORKER
from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, free_port

NAMES = ("Execution-Exception-Type", "Execution-Exception-Message", "Root-Cause-Exception-Type")


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    breakers = WORKER.scoped("CircuitBreaker").state  # per process, keyed by route id: none left by another test
    breakers.forget()
    yield
    breakers.forget()


def routes(service: str, fallback: Upstream, fallback_filters: str = "[FallbackHeaders]") -> str:
    return f"""
routes:
  - id: svc
    uri: {service}
    predicates: [Path=/svc/**]
    filters: ["CircuitBreaker=svcBreaker,forward:/fallback"]
  - id: fb
    uri: {fallback.url}
    predicates: [Path=/fallback]
    filters: {fallback_filters}
"""


async def test_the_failure_is_described_on_the_fallback_request(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(f"http://127.0.0.1:{free_port()}", upstream))
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 200
    assert reply.seen()["path"] == "/fallback"
    assert reply.upstream_got("Execution-Exception-Type") == ["UpstreamConnectError"]
    assert reply.upstream_got("Root-Cause-Exception-Type") != []
    (message,) = reply.upstream_got("Execution-Exception-Message")
    assert message and len(message) <= MAX_MESSAGE


async def test_custom_header_names(upstream: Upstream, start_gateway: StartGateway) -> None:
    filters = "[{name: FallbackHeaders, args: {executionExceptionTypeHeaderName: X-Failure-Type}}]"
    gw = await start_gateway(routes(f"http://127.0.0.1:{free_port()}", upstream, filters))
    reply = await fetch(gw, "/svc/x")
    assert reply.upstream_got("X-Failure-Type") == ["UpstreamConnectError"]
    assert reply.upstream_got("Execution-Exception-Type") == []
    assert reply.upstream_got("Execution-Exception-Message") != []  # the others keep SCG's defaults


async def test_a_direct_request_gets_no_failure_and_client_values_are_removed(
    upstream: Upstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(routes(f"http://127.0.0.1:{free_port()}", upstream))
    reply = await fetch(gw, "/fallback", headers={name: "spoofed" for name in NAMES})
    assert reply.status == 200
    for name in NAMES:
        assert reply.upstream_got(name) == []


async def test_without_the_filter_nothing_is_added(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(routes(f"http://127.0.0.1:{free_port()}", upstream, "[]"))
    reply = await fetch(gw, "/svc/x")
    assert reply.status == 200
    assert reply.upstream_got("Execution-Exception-Type") == []


def test_messages_are_folded_and_bounded() -> None:
    assert header_text("line one\r\nX-Injected: yes\x00") == "line one X-Injected: yes"
    assert len(header_text("x" * 10_000)) == MAX_MESSAGE
    assert header_text("déjà") == "déjà".encode().decode("latin-1")  # UTF-8 on the wire


def test_root_cause_follows_the_chain_and_stops_on_loops() -> None:
    inner = OSError("refused")
    outer = RuntimeError("wrapped")
    outer.__cause__ = inner
    assert root_cause(outer) is inner
    assert root_cause(inner) is inner
    inner.__cause__ = outer  # a loop must not hang
    assert root_cause(outer) in (inner, outer)


def test_config_accepted() -> None:
    from gateway.app import Gateway

    Gateway().load_text(
        config_only_route(
            filters="[FallbackHeaders, {name: FallbackHeaders, args: {root-cause-exception-type-header-name: X-Why}}]"
        )
    )


@pytest.mark.parametrize("name", ["Host", "X-Forwarded-For", "Content-Length", "bad name", ""])
def test_config_refuses_gateway_owned_or_invalid_names(name: str) -> None:
    text = f"[{{name: FallbackHeaders, args: {{rootCauseExceptionMessageHeaderName: '{name}'}}}}]"
    issues = config_issues(config_only_route(filters=text))
    assert [path for path, _ in issues] == ["routes[0].filters[0].args.rootCauseExceptionMessageHeaderName"]


def test_config_refuses_unknown_arguments() -> None:
    issues = config_issues(config_only_route(filters="[{name: FallbackHeaders, args: {typeHeader: X}}]"))
    assert [path for path, _ in issues] == ["routes[0].filters[0].args.typeHeader"]
