"""After predicate through real requests: past and future instants in every accepted form, the switch-over, config."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, route

GUARD = 15.0  # seconds: only a guard against a hang, never a measured threshold


def forms(moment: datetime) -> list[str]:
    """The same instant written in each form After accepts."""
    denver = moment.astimezone(ZoneInfo("America/Denver"))
    return [
        denver.isoformat() + "[America/Denver]",  # SCG's documented ZonedDateTime form
        moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        moment.astimezone(ZoneInfo("Asia/Kolkata")).isoformat(),
        str(int(moment.timestamp() * 1000)),  # epoch milliseconds
    ]


@pytest.mark.parametrize("form", range(4))
async def test_past_matches_future_does_not(form: int, upstream: Upstream, start_gateway: StartGateway) -> None:
    now = datetime.now(UTC)
    past, future = forms(now - timedelta(days=1))[form], forms(now + timedelta(days=1))[form]
    gw = await start_gateway(
        "routes:"
        + route(upstream, f'["After={past}", "Path=/past"]', rid="past")
        + route(upstream, f'["After={future}", "Path=/future"]', rid="future")
    )
    assert (await fetch(gw, "/past")).status == 200
    assert (await fetch(gw, "/future")).status == 404


async def test_expanded_form_and_unquoted_yaml_timestamp(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: launched
    uri: {upstream.url}
    predicates:
      - name: After
        args: {{datetime: 2017-01-20T17:42:47.789-07:00}}
  - id: never
    uri: {upstream.url}
    predicates:
      - name: After
        args:
          datetime: "9999-01-20T17:42:47.789-07:00[America/Denver]"
      - Path=/never
"""
    )
    assert (await fetch(gw, "/anything")).status == 200


async def test_route_switches_on_by_itself(upstream: Upstream, start_gateway: StartGateway) -> None:
    """The clock is read per request: the compiled route starts matching once the instant has passed."""
    instant = time.time() + 1.5
    stamp = datetime.fromtimestamp(instant, UTC).isoformat()
    gw = await start_gateway("routes:" + route(upstream, f'["After={stamp}"]'))
    seen: set[int] = set()
    deadline = time.monotonic() + GUARD
    while 200 not in seen and time.monotonic() < deadline:
        sent = time.time()
        status = (await fetch(gw, "/")).status
        answered = time.time()
        # Only a request that certainly ended before (or began after) the instant has a known answer.
        if answered < instant:
            assert status == 404
        if sent > instant:
            assert status == 200
        seen.add(status)
        await asyncio.sleep(0.1)
    assert 200 in seen


@pytest.mark.parametrize(
    ("predicates", "fragment"),
    [
        ('["After=2017-01-20T17:42:47"]', "no offset or zone"),
        ("[{name: After, args: {datetime: 2017-01-20 17:42:47}}]", "no offset or zone"),  # YAML made it a datetime
        ('["After=2017-01-20"]', "needs a date and a time"),
        ('["After=2017-01-20T17:42:47.789-06:00[America/Denver]"]', "not the one America/Denver has"),
        ('["After=2017-01-20T17:42:47Z[Nowhere/City]"]', "unknown time zone"),
        ('["After=yesterday"]', "needs a date and a time"),
        ('["After"]', "required"),
        ("[{name: After, args: {datetime: true}}]", "boolean"),
    ],
)
def test_invalid_after_config(predicates: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == "routes[0].predicates[0].args.datetime" and fragment in m for p, m in issues), issues


def test_two_arguments_are_refused() -> None:
    issues = config_issues(config_only_route(predicates='["After=2017-01-20T17:42:47Z, 2018-01-20T17:42:47Z"]'))
    assert any(p == "routes[0].predicates[0]" and "at most 1" in m for p, m in issues), issues
