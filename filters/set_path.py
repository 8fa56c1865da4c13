"""SetPath: replace the request path with a template filled from the variables Path and Host captured."""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, Next, PathTemplate, Response


class SetPathConfig(ComponentConfig):
    template: str = Field(
        description="The new path, e.g. `/{segment}`; each `{var}` is a variable captured by Path or Host, "
        "percent-encoded as a path segment (a `{*rest}` capture keeps its '/' separators).",
        min_length=1,
        max_length=2048,
    )

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if not value.startswith(("/", "{")):
            raise ValueError("the template must start with '/' or a variable")
        PathTemplate(value)  # raises ValueError naming what breaks the path rule
        return value


class SetPath:
    __slots__ = ("template", "limit")

    def __init__(self, template: PathTemplate, limit: int) -> None:
        self.template, self.limit = template, limit

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        exchange.path = self.template.path(exchange, self.limit)
        return await call_next(exchange)


def build(config: SetPathConfig, context: BuildContext) -> SetPath:
    return SetPath(PathTemplate(config.template), context.settings.limits.max_request_line)


SPEC = FilterSpec(
    name="SetPath",
    order=925,
    config=SetPathConfig,
    build=build,
    summary="Sets the forwarded path from a template: with `Path=/red/{segment}` and `SetPath=/{segment}`, "
    "`/red/blue` is forwarded as `/blue`.",
    example={"template": "/{segment}"},
    shortcut=("template",),
    status="stable",
)
