"""TeamTag: tells the upstream which team's route served the request and echoes it to the client.

A complete team filter: a config schema (description, default, bounds on every field), a filter class with
the one contract, and the spec the entry point names. Nothing in `gateway/` changes to add it.
"""

from __future__ import annotations

from pydantic import Field

from gateway.api import BuildContext, ComponentConfig, CounterChild, Exchange, FilterSpec, Next, Response


class TeamTagConfig(ComponentConfig):
    team: str = Field(
        description="Owning team, sent upstream as X-Team.", min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$"
    )
    echo: bool = Field(True, description="Also report the team to the client in X-Team-Served.")


class TeamTag:
    def __init__(self, team: str, echo: bool, calls: CounterChild) -> None:
        self.team, self.echo, self.calls = team, echo, calls

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response:
        self.calls.inc()  # a child bound at build time: one addition per request
        exchange.headers.set("X-Team", self.team)
        response = await call_next(exchange)
        if self.echo:
            response.headers.set("X-Team-Served", self.team)
        return response


def build(config: TeamTagConfig, context: BuildContext) -> TeamTag:
    # On /metrics as gateway_filter_team_tag_calls_total{route,team}, summed over the workers, from the moment a
    # route uses the filter; the factory adds the prefix, so a team cannot take another filter's (or the core's) name.
    calls = context.services.metrics.counter("calls", "Requests through TeamTag.", ["route", "team"])
    return TeamTag(config.team, config.echo, calls.labels(context.route_id, config.team))


SPEC = FilterSpec(
    name="TeamTag",
    order=980,
    config=TeamTagConfig,
    build=build,
    summary="Sends X-Team upstream and, unless echo is false, X-Team-Served to the client.",
    example={"team": "payments"},
    shortcut=("team", "echo"),
)
