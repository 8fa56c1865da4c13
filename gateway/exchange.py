"""The filter contract's data: `Exchange` (the request as filters see it) and `Response`.

No aiohttp or asyncio transport type appears here: filters are testable without a server, and the data plane
(server adapter, forwarder) can be replaced without touching a filter.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from gateway.body import EMPTY, Body
from gateway.headers import Headers

if TYPE_CHECKING:
    from gateway.routing.route import Route

T = TypeVar("T")


class Closable(Protocol):
    async def aclose(self) -> None: ...


class ExchangeKey(Generic[T]):
    """A typed key for data one filter leaves for another; compare by identity, so names need not be unique."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ExchangeKey({self.name!r})"


#: Which of %2F, %5C, %00 and ';' the request path held; the matched route decides whether that is allowed.
PATH_ESCAPES: ExchangeKey[frozenset[str]] = ExchangeKey("path-escapes")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One concrete upstream address a request can be sent to."""

    host: str
    port: int
    tls: bool
    #: The TLS server name to send and verify; defaults to `host`.
    server_name: str | None = None

    @property
    def label(self) -> str:
        """host:port, IPv6 in brackets, as used in logs and the `tried` list."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UpstreamRef:
    """Where a route sends requests: a direct URL, or a named pool (`pool`) that resolves to an instance's ref.

    `kind` is "http" (http/https), "ws" (ws/wss), "forward" (re-dispatch locally to `path`) or "noop"
    (answered by the filters). `authority` is the Host value the upstream expects (default port omitted).
    """

    kind: str
    uri: str
    endpoint: Endpoint | None = None
    authority: str = ""
    path: str = ""  # forward: target path
    #: The upstream pool's name for `lb://name` routes (and for the instance refs a pool resolves to), else None.
    #: Stable across reloads: per-pool state elsewhere (circuit breakers) may key on it.
    pool: str | None = None

    @property
    def is_proxied(self) -> bool:
        return self.kind in ("http", "ws")


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What the client's TLS certificate proved (filled by the mTLS listener; empty on plain TCP)."""

    spiffe_id: str | None = None
    subject: str | None = None
    dns_names: tuple[str, ...] = ()


class Outcomes:
    """What one client request came to upstream, whichever copy of its exchange got there; read by the server.

    The server adapter's exchange creates it, and `Exchange.fork()` shares it (never copies it): a Retry attempt,
    a CircuitBreaker call and a `forward:` fallback all run on forks, and what they record here reaches the
    access log and the writer. Only the data plane writes it (the forwarder, the dispatcher); filters may read.
    """

    __slots__ = ("tried", "streams", "upstream_seconds", "close_connection")

    def __init__(self) -> None:
        #: Endpoints attempted so far, in order (every Retry attempt, the one resend, a fallback's upstream); a
        #: retry reads it to pick an untried instance, the access log its length (`attempts`) and last entry.
        self.tried: list[Endpoint] = []
        #: Upstream response bodies opened (every attempt). The server closes whichever were not written to the
        #: client, so a filter that drops a response never leaks its connection.
        self.streams: list[Closable] = []
        #: Seconds from sending the request upstream to its response head, of the last attempt that got one.
        self.upstream_seconds: float | None = None
        #: Close the client connection after this response (an error that leaves what follows on it suspect).
        self.close_connection = False


