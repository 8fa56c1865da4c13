"""The kit: the contract every filter and predicate must pass (docs/plugins.md explains each rule)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from gateway.errors import GatewayError
from gateway.exchange import Exchange, MatchHints, Response
from gateway.headers import Headers
from gateway.registry import FILTER_GROUP, PREDICATE_GROUP
from gateway.spec import BANDS, ComponentConfig, FilterSpec, PredicateSpec
from gateway.testing._build import BuildError, Spec, build_filter, build_predicate
from gateway.testing._exchange import ScriptedUpstream, make_exchange

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


class ContractViolation(AssertionError):
    """A spec breaks the plugin contract; `problems` lists every rule broken, not just the first."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"{name} breaks the plugin contract:\n" + "\n".join(f"- {p}" for p in problems))
        self.problems = problems


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
