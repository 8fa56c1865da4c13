"""A Spring `application.yml` is read the way Spring Boot reads it: dotted keys, `---` documents and profiles,
YAML merge keys, SCG's route rules (no id, `enabled`, `lb://name:port`, the text form), `${...}` placeholders, and
YAML syntax errors with a usable location."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.config.definitions import GatewayConfig
from gateway.config.redact import redacted_routes
from gateway.config.source import load_yaml
from gateway.errors import ConfigError, ConfigIssue
from gateway.registry import load_registry
from gateway.settings import Settings
from gateway.supervisor import compile_snapshot
from tests.conftest import StartGateway, Upstream
from tests.e2e.test_cli import sluicegate
from tests.helpers import config_issues


def load(text: str, source: str = "application.yml") -> GatewayConfig:
    return Gateway().load_text(text, source)


def refused(text: str, source: str = "application.yml") -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        Gateway().load_text(text, source)
    return caught.value.issues


# -- dotted keys -------------------------------------------------------------------------------------------------

DOTTED_INNER = """\
spring:
  cloud:
    gateway.server.webflux:
      routes:
        - id: r
          uri: http://127.0.0.1:9
          filters:
            - StripPrefix=x
"""


def test_a_dotted_key_inside_the_spring_block_is_read_as_nested_keys_with_right_paths_and_lines() -> None:
    issues = refused(DOTTED_INNER)
    path = "spring.cloud.gateway.server.webflux.routes[0].filters[0].args.parts"
    assert [(i.path, i.line) for i in issues] == [(path, 8)]
    assert [r.id for r in load(DOTTED_INNER.replace("=x", "=1")).routes] == ["r"]


def test_a_dotted_top_level_key_is_read_as_the_spring_block() -> None:
    text = "spring.cloud.gateway.routes:\n  - id: r\n    uri: http://127.0.0.1:9\n    order: x\n"
    issues = refused(text)
    assert [(i.path, i.line) for i in issues] == [("spring.cloud.gateway.routes[0].order", 4)]
    assert [r.id for r in load(text.replace("order: x", "order: 1")).routes] == ["r"]


def test_dotted_and_nested_spellings_of_one_block_are_merged() -> None:
    text = """\
spring.cloud.gateway.default-filters:
  - AddResponseHeader=X-Edge, yes
spring:
  application.name: edge
  cloud:
    gateway:
      routes: [{id: r, uri: 'http://127.0.0.1:9'}]
"""
    config = load(text)
    assert [r.id for r in config.routes] == ["r"]
    assert [d.name for d in config.default_filters] == ["AddResponseHeader"]


def test_one_setting_written_twice_in_two_spellings_is_an_error() -> None:
    text = (
        "spring.cloud.gateway.routes: []\nspring:\n  cloud:\n    gateway:\n      routes: [{id: r, uri: 'http://h'}]\n"
    )
    issues = refused(text)
    assert [i.path for i in issues] == ["spring.cloud.gateway.routes"]
    assert "twice" in issues[0].message


def test_a_dotted_key_in_a_route_reaches_into_free_form_maps_as_spring_binds_it() -> None:
    text = "spring.cloud.gateway.routes:\n  - id: r\n    uri: http://127.0.0.1:9\n"
    text += "    metadata.response-timeout: 200\n    metadata.team.name: payments\n"
    text += "    predicates: [{name: Path, args.patterns.0: /a/**}]\n"
    route = load(text).routes[0]
    assert route.metadata == {"response-timeout": 200, "team.name": "payments"}
    assert route.predicates[0].args["patterns"] == ["/a/**"]


def test_a_routes_yaml_key_next_to_the_spring_block_is_an_error_not_ignored() -> None:
    text = "spring.application.name: edge\nroutes: [{id: r, uri: 'http://h'}]\nspring.cloud.gateway.routes: []\n"
    issues = refused(text)
    assert [i.path for i in issues] == ["routes"]
    assert "spring.cloud.gateway" in issues[0].message


def test_argument_keys_with_dots_are_left_for_the_argument_parser() -> None:
    # SCG's indexed argument keys (`patterns.0`) must reach components.py as written, not be split.
    text = "spring.cloud.gateway.routes:\n  - id: r\n    uri: http://h\n    predicates:\n"
    text += "      - {name: Path, args: {patterns.0: /a/**, patterns.1: /b/**}}\n"
    assert load(text).routes[0].predicates[0].args["patterns"] == ["/a/**", "/b/**"]


# -- documents and profiles --------------------------------------------------------------------------------------

MULTI = """\
spring:
  cloud:
    gateway:
      routes:
        - id: first
          uri: http://127.0.0.1:9
---
spring:
  config:
    activate:
      on-profile: dev
  cloud:
    gateway:
      routes:
        - id: dev-only
          uri: http://127.0.0.1:9
