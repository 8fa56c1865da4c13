"""The benchmark suite's own parts (benchmarks/): generated routes and nginx configs, the open-loop generator's
latency accounting, the report and the PNG writer; and, where nginx and wrk are installed, one tiny end-to-end run.

Timings here are guards against a hang, never measured thresholds.
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from benchmarks.floor_proxy import Client
from benchmarks.instructions import _instructions
from benchmarks.loadgen import LoadResult
from benchmarks.measure import Sample
from benchmarks.nginx import proxy_conf, upstream_conf
from benchmarks.openloop import Generator
from benchmarks.png import Canvas
from benchmarks.report import markdown, to_json
from benchmarks.routes import BENCH_ROUTE, routes_yaml
from benchmarks.scenarios import CHAIN, SCENARIOS
from benchmarks.squeeze import Limits, step_rates, verdict
from benchmarks.stats import Spread, percentile
from benchmarks.summary import Results
from benchmarks.tools import GatewayFlags, Pinning, plan_pinning
from gateway.app import Gateway
from tests.conftest import Upstream
from tests.needs import tools

REPO = Path(__file__).resolve().parent.parent
GUARD = 30.0  # seconds: a guard against a hang


# -- routes files ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("total", [1, 100, 1000])
def test_benchmarked_route_is_last_in_file_and_alone_in_the_index(total: int) -> None:
    gateway = Gateway()
    config = gateway.load_text(routes_yaml("http://127.0.0.1:9", (), total))
    assert len(config.routes) == total
    table = gateway.dispatcher.table
    assert table.routes[-1].id == BENCH_ROUTE
    assert [table.routes[rank].id for rank in table.candidates("127.0.0.1", "/bench/hello")] == [BENCH_ROUTE]


def test_every_gateway_scenario_is_a_valid_routes_file() -> None:
    for scenario in (s for s in SCENARIOS if s.kind == "gateway"):
        Gateway().load_text(routes_yaml("http://127.0.0.1:9", scenario.filters, scenario.routes))
    assert "StripPrefix=1" in CHAIN


# -- nginx configurations ----------------------------------------------------------------------------------------
def test_generated_nginx_configs_pass_nginx_t(tmp_path: Path) -> None:
    tools("nginx")
    for name, conf in (
        ("upstream", upstream_conf(tmp_path / "upstream", 18080)),
        ("proxy", proxy_conf(tmp_path / "proxy", 18081, 18080, tmp_path / "proxy" / "access.log")),
    ):
        root = tmp_path / name
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / "tmp" / kind).mkdir(parents=True)
        (root / "nginx.conf").write_text(conf)
        cmd = ["nginx", "-t", "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=GUARD, check=False)
        assert done.returncode == 0, done.stderr


# -- pinning, statistics, squeeze verdicts -----------------------------------------------------------------------
def test_pinning_gives_the_proxy_a_cpu_of_its_own() -> None:
    assert plan_pinning({0, 1}, True) == Pinning("0", "0", "1")
    assert plan_pinning({0, 1, 2, 3}, True) == Pinning("0", "1", "2")
    assert plan_pinning({0}, True) == Pinning(None, None, None)
    assert plan_pinning({0, 1}, False) == Pinning(None, None, None)


def test_percentiles_and_spreads() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert percentile(values, 50) == 500.0
    assert percentile(values, 99.9) == 999.0
    assert percentile([], 99) == 0.0
    assert Spread.of([3.0, 1.0, 2.0]) == Spread(2.0, 1.0, 3.0, 3)
    assert step_rates(10_000, 0.2, 0.1, 3) == [2000.0, 3000.0, 4000.0]


def _fixed(p99_ms: float, errors: int = 0, achieved: int = 1000, lag_us: float = 500.0) -> LoadResult:
    return LoadResult(achieved, 1.0, errors, 100.0, p99_ms * 1000, p99_ms * 2000, offered=1000.0, lag_p99_us=lag_us)


def test_squeeze_verdicts() -> None:
    limits = Limits(p99_us=10_000, error_rate=0.01)
    assert verdict(_fixed(2.0), limits) == "ok"
    assert verdict(_fixed(12.0), limits).startswith("p99")
    assert verdict(_fixed(2.0, errors=50), limits).startswith("errors")
    assert verdict(_fixed(2.0, achieved=900), limits).startswith("achieved")
    assert verdict(_fixed(2.0, lag_us=9000), limits).startswith("generator-limited")


# -- the open-loop generator ---------------------------------------------------------------------------------------
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _serve(stall: float) -> tuple[asyncio.Server, int, list[int]]:
    """A keep-alive server whose very first response is late by `stall` seconds; counts requests."""
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                seen.append(1)
                if len(seen) == 1:
                    await asyncio.sleep(stall)
                writer.write(RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


async def _generate(port: int, rate: float, duration: float, connections: int) -> Generator:
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    gen = Generator("127.0.0.1", port, request, rate, connections)
    await asyncio.wait_for(gen.run(duration, grace=2.0), GUARD)
    return gen


async def test_generator_sends_the_offered_rate() -> None:
    server, port, seen = await _serve(stall=0.0)
    async with server:
        gen = await _generate(port, rate=200, duration=0.5, connections=4)
    summary = gen.summary(0.5)
    assert summary["sent"] == 100 == summary["completed"] == len(seen)
    assert summary["errors"] == 0
    assert 0 < summary["p50_us"] <= summary["p99_us"]


async def test_a_stall_is_charged_to_every_request_queued_behind_it() -> None:
    """No coordinated omission: with one connection, requests due while the server stalls wait for the connection,
    and their wait counts. A closed-loop client would have charged the stall to one request only."""
    server, port, _ = await _serve(stall=0.3)
    async with server:
        gen = await _generate(port, rate=100, duration=0.6, connections=1)
    late = [latency for latency in gen.latencies if latency >= 0.1]
    assert len(late) >= 15  # ~30 requests fall due during the 0.3 s stall
    assert max(gen.latencies) >= 0.3
    assert gen.max_backlog >= 15


# -- report and chart ----------------------------------------------------------------------------------------------
def _sample(target: str, mode: str, rps: float, cpu: float | None) -> Sample:
    load = LoadResult(int(rps * 2), 2.0, 0, 500.0, 2000.0, 4000.0, offered=1000.0 if mode == "fixed" else None)
    rss = None if cpu is None else 100 * 2**20
    return Sample(target, mode, 0, load, cpu, 15.0, rss, None if cpu is None else 300.0, foreign=0.0)


def _results() -> Results:
    chosen = [s for s in SCENARIOS if s.name in ("direct", "nginx", "gateway", "gateway-1000-routes")]
    results = Results(
        {"cpu": "test"},
        {"connections": 64, "closed_loop_seconds": 2.0, "fixed_rate_seconds": 2.0, "repetitions": 1},
        Pinning("0", "0", "1"),
        GatewayFlags(True, True),
        chosen,
        fixed_rate=1000.0,
    )
    for mode in ("closed", "fixed"):
        results.samples += [
            _sample("direct", mode, 70_000, None),
            _sample("nginx", mode, 50_000, 20.0),
            _sample("gateway", mode, 8_000, 120.0),
            _sample("gateway-1000-routes", mode, 7_500, 125.0),
        ]
    return results


def test_report_has_the_ratios_and_the_route_table() -> None:
    results = _results()
    text = markdown(results, "test", "python -m benchmarks")
    assert "| gateway | 8,000 | 0.11× | 0.16× |" in text
    assert "| 120.0 | 6.00× | 100 |" in text
    assert "| 1,000 | 125.0 | +5.0 µs |" in text
    data = to_json(results)
    json.dumps(data)  # plain data all the way down
    targets = data["targets"]
    assert isinstance(targets, dict)
    assert targets["gateway"]["ratios"]["closed_cpu_vs_nginx"] == pytest.approx(6.0)


def _png_chunks(data: bytes) -> dict[bytes, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = {}, 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = body
        at += 12 + length
    return chunks


def test_png_is_well_formed() -> None:
    canvas = Canvas(30, 20)
    canvas.rect(-5, -5, 10, 10, (255, 0, 0))
    canvas.text(2, 2, "µs 1.5×", scale=1)
    chunks = _png_chunks(canvas.png())
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (30, 20)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == 20 * (1 + 30 * 3)
    assert raw[1:4] == b"\xff\x00\x00"  # the clipped red square's first pixel


def test_chart_renders() -> None:
    from benchmarks.chart import render

    chunks = _png_chunks(render(_results()))
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert width == 1200 and height > 300


# -- end to end ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_suite_runs_end_to_end(tmp_path: Path) -> None:
    tools("nginx", "wrk")
    cmd = [sys.executable, "-m", "benchmarks", "--only", "direct", "gateway", "--reps", "1", "--duration", "1"]
    cmd += ["--fixed-duration", "1", "--rate", "500", "--results-dir", str(tmp_path), "--name", "e2e"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((tmp_path / "e2e.json").read_text())
    gateway = data["targets"]["gateway"]
    assert gateway["closed"]["requests"] > 0 and gateway["closed"]["errors"] == 0
    assert gateway["fixed"]["proxy_cpu_us"]["median"] > 0
    assert (tmp_path / "e2e.png").read_bytes()[:4] == b"\x89PNG"
    assert "| gateway |" in (tmp_path / "e2e.md").read_text()


# -- the floor proxy and the instruction counter --------------------------------------------------------------------
async def test_floor_proxy_forwards_requests_on_keep_alive(upstream: Upstream) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(("127.0.0.1", upstream.port)), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(GUARD):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for path in ("/echo/one", "/echo/two"):
                writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = json.loads(await reader.readexactly(length))
                assert head.startswith(b"HTTP/1.1 200") and body["path"] == path
            writer.close()
    finally:
        server.close()


def test_instruction_totals_are_read_from_callgrind_output(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    out.write_text("# callgrind format\nevents: Ir\nfl=x\n0 5\nsummary: 1234567\ntotals: 1234567\n")
    assert _instructions(out) == 1234567
