"""When a circuit breaker's fallback answers a failed call that a Retry around it may still retry.

A CircuitBreaker (band 700) runs inside Retry (band 600). If the breaker answered every failed call with its
fallback, Retry would only ever see the fallback's answer and never retry (SCG's long-standing behaviour,
spring-cloud-gateway#1567). So the fallback is handed outwards instead, as Resilience4j's decorators place it
around the retry:

- Retry puts a fresh `DeferredFallback` on each attempt's exchange (key `DEFER_FALLBACK`).
- A breaker with a fallback whose call failed (a 5xx gateway error, or a status listed in `statusCodes`) parks
  its fallback in `answer` and lets the failure itself through. Retry judges the failure by its own rules: when
  it retries, the parked fallback is dropped; when it gives up (last attempt, status or error not retryable,
  budget spent, deadline, a long `Retry-After`), it calls `answer` and the client gets the fallback — once.
- An open breaker still answers with its fallback at once and sets `final`: Retry never retries that answer
  (another attempt would meet the same open breaker).

Without a Retry around it (no `DeferredFallback` on the exchange), a breaker answers a failed call with its
fallback directly, as before. A fallback's own re-dispatch carries no `DeferredFallback`: the fallback route's
filters never park anything in the original request's slot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.exchange import ExchangeKey, Response


class DeferredFallback:
    """One attempt's slot: the parked fallback of a failed call, and whether the answer must not be retried."""

    __slots__ = ("answer", "final")

    def __init__(self) -> None:
        #: Produces the fallback's response; set by a breaker whose call failed, called by Retry when it gives up.
        self.answer: Callable[[], Awaitable[Response]] | None = None
        #: Set by a breaker that answered with its fallback because it was open: Retry must not retry it.
        self.final = False


#: Set by Retry on every attempt's exchange; None (or absent) means no retry can follow this call.
DEFER_FALLBACK: ExchangeKey[DeferredFallback | None] = ExchangeKey("deferred-fallback")
