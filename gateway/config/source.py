"""Reading a YAML config into plain data while remembering where every value came from.

Paths are written the way users read them (`routes[3].filters[1].args.parts`); lines are 1-based. `${env:NAME}`
inside a string is replaced once, here, from the environment: it is substitution, never evaluation. The result is
a `FromEnv` string (it keeps that mark wherever parsing moves or cuts it) and the substituted texts are recorded,
so config views can redact them wherever they are shown (gateway.config.redact).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from gateway.config.provenance import FromEnv, redact_message
from gateway.errors import ConfigIssue

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def join(path: str, key: str | int) -> str:
    """Extend a YAML path by a mapping key or a list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@dataclass
class Document:
    """Plain data of one config source plus the line of every path and the texts that came from env vars."""

    source: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    #: Every env variable's value substituted here, and every whole string it was substituted into.
    env_values: set[str] = field(default_factory=set)
    #: path -> the first `${...}` Spring placeholder (not `${env:...}`) in its value, as written
    placeholders: dict[str, str] = field(default_factory=dict)
    #: problems that do not refuse the file (a skipped profile document, a placeholder left as text)
    warnings: list[ConfigIssue] = field(default_factory=list)
    #: what an operator should know about how the file was read (which `---` documents)
    notes: list[str] = field(default_factory=list)

    def issue(self, path: str, message: str) -> ConfigIssue:
        """A ConfigIssue at `path`, with the line of the nearest enclosing path that has one."""
        probe = path
        while probe and probe not in self.lines:
            probe = _parent(probe)
        # SECURITY: validators quote the value they refuse; one from ${env:...} must not reach stderr or a log.
        message = redact_message(message, self.env_values)
        return ConfigIssue(self.source, path, message, self.lines.get(probe or "", None))


def _parent(path: str) -> str:
    """`a.b[2]` -> `a.b` -> `a` -> "": the enclosing YAML path (cut at the last '.' or '[')."""
    return path[: max(path.rfind("."), path.rfind("["), 0)]


#: More values than this, counting every use of an alias, and the file is refused: a few lines of aliases can
#: otherwise expand to billions of values ("billion laughs"). A 10,000-route file is far below it.
MAX_VALUES = 500_000
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: `${...}` other than our `${env:NAME}`: a Spring property placeholder, which stays text here.
_PLACEHOLDER = re.compile(r"\$\{(?!env:)[^}]*\}")


class _TooManyValues(Exception):
    pass


