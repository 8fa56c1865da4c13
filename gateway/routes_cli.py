"""`sluicegate routes list|get|apply|delete|diff|history|rollback`: the dynamic routes of a running gateway, through
its admin API (`/admin/v1`, docs/admin-api.md).

A client of the admin listener and nothing else: the standard library's urllib (the command needs no event loop
and starts fast; gateway.launch sends `routes` here without importing the gateway itself). The token is
SLUICEGATE_ADMIN__TOKEN, else the file a gateway with no configured token wrote for its admin port
(gateway.admin_token). Exit status: 0 done; 1 the server refused (4xx/5xx) or the input is invalid; 2 usage (no
token included); 3 the admin API cannot be reached.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from gateway.admin_token import is_loopback, read_token, token_path
from gateway.routes_file import read_routes

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
DEFAULT_ADMIN = "http://127.0.0.1:9090"
TIMEOUT = 30.0  # seconds for one admin request: a guard against a hung listener, not a tuning knob


class CliFailure(Exception):
    """Stop the command: print `lines` on stderr and exit with `status`."""

    def __init__(self, status: int, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.status, self.lines = status, lines


class Refused(Exception):
    """The admin API answered with an error status; `problem` is its RFC 9457 body (or {"detail": the text})."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(status, problem)
        self.status, self.problem = status, problem

    def summary(self) -> str:
        title = self.problem.get("title") or http.client.responses.get(self.status, "")
        detail = self.problem.get("detail")
        return f"{self.status} {title}" + (f": {detail}" if detail and detail != title else "")


@dataclass(frozen=True)
class Admin:
    """The admin API of one gateway: its base URL and the token sent as `Authorization: Bearer`."""

    url: str
    token: str
    token_from: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[bytes, Any]:
        """(raw body, parsed JSON) of a 2xx answer. Raises Refused on an error status, CliFailure(3) when the
        listener cannot be reached or does not answer HTTP."""
        try:
            # YAML allows mapping keys that are not strings (`0: x`); JSON's are strings, so send them as such.
            data = None if body is None else orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError as exc:  # a YAML value JSON has no form for (!!binary, !!set)
            raise CliFailure(EXIT_REFUSED, f"error: the request cannot be sent as JSON: {exc}") from None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as response:
                raw: bytes = response.read()
        except urllib.error.HTTPError as exc:  # before URLError: it is one
            raise Refused(exc.code, _problem(exc.read())) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise CliFailure(
                EXIT_UNREACHABLE, f"error: cannot connect to the admin API at {self.url}: {reason}"
            ) from None
        try:
            return raw, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise CliFailure(EXIT_REFUSED, f"error: {self.url}{path} did not answer JSON: {raw[:200]!r}") from None


