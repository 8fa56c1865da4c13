"""SetRequestHostHeader: send the upstream a Host of the route's choosing (SCG semantics, PRESERVE_HOST included)."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import (
    PRESERVE_HOST,
    BadRequest,
    BuildContext,
    ComponentConfig,
    Exchange,
    FilterSpec,
    Next,
    Response,
    Template,
    check_authority,
    probe,
    valid_authority,
)


class SetRequestHostHeaderConfig(ComponentConfig):
    host: str = Field(
        description="The Host sent upstream, `host[:port]`; `{var}` is replaced by a Path or Host variable.",
        min_length=1,
        max_length=512,
    )

    @field_validator("host")
    @classmethod
    def _authority(cls, value: str) -> str:
        # Each variable stands for one label here; what a request actually fills in is checked per request.
        return check_authority(value, probe(Template(value)))


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
