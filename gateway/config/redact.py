"""Config as shown to operators (the admin routes view, logs): secrets replaced by "<redacted>".

Secret are the values that came from `${env:...}` (whatever they are) and the values of headers whose names carry
credentials (Authorization, Cookie, API keys, tokens, passwords).
"""

from __future__ import annotations

from typing import Any

from gateway.config.definitions import ComponentDef, GatewayConfig
from gateway.config.source import join

REDACTED = "<redacted>"
_SENSITIVE_WORDS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "password",
    "passwd",
    "api-key",
    "apikey",
    "credential",
)


def sensitive_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SENSITIVE_WORDS)


def _component(definition: ComponentDef, path: str, secrets: frozenset[str]) -> Any:
    if path in secrets:
        return (
            f"{definition.name}={REDACTED}"
            if definition.shortcut is not None
            else {"name": definition.name, "args": REDACTED}
        )
    args = dict(definition.args)
    header = args.get("name") or args.get("header") or args.get("fromHeader")
    if isinstance(header, str) and sensitive_name(header):
        args = {k: (REDACTED if k in ("value", "regexp", "replacement") else v) for k, v in args.items()}
        return {"name": definition.name, "args": args}
    return definition.to_data()


def redacted_routes(config: GatewayConfig) -> dict[str, Any]:
    """`{"routes": [...], "default-filters": [...], "upstreams": {...}}` as in routes.yaml, secrets redacted."""
    secrets = config.secret_paths
    prefix = _prefix(secrets)
    routes = []
    for i, route in enumerate(config.routes):
        path = join(prefix + "routes" if prefix else "routes", i)
        data = route.to_data()
        data["uri"] = REDACTED if join(path, "uri") in secrets else route.uri
        data["predicates"] = [
            _component(p, join(join(path, "predicates"), j), secrets) for j, p in enumerate(route.predicates)
        ]
        data["filters"] = [_component(f, join(join(path, "filters"), j), secrets) for j, f in enumerate(route.filters)]
        data["metadata"] = {
            k: (REDACTED if join(join(path, "metadata"), k) in secrets else v) for k, v in route.metadata.items()
        }
        routes.append(data)
    defaults = [
        _component(d, join(prefix + "default-filters", j), secrets) for j, d in enumerate(config.default_filters)
    ]
    upstreams = {
        name: _redact_paths(pool.model_dump(mode="json", by_alias=True), join(prefix + "upstreams", name), secrets)
        for name, pool in config.upstreams.items()
    }
    return {"routes": routes, "default-filters": defaults, "upstreams": upstreams}


def _redact_paths(data: Any, path: str, secrets: frozenset[str]) -> Any:
    """`data` with every value whose YAML path came from `${env:...}` replaced (an instance URL, say)."""
    if path in secrets:
        return REDACTED
    if isinstance(data, dict):
        return {key: _redact_paths(value, join(path, key), secrets) for key, value in data.items()}
    if isinstance(data, list):
        return [_redact_paths(value, join(path, index), secrets) for index, value in enumerate(data)]
    return data


def _prefix(secrets: frozenset[str]) -> str:
    # A Spring application.yml nests everything under spring.cloud.gateway[.server.webflux]; paths say so.
    for candidate in ("spring.cloud.gateway.server.webflux.", "spring.cloud.gateway."):
        if any(s.startswith(candidate) for s in secrets):
            return candidate
    return ""