def _problem(raw: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"detail": raw.decode("utf-8", "replace").strip()[:500]}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """SECURITY: a redirect is an error: urllib would send the Authorization header on to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _admin(args: argparse.Namespace) -> Admin:
    """The admin API named by --admin (else SLUICEGATE_ADMIN_URL, else the default) with its token."""
    url = (getattr(args, "admin", None) or os.environ.get("SLUICEGATE_ADMIN_URL") or DEFAULT_ADMIN).rstrip("/")
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise CliFailure(EXIT_USAGE, f"error: --admin {url}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliFailure(EXIT_USAGE, f"error: --admin {url}: an http:// or https:// URL (default {DEFAULT_ADMIN})")
    token = os.environ.get("SLUICEGATE_ADMIN__TOKEN")
    if token:
        return Admin(url, token, "SLUICEGATE_ADMIN__TOKEN")
    # SECURITY: the generated token is for the loopback gateway on this machine: never sent to another host.
    token = read_token(port) if is_loopback(parts.hostname) else None
    if token:
        return Admin(url, token, str(token_path(port)))
    raise CliFailure(
        EXIT_USAGE,
        f"error: no admin token for {url}: set SLUICEGATE_ADMIN__TOKEN to the gateway's admin.token,",
        f"or run this as the gateway's user on its machine: a gateway with no admin.token and its admin listener on "
        f"loopback writes one to {token_path(port)} at start",
    )


# -- commands -------------------------------------------------------------------------------------------------------


def _list(admin: Admin, args: argparse.Namespace) -> int:
    raw, config = admin.call("GET", "/admin/v1/config")
    if args.json:
        return _print_raw(raw)
    rows = [
        [str(r.get("id")), str(r.get("source", "")), str(r.get("order", 0)), str(r.get("uri", "")), _joined(r)]
        for r in config.get("routes", [])
    ]
    _table(["ID", "SOURCE", "ORDER", "URI", "PREDICATES"], rows)
    print(f"version {config.get('version')}, {len(rows)} routes")
    return 0


def _get(admin: Admin, args: argparse.Namespace) -> int:
    _, config = admin.call("GET", "/admin/v1/config")
    route = next((r for r in config.get("routes", []) if r.get("id") == args.id), None)
    if route is None:
        raise CliFailure(EXIT_REFUSED, f"error: no route {args.id!r} (version {config.get('version')})")
    if args.json:
        return _print_raw(orjson.dumps(route, option=orjson.OPT_INDENT_2))
    print(yaml.safe_dump(route, sort_keys=False, allow_unicode=True), end="")
    return 0


def _apply(admin: Admin, args: argparse.Namespace) -> int:
    name = "<stdin>" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else _read(args.file)
    except OSError as exc:
        raise CliFailure(EXIT_REFUSED, f"error: {name}: {exc.strerror or exc}") from None
    routes, issues = read_routes(text, name)
    if issues:
        raise CliFailure(EXIT_REFUSED, *(f"{issue}" for issue in issues))
    reason = args.reason or f"sluicegate routes apply -f {args.file}"
    body = {"operations": [{"op": "put", "route": route} for route in routes.routes], "reason": reason}
    ids = ", ".join(str(route["id"]) for route in routes.routes)
    try:
        _, answer = admin.call("POST", "/admin/v1/validate" if args.dry_run else "/admin/v1/batch", body)
    except Refused as refused:
        errors = refused.problem.get("errors")
        if not isinstance(errors, list) or not errors:
            raise
        # A 400 is its errors; any other refusal (409: a static id) says first what it is, then where.
        summary = [] if refused.status == 400 else [f"error: {refused.summary()}"]
        raise CliFailure(EXIT_REFUSED, *summary, *_located(routes.issue_at, errors)) from None
    if args.dry_run:
        if not answer.get("valid"):
            raise CliFailure(EXIT_REFUSED, *_located(routes.issue_at, answer.get("errors", [])))
        print(f"valid: {ids} (dry run, nothing changed)")
        return 0
    print(f"applied {ids}: version {answer.get('version')}")
    return 0


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _located(issue_at: Callable[[str, str], object], errors: list[Any]) -> list[str]:
    """Each of the admin API's `{pointer, message}` errors as `file:line: yaml.path: message`."""
    return [
        str(issue_at(str(e.get("pointer", "")), str(e.get("message", "")))) if isinstance(e, dict) else f"error: {e}"
        for e in errors
    ]


def _delete(admin: Admin, args: argparse.Namespace) -> int:
    reason = urllib.parse.urlencode({"reason": args.reason or f"sluicegate routes delete {args.id}"})
    _, answer = admin.call("DELETE", f"/admin/v1/routes/{_quoted(args.id)}?{reason}")
    print(f"deleted {args.id}: version {answer.get('version')}")
    return 0


def _history(admin: Admin, args: argparse.Namespace) -> int:
    raw, history = admin.call("GET", "/admin/v1/versions")
    if args.json:
        return _print_raw(raw)
    current = history.get("current")
    rows = [
        [
            ("* " if v.get("version") == current else "  ") + str(v.get("version")),
            str(v.get("time", "")),
            str(v.get("author", "")),
            str(v.get("reason") or ""),
        ]
        for v in history.get("versions", [])
    ]
    _table(["  VERSION", "TIME", "AUTHOR", "REASON"], rows)
    print(f"current version {current} (*)")
    return 0


def _diff(admin: Admin, args: argparse.Namespace) -> int:
    query = {k: v for k, v in (("from", args.from_version), ("to", args.to_version)) if v is not None}
    path = "/admin/v1/diff" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    raw, diff = admin.call("GET", path)
    if args.json:
        return _print_raw(raw)
    print(f"version {diff.get('from')} -> {diff.get('to')}")
    lines = [f"+ {r.get('id')}" for r in diff.get("added", [])]
    lines += [f"- {r.get('id')}" for r in diff.get("removed", [])]
    for change in diff.get("changed", []):
        for field, values in (change.get("fields") or {}).items():
            lines.append(f"~ {change.get('id')}: {field}: {_brief(values.get('from'))} -> {_brief(values.get('to'))}")
    print("\n".join(lines) if lines else "no changes")
    return 0


