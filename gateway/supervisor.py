"""The `sluicegate run` process: owns the listening socket, the workers, reloads, drain and the admin listener.

Workers are fresh interpreters (`python -m gateway.worker`) that inherit the data socket and a control channel.
The supervisor validates a routes file once (no build: validation has no side effects) and hands every worker the
same versioned snapshot as plain data with a checksum; workers build it, start its filters, and swap it in only
when every worker could (prepare, then commit). A worker that dies is restarted with the current snapshot.
On SIGTERM readiness turns false at once, and after the drain delay every worker stops accepting and finishes what
it has read (bounded by the drain timeout), then everything exits 0.

Start-up binds every listener first (data, admin, demo backend), so a busy port fails before any worker starts.
Signal handlers come before that: a SIGTERM during start-up drains once the starting worker is up, a SIGHUP
reloads once start-up completes. Starting a worker and handing out a routes version hold one lock, so a reload
waits for a worker that is starting and then reaches it too: no serving worker keeps a replaced version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.admin import admin_app
from gateway.admin_token import UnsafeTokenDirectory, admin_tokens, remove_token
from gateway.adminapi.views import route_views
from gateway.changes import ChangeRefused, Plan, Problem
from gateway.cluster import Cluster
from gateway.config.definitions import GatewayConfig
from gateway.config.redact import redacted_routes
from gateway.config.snapshot import Snapshot
from gateway.config.snapshot import compile_snapshot as compile_snapshot  # re-exported: the CLI and tests use it
from gateway.control import Channel
from gateway.errors import ConfigError
from gateway.launch import EarlySignals
from gateway.metrics import render
from gateway.registry import Registry, load_registry
from gateway.settings import Listen, Settings
from gateway.store import ConfigStore, StoreError, VersionConflict, VersionRecord, open_store
from gateway.store.base import STORE_ERRORS, epoch, identity
from gateway.versions import Versions, VersionsError, changed_ids

log = logging.getLogger("sluicegate.supervisor")
START_TIMEOUT = 30.0
RESTART_BACKOFF = 1.0
MAX_REASON = 1000
CONFLICT_RETRIES = 10  # a change without If-Match planned again on another replica's newer version, at most


class StartError(Exception):
    """Start-up cannot complete (a listener cannot be bound, a worker does not start); the message is one line."""


@dataclass
class WorkerHandle:
    index: int
    process: asyncio.subprocess.Process
    channel: Channel
    ready: bool = False
    version: int = 0
    restarts: int = 0


@dataclass
class _HandOut:
    """How handing a version out went. `refused`: the errors when it serves nowhere (the old version still serves
    everywhere); else which slots did not confirm it (unanswered) and which need a replacement worker."""

    refused: list[str] | None = None
    conflict: str | None = None  # refused because another replica stored a version first (shared stores)
    retry: bool = False  # refused for a reason of ours (the store, a worker died or did not answer), not the change
    unanswered: set[int] = field(default_factory=set)
    restarting: list[int] = field(default_factory=list)
    failures_before: dict[int, int] = field(default_factory=dict)


@dataclass
class Supervisor:
    settings: Settings
    path: Path
    snapshot: Snapshot
    log_level: str = "INFO"
    watch: bool = False
    registry: Registry = field(default_factory=load_registry)
    early: EarlySignals = field(default_factory=EarlySignals)
    workers: list[WorkerHandle] = field(default_factory=list)
    draining: bool = False
    reloads: dict[str, int] = field(default_factory=lambda: {"success": 0, "failure": 0})
    _failed_starts: dict[int, int] = field(default_factory=dict)  # per worker slot: start attempts that failed
    _preparing: bool = False  # a valid version is being prepared in the workers (not ready: it is about to change)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    store: ConfigStore | None = None  # opened in `run` (from settings.store unless given)
    _store_down: bool = False  # the shared store did not answer the last refresh
    _unfit: str = ""  # identity of the last stored version that does not fit or build here (logged once)
    _reload_after_store: bool = False  # a reload refused because the shared store was down: run it when it is back
    _serving: str = ""  # identity of the stored version serving (a shared store may reuse a number: identity())
    versions: Versions = field(init=False)  # the routes file's config and the store (set in `run`)
    cluster: Cluster = field(init=False)  # heartbeats and GET /admin/v1/cluster (set in `run`)

    # -- lifecycle --------------------------------------------------------------------------------------------
    async def run(self, demo_listen: str | None = None) -> int:
        """Bind every listener, start the workers, serve until SIGTERM/SIGINT, drain; returns 0 after the drain.

        Raises StartError (one line naming what failed) when a listener cannot be bound or a worker does not start;
        nothing is left running then.
        """
        self.stopping = asyncio.Event()
        self._version_lock = asyncio.Lock()
        self._reload_wanted = asyncio.Event()
        self._started = asyncio.Condition()  # notified after every worker start attempt, whatever its outcome
        self._install_signals()  # first: a signal during start-up is acted on, never fatal
        async with contextlib.AsyncExitStack() as stack:
            self.sock = _bind("data port", self.settings.listen)
            stack.callback(self.sock.close)
            admin_sock = _bind("admin listener", self.settings.admin.listen)
            stack.callback(admin_sock.close)
            demo = await _start_demo(demo_listen)
            if demo is not None:
                stack.push_async_callback(demo.cleanup)
            await self._open_store(stack)  # after binding: a busy port fails first, with one line
            self.cluster = Cluster(self.config_store, self.settings, lambda: self.snapshot.version)
            tokens = self._admin_tokens(admin_sock.getsockname()[1], stack)
            admin = await self._start_admin(admin_sock, tokens)
            stack.push_async_callback(admin.cleanup)
            log.info("data port listening on %s", self.settings.listen)
            try:
                await self._start_workers()
            except StartError:
                await self._stop_workers()
                raise
            self._background(self._reload_loop())  # a reload asked for during start-up runs now
            self._background(self.cluster.run())  # heartbeats: bounded, never block serving
            if self.config_store.shared:
                self._background(self._follow())  # versions other replicas store
            if self.watch:
                self._background(self._watch())
            await self.stopping.wait()
            await self._drain()
            for task in list(self._tasks):
                task.cancel()
        return 0

    def _all_serving(self) -> bool:
        """Every worker slot filled by a live worker serving the current version."""
        version = self.snapshot.version
        return len(self.workers) == self.settings.workers and all(
            w.ready and w.version == version and w.process.returncode is None for w in self.workers
        )

    def ready(self) -> bool:
        """Readiness: no drain started, every worker started, and each serving the current routes version (false
        while a worker starts or restarts, and from the hand-out of a valid version until each has taken it)."""
        version = self.snapshot.version
        return (
            not self.draining
            and not self._preparing
            and len(self.workers) == self.settings.workers
            and all(w.ready and w.version == version for w in self.workers)
        )

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.begin_drain)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        if self.early.stop:
            self.begin_drain()
        if self.early.reload:
            self.request_reload()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task the supervisor keeps a reference to (the loop keeps only weak ones)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def begin_drain(self) -> None:
        if not self.draining:
            log.info("drain requested: readiness is now false")
            self.draining = True  # readiness turns false at once; serving goes on through the drain delay
            self.stopping.set()

    async def _drain(self) -> None:
        await asyncio.sleep(self.settings.drain.delay)
        timeout = self.settings.drain.timeout
        log.info("draining workers (timeout %gs)", timeout)
        self.sock.close()  # the supervisor's copy; workers stop accepting when told
        await asyncio.gather(*(self._drain_worker(w, timeout) for w in self.workers))
        log.info("drained; exiting")

    async def _drain_worker(self, worker: WorkerHandle, timeout: float) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await worker.channel.request({"type": "drain", "timeout": timeout}, timeout + 5)
        try:
            await asyncio.wait_for(worker.process.wait(), 5)
        except TimeoutError:
            log.error("worker %d did not exit after drain; killing it", worker.index)
            worker.process.kill()
            await worker.process.wait()
        worker.channel.close()

    # -- workers ----------------------------------------------------------------------------------------------
    async def _start_workers(self) -> None:
        """Start `settings.workers` workers one after the other; a drain asked for meanwhile stops the start-up."""
        for index in range(self.settings.workers):
            if self.draining or await self._spawn(index) is None:
                return

    async def _stop_workers(self) -> None:
        """Start-up failed: end every worker already started, without a drain (none has served yet)."""
        for worker in self.workers:
            await _discard(worker)

    async def _spawn(self, index: int, restarts: int = 0) -> WorkerHandle | None:
        """Start worker `index` on the current routes snapshot and put it in its slot; None if a drain began.

        Holds the version lock from the start message to the worker's "ready": a reload asked for meanwhile waits,
        then hands the new version to this worker like to every other. Raises StartError when the worker does not
        start (its process is ended).
        """
        async with self._version_lock:
            if self.draining:
                return None
            worker = await self._launch(index, restarts)
            if index < len(self.workers):
                self.workers[index] = worker
            else:
                self.workers.append(worker)
            try:
                reply = await worker.channel.request(
                    {
                        "type": "start",
                        "settings": self.settings.for_workers(),
                        "routes": self.snapshot.message(),
                    },
                    START_TIMEOUT,
                )
            except (TimeoutError, ConnectionError) as exc:
                reply = {"errors": [f"no answer ({type(exc).__name__})"]}
            if reply.get("type") != "ready":
                await _discard(worker)
                self._failed_starts[index] = self._failed_starts.get(index, 0) + 1
                await self._notify_started()
                if self.draining:
                    return None
                raise StartError(f"worker {index} did not start: {'; '.join(map(str, reply.get('errors', [])))}")
            worker.ready, worker.version = True, int(reply.get("version", 0))
            await self._notify_started()
        log.info("worker %d (pid %d) serving routes version %d", index, worker.process.pid, worker.version)
        self._background(self._supervise(worker))
        return worker

    async def _notify_started(self) -> None:
        """Wake a reload waiting for a replacement worker (it checks the slots itself)."""
        async with self._started:
            self._started.notify_all()

    async def _launch(self, index: int, restarts: int) -> WorkerHandle:
        parent, child = socket.socketpair()
        fds = (self.sock.fileno(), child.fileno())
        args = ("-m", "gateway.worker", "--listen-fd", str(fds[0]), "--control-fd", str(fds[1]))
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, "--log-level", self.log_level, pass_fds=fds, env=_worker_environment()
        )
        child.close()
        reader, writer = await asyncio.open_connection(sock=parent)
        return WorkerHandle(index, process, Channel(reader, writer), restarts=restarts)

    async def _supervise(self, worker: WorkerHandle) -> None:
        """Restart a worker that died, after RESTART_BACKOFF and again until one starts, unless we are draining."""
        code = await worker.process.wait()
        worker.ready = False
        if self.draining:
            return
        log.error("worker %d (pid %d) exited with %s; restarting", worker.index, worker.process.pid, code)
        worker.channel.close()
        restarts = worker.restarts
        while True:
            await asyncio.sleep(RESTART_BACKOFF)
            restarts += 1
            try:
                await self._spawn(worker.index, restarts)
                return
            except StartError as exc:
                log.error("%s; retrying", exc)

    # -- reload -----------------------------------------------------------------------------------------------
    def request_reload(self) -> None:
        """SIGHUP: reload once the supervisor is free to (after start-up, after a reload in progress)."""
        log.info("SIGHUP: reload requested")
        self._reload_wanted.set()

    async def _reload_loop(self) -> None:
        """Run the reloads asked for one at a time; requests during a reload coalesce into one more."""
        while not self.draining:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            if not self.draining:
                try:
                    await self.reload()
                except Exception:  # a bug must cost this reload, never every later one (SIGHUP would go unheard)
                    log.exception("reload failed unexpectedly; keeping version %d", self.snapshot.version)
                    self.reloads["failure"] += 1

    async def reload(self) -> bool:
        """Validate the routes file again and hand every worker the new version; on error keep the old one.

        The hand-out has two phases: every live worker builds the version and starts its filters (prepare); if one
        refuses (a plugin's build or start failed) or does not answer, every worker drops it (abort) and the old
        version keeps serving everywhere; else every worker swaps it in (commit).

        True (counted as a success) only when every worker slot serves the new version: each live worker confirmed
        it, and each worker that was dead or died during the hand-out was replaced by one that started on it (a
        replacement starts on the current snapshot; the wait covers its first attempt, at most RESTART_BACKOFF +
        START_TIMEOUT). A worker that refuses or does not answer, or a replacement that fails, makes it a failure
        ("N confirmed, M restarting"); readiness stays false until the slot serves the current version.
        """
        async with self._version_lock:  # never while a worker starts: it gets this version too
            try:
                static = compile_snapshot(self.path, self.registry, self.settings, 0).config
                snapshot = self.versions.from_file(static)
            except ConfigError as exc:
                return self._refused([str(issue) for issue in exc.issues])
            if self.versions.published(snapshot) == self.config_store.current().checksum and self._all_serving():
                # Nothing that serves changed (a touched file, a comment): no new version to push rollback targets
                # out of the history. A dead or stale worker slot still gets a hand-out, which replaces it.
                log.info("routes file unchanged: version %d keeps serving (ok)", self.snapshot.version)
                self.reloads["success"] += 1
                return True
            changed = changed_ids(self.static, static)
            out = await self._hand_out(
                snapshot, self.versions.record(snapshot, "file", "routes file reloaded", changed)
            )
            if out.conflict is not None:  # another replica stored a version first: follow it, then reload again
                await self._catch_up_locked()
                self._reload_wanted.set()
                return self._refused([f"{out.conflict}; reloading on top of it"])
            if out.refused is not None:
                if out.retry and self.config_store.shared:
                    # The store did not answer (or a worker died): the file's change must not be lost with the
                    # outage; it runs again as soon as the store answers.
                    self._reload_after_store = self._store_down = True
                return self._refused(out.refused)
            self.versions.static = static
            unanswered, restarting, failures_before = out.unanswered, out.restarting, out.failures_before
        # Waiting here, outside the version lock, lets the replacements start (they take that lock).
        pending = len(restarting) if unanswered else await self._replaced(restarting, snapshot.version, failures_before)
        ok = not unanswered and not pending
        self.reloads["success" if ok else "failure"] += 1
        if ok:
            log.info("routes version %d serving in all %d workers (ok)", snapshot.version, len(self.workers))
        else:
            log.error(
                "routes version %d: %d confirmed, %d restarting, %d refused or unanswered (failed)",
                snapshot.version,
                len(self.workers) - pending - len(unanswered),
                pending,
                len(unanswered),
            )
        return ok

    async def _hand_out(self, snapshot: Snapshot, record: VersionRecord | None) -> _HandOut:
        """Serve `snapshot` in every worker or in none, and store `record` (the version it is) in between.

        The caller holds the version lock. Two phases: each live worker builds it and starts its filters (prepare);
        only when every one could is the record stored (durably: what serves is never lost) and the version swapped
        in everywhere (commit). A refusal, a worker dying while preparing or a store that cannot be written aborts
        the version in every worker: the old one keeps serving everywhere.
        """
        live = [w for w in self.workers if w.process.returncode is None]
        self._preparing = True
        try:
            replies = await asyncio.gather(*(self._prepare(w, snapshot) for w in live), return_exceptions=True)
        finally:
            self._preparing = False
        prepared = [w for w, r in zip(live, replies, strict=True) if r == []]
        # A worker that died while preparing counts as a refusal: the new version may be what killed it, so
        # it serves nowhere and the replacement starts on the version that still serves everywhere.
        failed: list[list[str] | BaseException] = [r for r in replies if r != []]
        # A worker that answered with errors cannot build this version (the change's fault); one that died or did
        # not answer, or a store that cannot be written, is ours: the client may retry (`retry`).
        refusals = [r for r in failed if isinstance(r, list)]
        # When the version was written, for gateway_config_propagation_seconds: its append here, or its record's time.
        stored = self.config_store.get(snapshot.version) if record is None else None
        written = epoch(stored.time) if stored is not None else None
        if not failed and record is not None:  # None: a version learned from the store, stored already
            try:
                await self.config_store.append(record)
                written = time.time()
            except VersionConflict as exc:
                await asyncio.gather(*(self._abort(w, snapshot.version) for w in live), return_exceptions=True)
                return _HandOut(refused=[str(exc)], retry=True, conflict=str(exc))
            except StoreError as exc:
                failed = [[str(exc)]]
        if failed:
            await asyncio.gather(*(self._abort(w, snapshot.version) for w in live), return_exceptions=True)
            return _HandOut(refused=_errors((refusals or failed)[0]), retry=not refusals)
        self.snapshot = snapshot
        commits = await asyncio.gather(*(self._commit(w, written) for w in prepared), return_exceptions=True)
        confirmed = {w.index for w, r in zip(prepared, commits, strict=True) if r is True}
        # No answer in time: the worker lives on the old version.
        unanswered = {w.index for w, r in zip(prepared, commits, strict=True) if r is not True}
        unanswered -= {w.index for w, r in zip(prepared, commits, strict=True) if isinstance(r, ConnectionError)}
        # Dead before the hand-out, or died during it (its channel broke): a replacement has to start on it.
        restarting = [w.index for w in self.workers if w.index not in confirmed | unanswered]
        self._serving = identity(record if record is not None else self.config_store.current())
        if record is not None:
            self.versions.audit(record, snapshot.config)
        return _HandOut(unanswered=unanswered, restarting=restarting, failures_before=dict(self._failed_starts))

    # -- dynamic routes ---------------------------------------------------------------------------------------
    @property
    def config_store(self) -> ConfigStore:
        """The store (the admin API reads versions from it)."""
        return self.versions.store

    @property
    def static(self) -> GatewayConfig:
        """The routes file's config as last loaded."""
        return self.versions.static

    async def _open_store(self, stack: contextlib.AsyncExitStack) -> None:
        """The first version to serve: the routes file with the stored dynamic routes. StartError (one line)."""
        store = self.store if self.store is not None else open_store(self.settings.store)
        self.versions = Versions(store, self.registry, self.settings, self.snapshot.config)
        stack.push_async_callback(store.close)
        try:
            self.snapshot = await self.versions.open()
        except VersionsError as exc:
            raise StartError(str(exc)) from None
        if not self.versions.degraded:
            self._serving = identity(store.current())

    async def change(self, plan_of: Any, author: str, reason: str, expected: int | None) -> tuple[int, Plan]:
        """Apply a change of the dynamic routes in every worker: `plan_of(current record)` gives the new routes
        (raising ChangeRefused). Returns (the new version, the plan). ChangeRefused: 412 when `expected` is not the
        current version, 400 when the result does not validate (problems by pointer) or a worker refused it, 503
        when the store could not be written or the gateway is draining; nothing changed then.

        Shielded: a client that goes away mid-change does not cut the hand-out short (it would leave workers with
        a prepared version and the store ahead of what serves)."""
        return await asyncio.shield(self._change(plan_of, author, reason, expected))

    async def _change(self, plan_of: Any, author: str, reason: str, expected: int | None) -> tuple[int, Plan]:
        if len(reason) > MAX_REASON:  # kept in every version the store holds and in the audit line
            raise ChangeRefused(400, f"the reason is over {MAX_REASON} characters", [Problem("/reason", "too long")])
        async with self._version_lock:
            for _ in range(CONFLICT_RETRIES):
                current = self.config_store.current()
                if expected is not None and expected != current.version:
                    raise ChangeRefused(412, f"the current version is {current.version}, not {expected}")
                if self.draining:
                    raise ChangeRefused(503, "the gateway is draining")
                if not self._all_serving():
                    # Every worker must build a change before it is stored: with a slot dead or starting, a version
                    # no worker could build might be stored and then fail every replacement and every later start.
                    raise ChangeRefused(503, "a worker is starting or restarting; retry in a moment")
                planned: Plan = plan_of(current)
                snapshot = self.versions.planned(planned)
                record = self.versions.record(snapshot, author, reason, planned.changed)
                out = await self._hand_out(snapshot, record)
                if out.conflict is None:
                    break
                # Another replica wrote first. With If-Match the client asked for exactly that version: 412. Without,
                # the change is planned again on the winner's version (never lost, never applied on a stale one).
                if expected is not None:
                    raise ChangeRefused(412, f"the version moved: {out.conflict}")
                await self._catch_up_locked()
            else:
                raise ChangeRefused(503, "other replicas kept writing first; retry")
            if out.refused is not None:
                raise ChangeRefused(503 if out.retry else 400, "; ".join(out.refused))
        return snapshot.version, planned

    async def _follow(self) -> None:
        """A shared store: apply every version another replica stores, woken by the store's announcements and its
        poll. Errors cost one round, never the loop (a replica must keep converging)."""
        wanted = asyncio.Event()
        self._background(self.config_store.watch(wanted.set, self.settings.store.poll_interval))
        poll = self.settings.store.poll_interval
        while not self.draining:
            # Woken by the watch, and by our own poll too: a watch task that died must not stop the convergence.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wanted.wait(), poll)
            wanted.clear()
            try:
                async with self._version_lock:
                    await self._catch_up_locked()
            except Exception:
                log.exception("following the store failed; version %d keeps serving", self.snapshot.version)

    async def _catch_up_locked(self) -> None:
        """Serve the store's current version if it is newer than what serves (the caller holds the version lock).
        A version that does not fit this replica's routes file, or that a worker refuses, is logged and skipped:
        this replica keeps its version and catches up with the next one."""
        store = self.config_store
        if self.versions.degraded:
            await self._recover_locked()
            return
        try:
            # A poll holds the version lock, which a write waits for: a short deadline keeps a write's 503 in an
            # outage within about store.timeout plus half a poll interval.
            await store.refresh(min(self.settings.store.timeout, self.settings.store.poll_interval / 2))
        except StoreError as exc:
            if not self._store_down:  # said once per outage, not at every poll
                log.warning("%s; version %d keeps serving, writes answer 503", exc, self.snapshot.version)
            self._store_down = True
            return
        if self._store_down:
            log.info("store %s answers again", store.where)
            self._store_down = False
            if self._reload_after_store:  # a routes-file reload the outage refused: run it now
                self._reload_after_store = False
                self._reload_wanted.set()
        latest = store.current()
        if identity(latest) == self._serving:
            return
        if latest.version <= self.snapshot.version:
            # Only after Redis lost its data and a replica that lagged seeded it again: the store is the truth every
            # replica follows (else the cluster splits, and a write here would build on a version nobody else has).
            log.warning(
                "the store holds version %d (by %s), not the version %d serving here: following the store",
                latest.version,
                latest.author,
                self.snapshot.version,
            )
        if identity(latest) == self._unfit:
            return  # said once; tried again only when the store holds another version
        try:
            snapshot = self.versions.stored(latest)
        except ConfigError as exc:
            self._unfit = identity(latest)
            log.error("version %d from %s does not fit this replica: %s", latest.version, store.where, exc)
            return
        out = await self._hand_out(snapshot, None)
        if out.refused is not None:
            if not out.retry:
                self._unfit = identity(latest)
            log.error("version %d from %s refused here: %s", latest.version, store.where, "; ".join(out.refused))
            return
        log.info(
            "routes version %d (by %s: %s) from %s serving", latest.version, latest.author, latest.reason, store.where
        )

    async def _recover_locked(self) -> None:
        """Started without the store: once it answers, serve its version with this routes file."""
        try:
            snapshot = await self.versions.recover()
        except (StoreError, VersionsError) as exc:
            log.debug("store still unavailable: %s", exc)
            return
        out = await self._hand_out(snapshot, None)
        if out.refused is not None:
            log.error("version %d from %s refused here: %s", snapshot.version, self.config_store.where, out.refused)

    def store_note(self) -> str | None:
        """What /health/ready says about the store when it is not serving from it (None when it is)."""
        if self.versions.degraded:
            return "unavailable since start: serving the routes file only (store.start_without_redis)"
        return None

    def check(self, plan_of: Any) -> Plan:
        """Dry run of `change`: ChangeRefused with every problem, or the plan that would apply."""
        planned: Plan = plan_of(self.config_store.current())
        self.versions.planned(planned)
        return planned

    async def _replaced(self, indices: list[int], version: int, failures_before: dict[int, int]) -> int:
        """Wait until every slot in `indices` serves `version` through a replacement worker, or until one of those
        replacements failed to start (its first attempt after `failures_before`), or RESTART_BACKOFF +
        START_TIMEOUT passed. Returns how many of these slots do not serve `version` (still restarting)."""

        def serving(index: int) -> bool:
            worker = self.workers[index]
            return worker.ready and worker.version >= version and worker.process.returncode is None

        def failed(index: int) -> bool:
            return self._failed_starts.get(index, 0) > failures_before.get(index, 0)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RESTART_BACKOFF + START_TIMEOUT), self._started:
                await self._started.wait_for(lambda: all(serving(i) or failed(i) for i in indices))
        return sum(1 for i in indices if not serving(i))

    def _refused(self, errors: list[str]) -> bool:
        self.reloads["failure"] += 1
        for error in errors:
            log.error("reload refused, keeping version %d: %s", self.snapshot.version, error)
        return False

    async def _prepare(self, worker: WorkerHandle, snapshot: Snapshot) -> list[str]:
        """Ask `worker` to build and start `snapshot`: [] when it is ready to commit, else its errors."""
        reply = await worker.channel.request({"type": "prepare", "routes": snapshot.message()}, START_TIMEOUT)
        if reply.get("type") == "prepared":
            return []
        log.error("worker %d refused version %d", worker.index, snapshot.version)
        return [str(e) for e in reply.get("errors", [])] or [f"worker {worker.index}: {reply.get('detail')}"]

    async def _commit(self, worker: WorkerHandle, written: float | None = None) -> bool:
        message = {"type": "commit", "version": self.snapshot.version, "written": written}
        reply = await worker.channel.request(message, START_TIMEOUT)
        if reply.get("type") == "loaded":
            worker.version = int(reply["version"])
            return True
        log.error("worker %d did not commit version %d: %s", worker.index, self.snapshot.version, reply)
        return False

    async def _abort(self, worker: WorkerHandle, version: int) -> None:
        """Drop (stop) what `worker` prepared of `version`; after its prepare finished, if still running."""
        await worker.channel.request({"type": "abort", "version": version}, START_TIMEOUT)

    async def _watch(self) -> None:
        """--watch: reload when the file's mtime or size changes (polling: no extra dependency, any filesystem)."""
        last = _stamp(self.path)
        while True:
            await asyncio.sleep(1.0)
            stamp = _stamp(self.path)
            if stamp != last:
                last = stamp
                self._reload_wanted.set()

    # -- admin views ------------------------------------------------------------------------------------------
    async def metrics(self) -> bytes:
        ready = [w for w in self.workers if w.ready]
        replies = await asyncio.gather(
            *(w.channel.request({"type": "metrics"}, 2.0) for w in ready), return_exceptions=True
        )
        snapshots = [
            {**r["data"], "worker": w.index}
            for w, r in zip(ready, replies, strict=True)
            if isinstance(r, dict) and r.get("type") == "metrics"
        ]
        store = {"store_errors": dict(STORE_ERRORS.counts), "store_up": int(getattr(self.config_store, "up", True))}
        return render(snapshots, {"routes": len(self.snapshot.config.routes), "reloads": self.reloads, **store})

    def routes_view(self) -> dict[str, Any]:
        return {
            "version": self.snapshot.version,
            "source": self.snapshot.source,
            "workers": [
                {"index": w.index, "pid": w.process.pid, "version": w.version, "ready": w.ready} for w in self.workers
            ],
            **redacted_routes(self.snapshot.config),
            "routes": route_views(self.snapshot.config),  # each marked static or dynamic
        }

    def _admin_tokens(self, port: int, stack: contextlib.AsyncExitStack) -> dict[str, str] | None:
        """The admin API's tokens; a generated token file is logged and removed at exit. StartError (one line)
        when a token_file cannot be read or the generated one cannot be written safely."""
        try:
            tokens, path = admin_tokens(self.settings.admin, port)
        except (ValueError, UnsafeTokenDirectory) as exc:
            raise StartError(str(exc)) from None
        except OSError as exc:
            raise StartError(f"cannot write the admin token file: {exc}") from None
        if path is not None:
            stack.callback(remove_token, path)
            log.info("admin token written to %s", path)  # SECURITY: the path, never the token
        elif tokens is None:
            log.warning(
                "no admin token configured and the admin listener %s is off loopback: only /health/* and /metrics "
                "are served; set admin.token to enable the admin API",
                self.settings.admin.listen,
            )
        return tokens

    async def _start_admin(self, sock: socket.socket, tokens: dict[str, str] | None) -> web.AppRunner:
        runner = web.AppRunner(admin_app(self, tokens), access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        log.info("admin listener on %s", self.settings.admin.listen)
        return runner


async def _discard(worker: WorkerHandle) -> None:
    """End a worker that never served (a failed start): kill its process and close its channel."""
    if worker.process.returncode is None:
        worker.process.kill()
    await worker.process.wait()
    worker.ready = False
    worker.channel.close()


def _errors(failure: list[str] | BaseException) -> list[str]:
    """A worker's refusal as log lines: its errors, or why it gave no answer."""
    if isinstance(failure, ConnectionError):
        return ["a worker died while preparing the new version"]
    if isinstance(failure, BaseException):
        return [f"a worker did not answer the prepare ({type(failure).__name__})"]
    return failure


#: secrets only the supervisor needs: a worker (and every filter in it) gets its settings over the control channel
_SUPERVISOR_ONLY = ("SLUICEGATE_ADMIN__TOKEN", "SLUICEGATE_ADMIN__TOKENS", "SLUICEGATE_STORE__REDIS_URL")


def _worker_environment() -> dict[str, str]:
    """This environment without the supervisor's secrets (readable in /proc/<pid>/environ of any worker)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_SUPERVISOR_ONLY)}


def _bind(what: str, where: Listen) -> socket.socket:
    """A listening socket on `where`. Raises StartError naming `what` and the address (a busy port, a bad host)."""
    family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
    try:
        sock = socket.create_server((where.host, where.port), family=family, backlog=1024, reuse_port=False)
    except OSError as exc:
        raise StartError(f"cannot bind the {what} to {where}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


async def _start_demo(listen: str | None) -> web.AppRunner | None:
    if listen is None:
        return None
    from gateway.demo import start_demo_upstream

    where = Listen.parse(listen)
    try:
        runner = await start_demo_upstream(where.host, where.port)
    except OSError as exc:
        raise StartError(f"cannot bind the demo upstream to {where}: {exc.strerror or exc}") from exc
    log.info("demo echo backend on %s (pid %d)", where, os.getpid())
    return runner
