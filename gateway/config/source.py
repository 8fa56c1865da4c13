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

from gateway.config.provenance import FromEnv
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

    def issue(self, path: str, message: str) -> ConfigIssue:
        """A ConfigIssue at `path`, with the line of the nearest enclosing path that has one."""
        probe = path
        while probe and probe not in self.lines:
            probe = _parent(probe)
        return ConfigIssue(self.source, path, message, self.lines.get(probe or "", None))


def _parent(path: str) -> str:
    """`a.b[2]` -> `a.b` -> `a` -> "": the enclosing YAML path (cut at the last '.' or '[')."""
    return path[: max(path.rfind("."), path.rfind("["), 0)]


class _Builder:
    def __init__(self, doc: Document, environ: Mapping[str, str], issues: list[ConfigIssue]) -> None:
        self.doc, self.environ, self.issues = doc, environ, issues
        self.scalars = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: str) -> Any:
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, path)
                if isinstance(key, list | dict):
                    self.issues.append(self.doc.issue(path, "mapping keys must be scalars"))
                    continue
                if key in out:
                    self.issues.append(self.doc.issue(join(path, str(key)), "duplicate key"))
                out[key] = self.build(value_node, join(path, str(key)))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, join(path, i)) for i, item in enumerate(node.value)]
        value = self.scalars.construct_object(node)
        if isinstance(value, str) and "${env:" in value:
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
    """Parse `text`; return the document and the problems found (syntax, duplicate keys, unset env vars)."""
    doc = Document(source, None)
    issues: list[ConfigIssue] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return doc, [ConfigIssue(source, "", f"invalid YAML: {problem}", line)]
    if node is None:
        doc.data = {}
        return doc, issues
    doc.data = _Builder(doc, os.environ if environ is None else environ, issues).build(node, "")
    return doc, issues
