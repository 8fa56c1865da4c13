"""PrefixPath: put a prefix in front of the request path before forwarding; the prefix may use variables."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, Next, PathTemplate, Response


class PrefixPathConfig(ComponentConfig):
    prefix: str = Field(
        description="Path prefix starting with '/', e.g. `/mypath`; `{var}` is replaced by a variable captured by "
        "Path or Host (encoded as a path segment).",
        min_length=1,
        max_length=2048,
    )

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("the prefix must start with '/'")
        PathTemplate(value)  # raises ValueError naming what breaks the path rule
        return value


def join_prefix(prefix: str, path: str) -> str:
    """`/mypath` + `/hello` → `/mypath/hello`; a trailing "/" of the prefix never doubles the joint."""
    return prefix.rstrip("/") + path


class PrefixPath:
    __slots__ = ("template", "limit")

    def __init__(self, template: PathTemplate, limit: int) -> None:
        self.template, self.limit = template, limit

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        # Only the prefix is checked: the request's own path was canonicalised (and its length bounded) on arrival.
        exchange.path = join_prefix(self.template.path(exchange, self.limit), exchange.path)
        return await call_next(exchange)


def build(config: PrefixPathConfig, context: BuildContext) -> PrefixPath:
    return PrefixPath(PathTemplate(config.prefix), context.settings.limits.max_request_line)


SPEC = FilterSpec(
    name="PrefixPath",
    order=923,
    config=PrefixPathConfig,
    build=build,
    summary="Prefixes the forwarded path: with `/mypath`, `/hello` is forwarded as `/mypath/hello`.",
    example={"prefix": "/mypath/{segment}"},
    shortcut=("prefix",),
    status="stable",
)
