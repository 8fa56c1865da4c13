"""One predicate/filter entry's args, read as SCG binds them: scalars for lists, relaxed names, shortcut gathering.

Each rule holds for every spec and every source of route definitions (routes.yaml, application.yml, the admin
API), because they all go through `gateway.config.components.parse_component`.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from gateway.app import Gateway
from gateway.config.components import parse_component
from gateway.config.definitions import ComponentDef
from gateway.config.redact import redacted_routes
from gateway.docs import render_catalogue
from gateway.errors import ConfigError, ConfigIssue
from gateway.registry import load_registry
from gateway.settings import load_settings
from gateway.spec import ComponentConfig, FilterSpec, PredicateSpec
from tests.helpers import config_issues, config_only_route

REGISTRY = load_registry()
WHERE = "routes[0].filters[0]"


def parsed(item: str, kind: str = "filter") -> tuple[ComponentDef, Any]:
    """Parse one entry (YAML text) with the installed specs; fails the test with the problems if refused."""
    problems: list[tuple[str, str]] = []
    specs: Any = REGISTRY.filters if kind == "filter" else REGISTRY.predicates
    out = parse_component(
        yaml.safe_load(item), WHERE, specs, kind, REGISTRY.origins, lambda p, m: problems.append((p, m))
    )
    assert out is not None, problems
    return out


def refused(item: str, kind: str = "filter") -> list[tuple[str, str]]:
    """Parse one entry that must be refused; (path, message) of every problem."""
    problems: list[tuple[str, str]] = []
    specs: Any = REGISTRY.filters if kind == "filter" else REGISTRY.predicates
    out = parse_component(
        yaml.safe_load(item), WHERE, specs, kind, REGISTRY.origins, lambda p, m: problems.append((p, m))
    )
    assert out is None and problems
    return problems


def load_issues(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        Gateway().load_text(text, "routes.yaml")
    return info.value.issues


# -- 1. a scalar where a list is expected -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "attribute", "expected"),
    [
        ("{name: CircuitBreaker, args: {statusCodes: 500}}", "status_codes", [500]),
        ("{name: CircuitBreaker, args: {statusCodes: BAD_GATEWAY}}", "status_codes", [502]),
        ("{name: CircuitBreaker, args: {statusCodes: '500,502'}}", "status_codes", [500, 502]),
        ("{name: Retry, args: {statuses: 503}}", "statuses", [503]),
        ("{name: Retry, args: {statuses: 'BAD_GATEWAY,504'}}", "statuses", [502, 504]),
        ("{name: Retry, args: {statuses: [503, 'BAD_GATEWAY,504']}}", "statuses", [503, 502, 504]),
        ("{name: Retry, args: {series: server_error}}", "series", ["SERVER_ERROR"]),
        ("{name: Retry, args: {methods: GET}}", "methods", ["GET"]),
        ("{name: Retry, args: {methods: 'GET,PUT'}}", "methods", ["GET", "PUT"]),
        ("{name: Retry, args: {exceptions: IOException}}", "exceptions", ["IOException"]),
        ("{name: SecureHeaders, args: {disable: x-frame-options}}", "disable", ["x-frame-options"]),
    ],
)
def test_a_scalar_binds_as_a_one_element_list(item: str, attribute: str, expected: list[Any]) -> None:
    _, config = parsed(item)
    assert getattr(config, attribute) == expected


def test_scalar_status_codes_load_through_a_routes_file() -> None:
    filters = "[{name: CircuitBreaker, args: {statusCodes: 500}}, {name: Retry, args: {statuses: 503}}]"
    config = Gateway().load_text(config_only_route(filters=filters), "routes.yaml")
    assert [f.name for f in config.routes[0].filters] == ["CircuitBreaker", "Retry"]


def _list_fields(model: type[BaseModel]) -> list[str]:
    listed = []
    for name, info in model.model_fields.items():
        union = typing.get_origin(info.annotation) in (typing.Union, types.UnionType)
        kinds = [a for a in typing.get_args(info.annotation) if a is not type(None)] if union else [info.annotation]
        if all(typing.get_origin(k) in (list, tuple, set, frozenset) for k in kinds):
            listed.append(info.alias or name)
    return listed


def test_every_list_field_of_every_spec_takes_one_value_for_a_list() -> None:
    """The shared rule: wherever a spec's example gives a list, its first item alone binds the same way."""
    checked = 0
    specs: list[FilterSpec[Any] | PredicateSpec[Any]] = [*REGISTRY.filters.values(), *REGISTRY.predicates.values()]
    for spec in specs:
        for field in _list_fields(spec.config):
            value = spec.example.get(field)
            if not isinstance(value, list) or not value:
                continue
            alone = spec.config.model_validate({**spec.example, field: value[0]})
            listed = spec.config.model_validate({**spec.example, field: [value[0]]})
            assert alone == listed, (spec.name, field)
            checked += 1
    assert checked >= 5