def _rollback(admin: Admin, args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason else None
    _, answer = admin.call("POST", f"/admin/v1/rollback/{args.version}", body)
    print(f"rolled back to version {args.version}: version {answer.get('version')}")
    return 0


# -- output ---------------------------------------------------------------------------------------------------------


def _print_raw(raw: bytes) -> int:
    sys.stdout.write(raw.decode("utf-8") + ("" if raw.endswith(b"\n") else "\n"))
    return 0


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _joined(route: dict[str, Any]) -> str:
    """A route's predicates in shortcut form, `Path=/a/** Method=GET`, whichever form the API returned."""
    return " ".join(_shortcut(p) for p in route.get("predicates") or [])


def _shortcut(component: Any) -> str:
    if not isinstance(component, dict):
        return str(component)
    args = component.get("args")
    values = list(args.values()) if isinstance(args, dict) else args if isinstance(args, list) else [args]
    text = ",".join(",".join(map(str, v)) if isinstance(v, list) else str(v) for v in values if v is not None)
    return f"{component.get('name')}={text}" if text else str(component.get("name"))


def _brief(value: Any) -> str:
    """A diff value on one line: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _quoted(route_id: str) -> str:
    return urllib.parse.quote(route_id, safe="")


# -- the parser -----------------------------------------------------------------------------------------------------

_COMMANDS: dict[str, Callable[[Admin, argparse.Namespace], int]] = {
    "list": _list,
    "get": _get,
    "apply": _apply,
    "delete": _delete,
    "diff": _diff,
    "history": _history,
    "rollback": _rollback,
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `routes` sub-commands and options to `parser` (gateway.cli's `routes` or this module's own)."""
    # SUPPRESS: --admin is accepted before and after the sub-command, and the sub-command's absent one must not
    # overwrite the one given before it with a default.
    admin_help = f"the gateway's admin API (default $SLUICEGATE_ADMIN_URL, else {DEFAULT_ADMIN})"
    parser.add_argument("--admin", metavar="URL", default=argparse.SUPPRESS, help=admin_help)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--admin", metavar="URL", default=argparse.SUPPRESS, help=admin_help)
    reads = argparse.ArgumentParser(add_help=False)
    reads.add_argument("--json", action="store_true", help="print the admin API's JSON (for scripts)")
    sub = parser.add_subparsers(dest="routes_command", metavar="{list,get,apply,delete,diff,history,rollback}")
    sub.add_parser("list", parents=[common, reads], help="every route, static and dynamic, and the version")
    get = sub.add_parser("get", parents=[common, reads], help="one route as YAML (routes.yaml shape)")
    get.add_argument("id")
    apply = sub.add_parser("apply", parents=[common], help="put the routes of a YAML file, all or nothing")
    apply.add_argument("-f", "--file", required=True, help="routes YAML: `routes:`, a list, or one route; - is stdin")
    apply.add_argument("--reason", help="recorded with the version (default: the command)")
    apply.add_argument("--dry-run", action="store_true", help="validate on the gateway, change nothing")
    delete = sub.add_parser("delete", parents=[common], help="delete a dynamic route")
    delete.add_argument("id")
    delete.add_argument("--reason", help="recorded with the version (default: the command)")
    diff = sub.add_parser("diff", parents=[common, reads], help="routes added, removed and changed between versions")
    diff.add_argument("--from", dest="from_version", type=int, metavar="N", help="default: the version before --to")
    diff.add_argument("--to", dest="to_version", type=int, metavar="M", help="default: the current version")
    sub.add_parser("history", parents=[common, reads], help="every version: time, author, reason")
    rollback = sub.add_parser("rollback", parents=[common], help="a new version with version N's dynamic routes")
    rollback.add_argument("version", type=int, metavar="N")
    rollback.add_argument("--reason", help="recorded with the new version")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the parsed `routes` command; the exit status (see the module docstring)."""
    if args.routes_command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        admin = _admin(args)
        try:
            return _COMMANDS[args.routes_command](admin, args)
        except Refused as refused:
            hint = f" (token from {admin.token_from})" if refused.status == 401 else ""
            raise CliFailure(EXIT_REFUSED, f"error: {refused.summary()}{hint}") from None
    except CliFailure as failure:
        for line in failure.lines:
            print(line, file=sys.stderr)
        return failure.status


def main(argv: list[str]) -> int:
    """`sluicegate routes ...` (argv after `routes`) without importing the gateway: gateway.launch calls this."""
    parser = argparse.ArgumentParser(prog="sluicegate routes", description=DESCRIPTION)
    configure(parser)
    return run(parser.parse_args(argv), parser)


DESCRIPTION = "The routes of a running gateway, through its admin API (token: SLUICEGATE_ADMIN__TOKEN or its file)."
