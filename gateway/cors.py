"""CORS, as SCG configures it: `globalcors` in routes.yaml and `metadata.cors` per route.

A request's policy is its route's `metadata.cors` (for a preflight: the route the announced method would reach),
else the first global pattern that matches its path. The gateway answers preflights itself, refuses a
cross-origin request whose origin or method is not allowed (403 before any upstream contact, as Spring), sets
the CORS response headers on allowed ones — replacing any the upstream sent, so a browser never sees two — and
adds `Vary: Origin` to every response under a policy, so shared caches keep the variants apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator

from gateway.errors import Forbidden
from gateway.exchange import Exchange, Response
from gateway.headers import Headers
from gateway.regex import Regex, compile_regex
from gateway.routing.pathpattern import PathPattern
from gateway.spec import HEADER_NAME, ComponentConfig

_DEFAULT_METHODS = ("GET", "HEAD")  # Spring's CorsConfiguration when allowedMethods is not set
_TOKEN = re.compile(HEADER_NAME)
_ORIGIN_TEXT = re.compile(r"[!-~]+")  # visible ASCII: no spaces, controls or line breaks in a header value
_DEFAULT_PORTS = {"http": 80, "https": 443}
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

    @field_validator(
        "allowed_origins",
        "allowed_origin_patterns",
        "allowed_methods",
        "allowed_headers",
        "exposed_headers",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        # Spring binds "GET,POST" to a list; so do we (YAML lists work too).
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_methods", "allowed_headers", "exposed_headers")
    @classmethod
    def _tokens(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if v != "*" and not _TOKEN.fullmatch(v)]
        if bad:
            raise ValueError(f"not HTTP tokens: {bad}")
        return value

    @field_validator("allowed_origins", "allowed_origin_patterns")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _ORIGIN_TEXT.fullmatch(v)]
        if bad:
            raise ValueError(f"not origins (scheme://host[:port], '*' or null): {bad}")
        return value

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
        headers = Headers([("Access-Control-Allow-Origin", allowed), ("Vary", _VARY_PREFLIGHT)])  # our own answer
        headers.add("Access-Control-Allow-Methods", method if self.any_method else self.methods_value)
        if asked:
            headers.add("Access-Control-Allow-Headers", ", ".join(asked))
        if self.credentials:
            headers.add("Access-Control-Allow-Credentials", "true")
        if self.max_age is not None:
            headers.add("Access-Control-Max-Age", str(self.max_age))
        return Response(200, headers)

    def method_allowed(self, method: str) -> bool:
        """Spring checks the method of actual requests too, not only of preflights."""
        return self.any_method or method in self.methods

    def decorate(self, response: Response, allowed: str) -> None:
        """Set the CORS headers of an allowed actual request, replacing any the upstream sent."""
        headers = response.headers
        headers.set("Access-Control-Allow-Origin", allowed)
        if self.credentials:
            headers.set("Access-Control-Allow-Credentials", "true")
        else:
            headers.remove("Access-Control-Allow-Credentials")
        if self.exposed:
            headers.set("Access-Control-Expose-Headers", self.exposed)

    @staticmethod
    def vary(response: Response) -> None:
        """Every response under a policy varies by Origin (allowed, refused or not cross-origin at all)."""
        present = {v.strip().lower() for value in response.headers.get_all("vary") for v in value.split(",")}
        if "origin" not in present and "*" not in present:
            response.headers.add("Vary", "Origin")


@dataclass(frozen=True)
class CorsTable:
    """The global (path pattern, policy) pairs, in file order."""

    entries: Sequence[tuple[PathPattern, CorsPolicy]]

    def lookup(self, path: str) -> CorsPolicy | None:
        """The policy of the first pattern matching `path`, or None."""
        for pattern, policy in self.entries:
            if pattern.match(path) is not None:
                return policy
        return None


def _origin_key(scheme: str, authority: str) -> tuple[str, str, int]:
    scheme = scheme.lower()
    host, port = authority.lower(), _DEFAULT_PORTS.get(scheme, 0)
    if host.startswith("["):
        end = host.find("]")
        host, rest = host[: end + 1], host[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif ":" in host:
        host, _, text = host.rpartition(":")
        port = int(text) if text.isdigit() else port
    return scheme, host, port


def is_cross_origin(origin: str, exchange: Exchange) -> bool:
    """False when Origin is this very gateway as the request reached it (default ports filled in, as Spring)."""
    scheme, sep, authority = origin.partition("://")
    if not sep:
        return True  # "null" and other opaque origins are always cross-origin
    return _origin_key(scheme, authority) != _origin_key(exchange.scheme, exchange.host)


def is_preflight(exchange: Exchange) -> bool:
    """OPTIONS announcing the method of the request to come."""
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
