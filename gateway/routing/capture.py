"""Matching a value against several capturing patterns, as the Path and Host predicates do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class CapturingPattern(Protocol):
    def match(self, text: str) -> dict[str, str] | None: ...


def match_any(patterns: Sequence[CapturingPattern], text: str, variables: dict[str, str]) -> bool:
    """True when one pattern matches `text`; the first match's captures are added to `variables`."""
    for pattern in patterns:
        captured = pattern.match(text)
        if captured is not None:
            if captured:
                variables.update(captured)
            return True
    return False
