"""Pure decisions of the Retry filter: backoff delays (SCG/reactor semantics) and the `Retry-After` wait."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime


def backoff_delays(
    first: float | None,
    maximum: float | None,
    factor: int,
    based_on_previous: bool,
    random_factor: float | None,
    rng: random.Random,
) -> Iterator[float]:
    """Seconds to wait before retry 1, 2, 3 …: endless; 0 when backoff is off (`first` is None).

    `first * factor**n` capped at `maximum`; with `based_on_previous` the next delay is the previous *actual*
    (jittered) delay times `factor`, as reactor's `Backoff.exponential`. Jitter spreads a delay `b` uniformly
    over `[b - b*r, b + b*r]`, so many clients retrying after one outage do not arrive in lockstep.
    """
    if first is None:
        while True:
            yield 0.0
    previous: float | None = None
    n = 0
    while True:
        base = previous * factor if based_on_previous and previous is not None else first * factor**n
        if maximum is not None:
            base = min(base, maximum)
        delay = base if not random_factor else rng.uniform(base - base * random_factor, base + base * random_factor)
        previous, n = delay, n + 1
        yield max(delay, 0.0)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """The wait a `Retry-After` value asks for (delta-seconds or an HTTP-date), or None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # str.isdigit alone accepts "³" (latin-1), which int() refuses
        return float(int(text[:12]))  # a dozen digits is already far beyond any cap
    # The value comes from the upstream: whatever it holds, the answer is a number or None, never an exception.
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            return None  # RFC 9110 dates are GMT; a date without a zone is not one of them
        return max(when.timestamp() - (time.time() if now is None else now), 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
