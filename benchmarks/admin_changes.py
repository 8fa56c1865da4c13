"""1,000 admin API route changes with two workers under steady traffic: how long a change takes to answer, how long
after the answer it serves on fresh connections, and whether any background request failed (issue 11, "Tests and
measurements").

    python -m benchmarks.admin_changes                       # 1,000 changes, memory store, then file store
    python -m benchmarks.admin_changes --changes 200 --stores memory
    python -m benchmarks.admin_changes --changes 100 --preload 1000   # the same against 1,000 more dynamic routes

The gateway runs as in production (`python -m gateway run --workers 2`, admin listener and token from a settings
file, the file store in a temporary directory); the upstream (an aiohttp app answering `pong <path>`) and every
client run in this process, all on 127.0.0.1. The change mix is seeded (`--seed`): single puts of new and existing
dynamic ids, deletes, batches of 2-5 operations and rollbacks to one of the last 60 versions; each put tags its
route with `AddResponseHeader=X-Change, c<n>`, so a response says which change it was served by.

What is measured, per change, by one client that sends changes one after another:
- **API**: from just before the request is sent to its whole answer (the supervisor answers once every live
  worker committed the version).
- **visible**: from that answer until the first of `--rounds` consecutive *rounds* in which every checked route
  answered as the change says, each round one request per checked route, each on a fresh TCP connection (fresh
  connections land on either worker: the two share one listening socket). A put route must answer 200 from the
  upstream with its `X-Change` tag, a deleted one 404. Up to 8 of the ids a change touched are checked. The figure
  is the arrival time of the first good round's last response, so its resolution is one round (a connect plus one
  proxied request, about a millisecond here): with no stale round it is just that round's duration. `stale`
  counts wrong answers after the API answered (a worker still serving the old version): the contract says 0.
- After the rounds, `GET /routes` must show both workers ready at the answered version or later.
- **Background**: `--load-clients` keep-alive clients (and one opening a fresh connection per request) each send
  `GET /static/...` to a static route that exists throughout, pausing `--load-pause` s between requests; every
  answer must be 200 with the upstream's body.
- **changes/s**: number of changes / the sum of their API times (sequential changes, probes excluded).

A change compiles the whole config in the supervisor and in every worker, and the file store rewrites its whole
history: `--preload N` first puts N filler dynamic routes in one batch, to see what a change costs at that size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from benchmarks.procs import free_port, spawn
from benchmarks.stats import percentile

TOKEN = "admin-changes-benchmark-token-0123"  # a loopback-only gateway this script starts and stops
GUARD = 15.0  # seconds: a guard against a hang per request or per visibility check, never a threshold
ROUNDS = 8  # consecutive good rounds that make a change visible
MAX_CHECKED = 8  # ids probed per change
STATIC_PATH = "/static/"


def route(route_id: str, upstream: str, tag: str) -> dict[str, Any]:
    """A dynamic route at /dyn/<id>/** whose responses carry `X-Change: <tag>`."""
    return {
        "id": route_id,
        "uri": upstream,
        "predicates": [f"Path=/dyn/{route_id}/**"],
        "filters": [f"AddResponseHeader=X-Change, {tag}"],
    }


def static_routes(upstream: str) -> str:
    """routes.yaml: the one static route, which gets the background traffic."""
    static = {"id": "static", "uri": upstream, "predicates": [f"Path={STATIC_PATH}**"]}
    return yaml.safe_dump({"routes": [static]}, sort_keys=False)


@dataclass(frozen=True)
class Change:
    """One admin request of the mix and what the dynamic routes must be once it answered."""

    number: int
    kind: str  # put | delete | batch | rollback
    method: str
    path: str
    body: dict[str, Any] | None
    status: int  # the status the API must answer
    after: Mapping[str, str]  # dynamic route id -> its X-Change tag, after the change
    checked: tuple[str, ...]  # the ids probed through the data port


class ChangeMix:
    """A seeded sequence of changes over a pool of dynamic ids, and the dynamic routes of every version it made.

    The gateway starts at version 1 (the routes file, no dynamic routes; `first` after preloaded filler routes);
    each applied change is the next version.
    """

    def __init__(self, seed: int, upstream: str, pool: int = 24, rollback_window: int = 60, first: int = 1) -> None:
        self.random = random.Random(seed)
        self.upstream = upstream
        self.ids = [f"d{i:02d}" for i in range(pool)]
        self.window = rollback_window
        self.first = first  # the version the mix starts from (rollbacks never go further back)
        self.current = first
        self.states: dict[int, dict[str, str]] = {first: {}}
        self.count = 0

    @property
    def state(self) -> dict[str, str]:
        return self.states[self.current]

    def next(self) -> Change:
        """The next change, chosen on the current version's routes."""
        self.count += 1
        n, state = self.count, self.state
        roll = self.random.random()
        if roll < 0.15 and self.current > self.first:
            return self._rollback(n, state)
        if roll < 0.40:
            return self._batch(n, state)
        if roll < 0.60 and state:
            target = self.random.choice(sorted(state))
            after = {k: v for k, v in state.items() if k != target}
            return Change(n, "delete", "DELETE", f"/admin/v1/routes/{target}", None, 200, after, (target,))
        # A put: about half replace an existing id, the rest add one (while the pool has room).
        absent = [i for i in self.ids if i not in state]
        existing = bool(state) and self.random.random() < 0.5
        target = self.random.choice(sorted(state) if existing or not absent else absent)
        tag = f"c{n}"
        body = route(target, self.upstream, tag)
        status = 200 if target in state else 201
        return Change(n, "put", "PUT", f"/admin/v1/routes/{target}", body, status, {**state, target: tag}, (target,))

    def _batch(self, n: int, state: dict[str, str]) -> Change:
        touched = self.random.sample(self.ids, self.random.randint(2, 5))
        after: dict[str, str] = dict(state)
        operations: list[dict[str, Any]] = []
        for route_id in touched:
            if route_id in after and self.random.random() < 0.4:
                operations.append({"op": "delete", "id": route_id})
                del after[route_id]
            else:
                tag = f"c{n}"
                operations.append({"op": "put", "route": route(route_id, self.upstream, tag)})
                after[route_id] = tag
        body = {"operations": operations, "reason": f"load batch {n}"}
        return Change(n, "batch", "POST", "/admin/v1/batch", body, 200, after, tuple(touched[:MAX_CHECKED]))

    def _rollback(self, n: int, state: dict[str, str]) -> Change:
        target = self.random.randint(max(self.first, self.current - self.window), self.current - 1)
        after = self.states[target]
        changed = sorted(i for i in {**state, **after} if state.get(i) != after.get(i))
        checked = self.random.sample(changed, min(len(changed), MAX_CHECKED)) or [self.random.choice(self.ids)]
        body = {"reason": f"load rollback {n}"}
        return Change(n, "rollback", "POST", f"/admin/v1/rollback/{target}", body, 200, after, tuple(checked))

    def applied(self, change: Change, version: int) -> None:
        """`change` was answered as `version`: it is the current version from now on."""
        self.states[version] = dict(change.after)
        self.current = version


# -- the data port ---------------------------------------------------------------------------------------------------


async def fresh_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` on a new connection (`Connection: close`): (status, lower-case headers, body); (0, ..) if none."""
    try:
        async with asyncio.timeout(GUARD):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
                raw = await reader.read(-1)
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        return 0, {"error": repr(exc)}, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        return 0, {"error": f"no status line: {raw[:80]!r}"}, b""
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def answer_problem(route_id: str, tag: str | None, status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """None when a probe of /dyn/<id>/p answered as a route tagged `tag` (None: no such route, 404) must."""
    if tag is None:
        return None if status == 404 else f"{route_id}: deleted but answered {status} {headers.get('x-change')!r}"
    expected = f"pong /dyn/{route_id}/p".encode()
    if status == 200 and headers.get("x-change") == tag and body == expected:
        return None
    return f"{route_id}: want {tag}, got {status} {headers.get('x-change')!r} {body[:60]!r}"


@dataclass
class Probe:
    """How one change became visible: `visible_s` from the answer until the last worker served it (None: not
    within the guard), `workers` the first good answer of each worker (by its request-id prefix), `stale` every
    wrong answer after the API answered."""

    visible_s: float | None
    workers: dict[str, float]
    stale: list[str]
    requests: int
    answers: dict[str, int]  # good answers per worker


def worker_of(headers: Mapping[str, str]) -> str:
    """The worker that answered: the per-process prefix of the request id it generated (gateway.observability)."""
    return headers.get("x-request-id", "")[:12]


async def probe(port: int, expected: Mapping[str, str | None], rounds: int, workers: int, answered: float) -> Probe:
    """Rounds of one fresh-connection request per id until `rounds` consecutive rounds all answered as expected
    and each of `workers` workers answered at least once."""
    stale: list[str] = []
    first: dict[str, float] = {}
    answers: dict[str, int] = {}
    good, requests = 0, 0
    deadline = answered + GUARD
    while (good < rounds or len(first) < workers) and time.monotonic() < deadline:
        replies = await asyncio.gather(*(timed_get(port, f"/dyn/{i}/p") for i in expected))
        requests += len(replies)
        good += 1
        for (route_id, tag), (arrived, status, headers, body) in zip(expected.items(), replies, strict=True):
            problem = answer_problem(route_id, tag, status, headers, body)
            if problem is not None:
                stale.append(f"{problem} (worker {worker_of(headers)})")
                good = 0
            elif worker := worker_of(headers):
                first.setdefault(worker, arrived)
                answers[worker] = answers.get(worker, 0) + 1
    done = good >= rounds and len(first) >= workers
    return Probe(max(first.values()) - answered if done else None, first, stale, requests, answers)


async def timed_get(port: int, path: str) -> tuple[float, int, dict[str, str], bytes]:
    """`fresh_get` with the time its answer arrived."""
    status, headers, body = await fresh_get(port, path)
    return time.monotonic(), status, headers, body


@dataclass
class Load:
    """Steady background traffic to the static route; every answer is checked as it arrives."""

    port: int
    pause: float
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def _check(self, path: str, status: int, body: bytes) -> None:
        if status == 200 and body == f"pong {path}".encode():
            self.ok += 1
        else:
            self.failures.append(f"{path}: {status} {body[:80]!r}")

    async def keep_alive(self, number: int) -> None:
        timeout = aiohttp.ClientTimeout(total=GUARD)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=1)) as session:
            for sequence in range(sys.maxsize):
                if self.stop.is_set():
                    return
                path = f"{STATIC_PATH}k{number}/{sequence}"
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}{path}") as resp:
                        self._check(path, resp.status, await resp.read())
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failures.append(f"{path}: {exc!r}")
                await asyncio.sleep(self.pause)

    async def fresh(self) -> None:
        for sequence in range(sys.maxsize):
            if self.stop.is_set():
                return
            path = f"{STATIC_PATH}f/{sequence}"
            status, headers, body = await fresh_get(self.port, path)
            self._check(path, status, body if status else headers.get("error", "").encode())
            await asyncio.sleep(self.pause)

    async def run(self, clients: int) -> None:
        """`clients` keep-alive clients and one fresh-connection client until `stop` is set."""
        await asyncio.gather(*(self.keep_alive(i) for i in range(clients)), self.fresh())


# -- the changes -----------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One change as the gateway answered it."""

    change: Change
    status: int
    body: str
    version: int | None
    api_s: float
    probe: Probe
    workers: list[dict[str, Any]]

    def problems(self, previous: int) -> list[str]:
        """What went wrong with this change (answered after version `previous`): [] when nothing did."""
        c, found = self.change, []
        if self.status != c.status:
            found.append(f"answered {self.status}, not {c.status}: {self.body[:200]}")
        if self.version != previous + 1:
            found.append(f"version {self.version}, not {previous + 1}")
        if self.probe.visible_s is None:
            found.append(f"not seen in both workers and {ROUNDS} good rounds within {GUARD:g}s: {self.probe}")
        if self.probe.stale:
            found.append(f"{len(self.probe.stale)} stale answers after the API answered: {self.probe.stale[:3]}")
        if len(self.workers) != 2 or not all(w["ready"] and w["version"] >= (self.version or 0) for w in self.workers):
            found.append(f"workers not all at version {self.version}: {self.workers}")
        return [f"change {c.number} ({c.kind} {c.path}): {p}" for p in found]


@dataclass
class Admin:
    """The admin listener, with the bearer token."""

    session: aiohttp.ClientSession
    port: int
    token: str

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        url = f"http://127.0.0.1:{self.port}{path}"
        async with self.session.request(method, url, json=body, headers=headers) as resp:
            return resp.status, await resp.text()

    async def json(self, path: str) -> Any:
        status, text = await self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {text[:200]}")
        return json.loads(text)


async def apply_changes(
    admin: Admin, data_port: int, mix: ChangeMix, changes: int, rounds: int = ROUNDS, workers: int = 2
) -> list[Outcome]:
    """Send `changes` changes of `mix` one after another, probing each through the data port after its answer."""
    outcomes = []
    for _ in range(changes):
        change = mix.next()
        sent = time.monotonic()
        status, body = await admin.request(change.method, change.path, change.body)
        answered = time.monotonic()
        version: int | None = None
        if status in (200, 201):
            version = int(json.loads(body)["version"])
            mix.applied(change, version)
        expected = {i: change.after.get(i) for i in change.checked}
        seen = await probe(data_port, expected, rounds, workers, answered)
        shown = (await admin.json("/routes"))["workers"]
        outcomes.append(Outcome(change, status, body, version, answered - sent, seen, shown))
    return outcomes


def problems_of(outcomes: Sequence[Outcome], first_version: int = 1) -> list[str]:
    """Every problem of every change, in order."""
    found, previous = [], first_version
    for outcome in outcomes:
        found += outcome.problems(previous)
        previous = outcome.version if outcome.version is not None else previous
    return found


async def final_problems(data_port: int, mix: ChangeMix) -> list[str]:
    """Every id of the pool, on fresh connections, against the last version's routes."""
    found = []
    for route_id in mix.ids:
        problem = answer_problem(route_id, mix.state.get(route_id), *await fresh_get(data_port, f"/dyn/{route_id}/p"))
        if problem is not None:
            found.append(f"final state: {problem}")
    return found


# -- the measurement -------------------------------------------------------------------------------------------------


async def start_pong() -> web.AppRunner:
    async def pong(request: web.Request) -> web.Response:
        return web.Response(text=f"pong {request.path}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", pong)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def preload(admin: Admin, upstream: str, count: int) -> int:
    """Put `count` filler dynamic routes (/pre/<n>/**, never probed) in one batch; the version the mix starts at."""
    if count == 0:
        return 1
    operations = [
        {"op": "put", "route": {**route(f"p{i:05d}", upstream, "pre"), "predicates": [f"Path=/pre/{i}/**"]}}
        for i in range(count)
    ]
    status, text = await admin.request("POST", "/admin/v1/batch", {"operations": operations, "reason": "preload"})
    if status != 200:
        raise RuntimeError(f"the preload batch answered {status}: {text[:300]}")
    return int(json.loads(text)["version"])


def summary(values: Sequence[float]) -> str:
    ordered = sorted(values)
    ms = [percentile(ordered, 50) * 1e3, percentile(ordered, 99) * 1e3, ordered[-1] * 1e3]
    return "p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms".format(*ms)


async def _wait_ready(admin: Admin, guard: float = 60.0) -> None:
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        try:
            if (await admin.request("GET", "/health/ready"))[0] == 200:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the gateway was not ready within {guard:g}s")


async def measure(store: str, args: argparse.Namespace) -> bool:
    """One run (`store`: memory or file); prints its figures; True when nothing failed."""
    runner = await start_pong()
    upstream = f"http://127.0.0.1:{runner.addresses[0][1]}"
    with tempfile.TemporaryDirectory(prefix="admin-changes-") as tmp:
        root = Path(tmp)
        config = root / "routes.yaml"
        config.write_text(static_routes(upstream))
        settings: dict[str, Any] = {"admin": {"token": TOKEN}}
        if store == "file":
            settings["store"] = {"path": str(root / "store.json")}
        (root / "settings.yaml").write_text(yaml.safe_dump(settings))
        port, admin_port = free_port(), free_port()
        cmd = [sys.executable, "-m", "gateway", "run", "--config", str(config)]
        cmd += ["--settings", str(root / "settings.yaml"), "--listen", f"127.0.0.1:{port}"]
        cmd += ["--admin-listen", f"127.0.0.1:{admin_port}", "--workers", "2"]
        cmd += ["--log-level", "WARNING"]
        gateway = spawn("gateway", cmd, root)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=GUARD)) as session:
            admin = Admin(session, admin_port, TOKEN)
            try:
                await _wait_ready(admin)
                load = Load(port, args.load_pause)
                traffic = asyncio.create_task(load.run(args.load_clients))
                first = await preload(admin, upstream, args.preload)
                mix = ChangeMix(args.seed, upstream, first=first)
                started = time.monotonic()
                try:
                    outcomes = await apply_changes(admin, port, mix, args.changes, args.rounds)
                finally:
                    load.stop.set()
                    await traffic
                wall = time.monotonic() - started
                problems = problems_of(outcomes, first) + await final_problems(port, mix)
                current = (await admin.json("/admin/v1/versions"))["current"]
            finally:
                gateway.stop()
                await runner.cleanup()
    if current != first + args.changes:
        problems.append(f"GET /admin/v1/versions: current {current}, not {first + args.changes}")
    api = [o.api_s for o in outcomes]
    visible = [o.probe.visible_s for o in outcomes if o.probe.visible_s is not None]
    kinds = {k: sum(1 for o in outcomes if o.change.kind == k) for k in ("put", "delete", "batch", "rollback")}
    stale = sum(len(o.probe.stale) for o in outcomes)
    preloaded = f", {args.preload} filler dynamic routes" if args.preload else ""
    mixed = ", ".join(f"{v} {k}" for k, v in kinds.items())
    print(f"store {store}{preloaded}: {len(outcomes)} changes ({mixed}) in {wall:.1f} s")
    print(f"  API (sent -> answered):               {summary(api)}")
    print(f"  visible (answered -> the last worker served it): {summary(visible)}" if visible else "  visible: none")
    requests = sorted(o.probe.requests for o in outcomes)
    print(f"  probe requests per change: p50 {percentile(requests, 50):.0f}, max {requests[-1]}")
    per_worker: dict[str, int] = {}
    for outcome in outcomes:
        for worker, count in outcome.probe.answers.items():
            per_worker[worker] = per_worker.get(worker, 0) + count
    print(f"  probe answers after the API answered: {sum(per_worker.values())}, stale {stale}")
    print(f"  good answers per worker (request-id prefix): {per_worker}")
    print(f"  background: {load.ok} ok, {len(load.failures)} failed {load.failures[:3]}")
    print(f"  changes/s (sequential, API time only): {len(api) / sum(api):.0f}")
    for problem in problems[:20]:
        print(f"  PROBLEM: {problem}")
    return not problems and not load.failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=1000, help="changes per store (default 1000)")
    parser.add_argument("--stores", nargs="+", choices=("memory", "file"), default=["memory", "file"])
    parser.add_argument("--seed", type=int, default=11, help="seed of the change mix (default 11)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"consecutive good rounds (default {ROUNDS})")
    parser.add_argument("--preload", type=int, default=0, help="filler dynamic routes put first (default 0)")
    parser.add_argument("--load-clients", type=int, default=3, help="keep-alive background clients (default 3)")
    parser.add_argument("--load-pause", type=float, default=0.005, help="s between a client's requests (0.005)")
    args = parser.parse_args()
    ok = all([asyncio.run(measure(store, args)) for store in args.stores])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
