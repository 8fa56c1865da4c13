"""The test kit for filter and predicate plugins: what a team imports in its own repository to test its filter.

A plugin's tests import `gateway.api` and this module, nothing else from `gateway`:

- `build_filter` / `build_predicate`: a component from its routes.yaml entry, in shortcut (`"TeamTag=payments"`)
  or expanded form (`{"name": "TeamTag", "args": {...}}`), through the same parse and validation path the gateway
  loads routes.yaml with, so a refused config raises `BuildError` with the messages a user would read;
- `make_exchange`: a request as a filter sees it (method, path with query, headers, body, client address);
- `ScriptedUpstream`: the `call_next` standing in for the upstream: records what reached it and answers a scripted
  `Response` or raises a scripted error, one script item per call;
- `check_contract`: the contract every filter and predicate must pass (`CONTRACT` lists it; docs/plugins.md
  explains each rule); the gateway's own suite runs the same function against every installed spec;
- `running_gateway` and `echo_upstream`: a real gateway and a real echo upstream on 127.0.0.1 free ports, for an
  end-to-end test over sockets.

Every async helper is a plain coroutine or async context manager: it runs under pytest-asyncio (any mode) as well
as under `asyncio.run`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from gateway.app import Gateway
from gateway.body import BytesBody
from gateway.config.components import parse_component
from gateway.demo import demo_app
from gateway.errors import ConfigError, GatewayError
from gateway.exchange import Exchange, Filter, MatchHints, PeerIdentity, Predicate, Response
from gateway.headers import Headers
from gateway.registry import FILTER_GROUP, PREDICATE_GROUP, Registry, load_registry
from gateway.services import WORKER
from gateway.settings import Settings
from gateway.spec import BANDS, BuildContext, ComponentConfig, FilterSpec, PredicateSpec

__all__ = [
    "CONTRACT",
    "BuildError",
    "ContractViolation",
    "EchoUpstream",
    "Received",
    "Reply",
    "RunningGateway",
    "ScriptedUpstream",
    "build_filter",
    "build_predicate",
    "check_contract",
    "contract_problems",
    "echo_upstream",
    "make_exchange",
    "metric_value",
    "read_body",
    "running_gateway",
]

Spec = FilterSpec[Any] | PredicateSpec[Any]
#: A routes.yaml entry of one filter or predicate: `"Name=a,b"` or `{"name": "Name", "args": {...}}`.
Entry = str | Mapping[str, Any]

#: The rules `check_contract` enforces, in the words docs/plugins.md uses.
CONTRACT = (
    "the entry point named like the spec (in sluicegate.filters or sluicegate.predicates) loads this very spec",
    "the config is a ComponentConfig whose every field has a description and bounds (numbers a minimum and a "
    "maximum, strings a maxLength, pattern or enum, lists a maxItems); booleans and enums are bounded by nature",
    "the spec has a summary, and its shortcut names only fields of its config",
    "a filter's order lies in a known band (100-999)",
    "the spec builds from its `example`, given in expanded form, through the gateway's own parse path",
    "an unknown argument is refused",
    "a filter returns a gateway Response (status an int, headers a gateway Headers, body bytes or an async "
    "iterable of bytes; no aiohttp or multidict object anywhere)",
    "a filter or predicate lets no exception but a gateway error (a GatewayError subclass, rendered as "
    "problem+json) escape on a plain GET",
    "a filter calls call_next at most once per request unless its spec says replays=True",
    "a filter that calls call_next and gets a 200 returns that response (changed in place if it must), not a new "
    "one, so nothing the upstream side attached to it is lost",
    "a filter run twice on forks of one exchange does the same thing twice: what reaches the upstream, the status "
    "and the headers are equal (nothing compounds across attempts); replaying filters are exempt",
    "a predicate answers a bool for a request, and its hints (if any) are MatchHints",
)


class BuildError(ValueError):
    """A config the gateway refuses: `problems` holds (YAML path, message) pairs, as `sluicegate validate` shows."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("\n".join(f"{path}: {message}" for path, message in problems))
        self.problems = problems


