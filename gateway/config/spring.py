"""Spring Boot's way of reading YAML, where it changes what a file says: dotted keys and `---` documents; and where
in a file the gateway's configuration is.

Spring Boot binds `spring.cloud.gateway.routes:` exactly as the nested keys `spring: cloud: gateway: routes:`, and
any mix of the two (`spring: cloud: gateway.server.webflux:`). Here both spellings become nested mappings. The
YAML path of every value stays the same string either way (`a.b.c`), so lines and error paths need no rewriting.

Dotted keys are split only where they can name gateway configuration: the `spring.cloud.gateway` block (and
`spring.config`, which says whether a document applies), and the top-level keys of a routes.yaml. The rest of an
application.yml (`logging.level.org.springframework...`, `server.*`) is left as written: Sluicegate does not read it,
and splitting it could only invent conflicts. Inside the block, keys of free-form maps are never split: predicate
and filter `args` (SCG's indexed `patterns.0` keys), route `metadata`, CORS path patterns, pool and zone names.

Documents: Spring Boot applies a file's documents in order, a later one overriding an earlier one key by key
(a list is replaced whole), and a document with `spring.config.activate.*` (or the legacy `spring.profiles`) only
when its profile or platform is active. Sluicegate has no profiles: it merges the documents without an activation
condition in order and skips the others with a warning naming them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.config.source import Document, join
from gateway.errors import ConfigError, ConfigIssue

#: the top-level keys of a routes.yaml; in an application.yml the same keys but demo-upstream, in SCG's block
TOP_LEVEL = ("routes", "default-filters", "globalcors", "upstreams", "demo-upstream")
SPRING_READ = TOP_LEVEL[:4]
GATEWAY_KEYS = frozenset(TOP_LEVEL)
#: Where SCG keeps its routes in a Spring application.yml (the first form is the 4.3+ property prefix).
SPRING_BLOCKS = (("spring", "cloud", "gateway", "server", "webflux"), ("spring", "cloud", "gateway"))
_FREE_FORM = frozenset({"args", "metadata", "cors-configurations"})  # keys are data: neither split nor descended
_NAMED = frozenset({"upstreams", "zones"})  # keys are names (may hold dots); their values are configuration

# zones of a file, by what its keys mean
_ROOT, _SPRING, _CLOUD, _BLOCK, _NAMES = "root", "spring", "cloud", "block", "names"


def _child(zone: str, key: str) -> str | None:
    """The zone of the value under `key` in a `zone` mapping; None: data left exactly as written."""
    if zone == _ROOT:
        return _SPRING if key == "spring" else _BLOCK if key in GATEWAY_KEYS else None
    if zone == _SPRING:
        return _CLOUD if key == "cloud" else _BLOCK if key == "config" else None
    if zone == _CLOUD:
        return _BLOCK if key == "gateway" else None
    if zone == _NAMES:
        return _BLOCK
    return None if key in _FREE_FORM else _NAMES if key in _NAMED else _BLOCK


def _split_first(key: str) -> tuple[str, str | None]:
    """`a.b.c` -> (`a`, `b.c`); a dot inside Spring's brackets (`[/v1.0/**]`) does not split."""
    depth = 0
    for i, char in enumerate(key):
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(depth - 1, 0)
        elif char == "." and depth == 0 and 0 < i < len(key) - 1:
            return key[:i], key[i + 1 :]
    return key, None


def expand_dotted_keys(doc: Document, issues: list[ConfigIssue]) -> Any:
    """`doc.data` with the dotted keys of its gateway configuration turned into nested mappings.

    One setting written twice, once nested and once dotted, is an issue at its path (as a duplicate key is).
    """
    return _expand(doc.data, "", _ROOT, doc, issues)


