"""Composing filters into one callable, once per route."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from gateway.exchange import Exchange, Filter, Next, Response


class _Step:
    """`filter(exchange, next)` bound to its successor.

    A plain object whose __call__ returns the filter's coroutine: no extra coroutine frame per filter per request.
    """

    __slots__ = ("_filter", "_next")

    def __init__(self, filter_: Filter, next_: Next) -> None:
        self._filter = filter_
        self._next = next_

    def __call__(self, exchange: Exchange) -> Awaitable[Response]:
        return self._filter(exchange, self._next)


def compose(filters: Sequence[Filter], terminal: Next) -> Next:
    """The chain: filters[0] runs first on the request and last on the response; `terminal` is innermost."""
    step: Next = terminal
    for filter_ in reversed(filters):
        step = _Step(filter_, step)
    return step
