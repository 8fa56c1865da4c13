"""Before predicate through real requests: past and future instants in every accepted form, the switch-off, config."""

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
    """The same instant written in each form Before accepts."""
    return [
        moment.astimezone(ZoneInfo("Europe/Paris")).isoformat() + "[Europe/Paris]",
        moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        moment.astimezone(ZoneInfo("America/Denver")).replace(tzinfo=None).isoformat() + "[America/Denver]",
        str(int(moment.timestamp() * 1000)),
    ]


@pytest.mark.parametrize("form", range(4))
async def test_future_matches_past_does_not(form: int, upstream: Upstream, start_gateway: StartGateway) -> None:
    now = datetime.now(UTC)
    # 12:00 UTC is early morning in Denver, far from the 02:00 daylight-saving changes of the local-time form.
    past = forms((now - timedelta(days=2)).replace(hour=12))[form]
    future = forms((now + timedelta(days=2)).replace(hour=12))[form]
    gw = await start_gateway(
        "routes:"
        + route(upstream, f'["Before={future}", "Path=/open"]', rid="open")
        + route(upstream, f'["Before={past}", "Path=/closed"]', rid="closed")
    )
    reply = await fetch(gw, "/open")
    assert reply.status == 200
    assert reply.seen()["path"] == "/open"
    assert (await fetch(gw, "/closed")).status == 404


async def test_expanded_form_with_scg_zone(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: legacy
    uri: {upstream.url}
    predicates:
      - name: Before
        args: {{datetime: "2017-01-20T17:42:47.789-07:00[America/Denver]"}}
  - id: current
    uri: {upstream.url}
    order: 1
    predicates:
      - {{name: Before, args: {{datetime: "9000-01-01T00:00:00Z"}}}}
    filters: ["AddResponseHeader=X-Route, current"]
"""
    )
    assert (await fetch(gw, "/x")).values("X-Route") == [b"current"]


async def test_route_switches_off_by_itself(upstream: Upstream, start_gateway: StartGateway) -> None:
    """The clock is read per request: the compiled route stops matching once the instant has passed."""
    instant = time.time() + 1.5
    stamp = str(int(instant * 1000))
    instant = int(stamp) / 1000
    gw = await start_gateway("routes:" + route(upstream, f'["Before={stamp}"]'))
    seen: set[int] = set()
    deadline = time.monotonic() + GUARD
    while 404 not in seen and time.monotonic() < deadline:
        sent = time.time()
        status = (await fetch(gw, "/")).status
        if time.time() < instant:
            assert status == 200
        if sent > instant:
            assert status == 404
        seen.add(status)
        await asyncio.sleep(0.1)
    assert 404 in seen


@pytest.mark.parametrize(
    ("predicates", "fragment"),
    [
        ('["Before=2017-01-20T17:42:47.789"]', "no offset or zone"),
        ('["Before=2021-03-14T02:30:00[America/Denver]"]', "does not exist"),
        ('["Before=2021-11-07T01:30:00[America/Denver]"]', "happens twice"),
        ('["Before=2017-01-20T25:42:47Z"]', "not an ISO-8601"),
        ("[{name: Before, args: {datetime: [2017-01-20T17:42:47Z]}}]", "expected a date-time string"),
        ('["Before"]', "required"),
    ],
)
def test_invalid_before_config(predicates: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == "routes[0].predicates[0].args.datetime" and fragment in m for p, m in issues), issues
