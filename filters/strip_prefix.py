"""StripPrefix: remove the first N segments of the request path before forwarding (SCG semantics)."""

from __future__ import annotations

from pydantic import Field

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, Next, Response


class StripPrefixConfig(ComponentConfig):
    parts: int = Field(1, ge=0, le=64, description="Number of leading path segments to remove.")


def strip_segments(path: str, parts: int) -> str:
    """`/name/blue/red` with 2 → `/red`; a trailing slash survives; stripping everything leaves `/`."""
    if parts == 0:
        return path
    segments = path.split("/")[1:]
    rest = segments[parts:]
    return "/" + "/".join(rest) if rest else "/"


class StripPrefix:
    __slots__ = ("parts",)

    def __init__(self, parts: int) -> None:
        self.parts = parts

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        exchange.path = strip_segments(exchange.path, self.parts)
        return await call_next(exchange)


def build(config: StripPrefixConfig, context: BuildContext) -> StripPrefix:
    return StripPrefix(config.parts)


SPEC = FilterSpec(
    name="StripPrefix",
    order=901,
    config=StripPrefixConfig,
    build=build,
    summary="Removes the first `parts` segments of the path: with 2, `/name/blue/red` is forwarded as `/red`.",
    example={"parts": 2},
    shortcut=("parts",),
    status="stable",
)
