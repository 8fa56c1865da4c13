"""The shared contract test: it runs against every discovered predicate and filter, built-in or a team's."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.exchange import Exchange, Response
from gateway.headers import Headers
from gateway.registry import load_registry
from gateway.settings import Settings
from gateway.spec import BANDS, BuildContext, FilterSpec, PredicateSpec

REGISTRY = load_registry()
FILTERS = sorted(REGISTRY.filters.values(), key=lambda s: s.name)
PREDICATES = sorted(REGISTRY.predicates.values(), key=lambda s: s.name)
ALL: list[FilterSpec[Any] | PredicateSpec[Any]] = [*FILTERS, *PREDICATES]
CONTEXT = BuildContext("contract", {}, Settings(), "http://127.0.0.1:9")


def _exchange() -> Exchange:
    exchange = Exchange(
        "GET",
        "/red/blue/green",
        "a=1",
        Headers([("Host", "api.example.org"), ("X-Request-Id", "42")]),
        client_host="127.0.0.1",
        host="api.example.org",
    )
    exchange.path_vars = {"segment": "blue"}
    return exchange


def _bounded(prop: dict[str, Any]) -> bool:
    """A field is bounded when its schema limits size or range (booleans and enums are bounded by nature)."""
    options = prop.get("anyOf", [prop])
    for option in options:
        kind = option.get("type")
        if kind in ("integer", "number") and not (
            {"minimum", "exclusiveMinimum"} & option.keys() and {"maximum", "exclusiveMaximum"} & option.keys()
        ):
            return False
        if kind == "string" and "maxLength" not in option and "enum" not in option and "pattern" not in option:
            return False
        if kind == "array" and "maxItems" not in option:
            return False
    return True


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_schema_documents_and_bounds_every_field(spec: FilterSpec[Any] | PredicateSpec[Any]) -> None:
    schema = spec.config.model_json_schema(by_alias=True)
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"{spec.name}.{name} has no description"
        assert _bounded(prop), f"{spec.name}.{name} has no bounds"
    assert spec.summary
    assert set(spec.shortcut) <= set(spec.config.model_fields) | {
        f.alias for f in spec.config.model_fields.values() if f.alias
    }


@pytest.mark.parametrize("spec", FILTERS, ids=lambda s: s.name)
def test_filter_order_lies_in_a_known_band(spec: FilterSpec[Any]) -> None:
    assert spec.band in BANDS, f"{spec.name} order {spec.order} is outside the known bands"


@pytest.mark.parametrize("spec", FILTERS, ids=lambda s: s.name)
async def test_filter_runs_and_replays_from_a_fork_without_compounding(spec: FilterSpec[Any]) -> None:
    """A replaying filter hands each attempt a fork of the exchange as it entered: inner filters never apply twice."""
    config = spec.config.model_validate(spec.example)
    filter_ = spec.build(config, CONTEXT)
    seen: list[tuple[str, str, list[tuple[str, str]]]] = []

    async def terminal(exchange: Exchange) -> Response:
        seen.append((exchange.path, exchange.query, list(exchange.headers.items())))
        return Response(200, Headers([("Content-Type", "text/plain")]), b"ok")

    entered = _exchange()
    responses = [await filter_(entered.fork(), terminal) for _ in range(2)]
    assert all(isinstance(r, Response) for r in responses)
    if spec.replays:
        return
    assert len(seen) in (0, 2)
    if seen:
        assert seen[0] == seen[1], f"{spec.name} compounds across attempts"
    assert responses[0].status == responses[1].status
    assert list(responses[0].headers.items()) == list(responses[1].headers.items())


@pytest.mark.parametrize("spec", PREDICATES, ids=lambda s: s.name)
def test_predicate_builds_from_its_example_and_answers_a_bool(spec: PredicateSpec[Any]) -> None:
    config = spec.config.model_validate(spec.example)
    predicate = spec.build(config, CONTEXT)
    assert isinstance(predicate(_exchange()), bool)
    if spec.hints is not None:
        spec.hints(config)


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_unknown_arguments_are_refused(spec: FilterSpec[Any] | PredicateSpec[Any]) -> None:
    with pytest.raises(ValueError):
        spec.config.model_validate({**spec.example, "noSuchArgument": 1})
