"""Between predicate through real requests: inside and outside the window, SCG's forms, dt2 after dt1, config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import StartGateway, Upstream
from tests.helpers import config_issues, config_only_route, fetch, route


def zoned(moment: datetime) -> str:
    return moment.isoformat() + "[UTC]"


async def test_only_the_current_window_matches(upstream: Upstream, start_gateway: StartGateway) -> None:
    now = datetime.now(UTC)
    day = timedelta(days=1)
    windows = {
        "now": (now - day, now + day),
        "over": (now - 3 * day, now - 2 * day),
        "ahead": (now + 2 * day, now + 3 * day),
    }
    gw = await start_gateway(
        "routes:"
        + "".join(
            route(upstream, f'["Between={zoned(start)}, {zoned(end)}", "Path=/{name}"]', rid=name)
            for name, (start, end) in windows.items()
        )
    )
    assert (await fetch(gw, "/now")).status == 200
    assert (await fetch(gw, "/over")).status == 404
    assert (await fetch(gw, "/ahead")).status == 404


async def test_expanded_form_mixing_forms(upstream: Upstream, start_gateway: StartGateway) -> None:
    gw = await start_gateway(
        f"""
routes:
  - id: window
    uri: {upstream.url}
    predicates:
      - name: Between
        args:
          datetime1: "2017-01-20T17:42:47.789-07:00[America/Denver]"
          datetime2: 253402300799000
"""
    )
    reply = await fetch(gw, "/in?x=1")
    assert reply.status == 200
    assert reply.seen()["query"] == "x=1"


@pytest.mark.parametrize(
    ("predicates", "path", "fragment"),
    [
        (
            '["Between=2017-01-21T17:42:47Z, 2017-01-20T17:42:47Z"]',
            "routes[0].predicates[0].args.datetime2",
            "must be later than datetime1",
        ),
        (  # the same instant written two ways is not later either
            '["Between=2017-01-20T17:42:47Z, 2017-01-20T10:42:47-07:00[America/Denver]"]',
            "routes[0].predicates[0].args.datetime2",
            "must be later than datetime1",
        ),
        ('["Between=2017-01-20T17:42:47, 2018-01-20T17:42:47Z"]', "routes[0].predicates[0].args.datetime1", "zone"),
        ('["Between=2017-01-20T17:42:47Z, 2018-01-20"]', "routes[0].predicates[0].args.datetime2", "a time"),
        ('["Between=2017-01-20T17:42:47Z"]', "routes[0].predicates[0].args.datetime2", "required"),
        ('["Between=a, b, c"]', "routes[0].predicates[0]", "at most 2"),
    ],
)
def test_invalid_between_config(predicates: str, path: str, fragment: str) -> None:
    issues = config_issues(config_only_route(predicates=predicates))
    assert any(p == path and fragment in m for p, m in issues), issues
