"""Config as shown to operators (the admin routes view, and any view to come): secrets replaced by "<redacted>".

Two rules, applied to every string of a view by one walker (`redact_view`; `redacted_routes` is the routes view):

- **By provenance**: a string that came from `${env:...}` is a secret, wherever parsing put it. It is recognised by
  its mark (`FromEnv`, kept through splitting, stripping, renamed and gathered args), else by equality with a
  recorded substituted text (stripped; a number too, when its text equals one), else, for recorded texts of
  `MIN_SEARCHED` characters or more, by containing one (a copy that lost its mark: a validated model's field, a
  string built from pieces). Shorter texts (a port, a weight) are not searched for inside other strings: `80`
  would hide every string with an `80` in it.
- **By meaning**: values whose name says credential (`sensitive_name`): a mapping value under such a key, the value
  of a `Name: Value` string and of a URL query parameter or userinfo password, and every non-name argument of a
  predicate or filter that names a credential, either by its own name (`Cookie`) or by the value of a name argument
  (`name`, `header`, `param`, `fromHeader`, `*HeaderName` …: `AddRequestHeader=Authorization, …`). This reads the
  args, not a list of filters, so a plugin's filter is covered by the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel

from gateway.config.definitions import ComponentDef, GatewayConfig, RouteDefinition
from gateway.config.provenance import MIN_SEARCHED, REDACTED, FromEnv, redact_message

__all__ = [
    "MIN_SEARCHED",
    "REDACTED",
    "credential_texts",
    "redact_message",
    "redact_view",
    "redacted_routes",
    "sensitive_name",
]

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# SECURITY: the documented credential-name pattern (docs/operations.md), on the name normalised by `_words`.
_SENSITIVE = re.compile(
    r"authorization|cookie|token|secret|passw|passphrase|pwd|credential|session|signature|jwt|bearer"
    r"|api-?key|auth-?key|access-?key|private-?key|(?:^|-)key$|(?:^|-)auth$|(?:^|-)sig$"
)
# The args that hold a name: `name`, `header`, `param`, `fromHeader`, `*HeaderName` …, and SCG's first positional
# arg `_genkey_0` (every name/value predicate and filter takes the name first).
_NAME_ARG = re.compile(r"(?:^|-)(?:name|header|param|parameter|cookie)$|^-genkey-0$")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_HEADER_LINE = re.compile(rf"(\s*{_TOKEN}\s*):(.*)", re.DOTALL)
_QUERY_PARAM = re.compile(r"(^|[?&;]\s*)([^=&#;?\s]+)=([^&#;]*)")
_USERINFO = re.compile(r"(://[^/@:\s]*:)[^/@\s]*@")


def _words(name: str) -> str:
    """`X-Api-Key`, `api_key`, `apiKey` → `x-api-key`, `api-key`, `api-key`: one spelling to match against."""
    return _CAMEL.sub("-", name).lower().replace("_", "-")


def sensitive_name(name: str) -> bool:
    """Whether a header, parameter, cookie or field name names a credential (case-insensitive, any spelling)."""
    return _SENSITIVE.search(_words(name)) is not None


def _hidden(value: Any) -> Any:
    """`value` with every string and number replaced (booleans and null say nothing secret)."""
    if isinstance(value, Mapping):
        return {key: _hidden(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_hidden(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    return REDACTED


def _hidden_strings(value: Any) -> Any:
    """`value` with every string replaced: the values of a credential-bearing predicate or filter."""
    if isinstance(value, str):
        return REDACTED
    if isinstance(value, Mapping):
        return {key: _hidden_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_hidden_strings(item) for item in value]
    return value


def credential_args(component: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` of the predicate/filter `component`, with every non-name value hidden when it names a credential."""
    names = {key for key in args if isinstance(key, str) and _NAME_ARG.search(_words(key))}
    named = [args[key] for key in names if isinstance(args[key], str)]
    if not (sensitive_name(component) or any(sensitive_name(name) for name in named)):
        return dict(args)
    return {key: value if key in names else _hidden_strings(value) for key, value in args.items()}


def credential_texts(routes: Iterable[Any]) -> set[str]:
    """The texts the views would hide in routes given as raw data (a request body, shortcut or expanded
    components): what an error message about them must not quote either (a validator quotes the value it refuses,
    `invalid regular expression: ... Bearer (abc`)."""
    found: set[str] = set()
    for route in routes:
        if not isinstance(route, Mapping):
            continue
        for kind in ("predicates", "filters"):
            items = route.get(kind)
            for item in items if isinstance(items, list) else []:
                name, args = _raw_component(item)
                hidden = credential_args(name, args)
                found |= {t for key in args if hidden[key] != args[key] for t in _strings(args[key])}
        metadata = route.get("metadata")
        if isinstance(metadata, Mapping):
            found |= {
                t for key, v in metadata.items() if isinstance(key, str) and sensitive_name(key) for t in _strings(v)
            }
    return found


