"""A reload while a worker is being replaced (issue 9, review of finding 2): it counts as a success only once every
worker slot serves the new version; a worker that died during the hand-out is not counted as having confirmed it.

The replacement is made to fail without any timing: a plugin distribution on PYTHONPATH refuses to import while a
flag file exists, so every worker started after the test creates the file fails at start-up (the running ones
have the plugin loaded already). One worker is killed (SIGKILL) just before the SIGHUP: it is dead when the
supervisor hands out the new version, and its replacement must start on that version.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.e2e.ops_helpers import GatewayProcess, eventually, reloads_counted, routes_yaml, run_gateway
from tests.plugins import write_distribution

FRAGILE = """\
import os

from gateway.spec import ComponentConfig, FilterSpec

if os.path.exists({flag!r}):
    raise RuntimeError("this plugin refuses to load: the test broke the replacement workers")


class Config(ComponentConfig):
    pass


async def _filter(exchange, call_next):
    return await call_next(exchange)


SPEC = FilterSpec(name="Fragile", order=972, config=Config, build=lambda c, ctx: _filter, summary="test", example={{}})
"""


async def kill_worker_and_reload(gw: GatewayProcess, index: int) -> None:
    """SIGKILL worker `index`, wait until the supervisor has seen it die, then SIGHUP: the worker is dead when the
    new version is handed out. (A worker that dies *while preparing* a version refuses it instead:
    test_a_worker_dying_while_preparing_refuses_the_version_everywhere.)"""
    pid = next(w["pid"] for w in (await gw.routes())["workers"] if w["index"] == index)
    os.kill(pid, signal.SIGKILL)

    async def noticed() -> bool | None:
        workers = (await gw.routes())["workers"]
        return True if any(w["index"] == index and not w["ready"] for w in workers) else None

    await eventually(noticed, f"the supervisor sees worker {index} die")
    gw.signal(signal.SIGHUP)


async def test_a_reload_succeeds_only_once_the_replacement_of_a_dead_worker_serves_it(tmp_path: Path) -> None:
    flag = tmp_path / "break-replacements"
    site = tmp_path / "site"
    write_distribution(
        site,
        "team-fragile",
        {"sluicegate.filters": {"Fragile": "fragile:SPEC"}},
        {"fragile": FRAGILE.format(flag=str(flag))},
    )
    routes = routes_yaml({"id": "noop", "uri": "no://op", "predicates": ["Path=/noop"], "filters": ["Fragile"]})
    async with run_gateway(tmp_path, routes, "--workers", "2", env={"PYTHONPATH": str(site)}) as gw:
        # 1. The replacement cannot start: one worker confirmed, one restarting → a failure, never "(ok)".
        flag.write_text("", encoding="utf-8")
        await kill_worker_and_reload(gw, 1)
        failed = await reloads_counted(gw, 1)
        failed_log = gw.stderr()
        # 2. Replacements can start again: the retry starts on version 2; then a worker killed during a reload is
        #    replaced on the new version, and only then is the reload counted, as a success.
        flag.unlink()
        await gw.wait_for_version(2, guard=60.0)
        await kill_worker_and_reload(gw, 0)
        succeeded = await reloads_counted(gw, 2)
        view = await gw.wait_for_version(3, guard=60.0)
        code = await gw.stop()
    assert failed.value("gateway_reloads_total", result="success") == 0, failed_log
    assert failed.value("gateway_reloads_total", result="failure") == 1
    assert "routes version 2: 1 confirmed, 1 restarting, 0 refused or unanswered (failed)" in failed_log
    assert "routes version 2 serving" not in failed_log
    assert succeeded.value("gateway_reloads_total", result="success") == 1
    assert succeeded.value("gateway_reloads_total", result="failure") == 1
    assert "routes version 3 serving in all 2 workers (ok)" in gw.stderr()
    assert [w["version"] for w in view["workers"]] == [3, 3]
    assert code == 0
