"""CORS, as SCG configures it: `globalcors` in routes.yaml and `metadata.cors` per route.

Policies are looked up by request path (a route's Path patterns, or `/**` for a route without one; then the
global patterns in file order). The gateway answers preflights itself, refuses an actual cross-origin request
whose Origin is not allowed (403, as Spring does), and adds the CORS response headers to allowed ones. Like SCG,
headers an upstream also sends are kept: `DedupeResponseHeader` is the recipe (docs/scg-migration.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import AliasChoices, Field, field_validator, model_validator

from gateway.errors import Forbidden
from gateway.exchange import Exchange, Response
from gateway.headers import Headers
from gateway.regex import Regex, compile_regex
from gateway.routing.pathpattern import PathPattern
from gateway.spec import ComponentConfig, one_or_many

_DEFAULT_METHODS = ("GET", "HEAD")  # Spring's CorsConfiguration when allowedMethods is not set
_VARY_PREFLIGHT = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


class CorsConfig(ComponentConfig):
    """Spring's CorsConfiguration properties (camelCase, as in SCG's YAML)."""

    allowed_origins: list[str] = Field([], description="Exact origins, or '*' for any.", max_length=256)
    allowed_origin_patterns: list[str] = Field(
        [],
        description="Origin patterns: '*' wildcards and port lists such as https://*.example.com:[8080,8443].",
        max_length=256,
    )
    allowed_methods: list[str] = Field([], description="Methods, or '*'; unset means GET and HEAD.", max_length=32)
    allowed_headers: list[str] = Field(
        [], description="Request headers a preflight may ask for, or '*'.", max_length=256
    )
    exposed_headers: list[str] = Field([], description="Response headers scripts may read.", max_length=256)
    allow_credentials: bool = Field(False, description="Send Access-Control-Allow-Credentials: true.")
    max_age: int | None = Field(None, ge=0, le=86400 * 365, description="Seconds a preflight may be cached.")

    _lists = field_validator(
        "allowed_origins",
        "allowed_origin_patterns",
        "allowed_methods",
        "allowed_headers",
        "exposed_headers",
        mode="before",
    )(one_or_many)

    @model_validator(mode="after")
    def _credentials(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allowed_origins:
            # The CORS spec forbids "*" with credentials; Spring refuses it too. Patterns are the way.
            raise ValueError("allowCredentials cannot be combined with allowedOrigins '*'; use allowedOriginPatterns")
        return self


def _origin_pattern(pattern: str) -> Regex:
    """Spring's origin pattern: `*` anywhere, and an optional port list `[8080,8081]` or `[*]`."""
    ports = ""
    base = pattern
    port_list = re.fullmatch(r"(.*):\[([0-9,* ]+)\]", pattern)
    if port_list:
        base, listed = port_list.group(1), [p.strip() for p in port_list.group(2).split(",")]
        ports = "(:[0-9]+)?" if "*" in listed else "(:(" + "|".join(re.escape(p) for p in listed) + "))"
    body = ".*".join(re.escape(part) for part in base.split("*"))
    return compile_regex(f"(?i){body}{ports}")


class CorsPolicy:
    """One compiled CorsConfig."""

    def __init__(self, config: CorsConfig) -> None:
        self.any_origin = "*" in config.allowed_origins
        self.origins = frozenset(o.rstrip("/").lower() for o in config.allowed_origins if o != "*")
        self.patterns = tuple(_origin_pattern(p) for p in config.allowed_origin_patterns)
        methods = [m.upper() for m in config.allowed_methods] or list(_DEFAULT_METHODS)
        self.any_method = "*" in methods
        self.methods = frozenset(methods)
        self.methods_value = ", ".join(m for m in methods if m != "*")
        self.any_header = "*" in config.allowed_headers
        self.headers = frozenset(h.lower() for h in config.allowed_headers)
        self.exposed = ", ".join(config.exposed_headers)
        self.credentials = config.allow_credentials
        self.max_age = config.max_age

    def allow_origin(self, origin: str) -> str | None:
        """The Access-Control-Allow-Origin value for `origin`, or None when it is not allowed."""
        if self.any_origin:
            return "*" if not self.credentials else origin
        if origin.rstrip("/").lower() in self.origins or any(p.fullmatch(origin) for p in self.patterns):
            return origin
        return None

    def preflight(self, origin: str, exchange: Exchange) -> Response:
        """Answer an OPTIONS preflight: 200 with the grant, or 403 when anything asked for is not allowed."""
        allowed = self.allow_origin(origin)
        method = (exchange.headers.get("access-control-request-method") or "").strip().upper()
        asked = [h.strip() for v in exchange.headers.get_all("access-control-request-headers") for h in v.split(",")]
        asked = [h for h in asked if h]
        if allowed is None or not (self.any_method or method in self.methods):
            raise Forbidden("Invalid CORS request")
        if not self.any_header and any(h.lower() not in self.headers for h in asked):
            raise Forbidden("Invalid CORS request")
        headers = Headers([("Access-Control-Allow-Origin", allowed), ("Vary", _VARY_PREFLIGHT)])
        headers.add("Access-Control-Allow-Methods", method if self.any_method else self.methods_value)
        if asked:
            headers.add("Access-Control-Allow-Headers", ", ".join(asked))
        if self.credentials:
            headers.add("Access-Control-Allow-Credentials", "true")
        if self.max_age is not None:
            headers.add("Access-Control-Max-Age", str(self.max_age))
        return Response(200, headers)

    def decorate(self, response: Response, allowed: str) -> None:
        """Add the CORS headers of an actual (non-preflight) response."""
        headers = response.headers
        headers.add("Access-Control-Allow-Origin", allowed)
        if self.credentials:
            headers.add("Access-Control-Allow-Credentials", "true")
        if self.exposed:
            headers.add("Access-Control-Expose-Headers", self.exposed)
        headers.add("Vary", "Origin")


@dataclass(frozen=True)
class CorsTable:
    """(path pattern, policy) pairs, tried in order: per-route entries first, then the global ones."""

    entries: Sequence[tuple[PathPattern, CorsPolicy]]

    def lookup(self, path: str) -> CorsPolicy | None:
        for pattern, policy in self.entries:
            if pattern.match(path) is not None:
                return policy
        return None


def is_cross_origin(origin: str, exchange: Exchange) -> bool:
    """True unless Origin names this very gateway (scheme://host[:port] of the request): same-origin is not CORS."""
    return origin.lower() != f"{exchange.scheme}://{exchange.host}".lower()


def is_preflight(exchange: Exchange) -> bool:
    return exchange.method == "OPTIONS" and "access-control-request-method" in exchange.headers


class GlobalCors(ComponentConfig):
    """SCG's `globalcors` block; its kebab-case property names (and camelCase) are accepted."""

    cors_configurations: dict[str, CorsConfig] = Field(
        {},
        validation_alias=AliasChoices("cors-configurations", "corsConfigurations"),
        description="Path pattern (SCG writes '[/**]') to CORS configuration.",
        max_length=256,
    )
    add_to_simple_url_handler_mapping: bool = Field(
        False,
        validation_alias=AliasChoices("add-to-simple-url-handler-mapping", "addToSimpleUrlHandlerMapping"),
        description="Accepted for SCG compatibility; global CORS here is matched by path, route or not.",
    )

    def patterns(self) -> list[tuple[str, CorsConfig]]:
        """(path pattern, config) in file order, SCG's `[...]` key brackets removed."""
        return [(k.strip().removeprefix("[").removesuffix("]"), v) for k, v in self.cors_configurations.items()]
