"""The kit: an exchange as a filter sees it, a scripted upstream, and reading bodies and metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gateway.body import BytesBody
from gateway.exchange import Exchange, PeerIdentity, Response
from gateway.headers import Headers
from gateway.services import WORKER

# -- an exchange and a scripted upstream -----------------------------------------------------------------------

HeaderItems = Mapping[str, str] | Iterable[tuple[str, str]]


def make_exchange(
    method: str = "GET",
    path: str = "/",
    *,
    headers: HeaderItems = (),
    body: bytes = b"",
    client: tuple[str, int] = ("127.0.0.1", 50000),
    host: str = "gateway.test",
    scheme: str = "http",
    path_vars: Mapping[str, str] | None = None,
    peer: PeerIdentity | None = None,
) -> Exchange:
    """A request as a filter sees it after routing. `path` may carry the query (`/a/b?x=1`), still encoded.

    A Host header (`host`) is added unless `headers` has one, and Content-Length when there is a body and no
    framing header, as a client would send them; `path_vars` are what a Path predicate captured, `peer` what a
    client certificate proved on the mTLS listener.
    """
    items = list(headers.items() if isinstance(headers, Mapping) else headers)
    names = {name.lower() for name, _ in items}
    if "host" not in names:
        items.insert(0, ("Host", host))
    if body and not names & {"content-length", "transfer-encoding"}:
        items.append(("Content-Length", str(len(body))))
    path_only, _, query = path.partition("?")
    given_host = next(value for name, value in items if name.lower() == "host")
    exchange = Exchange(
        method,
        path_only,
        query,
        Headers(items),
        BytesBody(body),
        client_host=client[0],
        client_port=client[1],
        scheme=scheme,
        host=given_host,
        peer=peer,
    )
    exchange.path_vars = dict(path_vars or {})
    return exchange


@dataclass(frozen=True)
class Received:
    """One request as it reached the scripted upstream (a snapshot: later changes do not show here)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    #: The exchange object itself, for attributes (`exchange.get(KEY)`) and identity checks.
    exchange: Exchange

    def header(self, name: str) -> list[str]:
        """Every value of header `name` (any case), in order."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


Answer = Response | BaseException | Callable[[Exchange], Response]


class ScriptedUpstream:
    """A `call_next` standing in for the upstream: `await filter_(exchange, upstream)`.

    Each call reads the request body, records a `Received`, and plays the next item of the script: a `Response`
    (a fresh copy each time, origin "upstream", so a filter changing it in place does not change the script), an
    exception instance (raised, e.g. `UpstreamTimeout()`), or a function of the exchange returning a Response.
    The last item repeats once the script runs out; with no script it answers 200 `ok`.
    """

    def __init__(self, *script: Answer) -> None:
        self.script: tuple[Answer, ...] = script or (Response(200, Headers([("Content-Type", "text/plain")]), b"ok"),)
        self.received: list[Received] = []
        #: The responses handed out, in order (what a filter got from call_next).
        self.answered: list[Response] = []

    @property
    def calls(self) -> int:
        return len(self.received)

    @property
    def last(self) -> Received:
        """The most recent request; AssertionError if nothing reached the upstream."""
        assert self.received, "nothing reached the upstream"
        return self.received[-1]

    async def __call__(self, exchange: Exchange) -> Response:
        body = await exchange.body.read()
        self.received.append(
            Received(exchange.method, exchange.path, exchange.query, list(exchange.headers.items()), body, exchange)
        )
        answer = self.script[min(len(self.received), len(self.script)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        response = answer(exchange) if callable(answer) else answer
        copy = Response(
            response.status, response.headers.copy(), response.body, origin="upstream", reason=response.reason
        )
        self.answered.append(copy)
        return copy


def metric_value(name: str, **labels: str) -> float:
    """The current value of a counter or gauge series that filters built here declared, by its exposed name
    (`gateway_filter_team_tag_calls_total` or without `_total`) and label values; 0 for a series with no sample yet.

    Raises KeyError for a family nobody declared or a label it does not have.
    """
    family = WORKER.metrics.families.get(name.removesuffix("_total"))
    if family is None:
        raise KeyError(f"no metric {name!r} is declared (is the filter built in this process?)")
    unknown = set(labels) - set(family.label_names)
    if unknown:
        raise KeyError(f"{name} has labels {list(family.label_names)}, not {sorted(unknown)}")
    child = family.children.get(tuple(str(labels[label]) for label in family.label_names))
    return 0.0 if child is None else float(child.value)


async def read_body(response: Response) -> bytes:
    """A response body as bytes, whether a filter left bytes or a stream."""
    if isinstance(response.body, bytes | bytearray | memoryview):
        return bytes(response.body)
    return b"".join([bytes(chunk) async for chunk in response.body])