# -- 2. relaxed names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "attribute", "expected"),
    [
        ("{name: CircuitBreaker, args: {fallbackURI: 'forward:/fb'}}", "fallback_uri", "forward:/fb"),
        ("{name: CircuitBreaker, args: {FALLBACK_URI: 'forward:/fb'}}", "fallback_uri", "forward:/fb"),
        ("{name: CircuitBreaker, args: {status-codes: [500]}}", "status_codes", [500]),
        ("{name: Retry, args: {backoff: {firstBackoff: 10ms, maxBackOff: 50ms}}}", "max_backoff", 0.05),
        ("{name: Retry, args: {Backoff: {first_backoff: 10ms}}}", "first_backoff", 0.01),
        ("{name: Retry, args: {backoff.first-backoff: 10ms, backoff.MaxBackoff: 1s}}", "max_backoff", 1.0),
        ("{name: Retry, args: {jitter: {RandomFactor: 0.25}}}", "random_factor", 0.25),
        ("{name: Retry, args: {per_try_timeout: 1s}}", "per_try_timeout", 1.0),
        ("{name: StripPrefix, args: {PARTS: 2}}", "parts", 2),
    ],
)
def test_argument_names_bind_as_spring_relaxed_binding(item: str, attribute: str, expected: Any) -> None:
    _, config = parsed(item)
    assert getattr(config, attribute) == expected


def test_a_nested_error_keeps_its_full_path_and_line() -> None:
    text = (
        "routes:\n"
        "  - id: r\n"
        "    uri: http://127.0.0.1:9\n"
        "    filters:\n"
        "      - name: Retry\n"
        "        args:\n"
        "          retries: 2\n"
        "          backoff:\n"
        "            firstBackoff: 10ms\n"
        "            maxBackOff: soon\n"
    )
    issues = load_issues(text)
    assert [(i.path, i.line) for i in issues] == [("routes[0].filters[0].args.backoff.maxBackOff", 10)]
    assert "not a duration" in issues[0].message


def test_a_dotted_nested_key_keeps_its_path_and_line() -> None:
    text = (
        "routes:\n  - id: r\n    uri: http://127.0.0.1:9\n    filters:\n      - name: Retry\n        args:\n"
        "          retries: 2\n          backoff.first-backoff: never\n"
    )
    issues = load_issues(text)
    assert [(i.path, i.line) for i in issues] == [("routes[0].filters[0].args.backoff.first-backoff", 8)]


def test_a_relaxed_spelling_error_is_reported_where_it_was_written() -> None:
    text = (
        "routes:\n  - id: r\n    uri: http://127.0.0.1:9\n    filters:\n      - name: CircuitBreaker\n"
        "        args:\n          name: b\n          failure-rate-threshold: 0\n"
    )
    issues = load_issues(text)
    assert [(i.path, i.line) for i in issues] == [("routes[0].filters[0].args.failure-rate-threshold", 8)]
    assert "greater than 0" in issues[0].message


def test_the_same_argument_written_twice_is_an_error() -> None:
    problems = refused("{name: StripPrefix, args: {parts: 1, Parts: 2}}")
    assert problems == [(f"{WHERE}.args.Parts", "'Parts' is the argument 'parts' again (already given as 'parts')")]
    problems = refused("{name: Retry, args: {factor: 3, backoff: {firstBackoff: 1ms, factor: 2}}}")
    assert [p for p, _ in problems] == [f"{WHERE}.args.backoff.factor"]
    problems = refused(
        "{name: Path, args: {patterns: /a, matchTrailingSlash: false, MATCH_TRAILING_SLASH: 1}}", "predicate"
    )
    assert problems == [(f"{WHERE}.args.MATCH_TRAILING_SLASH", "'matchTrailingSlash' is given twice")]


def test_a_dotted_key_repeating_a_block_key_is_an_error_and_the_input_is_untouched() -> None:
    args = {"backoff": {"factor": 2}, "backoff.factor": 3, "backoff.maxBackoff": "1s"}
    item = {"name": "Retry", "args": args}
    problems: list[tuple[str, str]] = []
    specs: Any = REGISTRY.filters
    assert parse_component(item, WHERE, specs, "filter", REGISTRY.origins, lambda p, m: problems.append((p, m))) is None
    assert problems == [(f"{WHERE}.args.backoff.factor", "'backoff.factor' is given twice")]
    assert args == {"backoff": {"factor": 2}, "backoff.factor": 3, "backoff.maxBackoff": "1s"}


class _Clashing(ComponentConfig):
    """Two fields whose names are equal once case, '-' and '_' are ignored."""

    max_size: int = Field(1, description="one")
    maxsize: int = Field(2, description="the other")


