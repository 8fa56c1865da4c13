"""TeamTag: tells the upstream which team's route served the request and echoes it to the client.

A complete team filter: a config schema (description, default, bounds on every field), a filter class with
the one contract, and the spec the entry point names. Nothing in `gateway/` changes to add it.
"""

from __future__ import annotations

from pydantic import Field

from gateway.api import BuildContext, ComponentConfig, Exchange, FilterSpec, Next, Response


class TeamTagConfig(ComponentConfig):
    team: str = Field(
        description="Owning team, sent upstream as X-Team.", min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$"
    )
    echo: bool = Field(True, description="Also report the team to the client in X-Team-Served.")


class TeamTag:
    def __init__(self, team: str, echo: bool) -> None:
        self.team, self.echo = team, echo

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        exchange.headers.set("X-Team", self.team)
        response = await call_next(exchange)
        if self.echo:
            response.headers.set("X-Team-Served", self.team)
        return response


def build(config: TeamTagConfig, context: BuildContext) -> TeamTag:
    return TeamTag(config.team, config.echo)


SPEC = FilterSpec(
    name="TeamTag",
    order=980,
    config=TeamTagConfig,
    build=build,
    summary="Sends X-Team upstream and, unless echo is false, X-Team-Served to the client.",
    example={"team": "payments"},
    shortcut=("team", "echo"),
)
