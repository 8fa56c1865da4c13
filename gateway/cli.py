"""`sluicegate`: run the gateway, validate a routes file, list filters, start the demo backend, manage routes."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from gateway import routes_cli
from gateway.app import Gateway
from gateway.errors import ConfigError
from gateway.launch import EarlySignals
from gateway.registry import BUILTIN_DISTRIBUTION, RegistryError, load_registry, scan_registry
from gateway.settings import Listen, Settings, load_settings
from gateway.supervisor import StartError, Supervisor, compile_snapshot

EXIT_INVALID = 1
EXIT_USAGE = 2


def _version() -> str:
    """`sluicegate <version>` from the installed distribution's metadata (the one source of the version)."""
    try:
        return f"sluicegate {importlib.metadata.version('sluicegate')}"
    except importlib.metadata.PackageNotFoundError:
        return "sluicegate (version unknown: the distribution is not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluicegate",
        description="An asyncio API gateway.",
        epilog="Without a command this help is printed and the exit status is 2. `sluicegate run` starts the gateway.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="{run,validate,filters,demo,routes}")
    run = sub.add_parser("run", help="start the gateway")
    run.add_argument("--config", type=Path, default=Path("routes.yaml"), help="routes file (default ./routes.yaml)")
    run.add_argument("--listen", help="data port HOST:PORT (default 0.0.0.0:8080)")
    run.add_argument("--settings", type=Path, help="settings YAML file (under SLUICEGATE_* env vars and flags)")
    run.add_argument("--workers", type=int, help="worker processes (default 1: scale by replicas in a container)")
    run.add_argument("--admin-listen", help="admin listener HOST:PORT (default 127.0.0.1:9090; :PORT keeps 127.0.0.1)")
    run.add_argument("--drain-delay", type=float, help="seconds to keep serving after SIGTERM, readiness false")
    run.add_argument("--drain-timeout", type=float, help="seconds in-flight requests get to finish (default 20)")
    run.add_argument("--watch", action="store_true", help="reload routes when the file changes (SIGHUP always)")
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    validate = sub.add_parser("validate", help="check a routes file; exit 0 when valid")
    validate.add_argument("file", type=Path)
    validate.add_argument("--settings", type=Path, help="settings YAML file")
    filters = sub.add_parser("filters", help="list discovered predicates and filters")
    filters.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    filters.add_argument(
        "--builtin", action="store_true", help="only the built-in ones (how docs/filters.md is generated)"
    )
    demo = sub.add_parser("demo", help="run only the built-in echo backend")
    demo.add_argument("--listen", default="127.0.0.1:8081", help="HOST:PORT (default 127.0.0.1:8081)")
    routes = sub.add_parser("routes", help="list and change a running gateway's routes (admin API)")
    routes_cli.configure(routes)
    routes.set_defaults(routes_parser=routes)
    return parser


def main(argv: list[str] | None = None, early: EarlySignals | None = None) -> int:
    """The `sluicegate` command (and `python -m gateway`, both through gateway.launch, which passes the signals it
    recorded as `early` for `run`). Without a command it prints the help on stdout and returns 2 (a usage error,
    like argparse's own): nothing starts unless `run` is asked for."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "run":
            return _run(args, early)
        if args.command == "validate":
            return _validate(args)
        if args.command == "filters":
            return _filters(args.format, args.builtin)
        if args.command == "routes":
            return routes_cli.run(args, args.routes_parser)
        return _demo(args.listen)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return EXIT_INVALID
    except RegistryError as exc:
        for problem in exc.problems:
            print(f"plugin error: {problem}", file=sys.stderr)
        return EXIT_INVALID


def _settings(args: argparse.Namespace) -> Settings:
    """Defaults < --settings file < SLUICEGATE_* environment < flags."""
    overrides: dict[str, Any] = {}
    # HOST:PORT strings, parsed by the settings model: a bad one is an error naming the setting, and `:PORT` keeps
    # each listener's own default host (loopback for the admin listener).
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    if getattr(args, "admin_listen", None):
        overrides["admin"] = {"listen": args.admin_listen}
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    drain = {
        k: v
        for k, v in (("delay", getattr(args, "drain_delay", None)), ("timeout", getattr(args, "drain_timeout", None)))
        if v is not None
    }
    if drain:
        overrides["drain"] = drain
    return load_settings(args.settings, overrides)


def _validate(args: argparse.Namespace) -> int:
    gateway = Gateway(_settings(args))
    config = gateway.load_file(args.file)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for note in config.notes:
        print(f"{args.file}: {note}")
    print(f"{args.file}: OK, {len(config.routes)} routes")
    return 0


def _filters(fmt: str, builtin: bool) -> int:
    """List everything that loaded, even when a plugin has a problem (listed too, with exit 1)."""
    from gateway.docs import render_catalogue

    registry, problems = scan_registry(BUILTIN_DISTRIBUTION if builtin else None)
    print(render_catalogue(registry, fmt), end="")
    for problem in problems:
        print(f"plugin error: {problem}", file=sys.stderr)
    return EXIT_INVALID if problems else 0


def _configure_logging(level: str) -> None:
    """Logs on stderr; stdout carries only the workers' JSON access-log lines."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _run(args: argparse.Namespace, early: EarlySignals | None) -> int:
    # gateway.launch installed these before this module's imports; a direct caller of main() gets them here.
    early = early if early is not None else EarlySignals().install()
    _configure_logging(args.log_level)
    settings = _settings(args)
    registry = load_registry()
    snapshot = compile_snapshot(args.config, registry, settings, 1)  # refuses an invalid file before binding
    demo = snapshot.config.demo_upstream
    supervisor = Supervisor(settings, args.config, snapshot, args.log_level, args.watch, registry, early)
    try:
        return _event_loop_run(supervisor.run(demo.listen if demo is not None else None))
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)  # one line, no traceback: a busy port is an operator's problem
        return EXIT_INVALID


def _demo(listen: str) -> int:
    _configure_logging("INFO")
    from gateway.demo import start_demo_upstream

    try:
        where = Listen.parse(listen)
    except ValueError as exc:
        raise SystemExit(f"sluicegate demo: --listen: {exc}") from exc

    async def serve() -> int:
        runner = await start_demo_upstream(where.host, where.port)
        print(f"demo echo backend on http://{where}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()
        return 0

    return _event_loop_run(serve())


def _event_loop_run(coro: Coroutine[Any, Any, int]) -> int:
    import uvloop

    result: int = uvloop.run(coro)
    return result


if __name__ == "__main__":
    sys.exit(main())
