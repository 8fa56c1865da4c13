"""The routes file of `sluicegate routes apply -f FILE`: read in routes.yaml's route shape, and the admin API's
JSON pointers into a batch mapped back to the file's YAML paths and lines.

Pure (no network, no printing), so the mapping is tested on its own. The file is read with the loader of
routes.yaml (gateway.config.source.load_yaml): the same YAML rules, the same `${env:NAME}` substitution, the same
`file:line: yaml.path: message` form of every problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config.source import Document, join, load_yaml
from gateway.errors import ConfigIssue

#: What `sluicegate routes get` adds to a route and the admin API does not take back: dropped on apply, so the
#: output of `get` applies as it is.
VIEW_ONLY_FIELDS = ("source",)


@dataclass(frozen=True)
class RoutesFile:
    """The routes of one file, each with its YAML path in that file (`routes[0]`, `[0]`, or "" for a lone route)."""

    document: Document
    routes: list[dict[str, Any]]
    paths: list[str]

    def issue_at(self, pointer: str, message: str) -> ConfigIssue:
        """The problem the admin API reported at `pointer` (into the batch made of these routes, RFC 6901) as a
        ConfigIssue at the matching YAML path and line of the file. A pointer outside the routes (the batch as a
        whole) is a problem of the file as a whole."""
        steps = [step.replace("~1", "/").replace("~0", "~") for step in pointer.split("/")[1:]] if pointer else []
        if len(steps) < 2 or steps[0] != "operations" or not steps[1].isdigit() or int(steps[1]) >= len(self.routes):
            return self.document.issue("", message)
        index = int(steps[1])
        rest = steps[3:] if steps[2:3] == ["route"] else []
        return self.document.issue(yaml_path(self.paths[index], self.routes[index], rest), message)


def yaml_path(base: str, value: Any, steps: list[str]) -> str:
    """The YAML path of the JSON pointer `steps` inside `value`, which sits at `base` in its file.

    The data decides what a step is: in a list a numeric step is an index (`[1]`), in a mapping it is the key whose
    text it is (a YAML key may be the number 0; JSON's is the string "0"). Past the data (a missing field the
    server names), digits are taken as an index and anything else as a key.
    """
    path = base
    for step in steps:
        if isinstance(value, list) and step.isdigit() and int(step) < len(value):
            path, value = join(path, int(step)), value[int(step)]
        elif isinstance(value, dict):
            key = next((k for k in value if str(k) == step), step)
            path, value = join(path, str(key)), value.get(key)
        else:
            path, value = join(path, int(step) if step.isdigit() else step), None
    return path


def read_routes(text: str, source: str) -> tuple[RoutesFile, list[ConfigIssue]]:
    """The routes of `text` (named `source` in messages) and every problem found before anything is sent.

    Accepted shapes: a document with `routes:` (a list), a list of routes, or one route mapping. Every route is a
    mapping with a non-empty string `id`, unique in the file; `source` (as `get` prints it) is dropped.
    """
    document, issues = load_yaml(text, source)
    found = RoutesFile(document, [], [])
    if issues:
        return found, issues
    data, base = document.data, ""
    if isinstance(data, dict) and "routes" in data:
        issues += [document.issue(str(key), _NOT_ROUTES) for key in data if key != "routes"]
        data, base = data["routes"], "routes"
        if not isinstance(data, list):
            return found, [*issues, document.issue(base, "routes: is a list of routes")]
    items = data if isinstance(data, list) else [data]
    paths = [join(base, i) for i in range(len(items))] if isinstance(data, list) else [base]
    if not items or data == {}:
        return found, [*issues, document.issue(base, "no routes in the file")]
    seen: dict[str, str] = {}
    for item, path in zip(items, paths, strict=True):
        issues += _check_route(item, path, seen, document)
        if isinstance(item, dict):
            found.routes.append({k: v for k, v in item.items() if k not in VIEW_ONLY_FIELDS})
            found.paths.append(path)
    return found, issues


_NOT_ROUTES = "apply takes routes only; the rest of a routes.yaml changes by editing the gateway's own file"


def _check_route(item: Any, path: str, seen: dict[str, str], document: Document) -> list[ConfigIssue]:
    if not isinstance(item, dict):
        return [document.issue(path, "a route is a mapping (id, uri, predicates, filters, ...)")]
    route_id = item.get("id")
    if not isinstance(route_id, str) or not route_id:
        return [document.issue(path, "every route needs an id (a non-empty string)")]
    if route_id in seen:
        return [document.issue(join(path, "id"), f"route id {route_id!r} is also at {seen[route_id]}")]
    seen[route_id] = path or "the top"
    return []