def test_an_ambiguous_relaxed_name_is_an_error_not_a_guess() -> None:
    assert _Clashing.model_validate({"maxSize": 5}).max_size == 5  # an exact spelling is no guess
    assert _Clashing.model_validate({"maxsize": 7}).maxsize == 7
    with pytest.raises(ValueError, match="matches more than one"):
        _Clashing.model_validate({"MAX-SIZE": 5})


def test_args_are_normalised_and_round_trip() -> None:
    """ComponentDef.args holds canonical names (what GET /routes shows); read back, it binds the same config."""
    item = "{name: Retry, args: {RETRIES: 2, statuses: 503, backoff: {first-backoff: 10ms, maxBackOff: 1s}}}"
    definition, config = parsed(item)
    assert dict(definition.args) == {
        "retries": 2,
        "statuses": 503,
        "firstBackoff": "10ms",
        "maxBackoff": "1s",
    }
    again, config_again = parsed(yaml.safe_dump(definition.to_data()))
    assert again == definition and config_again == config
    implied, _ = parsed("{name: Retry, args: {backoff: {maxBackoff: 1s}}}")  # SCG's firstBackoff default: 5ms
    assert dict(implied.args) == {"maxBackoff": "1s", "firstBackoff": "5ms"}


def test_a_credential_written_with_relaxed_names_is_still_redacted() -> None:
    """Redaction looks for canonical names (`name`, `value`); normalized args keep that true for any spelling."""
    filters = "[{name: AddRequestHeader, args: {NAME: Authorization, Value: Bearer s3cret}}]"
    config = Gateway().load_text(config_only_route(filters=filters), "routes.yaml")
    shown = redacted_routes(config)["routes"][0]["filters"][0]
    assert shown == {"name": "AddRequestHeader", "args": {"name": "Authorization", "value": "<redacted>"}}


def test_other_config_blocks_are_untouched_by_argument_folding() -> None:
    # metadata keys are free-form for filters: only the gateway's own spellings are read
    config = Gateway().load_text(
        "routes:\n  - id: r\n    uri: http://127.0.0.1:9\n    metadata: {myKey: 1, other_key: 2}\n", "routes.yaml"
    )
    assert dict(config.routes[0].metadata) == {"myKey": 1, "other_key": 2}


# -- 3. SCG's shortcut gathering and generated keys ----------------------------------------------------------------


NO_SLASH = {"matchTrailingSlash": False}
#: A key naming another field binds to it (SCG would gather it: its YAML cannot set maxTrustedIndex).
SOURCES_AND_INDEX = {"sources": "10.0.0.0/8", "maxTrustedIndex": 2}


@pytest.mark.parametrize(
    ("item", "args"),
    [
        ("{name: Path, args: {pattern: /x}}", {"patterns": ["/x"]}),
        ("{name: Path, args: {a: /x, b: [/y, /z]}}", {"patterns": ["/x", "/y", "/z"]}),
        ("{name: Path, args: {patterns: /x, match-trailing-slash: 'false'}}", {"patterns": "/x", **NO_SLASH}),
        (
            "{name: Path, args: {_genkey_0: /a, _genkey_1: /b, _genkey_2: 'false'}}",
            {"patterns": ["/a", "/b"]} | NO_SLASH,
        ),
        ("{name: Host, args: {host: a.example.org}}", {"patterns": ["a.example.org"]}),
        ("{name: Host, args: {_genkey_0: a.org, _genkey_1: b.org}}", {"patterns": ["a.org", "b.org"]}),
        ("{name: Method, args: {method: GET}}", {"methods": ["GET"]}),
        ("{name: Method, args: {methods: [GET], verbs: [POST]}}", {"methods": ["GET", "POST"]}),
        ("{name: XForwardedRemoteAddr, args: {sources: 10.0.0.0/8, max-trusted-index: 2}}", SOURCES_AND_INDEX),
        ("{name: RemoteAddr, args: {_genkey_0: 10.0.0.0/8}}", {"sources": ["10.0.0.0/8"]}),
        ("{name: Query, args: {_genkey_0: color, _genkey_1: 'gr.+'}}", {"param": "color", "regexp": "gr.+"}),
    ],
)
def test_predicate_args_are_gathered_and_generated_keys_mapped(item: str, args: dict[str, Any]) -> None:
    definition, _ = parsed(item, "predicate")
    assert dict(definition.args) == args


