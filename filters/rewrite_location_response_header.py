"""RewriteLocationResponseHeader: replace the backend's host:port (and API version) in Location (SCG semantics).

SCG's patterns use a look-behind and a look-ahead, which RE2 does not run; the same match is expressed with groups:
`^(protocols)://` + host[:port] + optional `/v<digits>`, followed by "/". Only host[:port] (and the version when
stripped) is replaced; the scheme is kept.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from gateway.exchange import Exchange, Next, Response
from gateway.regex import Regex, compile_regex
from gateway.spec import HEADER_NAME, BuildContext, ComponentConfig, FilterSpec, header_name

StripVersion = Literal["NEVER_STRIP", "AS_IN_REQUEST", "ALWAYS_STRIP"]
DEFAULT_PROTOCOLS = "https?|ftps?"
_VERSIONED_PATH = compile_regex(r"/v\d+/.*")
_HOST_VALUE = r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%]+)(?::\d{1,5})?$"


def location_patterns(protocols: str) -> tuple[Regex, Regex]:
    """(host:port, host:port + version) patterns for `protocols`; RegexError when they do not compile."""
    head = rf"^(?P<lrhscheme>(?:{protocols})://)(?P<lrhhost>[^:/]+(?::\d+)?)"
    return compile_regex(head + "/"), compile_regex(head + r"(?P<lrhversion>/v\d+)?/")


def fixed_location(location: str, host: str, pattern: Regex) -> str:
    """`location` with the matched host:port (and version) replaced by `host`; unchanged when nothing matches."""
    groups = pattern.groups(location)
    if groups is None:
        return location
    scheme = groups["lrhscheme"]
    replaced = len(scheme) + len(groups["lrhhost"]) + len(groups.get("lrhversion", ""))
    return scheme + host + location[replaced:]


class RewriteLocationResponseHeaderConfig(ComponentConfig):
    strip_version: StripVersion = Field(
        "AS_IN_REQUEST",
        validation_alias=AliasChoices("stripVersion", "stripVersionMode", "strip_version"),
        description="NEVER_STRIP, AS_IN_REQUEST (strip `/v1`-style versions unless the request path had one) or "
        "ALWAYS_STRIP. SCG's `stripVersionMode` spelling is accepted too.",
    )
    location_header_name: str = Field(
        "Location", description="The response header to rewrite.", min_length=1, max_length=256, pattern=HEADER_NAME
    )
    host_value: str | None = Field(
        None,
        description="Replacement host[:port]; default: the Host the client sent.",
        max_length=261,
        pattern=_HOST_VALUE,
    )
    protocols: str = Field(
        DEFAULT_PROTOCOLS,
        description="Regex (RE2) of the schemes whose Location is rewritten.",
        min_length=1,
        max_length=256,
    )

    @field_validator("strip_version", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        # Spring binds enums leniently (always-strip, Always_Strip); "" in a shortcut means the default.
        if isinstance(value, str):
            return value.strip().upper().replace("-", "_") or "AS_IN_REQUEST"
        return value

    @field_validator("location_header_name", "protocols", "host_value", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object, info: ValidationInfo) -> object:
        # SCG's documented shortcut `RewriteLocationResponseHeader=AS_IN_REQUEST, Location, ,` leaves args blank.
        if isinstance(value, str) and not value.strip() and info.field_name:
            return cls.model_fields[info.field_name].default
        return value

    _header = field_validator("location_header_name")(header_name)

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, value: str) -> str:
        location_patterns(value)  # RegexError is a ValueError with the reason
        return value


class RewriteLocationResponseHeader:
    __slots__ = ("header", "host", "mode", "keep_version", "strip_version")

    def __init__(self, config: RewriteLocationResponseHeaderConfig) -> None:
        self.header, self.host, self.mode = config.location_header_name, config.host_value, config.strip_version
        self.keep_version, self.strip_version = location_patterns(config.protocols)

    def _pattern(self, original_path: str) -> Regex:
        if self.mode == "ALWAYS_STRIP":
            return self.strip_version
        if self.mode == "NEVER_STRIP" or _VERSIONED_PATH.fullmatch(original_path):
            return self.keep_version
        return self.strip_version

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        host = self.host or exchange.host  # the client's Host, as sent (the forwarder rewrites the header)
        original_path = exchange.original_path  # SCG: "as in the original request"
        response = await call_next(exchange)
        location = response.headers.get(self.header)
        if location is not None and host:
            response.headers.set(self.header, fixed_location(location, host, self._pattern(original_path)))
        return response


def build(config: RewriteLocationResponseHeaderConfig, context: BuildContext) -> RewriteLocationResponseHeader:
    return RewriteLocationResponseHeader(config)


SPEC = FilterSpec(
    name="RewriteLocationResponseHeader",
    order=927,
    config=RewriteLocationResponseHeaderConfig,
    build=build,
    summary="Replaces the backend's host:port in the `Location` response header with the client's Host (or "
    "`hostValue`), stripping a `/v1`-style version unless the request path had one.",
    example={"stripVersion": "AS_IN_REQUEST", "locationHeaderName": "Location"},
    shortcut=("stripVersion", "locationHeaderName", "hostValue", "protocols"),
    status="stable",
)
