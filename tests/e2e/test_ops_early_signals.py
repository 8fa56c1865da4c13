"""A SIGHUP or SIGTERM at any moment of `sluicegate run`'s start-up after the interpreter's own start (issue 9,
review of finding 1): the console script and `python -m gateway` install recording handlers before importing
anything heavy, so a signal while aiohttp, pydantic and the supervisor are imported is acted on, not fatal.

Two tests: one holds the process inside its first import of aiohttp without any timing (a `sitecustomize` on
PYTHONPATH, for this process only, blocks that import on a named pipe the test writes after signalling); the other
signals right after the process is started and a few milliseconds later, as an operator would. There a process may
still die of the signal, but only inside the interpreter's own start (the documented window): Python's import
profile on stderr (PYTHONPROFILEIMPORTTIME) then shows that none of our heavy imports had happened.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest

from tests.e2e.ops_helpers import GatewayProcess, eventually, reloads_counted, routes_yaml, run_gateway, wait_ready

NOOP = routes_yaml({"id": "noop", "uri": "no://op", "predicates": ["Path=/noop"]})
LAUNCHERS = pytest.mark.parametrize("console_script", [True, False], ids=["sluicegate", "python-m-gateway"])
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["SIGHUP", "SIGTERM"])
#: Blocks the first import of aiohttp until the named pipe in HOLD_IMPORT_FIFO is written and closed; the variable
#: is removed at once, so the workers this process starts import normally.
HOLD_AIOHTTP = """\
import os
import sys

_FIFO = os.environ.pop("HOLD_IMPORT_FIFO", None)


class _HoldAiohttp:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp":
            sys.meta_path.remove(self)
            with open(_FIFO, "rb") as pipe:
                pipe.read()
        return None


if _FIFO:
    sys.meta_path.insert(0, _HoldAiohttp())
"""
#: Where `sluicegate run` may be when a signal is sent right after it started (seconds after Popen returned): at
#: once, a few milliseconds later (likely still the interpreter's start) and inside the imports of a quick machine.
DELAYS = (0.0, 0.0, 0.0, 0.005, 0.005, 0.005, 0.05, 0.2)
IMPORT_LINE = re.compile(r"^import time:\s*\d+ \|\s*\d+ \|\s*(\S+)\s*$", re.MULTILINE)


async def acted_on(gw: GatewayProcess, sig: signal.Signals) -> None:
    """The outcome a handled signal must have: SIGHUP reloads once start-up completes and the gateway keeps serving
    until SIGTERM; SIGTERM ends the process with status 0. Either way no traceback."""
    if sig == signal.SIGHUP:
        await wait_ready(gw)
        # An unchanged routes file is no new version: the reload is acted on (counted) and version 1 keeps serving.
        metrics = await reloads_counted(gw, 1)
        assert gw.proc.poll() is None, f"the gateway exited after SIGHUP:\n{gw.stderr()}"
        assert metrics.value("gateway_reloads_total", result="success") == 1
        code = await gw.stop()
    else:
        code = await gw.wait_exit()
    assert code == 0, f"exit status {code} after {sig.name}:\n{gw.stderr()[-4000:]}"
    assert "Traceback" not in gw.stderr()


@LAUNCHERS
@SIGNALS
async def test_a_signal_during_the_heavy_imports_is_acted_on(
    tmp_path: Path, console_script: bool, sig: signal.Signals
) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_AIOHTTP, encoding="utf-8")
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    env = {"PYTHONPATH": str(hook), "HOLD_IMPORT_FIFO": str(fifo)}
    async with run_gateway(tmp_path, NOOP, env=env, wait_ready=False, console_script=console_script) as gw:

        async def importing_aiohttp() -> int | None:
            if gw.proc.poll() is not None:
                raise AssertionError(f"the gateway exited with {gw.proc.returncode}:\n{gw.stderr()}")
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until the hook has the pipe open
            except OSError:
                return None

        pipe = await eventually(importing_aiohttp, "the gateway imports aiohttp", guard=40.0)
        try:
            gw.signal(sig)  # the process is blocked inside `import aiohttp`: the signal interrupts that
            await asyncio.sleep(0)
            os.write(pipe, b"go")
        finally:
            os.close(pipe)
        await acted_on(gw, sig)


def heavy_imports(stderr: str) -> list[str]:
    """The modules the import profile shows as imported that gateway.launch imports only after its handlers."""
    names = IMPORT_LINE.findall(stderr)
    return [n for n in names if n.split(".")[0] in ("aiohttp", "pydantic") or n == "gateway.cli"]


async def settled(gw: GatewayProcess) -> int | None:
    """Once the signalled gateway either exited (its status) or serves (None): start-up is over either way."""

    async def probe() -> tuple[int | None] | None:
        code = gw.proc.poll()
        if code is not None:
            return (code,)
        return (None,) if await gw.ready_status() == 200 else None

    return (await eventually(probe, "the gateway exited or became ready", guard=40.0))[0]


@LAUNCHERS
@SIGNALS
async def test_a_signal_right_after_start_is_acted_on_or_lands_before_our_first_import(
    tmp_path: Path, console_script: bool, sig: signal.Signals
) -> None:
    env = {"PYTHONPROFILEIMPORTTIME": "1"}
    for attempt, delay in enumerate(DELAYS):
        name = f"attempt{attempt}"
        async with run_gateway(
            tmp_path, NOOP, env=env, wait_ready=False, console_script=console_script, name=name
        ) as gw:
            if delay:
                await asyncio.sleep(delay)
            gw.signal(sig)
            if await settled(gw) == -sig:  # died of it: only acceptable within the interpreter's own start
                assert not heavy_imports(gw.stderr()), f"attempt {attempt}: killed during our imports:\n{gw.stderr()}"
                continue
            await acted_on(gw, sig)