class ContractViolation(AssertionError):
    """A spec breaks the plugin contract; `problems` lists every rule broken, not just the first."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"{name} breaks the plugin contract:\n" + "\n".join(f"- {p}" for p in problems))
        self.problems = problems


# -- building a component from its config ----------------------------------------------------------------------


def _context(route_id: str, uri: str, metadata: Mapping[str, Any] | None, settings: Settings | None) -> BuildContext:
    # The services on BuildContext keep their defaults: the per-process in-memory implementations.
    return BuildContext(route_id, dict(metadata or {}), settings or Settings(), uri)


def _parse(entry: Entry, kind: str, specs: Mapping[str, Spec], origins: Mapping[str, str]) -> Any:
    """The validated config of `entry`, or BuildError with every problem at its path (as the gateway reports)."""
    problems: list[tuple[str, str]] = []
    item = dict(entry) if isinstance(entry, Mapping) else entry
    parsed = parse_component(
        item, f"{kind}s[0]", specs, kind, origins, lambda path, message: problems.append((path, message))
    )
    if parsed is None or problems:
        raise BuildError(problems or [(f"{kind}s[0]", "refused")])
    return parsed


def build_filter(
    entry: Entry,
    *,
    spec: FilterSpec[Any] | None = None,
    route_id: str = "test",
    uri: str = "http://127.0.0.1:9",
    metadata: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> Filter:
    """The filter routes.yaml's `entry` builds, through the gateway's own parse path.

    Without `spec` the name is looked up among the installed filters (your package installed with
    `pip install -e .`); with `spec`, that spec alone is used (before it is installed). Raises BuildError.
    """
    specs: Mapping[str, FilterSpec[Any]]
    origins: Mapping[str, str]
    if spec is None:
        registry = load_registry()
        specs, origins = registry.filters, registry.origins
    else:
        specs, origins = {spec.name: spec}, {}
    definition, config = _parse(entry, "filter", specs, origins)
    built: Filter = specs[definition.name].build(config, _context(route_id, uri, metadata, settings))
    return built


def build_predicate(
    entry: Entry,
    *,
    spec: PredicateSpec[Any] | None = None,
    route_id: str = "test",
    uri: str = "http://127.0.0.1:9",
    metadata: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> Predicate:
    """As `build_filter`, for a predicate (`"Path=/api/**"`)."""
    specs: Mapping[str, PredicateSpec[Any]]
    origins: Mapping[str, str]
    if spec is None:
        registry = load_registry()
        specs, origins = registry.predicates, registry.origins
    else:
        specs, origins = {spec.name: spec}, {}
    definition, config = _parse(entry, "predicate", specs, origins)
    built: Predicate = specs[definition.name].build(config, _context(route_id, uri, metadata, settings))
    return built


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


# -- the contract ------------------------------------------------------------------------------------------------


async def check_contract(spec: Spec, *, installed: bool = True) -> None:
    """Raise ContractViolation listing every rule of CONTRACT that `spec` breaks.

    `installed=False` skips the entry-point rule, for a spec tested before its package is installed.
    """
    problems = await contract_problems(spec, installed=installed)
    if problems:
        raise ContractViolation(getattr(spec, "name", repr(spec)), problems)


async def contract_problems(spec: Spec, *, installed: bool = True) -> list[str]:
    """Every rule of CONTRACT that `spec` breaks, as sentences naming the field or the call (empty: passes)."""
    if not isinstance(spec, FilterSpec | PredicateSpec):
        return [f"{spec!r} is a {type(spec).__name__}, not a FilterSpec or PredicateSpec"]
    problems = _schema_problems(spec)
    if installed:
        problems += _entry_point_problems(spec)
    if isinstance(spec, FilterSpec) and spec.band not in BANDS:
        problems.append(f"order {spec.order} lies outside the known bands {min(BANDS)}-999")
    if problems:
        return problems  # building a spec whose schema is broken only adds noise
    problems += _unknown_argument_problems(spec)
    try:
        built: Any = (
            build_filter({"name": spec.name, "args": dict(spec.example)}, spec=spec)
            if isinstance(spec, FilterSpec)
            else build_predicate({"name": spec.name, "args": dict(spec.example)}, spec=spec)
        )
    except BuildError as exc:
        return [*problems, f"does not build from its example {dict(spec.example)!r}: {exc}"]
    except Exception as exc:  # a team's build function may fail any way; the check reports it, not crashes
        return [*problems, f"its build function raised {type(exc).__name__}: {exc}"]
    try:
        if isinstance(spec, FilterSpec):
            problems += await _filter_run_problems(spec, built)
        else:
            problems += _predicate_problems(spec, built)
    except GatewayError:
        pass  # refusing the contract's plain request (401, 403, ...) is an answer, rendered as problem+json
    except Exception as exc:
        problems.append(f"raises {type(exc).__name__} ({exc}) on a plain GET: only a gateway error may escape")
    return _unique(problems)


def _unique(problems: list[str]) -> list[str]:
    return list(dict.fromkeys(problems))


def _schema_problems(spec: Spec) -> list[str]:
    if not (isinstance(spec.config, type) and issubclass(spec.config, ComponentConfig)):
        return ["its config is not a ComponentConfig subclass"]
    problems = []
    schema = spec.config.model_json_schema(by_alias=True)
    for name, prop in schema.get("properties", {}).items():
        if not prop.get("description"):
            problems.append(f"config field {name!r} has no description")
        if not _bounded(prop):
            problems.append(f"config field {name!r} has no bounds")
    if not spec.summary:
        problems.append("the spec has no summary")
    names = set(spec.config.model_fields) | {f.alias for f in spec.config.model_fields.values() if f.alias}
    strays = [n for n in spec.shortcut if n not in names]
    if strays:
        problems.append(f"shortcut names {strays} are not fields of its config")
    return problems


def _bounded(prop: Mapping[str, Any]) -> bool:
    """A field is bounded when its schema limits size or range (booleans and enums are bounded by nature)."""
    for option in prop.get("anyOf", [prop]):
        kind = option.get("type")
        if kind in ("integer", "number") and not (
            {"minimum", "exclusiveMinimum"} & option.keys() and {"maximum", "exclusiveMaximum"} & option.keys()
        ):
            return False
        if kind == "string" and not {"maxLength", "enum", "pattern"} & option.keys():
            return False
        if kind == "array" and "maxItems" not in option:
            return False
    return True


def _entry_point_problems(spec: Spec) -> list[str]:
    group = FILTER_GROUP if isinstance(spec, FilterSpec) else PREDICATE_GROUP
    found = [ep for ep in entry_points(group=group) if ep.name == spec.name]
    if not found:
        return [
            f'no entry point {spec.name!r} in group {group}: add `{spec.name} = "<module>:SPEC"` under '
            f'[project.entry-points."{group}"] and install the package'
        ]
    if not any(ep.load() is spec for ep in found):
        return [f"entry point {spec.name!r} ({found[0].value}) loads another object than this spec"]
    return []


def _unknown_argument_problems(spec: Spec) -> list[str]:
    try:
        spec.config.model_validate({**spec.example, "noSuchArgument": 1})
    except ValueError:
        return []
    return ["an unknown argument (noSuchArgument) is accepted"]


def _contract_exchange() -> Exchange:
    return make_exchange(
        "GET",
        "/red/blue/green?a=1",
        headers=[("X-Request-Id", "42")],
        host="api.example.org",
        path_vars={"segment": "blue"},
    )


async def _filter_run_problems(spec: FilterSpec[Any], filter_: Any) -> list[str]:
    entered = _contract_exchange()
    upstream = ScriptedUpstream()
    runs: list[tuple[Response, int]] = []
    for _ in range(2):
        before = upstream.calls
        returned = await filter_(entered.fork(), upstream)
        if not isinstance(returned, Response):
            return [f"returns a {type(returned).__name__}, not a Response"]
        runs.append((returned, upstream.calls - before))
    problems = [p for response, _ in runs for p in _foreign_types(response)]
    if spec.replays:
        return problems
    for response, calls in runs:
        if calls > 1:
            problems.append(f"calls call_next {calls} times for one request, but its spec does not say replays=True")
        elif calls == 1 and all(response is not answered for answered in upstream.answered):
            problems.append("returns a new Response instead of the one call_next returned")
    seen = [(r.method, r.path, r.query, r.headers) for r in upstream.received]
    if len(seen) == 2 and seen[0] != seen[1]:
        problems.append(f"compounds across attempts: the upstream saw {seen[0]!r}, then {seen[1]!r}")
    (first, _), (second, _) = runs
    if first.status != second.status or list(first.headers.items()) != list(second.headers.items()):
        problems.append("answers differently when run twice on forks of one exchange")
    return problems


def _foreign_types(response: Response) -> list[str]:
    """What in `response` is not a gateway type (aiohttp and multidict objects must not reach the server)."""
    problems = []
    if not isinstance(response.status, int) or isinstance(response.status, bool):
        problems.append(f"the response status is a {type(response.status).__name__}, not an int")
    if type(response.headers) is not Headers:
        problems.append(f"the response headers are a {type(response.headers).__qualname__}, not gateway Headers")
    body = response.body
    if not isinstance(body, bytes | AsyncIterable):
        problems.append(f"the response body is a {type(body).__qualname__}, not bytes or an async iterable")
    for value in (response.status, response.headers, body):
        module = type(value).__module__.partition(".")[0]
        if module in ("aiohttp", "multidict", "yarl"):
            problems.append(f"the response carries a {module} object ({type(value).__qualname__})")
    return problems


def _predicate_problems(spec: PredicateSpec[Any], predicate: Any) -> list[str]:
    problems = []
    answer = predicate(_contract_exchange())
    if not isinstance(answer, bool):
        problems.append(f"answers a {type(answer).__name__}, not a bool")
    if spec.hints is not None:
        hints = spec.hints(spec.config.model_validate(spec.example))
        if hints is not None and not isinstance(hints, MatchHints):
            problems.append(f"its hints are a {type(hints).__name__}, not MatchHints")
    return problems


# -- a real gateway and a real upstream on sockets ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A response as a client received it from the gateway, read to the end."""

    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def upstream_got(self, name: str) -> list[str]:
        """Every value of header `name` as the echo upstream received it (when it answered), in order."""
        return [str(v) for k, v in self.json()["headers"] if str(k).lower() == name.lower()]


