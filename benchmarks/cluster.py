"""Three replicas on one Redis: how long after the admin API answered a change every worker of every replica
serves it (issue 12, "Tests and measurements"; the target is a max of 1 s).

    python -m benchmarks.cluster                      # 3 instances x 2 workers, 100 changes
    python -m benchmarks.cluster --changes 300 --instances 3 --poll-interval 1

A private `redis-server` (no persistence) on a free loopback port, and `--instances` gateways as in production
(`python -m gateway run --workers 2`, the Redis store from a settings file, `store.poll_interval` as given); the
upstream (an aiohttp app answering `pong <path>`) and every client run in this process, all on 127.0.0.1.

Each change is a PUT of one of 10 dynamic ids, tagged `AddResponseHeader=X-Change, c<n>`, sent to the instances
in turn (change n to instance n mod N), one after another. What is measured, per change:
- **API**: from just before the request is sent to its whole answer (the answering instance's own workers have
  committed the version by then).
- **all workers serving**: from that answer until every worker of every instance has answered the changed route
  with the change's tag. Workers are told apart as admin_changes.py does, by the per-process prefix of the request
  id each generates: rounds of `--probes` concurrent fresh-connection requests per instance (the kernel hands each
  connection to either worker of that instance) until each of the instances x 2 workers answered with the new tag;
  a worker's time is the arrival of its first good answer. This is what a client sees, end to end (pub/sub or
  poll, the replica's store read, validation, prepare and commit in both workers); its resolution is one round of
  fresh-connection requests (a few ms), and its tail includes how long until the kernel handed a probe to the
  worker not seen yet. `GET /routes` worker versions would be more precise about the commit but say nothing of
  what serves; they are only checked at the end.
- **stale on the answering instance**: wrong answers from the instance that answered the API, after its answer
  (the contract says 0; the other instances answer the old version until they learn of the new one);
  **regressions**: a worker answering an older tag after it answered the new one (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks.admin_changes import (
    GUARD,
    Admin,
    _wait_ready,
    fresh_get,
    route,
    start_pong,
    static_routes,
    summary,
    worker_of,
)
from benchmarks.procs import Service, free_port, spawn, wait_port

TOKEN = "cluster-benchmark-token-0123456789"  # loopback-only gateways this script starts and stops
PREFIX = "sluicegate-bench:"
IDS = 10  # dynamic ids the changes cycle through
WORKERS = 2


@dataclass
class Seen:
    """How one change became visible on every worker."""

    number: int
    instance: int
    api_s: float
    version: int | None
    all_s: float | None  # answered -> the last of the workers served it (None: not within the guard)
    workers: dict[tuple[int, str], float] = field(default_factory=dict)  # (instance, worker) -> seconds
    stale_answering: int = 0
    regressions: list[str] = field(default_factory=list)
    requests: int = 0


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--daemonize", "no", "--dir", str(directory), "--logfile", str(directory / "redis.log")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


async def visible(
    ports: Sequence[int], route_id: str, tag: str, answering: int, answered: float, probes: int, number: int
) -> Seen:
    """Probe every instance until each of its workers answered `/dyn/<route_id>/p` with `tag`."""
    seen = Seen(number, answering, 0.0, None, None)
    tags: dict[tuple[int, str], str] = {}  # the last tag each worker answered
    deadline = answered + GUARD
    want = len(ports) * WORKERS
    while len(seen.workers) < want and time.monotonic() < deadline:
        jobs = [(i, port) for i, port in enumerate(ports) for _ in range(probes)]
        replies = await asyncio.gather(*(fresh_get(port, f"/dyn/{route_id}/p") for _, port in jobs))
        arrived = time.monotonic()
        seen.requests += len(replies)
        for (instance, _), (status, headers, body) in zip(jobs, replies, strict=True):
            worker = worker_of(headers)
            got = headers.get("x-change") if status == 200 and body == f"pong /dyn/{route_id}/p".encode() else None
            if not worker:
                continue
            key = (instance, worker)
            if got == tag:
                seen.workers.setdefault(key, arrived - answered)
            else:
                if instance == answering:
                    seen.stale_answering += 1
                if tags.get(key) == tag:
                    seen.regressions.append(f"instance {instance} worker {worker}: {tag} then {got}")
            tags[key] = got or ""
        await asyncio.sleep(0.002)
    if len(seen.workers) == want:
        seen.all_s = max(seen.workers.values())
    return seen


async def measure(args: argparse.Namespace) -> bool:
    runner = await start_pong()
    upstream = f"http://127.0.0.1:{runner.addresses[0][1]}"
    gateways: list[Service] = []
    with tempfile.TemporaryDirectory(prefix="cluster-") as tmp:
        root = Path(tmp)
        redis, redis_port = start_redis(root)
        try:
            settings = {
                "admin": {"token": TOKEN},
                "store": {
                    "redis_url": f"redis://127.0.0.1:{redis_port}/0",
                    "key_prefix": PREFIX,
                    "poll_interval": args.poll_interval,
                },
            }
            ports, admin_ports = [], []
            for n in range(args.instances):
                directory = root / f"gw{n}"
                directory.mkdir()
                (directory / "routes.yaml").write_text(static_routes(upstream))
                (directory / "settings.yaml").write_text(yaml.safe_dump(settings))
                port, admin_port = free_port(), free_port()
                cmd = [sys.executable, "-m", "gateway", "run", "--config", str(directory / "routes.yaml")]
                cmd += ["--settings", str(directory / "settings.yaml"), "--listen", f"127.0.0.1:{port}"]
                cmd += ["--admin-listen", f"127.0.0.1:{admin_port}", "--workers", str(WORKERS)]
                cmd += ["--log-level", "WARNING"]
                gateways.append(spawn(f"gw{n}", cmd, directory))
                ports.append(port)
                admin_ports.append(admin_port)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=GUARD)) as session:
                admins = [Admin(session, p, TOKEN) for p in admin_ports]
                for admin in admins:
                    await _wait_ready(admin)
                results = await run_changes(admins, ports, upstream, args)
                views = [await admin.json("/routes") for admin in admins]
                histories = [await admin.json("/admin/v1/versions") for admin in admins]
        finally:
            for gateway in gateways:
                gateway.stop()
            redis.terminate()
            redis.wait(GUARD)
            await runner.cleanup()
    return report(results, views, histories, args)


async def run_changes(admins: list[Admin], ports: list[int], upstream: str, args: argparse.Namespace) -> list[Seen]:
    results = []
    for n in range(args.changes):
        instance = n % len(admins)
        route_id, tag = f"c{n % IDS}", f"c{n}"
        sent = time.monotonic()
        status, body = await admins[instance].request(
            "PUT", f"/admin/v1/routes/{route_id}", route(route_id, upstream, tag)
        )
        answered = time.monotonic()
        if status not in (200, 201):
            print(f"  change {n} on instance {instance} answered {status}: {body[:200]}")
            results.append(Seen(n, instance, answered - sent, None, None))
            continue
        seen = await visible(ports, route_id, tag, instance, answered, args.probes, n)
        seen.api_s, seen.version = answered - sent, int(json.loads(body)["version"])
        results.append(seen)
    return results


def report(results: list[Seen], views: list[Any], histories: list[Any], args: argparse.Namespace) -> bool:
    problems = []
    first = results[0].version if results and results[0].version else 0
    versions = [r.version for r in results]
    if versions != list(range(first, first + len(results))):
        problems.append(f"versions not consecutive: {versions}")
    for r in results:
        if r.all_s is None:
            problems.append(f"change {r.number}: not served by every worker within {GUARD:g}s ({r.workers})")
        if r.stale_answering:
            problems.append(f"change {r.number}: {r.stale_answering} stale answers from the answering instance")
        problems += [f"change {r.number}: regression {x}" for x in r.regressions]
    last = versions[-1] if versions else None
    for n, view in enumerate(views):
        if view["version"] != last or any(w["version"] != last for w in view["workers"]):
            problems.append(f"instance {n}: /routes {view['version']} {[w['version'] for w in view['workers']]}")
    if len({json.dumps(h, sort_keys=True) for h in histories}) != 1:
        problems.append("the instances list different histories")
    api = [r.api_s for r in results]
    seen = [r.all_s for r in results if r.all_s is not None]
    print(
        f"{args.instances} instances x {WORKERS} workers on one redis-server, store.poll_interval "
        f"{args.poll_interval:g} s, {len(results)} changes round-robin"
    )
    print(f"  API (sent -> answered):                          {summary(api)}")
    if seen:
        over = sum(1 for s in seen if s > 1.0)
        print(f"  answered -> every worker of every instance serves: {summary(seen)}; over 1 s: {over}")
        remote = [t for r in results for (i, _), t in r.workers.items() if i != r.instance]
        local = [t for r in results for (i, _), t in r.workers.items() if i == r.instance]
        print(f"    per worker, other instances:                  {summary(remote)}")
        print(f"    per worker, the answering instance:           {summary(local)}")
    requests = sorted(r.requests for r in results)
    print(f"  probe requests per change: p50 {requests[len(requests) // 2]}, max {requests[-1]}")
    stale = sum(r.stale_answering for r in results)
    regressions = sum(len(r.regressions) for r in results)
    print(f"  stale answers from the answering instance: {stale}; regressions: {regressions}")
    for problem in problems[:20]:
        print(f"  PROBLEM: {problem}")
    return not problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=100, help="changes (default 100)")
    parser.add_argument("--instances", type=int, default=3, help="gateways on the one Redis (default 3)")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="store.poll_interval, s (default 1)")
    parser.add_argument("--probes", type=int, default=4, help="fresh-connection probes per instance and round (4)")
    args = parser.parse_args()
    ok = asyncio.run(measure(args))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