def _expand(value: Any, path: str, zone: str | None, doc: Document, issues: list[ConfigIssue]) -> Any:
    if zone is None:
        return value
    if isinstance(value, list):
        inner = zone if zone == _BLOCK else None  # a list outside the block is not ours to read
        return [_expand(item, join(path, i), inner, doc, issues) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(key, str) and zone != _NAMES:
            first, rest = _split_first(key)
            # inside the block every key splits (`metadata.response-timeout`); above it, only the way to the block
            if rest is not None and (zone == _BLOCK or _child(zone, first) is not None):
                line = doc.lines.get(join(path, key))
                if line is not None:
                    doc.lines.setdefault(join(path, first), line)
                key, item = first, {rest: item}
        _combine(out, key, item, join(path, str(key)), doc, issues)
    return {key: _expand(item, join(path, str(key)), _child(zone, str(key)), doc, issues) for key, item in out.items()}


def _combine(into: dict[Any, Any], key: Any, value: Any, path: str, doc: Document, issues: list[ConfigIssue]) -> None:
    if key not in into:
        into[key] = value
    elif isinstance(into[key], dict) and isinstance(value, dict):
        merged = dict(into[key])
        for inner_key, inner in value.items():
            _combine(merged, inner_key, inner, join(path, str(inner_key)), doc, issues)
        into[key] = merged
    else:
        issues.append(doc.issue(path, "set twice: written both as nested keys and as a dotted key"))


# -- documents --------------------------------------------------------------------------------------------------


def merge_documents(documents: list[Document], source: str) -> Document:
    """One Document from a file's `---` documents, as Spring Boot applies them with no profile active.

    The result names the documents read in `notes` (when there is more than one) and carries a warning for each
    document skipped because it applies only to a profile or platform.
    """
    if len(documents) == 1:
        documents[0].data = {} if documents[0].data is None else documents[0].data
        return documents[0]
    result = Document(source, {})
    read: list[str] = []
    for number, doc in enumerate(documents, 1):
        if doc.data is None:
            continue  # an empty document says nothing
        condition = _activation(doc.data)
        if condition is not None:
            where, what = condition
            message = (
                f"document {number} applies only when {what}: not read (Sluicegate has no profiles; move what the "
                "gateway needs into a document without spring.config.activate)"
            )
            result.warnings.append(doc.issue(where, message))
            continue
        read.append(str(number))
        _overlay(result, doc)
    if len(documents) > 1:
        listed = ", ".join(read) if read else "none"
        result.notes.append(f"read documents {listed} of {len(documents)}, later ones overriding earlier ones")
    return result


def _activation(data: Any) -> tuple[str, str] | None:
    """(path, description) of a document's activation condition, or None when it always applies."""
    spring = data.get("spring") if isinstance(data, dict) else None
    if not isinstance(spring, dict):
        return None
    config = spring.get("config")
    activate = config.get("activate") if isinstance(config, dict) else None
    if isinstance(activate, dict) and activate:
        key = "on-profile" if "on-profile" in activate else str(next(iter(activate)))
        return f"spring.config.activate.{key}", f"{key} is {activate[key]!r}"
    legacy = spring.get("profiles")
    if isinstance(legacy, str | list):  # Spring Boot < 2.4: `spring.profiles: dev` (`profiles.active` is not one)
        return "spring.profiles", f"profile {legacy!r} is active (legacy spring.profiles)"
    return None


def _overlay(into: Document, doc: Document) -> None:
    """Apply `doc` over `into`: mappings merged key by key, anything else (lists too) replaced whole."""
    replaced: list[str] = []
    into.data = _overlay_value(into.data, doc.data, "", replaced)
    for path in replaced:  # what the earlier documents said under a replaced path no longer exists
        for table in (into.lines, into.placeholders):
            for stale in [p for p in table if _under(p, path)]:
                del table[stale]
    into.lines.update(doc.lines)
    into.placeholders.update(doc.placeholders)
    into.env_values |= doc.env_values


def _overlay_value(base: Any, over: Any, path: str, replaced: list[str]) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            child = join(path, str(key))
            merged[key] = _overlay_value(base[key], value, child, replaced) if key in base else value
        return merged
    replaced.append(path)
    return over


def _under(path: str, root: str) -> bool:
    return not root or path == root or path.startswith((root + ".", root + "["))


# -- where the gateway's configuration is ------------------------------------------------------------------------


def gateway_block(doc: Document, data: Any, fail: Callable[[str, str], None]) -> tuple[dict[str, Any], str]:
    """(the mapping that holds routes, its YAML path): the file itself, or SCG's block in an application.yml.

    With the 4.3+ prefix (`spring.cloud.gateway.server.webflux`) present, that block is the one read, and any
    other key left at `spring.cloud.gateway` is an error rather than silently dropped. Raises ConfigError when
    there is nothing to read.
    """
    if not isinstance(data, dict):
        raise ConfigError([doc.issue("", "the routes file must be a mapping with a 'routes' list")])
    if "spring" not in data:
        return data, ""
    for key in set(data) & GATEWAY_KEYS:  # a routes.yaml key next to `spring:` would be silently ignored
        fail(str(key), f"in a Spring application.yml, {key} goes inside the spring.cloud.gateway block")
    outer = _descend(data, SPRING_BLOCKS[1])
    if outer is None:
        message = "a Spring application.yml needs a spring.cloud.gateway block"
        if doc.warnings:
            message += " (profile-specific documents are not read: " + "; ".join(w.message for w in doc.warnings)
            message += ")"
        raise ConfigError([doc.issue("spring", message)])
    inner = _descend(data, SPRING_BLOCKS[0])
    if inner is None:
        return outer, ".".join(SPRING_BLOCKS[1])
    outer_path = ".".join(SPRING_BLOCKS[1])
    for key in set(outer) - {"server"}:
        fail(join(outer_path, str(key)), "this file uses the server.webflux prefix; move this key there")
    return inner, ".".join(SPRING_BLOCKS[0])


def _descend(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any] | None:
    block: Any = data
    for key in keys:
        block = block.get(key) if isinstance(block, dict) else None
    return block if isinstance(block, dict) else None


#: what to do instead, for SCG settings people often carry over (the rest: docs/scg-migration.md)
_SPRING_HINTS = {
    "discovery": "write one route per service with uri: lb://NAME and its instances under upstreams:",
    "set-status": "SetStatus does not keep the original status in a header; drop the setting, or SetStatus where "
    "clients need the upstream's status",
}


def unknown_key(key: str, base: str) -> str:
    """The error for a key of the gateway block (`base`, "" in a routes.yaml) that Sluicegate does not read."""
    if base:
        hint = _SPRING_HINTS.get(key, "see docs/scg-migration.md for its counterpart")
        return (
            f"Sluicegate reads only {', '.join(SPRING_READ)} from SCG's block; {key!r} is a Spring setting with "
            f"no effect here ({hint})"
        )
    return f"unknown top-level key; expected one of {', '.join(TOP_LEVEL)}"
