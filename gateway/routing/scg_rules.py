"""SCG's rules for a route definition that apply wherever a route comes from (routes.yaml, an application.yml, the
admin API): the text form `id=uri, Predicate=...`, `enabled: false`, and the id of a route written without one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from gateway.config.definitions import ComponentDef
from gateway.config.provenance import FromEnv

_BOOLEANS = {"true": True, "false": False}
GENERATED_PREFIX = "route-"


def parse_route_text(text: str) -> dict[str, Any]:
    """SCG's `RouteDefinition(String text)`: `id=uri[, Predicate=value]...`, as a route mapping.

    As SCG: the id is everything before the first `=` (at least one character); the rest is split on commas with
    Spring's tokenizer (tokens trimmed, empty ones dropped); the first token is the URI, every other one a
    predicate in shortcut form — so a predicate written this way has one argument. Raises ValueError.
    """
    route_id, sep, rest = text.partition("=")
    tokens = [token.strip() for token in rest.split(",") if token.strip()]
    if not sep or not route_id or not tokens:
        raise ValueError(f"a route written as text must be id=uri[, Predicate=value]...; got {text!r}")
    return {"id": route_id, "uri": tokens[0], "predicates": tokens[1:]}


#: What a value from the environment contributes to a generated id.
ENV_PLACEHOLDER = "${env}"


def route_enabled(value: Any) -> bool | None:
    """SCG's `enabled` (default true) bound as Spring binds a boolean; None when it is not one."""
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _BOOLEANS.get(value.strip().lower())
    return None


def generated_id(uri: str, predicates: Sequence[ComponentDef]) -> str:
    """A stable id for a route written without one: derived from what it matches and where it goes.

    The same URI and predicates give the same id in every process, on every reload and at any position in the
    file, so metrics and logs keyed on it survive restarts, reordering and changes to the route's filters. Two
    routes that read alike would get the same id: the compiler reports that, and a clash with an explicit id.
    """
    content = [_plain(uri), [[d.name, _plain(dict(d.args))] for d in predicates]]
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return GENERATED_PREFIX + digest[:12]


def _plain(value: Any) -> Any:
    """Argument values as text, so `Weight=g, 8` and `{weight: 8}` give one id; a value from `${env:...}` as a
    placeholder, so the id (shown, logged, a metric label) says nothing about a secret and is the same in every
    environment."""
    if isinstance(value, FromEnv):
        return ENV_PLACEHOLDER  # SECURITY: a short secret could be brute-forced from a hash of it
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value).lower() if isinstance(value, bool) else str(value)
