"""routes.yaml validation: every error with its file, YAML path, line and reason; nothing half-applied."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.config.source import load_yaml
from gateway.errors import ConfigError, ConfigIssue
from tests.conftest import StartGateway, Upstream


def issues_of(text: str, environ: dict[str, str] | None = None) -> list[ConfigIssue]:
    gateway = Gateway()
    doc, issues = load_yaml(text, "routes.yaml", environ or {})
    if issues:
        return issues
    try:
        from gateway.routing.compiler import compile_config

        compile_config(doc, gateway.registry, gateway.settings, gateway.dispatcher.terminal)
    except ConfigError as exc:
        return exc.issues
    return []


def where(issues: list[ConfigIssue]) -> dict[str, str]:
    return {i.path: i.message for i in issues}


def test_every_error_is_reported_with_path_and_line() -> None:
    text = """\
routes:
  - id: a
    uri: http://127.0.0.1:1
    predicates:
      - Path=/a/**
    filters:
      - StripPrefix=-1
  - id: b
    uri: lb://pool
  - id: a
    uri: http://127.0.0.1:1
    filters:
      - name: StripPrefx
        args: {parts: 1}
"""
    issues = issues_of(text)
    found = where(issues)
    assert "routes[0].filters[0].args.parts" in found
    assert "greater than or equal to 0" in found["routes[0].filters[0].args.parts"]
    assert "lb://" in found["routes[1].uri"]
    assert "duplicate route id 'a'" in found["routes[2].id"]
    assert "did you mean 'StripPrefix'" in found["routes[2].filters[0]"]
    lines = {i.path: i.line for i in issues}
    assert lines["routes[0].filters[0].args.parts"] == 7
    assert lines["routes[1].uri"] == 9
    assert str(issues[0]).startswith("routes.yaml:7: routes[0].filters[0].args.parts:")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://x", "unsupported scheme"),
        ("http://", "no host"),
        ("http://user:pw@host", "credentials"),
        ("http://host/some/path", "carries no path"),
        ("forward:relative", "absolute local path"),
        ("http://host:99999", "port"),
    ],
)
def test_route_uris_are_validated(uri: str, message: str) -> None:
    found = where(issues_of(f"routes: [{{id: r, uri: '{uri}'}}]"))
    assert message in found["routes[0].uri"]


def test_structure_errors() -> None:
    found = where(issues_of("routes:\n  - id: r\n    uri: http://h\n    order: x\n    colour: red\nextra: 1\n"))
    assert "order must be an integer" in found["routes[0].order"]
    assert "unknown route key" in found["routes[0].colour"]
    assert "unknown top-level key" in found["extra"]


def test_invalid_yaml_names_the_line() -> None:
    issues = issues_of("routes:\n  - id: [unclosed\n")
    assert issues and issues[0].line is not None and "invalid YAML" in issues[0].message


def test_env_references_are_substituted_once_and_never_evaluated() -> None:
    text = "routes: [{id: r, uri: 'http://${env:UP_HOST}:8080', filters: ['AddRequestHeader=X-Key, ${env:KEY}#{1+1}']}]"
    gateway = Gateway()
    doc, issues = load_yaml(text, "routes.yaml", {"UP_HOST": "127.0.0.1", "KEY": "s3cret"})
    assert not issues
    from gateway.config.provenance import FromEnv
    from gateway.routing.compiler import compile_config

    config, _ = compile_config(doc, gateway.registry, gateway.settings, gateway.dispatcher.terminal)
    assert config.routes[0].uri == "http://127.0.0.1:8080"
    assert config.routes[0].filters[0].args == {"name": "X-Key", "value": "s3cret#{1+1}"}
    # Marked and recorded for redaction (gateway.config.redact; tests/test_redact.py).
    assert isinstance(config.routes[0].uri, FromEnv) and isinstance(config.routes[0].filters[0].args["value"], FromEnv)
    assert {"127.0.0.1", "s3cret"} <= config.env_values


def test_missing_env_variable_is_an_error_at_its_path() -> None:
    found = where(issues_of("routes: [{id: r, uri: 'http://${env:NOPE_NOT_SET}'}]"))
    assert "NOPE_NOT_SET is not set" in found["routes[0].uri"]


def test_shortcut_expanded_and_indexed_forms_are_equivalent() -> None:
    text = """
routes:
  - id: short
    uri: http://127.0.0.1:1
    predicates: ["Path=/a/{x},/b/**,false"]
  - id: expanded
    uri: http://127.0.0.1:1
    predicates: [{name: Path, args: {patterns: ["/a/{x}", "/b/**"], matchTrailingSlash: false}}]
  - id: indexed
    uri: http://127.0.0.1:1
    predicates: [{name: Path, args: {patterns.0: "/a/{x}", patterns.1: "/b/**", matchTrailingSlash: "false"}}]
"""
    gateway = Gateway()
    config = gateway.load_text(text)
    args = [r.predicates[0].args for r in config.routes]
    assert args[0] == {"patterns": ["/a/{x}", "/b/**"], "matchTrailingSlash": False}
    assert args[1] == args[0]
    assert args[2]["patterns"] == ["/a/{x}", "/b/**"]
    assert config.routes[0].to_data()["predicates"] == ["Path=/a/{x},/b/**,false"]


def test_too_many_shortcut_arguments() -> None:
    found = where(issues_of("routes: [{id: r, uri: 'http://h', filters: ['StripPrefix=1,2']}]"))
    assert "at most 1 shortcut arguments" in found["routes[0].filters[0]"]


def test_a_failed_reload_keeps_the_running_table() -> None:
    gateway = Gateway()
    gateway.load_text("routes: [{id: ok, uri: 'http://127.0.0.1:1', predicates: ['Path=/ok']}]")
    before = gateway.dispatcher.table
    with pytest.raises(ConfigError):
        gateway.load_text("routes: [{id: bad, uri: 'http://127.0.0.1:1', filters: ['Nope=1']}]")
    assert gateway.dispatcher.table is before
    assert gateway.version == 1


async def test_forward_uri_redispatches_locally(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: front
    uri: forward:/internal/echo
    predicates: [Path=/front]
  - id: internal
    uri: {upstream.url}
    predicates: [Path=/internal/**]
    filters: [StripPrefix=1]
  - id: loop-a
    uri: forward:/loop-b
    predicates: [Path=/loop-a]
  - id: loop-b
    uri: forward:/loop-a
    predicates: [Path=/loop-b]
"""
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(gw.url("/front")) as resp:
            assert resp.status == 200
            assert (await resp.json())["path"] == "/echo"
        async with session.get(gw.url("/loop-a")) as resp:
            assert resp.status == 500
            assert resp.headers["Content-Type"] == "application/problem+json"
            assert "forward-loop" in (await resp.json())["type"]


async def test_unmatched_request_is_a_404_problem(start_gateway: StartGateway) -> None:
    gw = await start_gateway("routes: []")
    async with aiohttp.ClientSession() as session, session.get(gw.url("/nothing/here")) as resp:
        assert resp.status == 404
        body = await resp.json()
    assert body["status"] == 404 and body["instance"] == "/nothing/here"


def test_route_table_index_does_not_scan_unrelated_routes() -> None:
    """Matching consults only routes whose literal prefix or exact host can match (not every route)."""
    lines = ["routes:"]
    for i in range(2000):
        lines += [f"  - id: r{i}", "    uri: http://127.0.0.1:1", f"    predicates: ['Path=/svc{i}/**']"]
    lines += ["  - id: host", "    uri: http://127.0.0.1:1", "    predicates: ['Host=api.example.org', 'Path=/**']"]
    gateway = Gateway()
    gateway.load_text("\n".join(lines))
    table = gateway.dispatcher.table
    assert len(table.candidates("other.example.org", "/svc1234/x")) == 1
    assert len(table.candidates("api.example.org:8080", "/svc7/x")) == 2
    assert table.candidates("other.example.org", "/none") == []


SPRING_YML = """\
server:
  port: 8080
spring:
  application:
    name: edge
  cloud:
    gateway:
      default-filters:
        - AddResponseHeader=X-Gateway, edge
      routes:
        - id: orders
          uri: http://127.0.0.1:1
          predicates:
            - Path=/orders/**
          filters:
            - StripPrefix=x
"""


def test_a_spring_application_yml_is_read_from_its_gateway_block() -> None:
    found = where(issues_of(SPRING_YML))
    assert list(found) == ["spring.cloud.gateway.routes[0].filters[0].args.parts"]
    config = Gateway().load_text(SPRING_YML.replace("StripPrefix=x", "StripPrefix=1"))
    assert [r.id for r in config.routes] == ["orders"]
    assert [d.name for d in config.default_filters] == ["AddResponseHeader"]


def test_the_4_3_property_prefix_is_read_too() -> None:
    text = "spring:\n  cloud:\n    gateway:\n      server:\n        webflux:\n          routes: [{id: r, uri: 'http://h'}]\n"
    assert [r.id for r in Gateway().load_text(text).routes] == ["r"]


def test_spring_gateway_settings_we_do_not_read_are_errors_not_silently_ignored() -> None:
    text = (
        "spring:\n  cloud:\n    gateway:\n"
        "      httpclient: {ssl: {use-insecure-trust-manager: true}}\n      routes: []\n"
    )
    found = where(issues_of(text))
    assert "no effect here" in found["spring.cloud.gateway.httpclient"]


def test_shortcut_tokens_are_trimmed_and_empty_ones_dropped_as_spring_does() -> None:
    # SCG's own documentation example relies on this: the ", ," is one separator for Spring's tokenizer.
    shortcut = "RewriteResponseHeader=X-Response-Red, , password=[^&]+, password=***"
    text = f"routes: [{{id: r, uri: 'http://h', filters: ['{shortcut}']}}]"
    config = Gateway().load_text(text)
    args = config.routes[0].filters[0].args
    assert args == {"name": "X-Response-Red", "regexp": "password=[^&]+", "replacement": "password=***"}