@dataclass
class EchoUpstream:
    """The demo echo server on 127.0.0.1: any path but its own few (`/bytes/N`, `/status/N`, `/delay/S`, `/sse`,
    `/ws`) answers JSON with the method, path, query, headers (`Reply.upstream_got`), body digest and peer."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def echo_upstream() -> AsyncIterator[EchoUpstream]:
    """The gateway's demo echo backend on a free port of 127.0.0.1, stopped on exit."""
    runner = web.AppRunner(demo_app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield EchoUpstream(int(runner.addresses[0][1]))
    finally:
        await runner.cleanup()


@dataclass
class RunningGateway:
    """A gateway serving on 127.0.0.1:`port` in this process."""

    gateway: Gateway
    port: int
    guard: float = 15.0

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def request(self, method: str, path: str, *, headers: HeaderItems = (), body: bytes | None = None) -> Reply:
        """Send one request (`path` as written, already percent-encoded) and read the reply to the end.

        `guard` (seconds) only guards against a hang; it is never a measurement.
        """
        items = list(headers.items() if isinstance(headers, Mapping) else headers)
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.guard)) as session,
            session.request(method, URL(self.url(path), encoded=True), headers=items, data=body) as resp,
        ):
            raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
            return Reply(resp.status, Headers(raw), await resp.read())

    async def get(self, path: str, *, headers: HeaderItems = ()) -> Reply:
        return await self.request("GET", path, headers=headers)