---
spring.cloud.gateway:
  routes:
    - id: second
      uri: http://127.0.0.1:9
      order: x
"""


def test_documents_without_a_profile_are_merged_in_order_and_later_ones_win() -> None:
    issues = refused(MULTI)
    # the third document's list replaced the first's, as in Spring Boot; the error points into the third document
    assert [(i.path, i.line) for i in issues] == [("spring.cloud.gateway.routes[0].order", 22)]
    config = load(MULTI.replace("order: x", "order: 1"))
    assert [r.id for r in config.routes] == ["second"]


def test_a_profile_specific_document_is_skipped_with_a_warning_naming_it() -> None:
    config = load(MULTI.replace("order: x", "order: 1"))
    assert any("document 2" in w.message and "dev" in w.message for w in config.warnings), config.warnings
    assert any("documents 1, 3 of 3" in note for note in config.notes), config.notes


def test_run_logs_which_documents_were_read_and_the_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "application.yml"
    path.write_text(MULTI.replace("order: x", "order: 1"), encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="sluicegate.supervisor"):
        compile_snapshot(path, load_registry(), Settings(), 1)  # what `sluicegate run` and every reload do
    logged = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert any(level == logging.INFO and "documents 1, 3 of 3" in text for level, text in logged), logged
    assert any(level == logging.WARNING and "document 2" in text for level, text in logged), logged


def test_validate_says_which_documents_were_read(tmp_path: Path) -> None:
    path = tmp_path / "application.yml"
    path.write_text(MULTI.replace("order: x", "order: 1"), encoding="utf-8")
    result = sluicegate("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "documents 1, 3 of 3" in result.stdout
    assert "warning:" in result.stderr and "on-profile" in result.stderr and "document 2" in result.stderr


# -- YAML merge keys, aliases, tags -------------------------------------------------------------------------------

MERGE = """\
x-base: &base
  uri: http://127.0.0.1:9
  filters: [StripPrefix=1]