class Exchange:
    """One request travelling through a route's filter chain.

    Mutable by design: request-side filters rewrite `path`, `query`, `headers` and `target` in place. A
    replaying filter calls `fork()` to run the inner chain on a fresh copy of the exchange as it entered.
    What happened upstream is recorded in `outcomes`, which every fork shares.
    `path` is the canonical, still percent-encoded path: the same string is matched, authorised and forwarded.
    """

    __slots__ = (
        "method",
        "path",
        "query",
        "headers",
        "body",
        "client_host",
        "client_port",
        "scheme",
        "http_version",
        "host",
        "peer",
        "route",
        "path_vars",
        "target",
        "attempt",
        "deadline",
        "original_path",
        "forwards",
        "outcomes",
        "_attrs",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query: str = "",
        headers: Headers | None = None,
        body: Body = EMPTY,
        *,
        client_host: str = "",
        client_port: int = 0,
        scheme: str = "http",
        http_version: str = "1.1",
        host: str = "",
        peer: PeerIdentity | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query  # raw query string without "?", still encoded
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.client_host = client_host
        self.client_port = client_port
        self.scheme = scheme  # of the client connection: http or https
        self.http_version = http_version
        self.host = host  # the authority the client asked for (Host header or absolute-form)
        self.peer = peer
        self.route: Route | None = None
        self.path_vars: dict[str, str] = {}
        self.target: UpstreamRef | None = None
        self.attempt = 1
        #: Absolute loop.time() by which the whole exchange must finish, if a filter set one.
        self.deadline: float | None = None
        self.original_path = path
        self.forwards = 0  # forward: re-dispatches so far (loop guard)
        #: This request's upstream outcomes: created here, with the exchange the server builds; forks share it.
        self.outcomes = Outcomes()
        self._attrs: dict[ExchangeKey[Any], Any] = {}

    @property
    def tried(self) -> list[Endpoint]:
        """Endpoints attempted so far, in order (`outcomes.tried`)."""
        return self.outcomes.tried

    def get(self, key: ExchangeKey[T], default: T | None = None) -> T | None:
        # Not typing.cast: it is a Python-level call, and this runs several times per request.
        return self._attrs.get(key, default)

    def require(self, key: ExchangeKey[T]) -> T:
        """The value under `key`; KeyError if no filter set it."""
        return cast(T, self._attrs[key])

    def set(self, key: ExchangeKey[T], value: T) -> None:
        self._attrs[key] = value

    def has(self, key: ExchangeKey[Any]) -> bool:
        return key in self._attrs

    def fork(self) -> Exchange:
        """A copy a replaying filter hands to the inner chain for one attempt.

        Headers and attributes are copied (inner filters may mutate them); the body is replayed when it was
        buffered, otherwise shared (a one-shot stream can feed only one attempt). `outcomes` is shared on purpose:
        what an attempt or a fallback met upstream is the request's, not the fork's.
        """
        twin = Exchange.__new__(Exchange)
        for name in Exchange.__slots__:
            setattr(twin, name, getattr(self, name))
        twin.headers = self.headers.copy()
        twin.path_vars = dict(self.path_vars)
        twin._attrs = dict(self._attrs)
        if self.body.replayable:
            twin.body = self.body.replay()
        return twin


class Response:
    """What a chain returns: a status, headers and a body that is bytes or an async byte stream.

    `origin` is "upstream" or "local". Bodies stream by default; a filter that rewrites a body buffers it and
    must then fix `Content-Length` (the server refuses to send a stream whose size disagrees with it).
    """

    __slots__ = ("status", "headers", "body", "origin", "reason")

    def __init__(
        self,
        status: int = 200,
        headers: Headers | None = None,
        body: bytes | AsyncIterable[bytes] = b"",
        *,
        origin: str = "local",
        reason: str = "",
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.origin = origin
        self.reason = reason  # reason phrase from the upstream, when any


class Tunnel(Protocol):
    """The upstream side of an upgraded connection (WebSocket), as raw bytes in both directions."""

    async def read(self) -> bytes:
        """Next bytes from the upstream; b"" at EOF."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes upstream, waiting while the upstream's buffer is full."""
        ...

    def close(self) -> None: ...


class UpgradeResponse(Response):
    """A 101 Switching Protocols answer: after the head, the server pipes bytes between client and `tunnel`."""

    __slots__ = ("tunnel",)

    def __init__(self, headers: Headers, tunnel: Tunnel, *, reason: str = "Switching Protocols") -> None:
        super().__init__(101, headers, b"", origin="upstream", reason=reason)
        self.tunnel = tunnel


Next = Callable[[Exchange], Awaitable[Response]]


class Filter(Protocol):
    """The one contract: request side before `await call_next(exchange)`, response side after it."""

    async def __call__(self, exchange: Exchange, call_next: Next) -> Response: ...


class Predicate(Protocol):
    """A compiled route predicate: a pure, synchronous test of the request."""

    def __call__(self, exchange: Exchange) -> bool: ...


@dataclass(slots=True)
class MatchHints:
    """What a predicate tells the route index so matching need not scan every route.

    `path_prefixes`: segment-aligned literal prefixes, one of which every matching path starts with (None: any).
    `hosts`: exact lower-cased host names, one of which every matching request has (None: any host).
    """

    path_prefixes: list[str] | None = None
    hosts: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