def _routes_text(routes: str | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    if isinstance(routes, str):
        return routes
    document = {"routes": list(routes)} if isinstance(routes, Sequence) else dict(routes)
    return json.dumps(document)  # JSON is YAML: the gateway reads it as it reads routes.yaml


@asynccontextmanager
async def running_gateway(
    routes: str | Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    settings: Settings | None = None,
    specs: Iterable[Spec] = (),
) -> AsyncIterator[RunningGateway]:
    """A gateway on a free port of 127.0.0.1 serving `routes`, stopped on exit.

    `routes` is routes.yaml text, a whole document as a mapping, or a list of route mappings. The installed
    filters and predicates are available, plus `specs` (for a spec not installed yet). A refused config raises
    BuildError before anything listens.
    """
    registry = load_registry()
    extra = list(specs)
    if extra:
        registry = Registry(
            filters={**registry.filters, **{s.name: s for s in extra if isinstance(s, FilterSpec)}},
            predicates={**registry.predicates, **{s.name: s for s in extra if isinstance(s, PredicateSpec)}},
            origins=registry.origins,
        )
    gateway = Gateway(settings or Settings(), registry)
    try:
        gateway.load_text(_routes_text(routes), "routes.yaml")
    except ConfigError as exc:
        raise BuildError([(issue.path, issue.message) for issue in exc.issues]) from None
    server = await gateway.start("127.0.0.1", 0)
    try:
        yield RunningGateway(gateway, server.port)
    finally:
        await gateway.stop()
