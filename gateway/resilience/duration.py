"""Spring `Duration` spellings in config: `10ms`, `5s`, `2m`, ISO-8601 `PT0.5S`; a bare number means milliseconds."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Config text only, never request data.
_SIMPLE = re.compile(r"(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)?", re.IGNORECASE)
_ISO = re.compile(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", re.IGNORECASE)


def parse_duration(value: object) -> object:
    """Pydantic before-validator: seconds (float) from a duration string or a number of milliseconds.

    None and other values (lists) pass through for pydantic to judge; a boolean is refused here.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10ms or 2s, not a boolean")
    if value is None:
        return value
    if isinstance(value, int | float):
        return value / 1000
    if not isinstance(value, str):
        return value
    text = value.strip()
    match = _SIMPLE.fullmatch(text)
    if match is not None:
        number, unit = match.groups()
        return float(number) * _UNITS[(unit or "ms").lower()]
    iso = _ISO.fullmatch(text)
    if iso is not None and text.upper() != "PT":
        hours, minutes, seconds = iso.groups()
        return int(hours or 0) * 3600.0 + int(minutes or 0) * 60.0 + float(seconds or 0)
    raise ValueError(f"{value!r} is not a duration: write e.g. 10ms, 2s, 1m or PT0.5S (a bare number is ms)")
