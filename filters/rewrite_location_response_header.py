"""RewriteLocationResponseHeader: replace the backend's host:port (and API version) in Location (SCG semantics).

SCG's patterns use a look-behind and a look-ahead, which RE2 does not run; the same match is expressed with groups:
`^(protocols)://` + host[:port] + optional `/v<digits>`, followed by "/". Only host[:port] (and the version when
stripped) is replaced; the scheme is kept. No regex substitution runs here: the result is the Location with its
prefix swapped for a host of at most 261 characters, so it cannot grow out of proportion.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, AliasChoices, Field, ValidationInfo, field_validator

from gateway.api import (
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Next,
    Regex,
    Response,
    ResponseHeaderName,
    check_authority,
    compile_regex,
    spring_enum,
    valid_regex,
)

StripVersion = Literal["NEVER_STRIP", "AS_IN_REQUEST", "ALWAYS_STRIP"]
DEFAULT_PROTOCOLS = "https?|ftps?"
_VERSIONED_PATH = compile_regex(r"/v\d+/.*")


def location_patterns(protocols: str) -> tuple[Regex, Regex]:
    """(host:port, host:port + version) patterns for `protocols`; RegexError when they do not compile.

    `protocols` must compile on its own too, so that it cannot close the group it is placed in (`a)|(.*`).
    """
    compile_regex(protocols)
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
    location_header_name: ResponseHeaderName = Field("Location", description="The response header to rewrite.")
    host_value: Annotated[str, AfterValidator(check_authority)] | None = Field(
        None, description="Replacement host[:port]; default: the Host the client sent.", max_length=261
    )
    protocols: str = Field(
        DEFAULT_PROTOCOLS,
        description="Regex (RE2) of the schemes whose Location is rewritten.",
        min_length=1,
        max_length=256,
    )

    # Spring binds enums leniently (always-strip, Always_Strip); a blank one means the default.
    _mode = field_validator("strip_version", mode="before")(spring_enum)

    @field_validator("strip_version", "location_header_name", "protocols", "host_value", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object, info: ValidationInfo) -> object:
        # SCG's documented shortcut `RewriteLocationResponseHeader=AS_IN_REQUEST, Location, ,` leaves args blank.
        if isinstance(value, str) and not value.strip() and info.field_name:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, value: str) -> str:
        valid_regex(value)  # the reason, for the pattern as the user wrote it
        location_patterns(value)
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