class _Builder:
    def __init__(self, doc: Document, environ: Mapping[str, str], issues: list[ConfigIssue]) -> None:
        self.doc, self.environ, self.issues = doc, environ, issues
        self.scalars = yaml.SafeLoader("")
        self.values = 0
        self.active: set[int] = set()  # nodes being built: an alias to one of them is a cycle
        # A mapping's pairs with its merge keys resolved, by node: an anchor merged again and again (`<<: [*a, *a]`
        # nested level upon level) is resolved once, or a few hundred bytes would cost 10^N steps.
        self.resolved: dict[int, list[tuple[Any, yaml.Node]]] = {}

    def build(self, node: yaml.Node, path: str) -> Any:
        self._charge(1)
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in self.active:
            self.issues.append(self.doc.issue(path, "an alias refers to a value that contains it (a cycle)"))
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.build(item, join(path, i)) for i, item in enumerate(node.value)]
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value_node in self._pairs(node, path):
            if key in out:  # written twice in this mapping (merged keys never repeat one: _pairs drops them)
                self.issues.append(self.doc.issue(join(path, str(key)), "duplicate key"))
            out[key] = self.build(value_node, join(path, str(key)))
        return out

    def _pairs(self, node: yaml.MappingNode, path: str) -> list[tuple[Any, yaml.Node]]:
        """The mapping's (key, value node) pairs with YAML merge keys (`<<: *base`) resolved.

        Keys written in the mapping win over merged ones; of several merged mappings the first wins (YAML 1.1).
        """
        known = self.resolved.get(id(node))
        if known is not None:
            return known
        pairs: list[tuple[Any, yaml.Node]] = []
        merged: list[tuple[Any, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged += self._merged(value_node, join(path, "<<"))
                continue
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key_node, yaml.ScalarNode) or isinstance(key, list | dict):
                self.issues.append(self.doc.issue(path, "mapping keys must be scalars"))
                continue
            pairs.append((key, value_node))
        self._charge(len(merged))  # SECURITY: merging is work too; it counts against the same bound as values
        written = {key for key, _ in pairs}
        for key, value_node in merged:
            if key not in written:
                written.add(key)
                pairs.append((key, value_node))
        self.resolved[id(node)] = pairs
        return pairs

    def _charge(self, count: int) -> None:
        self.values += count
        if self.values > MAX_VALUES:  # SECURITY: aliases must not expand without bound
            raise _TooManyValues

    def _merged(self, node: yaml.Node, path: str) -> list[tuple[Any, yaml.Node]]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        sources = [item for item in items if isinstance(item, yaml.MappingNode)]
        if len(sources) != len(items):
            self.issues.append(self.doc.issue(path, "<< merges a mapping or a list of mappings (`<<: *base`)"))
            return []
        if any(id(source) in self.active for source in sources):
            self.issues.append(self.doc.issue(path, "an alias refers to a value that contains it (a cycle)"))
            return []
        out: list[tuple[Any, yaml.Node]] = []
        for source in sources:
            self.active.add(id(source))
            try:
                out += self._pairs(source, path)
            finally:
                self.active.discard(id(source))
        return out

    def _scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        try:
            value = self.scalars.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:  # an unknown tag (`!Ref x`) or a malformed timestamp
            problem = getattr(exc, "problem", None) or str(exc)
            self.issues.append(self.doc.issue(path, f"unsupported YAML value: {problem}"))
            return None
        if isinstance(value, str) and "${" in value:
            placeholder = _PLACEHOLDER.search(value)
            if placeholder is not None:
                self.doc.placeholders.setdefault(path, placeholder.group(0))
            if "${env:" in value:
                value = self._substitute(value, path)
        return value

    def _substitute(self, value: str, path: str) -> FromEnv:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.environ:
                self.issues.append(self.doc.issue(path, f"environment variable {name} is not set"))
                return ""
            self.doc.env_values.add(self.environ[name])
            return self.environ[name]

        # SECURITY: marked and recorded, so no config view shows it (redaction by provenance, docs/operations.md).
        result = FromEnv(_ENV_REF.sub(replace, value))
        self.doc.env_values.add(str(result))
        return result


def load_yaml(text: str, source: str, environ: Mapping[str, str] | None = None) -> tuple[Document, list[ConfigIssue]]:
    """Parse `text` as Spring Boot reads YAML; return the document and the problems found.

    Problems: syntax (with line and column), duplicate keys, unset env vars, unsupported tags, alias cycles and
    bombs. Dotted keys of the gateway block are read as nested keys and `---` documents are merged in order,
    profile-specific ones skipped with a warning (gateway/config/spring.py).
    """
    from gateway.config.spring import expand_dotted_keys, merge_documents

    issues: list[ConfigIssue] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        return Document(source, None), [_syntax_issue(exc, source)]
    except RecursionError:  # SECURITY: `[[[[...` nested thousands deep must be an error, not a crash
        return Document(source, None), [ConfigIssue(source, "", "invalid YAML: nested too deeply")]
    documents: list[Document] = []
    for node in nodes:
        doc = Document(source, None)
        if node is not None:
            try:
                doc.data = _Builder(doc, os.environ if environ is None else environ, issues).build(node, "")
            except _TooManyValues:
                message = f"more than {MAX_VALUES} values once aliases are expanded; refused"
                return doc, [ConfigIssue(source, "", message, node.start_mark.line + 1)]
            except RecursionError:
                return doc, [ConfigIssue(source, "", "invalid YAML: nested too deeply", node.start_mark.line + 1)]
            doc.data = expand_dotted_keys(doc, issues)
        documents.append(doc)
    return merge_documents(documents, source), issues


def _syntax_issue(exc: yaml.YAMLError, source: str) -> ConfigIssue:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    if mark is None:
        return ConfigIssue(source, "", message)
    return ConfigIssue(source, "", message, mark.line + 1, mark.column + 1)