routes:
  - <<: *base
    id: a
    predicates: [Path=/a/**]
  - <<: [*base]
    id: b
    uri: http://127.0.0.1:10
"""


def test_yaml_merge_keys_are_read_and_explicit_keys_win() -> None:
    doc, issues = load_yaml(MERGE, "routes.yaml")
    assert not issues
    assert doc.data["routes"][0] == {"id": "a", "predicates": ["Path=/a/**"], **doc.data["x-base"]}
    assert doc.data["routes"][1]["uri"] == "http://127.0.0.1:10"
    assert doc.data["routes"][1]["filters"] == ["StripPrefix=1"]


def test_merge_keys_in_a_routes_yaml_with_anchors_under_an_x_key() -> None:
    config = load(MERGE, "routes.yaml")
    assert [(r.id, r.uri, len(r.filters)) for r in config.routes] == [
        ("a", "http://127.0.0.1:9", 1),
        ("b", "http://127.0.0.1:10", 1),
    ]
    assert "unknown top-level key" in config_issues(MERGE.replace("x-base", "base"))[0][1]


MERGE_SPRING = """\
x-base: &base
  uri: http://127.0.0.1:9
  filters: [StripPrefix=1]
spring.cloud.gateway.routes:
  - <<: *base
    id: a
  - <<: *base
    id: b
    predicates: [Path=/b/**]
"""


def test_merge_keys_validate_and_run_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "application.yml"
    path.write_text(MERGE_SPRING, encoding="utf-8")
    result = sluicegate("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "2 routes" in result.stdout
    snapshot = compile_snapshot(path, load_registry(), Settings(), 1)  # what `sluicegate run` does first
    assert [r.id for r in snapshot.config.routes] == ["a", "b"]


def test_a_merge_of_something_not_a_mapping_is_an_error_at_its_path() -> None:
    _, issues = load_yaml("routes:\n  - <<: 3\n    id: a\n", "routes.yaml")
    assert [i.path for i in issues] == ["routes[0].<<"]


def test_an_alias_bomb_is_refused_not_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 9)]
    _, issues = load_yaml("\n".join(lines) + "\nroutes: []\n", "routes.yaml")
    assert issues and "aliases" in issues[0].message


@pytest.mark.timeout(30)  # a guard against a hang: without the fix this takes 10^40 steps
def test_a_merge_key_bomb_is_resolved_once_per_anchor() -> None:
    # Each level merges the one below ten times: re-resolving every merge costs 10^N, a few hundred bytes of YAML.
    lines = ["x-b0: &b0 {a: 1, b: 2}"]
    lines += [f"x-b{i}: &b{i} {{<<: [{', '.join(f'*b{i - 1}' for _ in range(10))}]}}" for i in range(1, 40)]
    lines += ["routes:", "  - id: r", "    uri: http://h", "    metadata:", "      <<: *b39"]
    doc, issues = load_yaml("\n".join(lines) + "\n", "routes.yaml")
    assert not issues
    assert doc.data["routes"][0]["metadata"] == {"a": 1, "b": 2}


def test_merging_counts_against_the_value_bound() -> None:
    # One wide mapping merged 300 times into one place: few values are built (later merges lose to earlier ones),
    # but the merge itself walks 600,000 pairs, and that work is charged like values.
    wide = "{" + ", ".join(f"k{i}: {i}" for i in range(2000)) + "}"
    lines = [f"x-w: &w {wide}", f"x-m: {{<<: [{', '.join('*w' for _ in range(300))}]}}", "routes: []"]
    _, issues = load_yaml("\n".join(lines) + "\n", "routes.yaml")
    assert issues and "aliases" in issues[0].message


def test_a_file_nested_too_deeply_is_an_error_not_a_traceback() -> None:
    _, issues = load_yaml("routes: " + "[" * 5000 + "]" * 5000 + "\n", "routes.yaml")
    assert [i.message for i in issues] == ["invalid YAML: nested too deeply"]


def test_an_unknown_yaml_tag_is_an_error_not_a_traceback() -> None:
    _, issues = load_yaml("routes:\n  - id: !Ref other\n", "routes.yaml")
    assert [(i.path, i.line) for i in issues] == [("routes[0].id", 2)]


def test_a_yaml_syntax_error_names_file_line_and_column_and_no_bogus_path() -> None:
    _, issues = load_yaml("routes:\n  - id: a\n    uri: [unclosed\n", "routes.yaml")
    assert len(issues) == 1
    text = str(issues[0])
    assert text.startswith("routes.yaml:4:1: invalid YAML"), text
    assert "<root>" not in text


# -- route rules, wherever routes come from ------------------------------------------------------------------------


def test_a_route_without_id_gets_a_stable_id_from_its_content() -> None:
    route = "uri: http://127.0.0.1:9\n    predicates: [Path=/a/**]\n"
    plain = load(f"routes:\n  - {route}  - id: x\n    uri: http://127.0.0.1:9\n", "routes.yaml")
    again = load(f"routes:\n  - id: y\n    uri: http://127.0.0.1:9\n  - {route}", "routes.yaml")
    spring = load("spring.cloud.gateway.routes:\n  - " + route.replace("\n    ", "\n    "))
    generated = plain.routes[0].id
    assert generated.startswith("route-") and len(generated) == len("route-") + 12
    assert again.routes[1].id == generated  # another position, another file, another load: the same id
    assert spring.routes[0].id == generated


def test_two_routes_without_id_that_read_alike_are_reported() -> None:
    route = "  - uri: http://127.0.0.1:9\n    predicates: [Path=/a/**]\n"
    issues = config_issues("routes:\n" + route + route)
    assert [path for path, _ in issues] == ["routes[1]"]
    assert "give" in issues[0][1] and "id" in issues[0][1]


def test_a_generated_id_equal_to_an_explicit_id_is_reported() -> None:
    route = "  - uri: http://127.0.0.1:9\n"
    generated = load("routes:\n" + route, "routes.yaml").routes[0].id
    issues = config_issues(f"routes:\n{route}  - id: {generated}\n    uri: http://127.0.0.1:10\n")
    assert [path for path, _ in issues] == ["routes[0]"]
    assert generated in issues[0][1]


def test_a_disabled_route_is_skipped() -> None:
    text = "routes:\n  - id: disabled\n    enabled: false\n    uri: http://127.0.0.1:9/with/path\n"
    text += "  - id: enabled\n    enabled: 'true'\n    uri: http://127.0.0.1:9\n"
    assert [r.id for r in load(text, "routes.yaml").routes] == ["enabled"]


def test_enabled_must_be_a_boolean() -> None:
    issues = config_issues("routes:\n  - id: r\n    enabled: perhaps\n    uri: http://127.0.0.1:9\n")
    assert [path for path, _ in issues] == ["routes[0].enabled"]


def test_lb_uri_with_a_port_names_the_pool_and_the_port_is_ignored_as_in_scg() -> None:
    text = "upstreams:\n  orders:\n    instances: [{url: 'http://127.0.0.1:9'}]\n"
    text += "routes:\n  - id: r\n    uri: lb://orders:8080\n"
    config = load(text, "routes.yaml")
    assert config.routes[0].uri == "lb://orders:8080"
    issues = config_issues(text.replace("orders:8080", "orders:99999"))
    assert [path for path, _ in issues] == ["routes[0].uri"]


def test_upstreams_are_read_from_the_spring_block() -> None:
    text = """\
spring.cloud.gateway.server.webflux:
  upstreams:
    orders:
      instances: [{url: 'http://127.0.0.1:9'}]
  routes:
    - id: r
      uri: lb://orders
"""
    assert list(load(text).upstreams) == ["orders"]


def test_the_text_form_of_a_route_is_read_as_scg_reads_it() -> None:
    text = "spring.cloud.gateway.routes:\n  - host_route=http://127.0.0.1:9, Host=**.example.org, Method=GET\n"
    route = load(text).routes[0]
    assert (route.id, route.uri) == ("host_route", "http://127.0.0.1:9")
    assert [(p.name, p.shortcut) for p in route.predicates] == [("Host", "**.example.org"), ("Method", "GET")]


def test_a_route_text_without_id_is_an_error() -> None:
    issues = config_issues("routes:\n  - =http://127.0.0.1:9\n")
    assert [path for path, _ in issues] == ["routes[0]"]
    assert "id=uri" in issues[0][1]


async def test_a_text_form_route_without_id_serves(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(f"routes:\n  - uri: {upstream.url}\n    predicates: [Path=/t/**]\n  - t={upstream.url}\n")
    async with aiohttp.ClientSession() as session, session.get(gw.url("/t/x")) as resp:
        assert resp.status == 200
        assert (await resp.json())["path"] == "/t/x"


# -- ${...} placeholders -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "line"),
    [
        ("- id: r\n    uri: ${test.uri}\n", 3),
        ("- id: r\n    uri: http://${HOST:localhost}:80\n", 3),
        ("- r=${test.uri}, Path=/x\n", 2),  # SCG's text form
    ],
)
def test_a_placeholder_in_a_route_uri_is_refused_with_file_line_and_path(route: str, line: int) -> None:
    issues = refused("spring.cloud.gateway.routes:\n  " + route)
    assert [(i.path, i.line) for i in issues] == [("spring.cloud.gateway.routes[0].uri", line)]
    assert "placeholder" in issues[0].message
    assert str(issues[0]).startswith(f"application.yml:{line}: spring.cloud.gateway.routes[0].uri: ")


def test_run_refuses_a_placeholder_in_a_route_uri(tmp_path: Path) -> None:
    path = tmp_path / "application.yml"
    path.write_text("spring.cloud.gateway.routes:\n  - id: r\n    uri: ${test.uri}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        compile_snapshot(path, load_registry(), Settings(), 1)
    assert [i.path for i in caught.value.issues] == ["spring.cloud.gateway.routes[0].uri"]


def test_a_placeholder_elsewhere_is_inert_text_with_a_warning_and_env_references_are_not_warned() -> None:
    text = "server.port: ${PORT:8080}\nspring.cloud.gateway.routes:\n  - id: r\n    uri: http://127.0.0.1:9\n"
    text += "    filters: ['AddRequestHeader=X-Who, ${user.name}', 'AddRequestHeader=X-Env, ${env:HOME}']\n"
    config = load(text)
    assert config.routes[0].filters[0].args["value"] == "${user.name}"
    assert [(w.path, w.line) for w in config.warnings] == [("spring.cloud.gateway.routes[0].filters[0]", 5)]
    assert "${user.name}" in config.warnings[0].message


def test_a_placeholder_in_an_upstream_instance_url_is_refused() -> None:
    text = "spring.cloud.gateway:\n  upstreams:\n    orders:\n      instances: [{url: 'http://${ORDERS_HOST}:80'}]\n"
    text += "  routes: [{id: r, uri: 'lb://orders'}]\n"
    issues = refused(text)
    assert [(i.path, i.line) for i in issues] == [("spring.cloud.gateway.upstreams.orders.instances[0].url", 4)]


@pytest.mark.parametrize("prefix", ["routes:\n", "spring.cloud.gateway.server.webflux.routes:\n"])
def test_secrets_stay_redacted_after_a_disabled_route_and_in_the_text_form(prefix: str) -> None:
    text = prefix + "  - {id: off, enabled: false, uri: 'http://127.0.0.1:9'}\n"
    text += "  - {id: a, uri: 'http://127.0.0.1:9', filters: ['AddRequestHeader=X-Key, ${env:SECRET}']}\n"
    text += "  - t=http://127.0.0.1:9, Path=/${env:SECRET}/**\n"
    doc, issues = load_yaml(text, "routes.yaml", {"SECRET": "s3cret-value"})
    assert not issues
    gateway = Gateway()
    from gateway.routing.compiler import compile_config

    config, _ = compile_config(doc, gateway.registry, gateway.settings, gateway.dispatcher.terminal)
    assert [r.id for r in config.routes] == ["a", "t"]
    shown = str(redacted_routes(config))
    assert "s3cret" not in shown, shown
