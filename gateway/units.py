"""Spring's DataSize spellings in config: `5000000`, `512KB`, `5MB` (binary units, as Spring: 1 KB = 1024 B)."""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
_DATA_SIZE = re.compile(r"([+-]?\d+)([A-Za-z]{0,2})")  # config text only, never request data


def parse_data_size(value: object) -> object:
    """Pydantic before-validator: bytes from a DataSize string; other values pass through for pydantic to judge."""
    if not isinstance(value, str):
        return value
    match = _DATA_SIZE.fullmatch("".join(value.split()))
    if match is None:
        raise ValueError(f"{value!r} is not a size: write bytes or a number with B, KB, MB, GB or TB")
    number, unit = match.groups()
    factor = _UNITS.get(unit.upper())
    if factor is None:
        raise ValueError(f"{value!r} is not a size: unknown unit {unit!r}; use B, KB, MB, GB or TB (1 KB = 1024 B)")
    return int(number) * factor
