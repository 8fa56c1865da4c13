"""Instants from config, in the forms SCG's After/Before/Between accept, parsed once at load.

Accepted (the result is always an unambiguous instant):

* ISO-8601 with an offset: `2017-01-20T17:42:47.789-07:00`, `2017-01-20T17:42:47Z`;
* SCG's ZonedDateTime form, an offset plus a zone in brackets: `2017-01-20T17:42:47.789-07:00[America/Denver]`.
  The offset must be the one the zone has at that moment (Java silently lets the offset win; a mismatch is
  almost always a typo worth an hour, so it is refused here);
* a local time plus a zone, `2017-01-20T17:42:47[America/Denver]`, unless the zone makes it ambiguous (the
  repeated hour when clocks go back) or non-existent (the skipped hour when they go forward);
* milliseconds since the epoch, `1484953367789` (SCG's StringToZonedDateTimeConverter does the same);
* a timestamp YAML already turned into a datetime (an unquoted `2017-01-20T17:42:47-07:00`).

A date-time without an offset or zone is refused: it would mean a different instant on every machine, depending
on the host's time zone.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONED = re.compile(r"(?P<stamp>[^\[\]]+)(?:\[(?P<zone>[^\[\]]+)\])?")
_EPOCH_MILLIS = re.compile(r"[+-]?\d{1,15}")
_HAS_TIME = re.compile(r"^\d{4}-?\d{2}-?\d{2}[Tt ]\d")
# A zone written as an offset: `Z`, `UTC`, `GMT+01:00`, `UT-5`, `+01:00`, `-0530` (Java's ZoneId.of accepts these).
_OFFSET_ZONE = re.compile(r"(?:Z|UTC|GMT|UT)?(?:(?P<sign>[+-])(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXAMPLE = "e.g. 2017-01-20T17:42:47.789-07:00[America/Denver] or 2017-01-20T16:42:47Z"

#: For config field descriptions: the forms `parse_instant` accepts.
INSTANT_DESCRIPTION = (
    "ISO-8601 with an offset (`2017-01-20T17:42:47Z`), optionally with SCG's zone suffix "
    "(`2017-01-20T17:42:47.789-07:00[America/Denver]`); a local time with a zone suffix; or epoch milliseconds."
)


def parse_instant(value: object) -> datetime:
    """The instant `value` names, as an aware datetime. Raises ValueError saying what is wrong and how to fix it."""
    if isinstance(value, bool):
        raise ValueError(f"expected a date-time, not a boolean ({_EXAMPLE})")
    if isinstance(value, int):
        return _from_millis(value)
    if isinstance(value, datetime):
        return _aware(value, str(value))
    if isinstance(value, date):
        raise ValueError(f"{value} is a date without a time and a zone ({_EXAMPLE})")
    if not isinstance(value, str):
        raise ValueError(f"expected a date-time string ({_EXAMPLE})")
    text = value.strip()
    if _EPOCH_MILLIS.fullmatch(text):
        return _from_millis(int(text))
    m = _ZONED.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a date-time ({_EXAMPLE})")
    stamp, zone_text = m.group("stamp").strip(), m.group("zone")
    if not _HAS_TIME.match(stamp):
        raise ValueError(f"{text!r} needs a date and a time ({_EXAMPLE})")
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 date-time ({_EXAMPLE})") from None
    if zone_text is None:
        return _aware(moment, text)
    return _in_zone(moment, parse_zone(zone_text), text)


def instant_text(value: object) -> object:
    """Pydantic before-validator: `value` must name an instant (ValueError saying why); returns it as text."""
    parse_instant(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, int) else value


def parse_zone(text: str) -> tzinfo:
    """A zone id: a region (`America/Denver`), `UTC`/`GMT`/`Z`, or an offset (`+01:00`, `GMT-5`). ValueError if
    unknown."""
    text = text.strip()
    offset = _OFFSET_ZONE.fullmatch(text)
    if offset is not None and text:
        if offset.group("sign") is None:
            return UTC
        hours, minutes = int(offset.group("hours")), int(offset.group("minutes") or 0)
        if hours > 18 or minutes > 59:
            raise ValueError(f"zone offset {text!r} is out of range")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if offset.group("sign") == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r} (use an IANA name such as Europe/Paris)") from None


def _from_millis(millis: int) -> datetime:
    try:
        return _EPOCH + timedelta(milliseconds=millis)  # exact, unlike a float of seconds
    except OverflowError:
        raise ValueError(f"{millis} milliseconds since the epoch is out of range") from None


def _aware(moment: datetime, text: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no offset or zone, so it would name a different instant on every machine; "
            f"add one ({_EXAMPLE})"
        )
    return moment


def _in_zone(moment: datetime, zone: tzinfo, text: str) -> datetime:
    """`moment` (local or with an offset) placed in `zone`; refuses offsets the zone does not have then."""
    if moment.tzinfo is not None:
        placed = moment.astimezone(zone)
        if placed.utcoffset() != moment.utcoffset():
            raise ValueError(
                f"{text!r}: the offset {_offset(moment)} is not the one {zone} has at that moment "
                f"({_offset(placed)}); fix the offset or leave it out"
            )
        return placed
    earlier, later = moment.replace(tzinfo=zone, fold=0), moment.replace(tzinfo=zone, fold=1)
    if earlier.utcoffset() != later.utcoffset():
        # Both folds differ: the local time is repeated (clocks went back) or skipped (clocks went forward).
        gap = earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != moment
        what = "does not exist" if gap else "happens twice"
        raise ValueError(f"{text!r}: that local time {what} in {zone}; give an offset to say which instant")
    return earlier


def _offset(moment: datetime) -> str:
    return moment.strftime("%z") or "+0000"