@pytest.mark.parametrize(
    ("item", "args"),
    [
        ("{name: StripPrefix, args: {_genkey_0: 2}}", {"parts": 2}),
        ("{name: AddRequestHeader, args: {_genkey_0: X-A, _genkey_1: v}}", {"name": "X-A", "value": "v"}),
        ("{name: AddRequestHeadersIfNotPresent, args: {a: 'X-A:1', b: 'X-B:2'}}", {"keyValues": ["X-A:1", "X-B:2"]}),
        ("{name: AddRequestHeadersIfNotPresent, args: {keyValues: 'X-A:1,X-B:2'}}", {"keyValues": "X-A:1,X-B:2"}),
        ("{name: Retry, args: {_genkey_0: 2, _genkey_1: BAD_GATEWAY}}", {"retries": 2, "statuses": "BAD_GATEWAY"}),
    ],
)
def test_filter_generated_keys_map_onto_the_shortcut_fields(item: str, args: dict[str, Any]) -> None:
    definition, _ = parsed(item)
    assert dict(definition.args) == args


def test_route_definition_exported_as_json_loads() -> None:
    """SCG's GET /actuator/gateway/routedefinitions writes shortcut arguments under `_genkey_N`."""
    text = (
        '{"routes": [{"id": "r", "uri": "http://127.0.0.1:9", "predicates": [{"name": "Path", "args": '
        '{"_genkey_0": "/api/**"}}], "filters": [{"name": "StripPrefix", "args": {"_genkey_0": "1"}}]}]}'
    )
    route = Gateway().load_text(text, "routes.json").routes[0]
    assert dict(route.predicates[0].args) == {"patterns": ["/api/**"]}
    assert dict(route.filters[0].args) == {"parts": "1"}


def test_too_many_generated_keys_is_an_error() -> None:
    problems = refused("{name: StripPrefix, args: {_genkey_0: 1, _genkey_1: 2}}")
    assert problems == [(f"{WHERE}.args._genkey_1", "StripPrefix takes at most 1 shortcut arguments (parts)")]


def test_a_non_text_value_gathered_into_patterns_is_refused_where_it_was_written() -> None:
    """SCG would take `caseSensitive: false` as the trailing-slash flag or `true` as a host: we say why not."""
    problems = refused("{name: Path, args: {patterns: [/a], caseSensitive: false}}", "predicate")
    assert problems == [
        (
            "routes[0].filters[0].args.caseSensitive",
            "Path takes every argument value as one of its patterns (as SCG does), and False is not one",
        )
    ]
    problems = refused("{name: Host, args: {patterns: [a.org], includePort: true}}", "predicate")
    assert [p for p, _ in problems] == ["routes[0].filters[0].args.includePort"]


# -- 4. messages that read as ours --------------------------------------------------------------------------------


def test_no_pydantic_prefix_reaches_a_user() -> None:
    issues = config_issues(config_only_route(filters="[{name: CircuitBreaker, args: {fallbackUri: 'http://x/'}}]"))
    assert issues == [
        ("routes[0].filters[0].args.fallbackUri", "fallbackUri must be `forward:/path` (a local route), as in SCG")
    ]
    issues = config_issues(config_only_route(filters="[{name: Retry, args: {series: [], exceptions: []}}]"))
    assert issues == [("routes[0].filters[0].args", "series, statuses and exceptions may not all be empty")]


def test_an_unknown_argument_gets_a_suggestion() -> None:
    issues = config_issues(config_only_route(filters="[{name: StripPrefix, args: {part: 1}}]"))
    assert issues == [("routes[0].filters[0].args.part", "unknown argument 'part'; did you mean 'parts'?")]
    issues = config_issues(config_only_route(filters="[{name: StripPrefix, args: {colour: 1}}]"))
    assert issues == [("routes[0].filters[0].args.colour", "unknown argument 'colour'; known: parts")]


def test_an_unknown_key_elsewhere_reads_as_ours() -> None:
    text = "demo-upstream: {listn: '127.0.0.1:1'}\nroutes: []\n"
    issues = load_issues(text)
    found = [(i.path, i.message) for i in issues]
    assert found == [("demo-upstream.listn", "unknown key 'listn'; did you mean 'listen'?")]


def test_an_unknown_key_in_global_cors_is_reported_where_written_with_a_hint() -> None:
    text = "globalcors:\n  cors-configurations:\n    '[/**]':\n      allowedOrign: [https://a.org]\nroutes: []\n"
    issues = load_issues(text)
    assert [(i.path, i.line, i.message) for i in issues] == [
        (
            "globalcors.cors-configurations.[/**].allowedOrign",
            4,
            "unknown key 'allowedOrign'; did you mean 'allowedOrigins'?",
        )
    ]


def test_settings_errors_read_as_ours_too() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={}, overrides={"timeouts": {"conect": 1}})
    assert [(i.path, i.message) for i in info.value.issues] == [
        ("timeouts.conect", "unknown key 'conect'; did you mean 'connect'?")
    ]


def test_filters_text_catalogue_has_no_markdown_escapes() -> None:
    text = render_catalogue(REGISTRY, "text")
    assert "\\|" not in text
    assert "COUNT_BASED | CONSECUTIVE_FAILURES" in text