def _raw_component(item: Any) -> tuple[str, dict[str, Any]]:
    """(name, args) of a component as written: `Name=a, b` gives SCG's `_genkey_N` args."""
    if isinstance(item, str):
        name, _, text = item.partition("=")
        return name.strip(), {f"_genkey_{i}": part.strip() for i, part in enumerate(text.split(","))}
    if isinstance(item, Mapping):
        args = item.get("args")
        return str(item.get("name", "")), dict(args) if isinstance(args, Mapping) else {}
    return "", {}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _strings(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _strings(v)]
    return []


def _text_by_meaning(text: str) -> str:
    """`text` with the value of a credential `Name: Value`, query parameter or URL password replaced."""
    line = _HEADER_LINE.fullmatch(text)
    if line is not None and sensitive_name(line.group(1).strip()):
        return f"{line.group(1)}:{REDACTED}"

    def param(match: re.Match[str]) -> str:
        lead, name, _ = match.groups()
        return f"{lead}{name}={REDACTED}" if sensitive_name(unquote(name)) else match.group(0)

    return _USERINFO.sub(rf"\g<1>{REDACTED}@", _QUERY_PARAM.sub(param, text))


class _Redactor:
    def __init__(self, env_values: Collection[str]) -> None:
        texts = {value.strip() for value in env_values} - {""}
        self.exact = frozenset(texts)
        self.searched = tuple(text for text in texts if len(text) >= MIN_SEARCHED)

    def from_env(self, text: str) -> bool:
        # SECURITY: the mark first; then the recorded texts, for copies that lost it (see the module docstring).
        if isinstance(text, FromEnv) or text.strip() in self.exact:
            return True
        return any(secret in text for secret in self.searched)

    def value(self, data: Any) -> Any:
        if isinstance(data, str):
            return REDACTED if self.from_env(data) else _text_by_meaning(data)
        if isinstance(data, int | float) and not isinstance(data, bool) and str(data) in self.exact:
            return REDACTED  # a validated model parsed it from an env text (an upstream `weight: ${env:W}`)
        if isinstance(data, Mapping):
            return self.mapping(data)
        if isinstance(data, list | tuple | set | frozenset):
            return [self.value(item) for item in data]
        if isinstance(data, ComponentDef):
            return self.component(data)
        if isinstance(data, RouteDefinition):
            return self.route(data)
        if isinstance(data, GatewayConfig):
            return self.config(data)
        if isinstance(data, BaseModel):
            return self.value(data.model_dump(mode="json", by_alias=True))
        return data

    def mapping(self, data: Mapping[Any, Any]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in data.items():
            shown = key
            if isinstance(key, str) and self.from_env(key):
                shown = REDACTED if REDACTED not in out else f"{REDACTED}#{len(out)}"
            sensitive = isinstance(key, str) and sensitive_name(key)
            out[shown] = _hidden(value) if sensitive else self.value(value)
        return out

    def component(self, definition: ComponentDef) -> Any:
        # A spec's name, known to the registry: shown even when the whole entry came from ${env:...}.
        name = str(definition.name)
        args = self.value(credential_args(name, definition.args))
        if definition.shortcut is None:
            return {"name": name, "args": args}
        if self.from_env(definition.shortcut):
            return f"{name}={REDACTED}"
        if args != dict(definition.args):  # something in it is hidden: show the args, not the text as written
            return {"name": name, "args": args}
        return f"{name}={definition.shortcut}" if definition.shortcut else name

    def route(self, route: RouteDefinition) -> dict[str, Any]:
        return {
            "id": self.value(route.id),
            "uri": self.value(route.uri),
            "order": route.order,
            "predicates": [self.component(p) for p in route.predicates],
            "filters": [self.component(f) for f in route.filters],
            "metadata": self.mapping(route.metadata),
        }

    def config(self, config: GatewayConfig) -> dict[str, Any]:
        return {
            "routes": [self.route(r) for r in config.routes],
            "default-filters": [self.component(d) for d in config.default_filters],
            "upstreams": self.mapping(config.upstreams),
        }


def redact_view(data: Any, env_values: Collection[str] = ()) -> Any:
    """`data` as JSON-ready plain data with every secret replaced by REDACTED: the one function every config view
    passes its data through. `data` may be plain data, pydantic models, definitions or a whole GatewayConfig;
    `env_values` are the texts recorded at `${env:...}` substitution (a GatewayConfig brings its own)."""
    if isinstance(data, GatewayConfig):
        env_values = {*env_values, *data.env_values}
    return _Redactor(env_values).value(data)


def redacted_routes(config: GatewayConfig) -> dict[str, Any]:
    """`{"routes": [...], "default-filters": [...], "upstreams": {...}}` as in routes.yaml, secrets redacted."""
    result: dict[str, Any] = redact_view(config)
    return result
