"""The `sluicegate` entry point (console script and `python -m gateway`): catch the supervisor's signals first.

`sluicegate run` must not die of a SIGHUP or SIGTERM sent while it starts, yet importing the CLI (aiohttp, pydantic,
the supervisor) takes hundreds of milliseconds. So this module imports nothing of ours and nothing heavy: for
`run` it installs recording handlers (EarlySignals) before `gateway.cli` is imported, and the supervisor acts on
what they recorded once its event loop runs. Other commands keep the default signal behaviour (Ctrl-C stops them).
The one window left is the interpreter's own start, before this module is imported.
"""

from __future__ import annotations

import signal
import sys


class EarlySignals:
    """SIGHUP, SIGTERM and SIGINT that arrive before the supervisor's event loop runs (while the CLI is imported and
    settings, plugins and the routes file are read): recorded instead of killing the process, acted on once the
    supervisor runs."""

    def __init__(self) -> None:
        self.reload = False
        self.stop = False

    def install(self) -> EarlySignals:
        signal.signal(signal.SIGHUP, self._hang_up)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._terminate)
        return self

    def _hang_up(self, signum: int, frame: object) -> None:
        self.reload = True

    def _terminate(self, signum: int, frame: object) -> None:
        self.stop = True


def command_of(argv: list[str]) -> str | None:
    """The sub-command argparse will pick: the first argument that is not an option (the top-level parser has
    only `-h` and `--version`, which take no value). Cheap on purpose: no argparse before the handlers."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """`sluicegate`: for `run`, record signals first; then hand over to the real CLI (`gateway.cli.main`)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["routes"]:  # an admin API client: skip the gateway's imports (half a second) to start fast
        from gateway.routes_cli import main as routes_main

        return routes_main(args[1:])
    early = EarlySignals().install() if command_of(args) == "run" else None
    from gateway.cli import main as cli_main  # heavy: only after the handlers are in place

    return cli_main(args, early)
