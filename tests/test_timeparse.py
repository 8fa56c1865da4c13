"""Instants from config (gateway.timeparse): SCG's ZonedDateTime forms, offsets, zones, epoch millis, refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.timeparse import instant_text, parse_instant, parse_zone

DENVER_EXAMPLE = datetime(2017, 1, 21, 0, 42, 47, 789000, tzinfo=UTC)  # 2017-01-20T17:42:47.789-07:00


@pytest.mark.parametrize(
    "text",
    [
        "2017-01-20T17:42:47.789-07:00[America/Denver]",  # SCG's documented form
        "2017-01-20T17:42:47.789-07:00",
        "2017-01-21T00:42:47.789Z",
        "2017-01-21T00:42:47.789Z[UTC]",
        "2017-01-21T00:42:47.789+00:00[Etc/UTC]",
        "2017-01-21T01:42:47.789+01:00[Europe/Paris]",
        "2017-01-20T17:42:47.789[America/Denver]",  # local time plus zone: unambiguous here
        "2017-01-20T17:42:47.789-07:00[-07:00]",
        "2017-01-20T17:42:47.789-07:00[GMT-07:00]",
        "2017-01-20T17:42:47.789-07:00[UTC-7]",
        "2017-01-20T17:42:47.789000000-07:00",  # nanoseconds, as Java prints them
        " 2017-01-20T17:42:47.789-07:00 ",
        "1484959367789",  # epoch milliseconds (SCG's StringToZonedDateTimeConverter)
    ],
)
def test_accepted_forms_name_the_same_instant(text: str) -> None:
    assert parse_instant(text) == DENVER_EXAMPLE


def test_values_yaml_already_converted() -> None:
    assert parse_instant(1484959367789) == DENVER_EXAMPLE
    aware = datetime(2017, 1, 20, 17, 42, 47, 789000, tzinfo=timezone(timedelta(hours=-7)))
    assert parse_instant(aware) == DENVER_EXAMPLE
    assert instant_text(aware) == "2017-01-20T17:42:47.789000-07:00"
    assert instant_text(1484959367789) == "1484959367789"
    assert instant_text("2017-01-21T00:42:47.789Z") == "2017-01-21T00:42:47.789Z"


def test_zone_is_kept_for_the_instant() -> None:
    parsed = parse_instant("2017-07-20T17:42:47-06:00[America/Denver]")  # summer: Denver is at -06:00
    assert parsed.utcoffset() == timedelta(hours=-6)
    assert str(parsed.tzinfo) == "America/Denver"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2017-01-20T17:42:47", "no offset or zone"),
        ("2017-01-20 17:42:47", "no offset or zone"),
        (datetime(2017, 1, 20, 17, 42, 47), "no offset or zone"),  # unquoted YAML timestamp without offset
        ("2017-01-20", "needs a date and a time"),
        (date(2017, 1, 20), "date without a time"),
        ("2017-01-20[Europe/Paris]", "needs a date and a time"),
        ("2017-01-20T17:42:47.789-06:00[America/Denver]", "not the one America/Denver has"),
        ("2021-03-14T02:30:00[America/Denver]", "does not exist"),  # the hour skipped in spring
        ("2021-11-07T01:30:00[America/Denver]", "happens twice"),  # the hour repeated in autumn
        ("2017-01-20T17:42:47Z[Mars/Olympus]", "unknown time zone"),
        ("2017-01-20T17:42:47Z[../../etc/passwd]", "unknown time zone"),
        ("2017-01-20T17:42:47Z[+19:00]", "out of range"),
        ("2017-01-20T17:42:47Z[America/Denver", "not a date-time"),
        ("2017-13-20T17:42:47Z", "not an ISO-8601"),
        ("tomorrow", "needs a date and a time"),
        ("999999999999999", "out of range"),
        (True, "not a boolean"),
        (["2017-01-20T17:42:47Z"], "expected a date-time string"),
    ],
)
def test_refused(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_instant(value)


def test_zones() -> None:
    assert parse_zone("Z") is UTC and parse_zone("UTC") is UTC and parse_zone("GMT") is UTC
    assert parse_zone("+05:30").utcoffset(None) == timedelta(hours=5, minutes=30)
    assert parse_zone("-0800").utcoffset(None) == timedelta(hours=-8)
    assert str(parse_zone("Asia/Tokyo")) == "Asia/Tokyo"


@settings(deadline=None, max_examples=300)
@given(st.datetimes(timezones=st.just(UTC), min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1)))
def test_isoformat_round_trips(moment: datetime) -> None:
    assert parse_instant(moment.isoformat()) == moment
    assert parse_instant(moment.isoformat() + "[UTC]") == moment


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=60))
def test_arbitrary_text_is_an_instant_or_a_value_error(text: str) -> None:
    try:
        assert parse_instant(text).utcoffset() is not None
    except ValueError as exc:
        assert str(exc)
