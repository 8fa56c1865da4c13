"""SetRequestHostHeader: send the upstream a Host of the route's choosing (SCG semantics, PRESERVE_HOST included)."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.errors import BadRequest
from gateway.exchange import Exchange, Next, Response
from gateway.hygiene import PRESERVE_HOST
from gateway.spec import BuildContext, ComponentConfig, FilterSpec
from gateway.template import Template

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


def _valid_port(port: str) -> bool:
    return 1 <= len(port) <= 5 and port.isascii() and port.isdigit() and 0 < int(port) <= 65535


def _valid_name(host: str) -> bool:
    return 0 < len(host) <= 253 and _NAME_CHARS.issuperset(host) and host[0] not in ".-" and ".." not in host


def valid_authority(value: str) -> bool:
    """True for `host`, `host:port`, `[v6]` or `[v6]:port` (host names of letters, digits, `-`, `.`, `_`).

    Checked with plain string operations: the value may come from request data (a path variable).
    """
    if value.startswith("["):
        literal, bracket, rest = value[1:].partition("]")
        if not bracket or not literal or not _IPV6_CHARS.issuperset(literal) or ":" not in literal:
            return False
        return rest == "" or (rest.startswith(":") and _valid_port(rest[1:]))
    host, colon, port = value.partition(":")
    return _valid_name(host) and (not colon or _valid_port(port))


class SetRequestHostHeaderConfig(ComponentConfig):
    host: str = Field(
        description="The Host sent upstream, `host[:port]`; `{var}` is replaced by a Path or Host variable.",
        min_length=1,
        max_length=512,
    )

    @field_validator("host")
    @classmethod
    def _authority(cls, value: str) -> str:
        template = Template(value)
        # Each variable stands for one label here; what a request actually fills in is checked per request.
        sample = template.render(dict.fromkeys(template.names, "x"))
        if not valid_authority(sample):
            raise ValueError(f"{value!r} is not a host[:port] (e.g. api.example.org or 10.0.0.5:8443)")
        return value


class SetRequestHostHeader:
    __slots__ = ("host",)

    def __init__(self, host: Template) -> None:
        self.host = host

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        host = self.host.render(exchange.path_vars)
        if not self.host.is_static and not valid_authority(host):
            # SECURITY: a variable must not turn Host into something an upstream or a cache reads differently
            # (spaces, '@', '/', a second port): refuse rather than forward a smuggled authority.
            raise BadRequest("the request would give the upstream an invalid Host")
        exchange.headers.set("Host", host)
        # The forwarder replaces Host with the upstream's authority unless told to keep the one in the headers.
        exchange.set(PRESERVE_HOST, True)
        return await call_next(exchange)


def build(config: SetRequestHostHeaderConfig, context: BuildContext) -> SetRequestHostHeader:
    return SetRequestHostHeader(Template(config.host))


SPEC = FilterSpec(
    name="SetRequestHostHeader",
    order=914,
    config=SetRequestHostHeaderConfig,
    build=build,
    summary="Sends `host` as the upstream request's Host instead of the upstream's own authority.",
    example={"host": "api.example.org"},
    shortcut=("host",),
    status="stable",
)
