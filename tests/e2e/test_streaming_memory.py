"""Streaming both ways through the real `sluicegate` process: 1 GiB up and 1 GiB down, bounded gateway memory.

The gateway runs as a subprocess (`python -m gateway run`) in front of an aiohttp upstream running in this test
process. Both ends hash what they sent and received; the gateway's peak RSS (VmHWM) after the transfers may exceed
its RSS before them by at most 64 MiB. Run with `pytest -s -m slow tests/e2e/test_streaming_memory.py` to see the
measured figures.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import StartUpstream
from tests.helpers import free_port

MiB = 1 << 20
TOTAL = 1 << 30  # 1 GiB each way
CHUNK = 256 * 1024
MAX_GROWTH = 64 * MiB
#: 256 KiB of deterministic pseudo-random bytes; each chunk starts with its own index so that a lost,
#: repeated or reordered chunk changes the digest.
_BASE = hashlib.shake_256(b"sluicegate streaming test").digest(CHUNK)


def chunk_at(index: int, size: int = CHUNK) -> bytes:
    return (index.to_bytes(8, "big") + _BASE[8:])[:size]


def upstream_app(sent_digests: dict[int, str]) -> web.Application:
    """POST /upload hashes the streamed body; GET /download/{n} streams n bytes and records their digest."""

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for data in request.content.iter_any():
            digest.update(data)
            size += len(data)
        return web.json_response({"sha256": digest.hexdigest(), "size": size})

    async def download(request: web.Request) -> web.StreamResponse:
        total = int(request.match_info["n"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = total
        await response.prepare(request)
        digest = hashlib.sha256()
        index = sent = 0
        while sent < total:
            data = chunk_at(index, min(CHUNK, total - sent))
            digest.update(data)
            await response.write(data)
            sent += len(data)
            index += 1
        await response.write_eof()
        sent_digests[total] = digest.hexdigest()
        return response

    app = web.Application()
    app.router.add_post("/upload", upload)
    app.router.add_get("/download/{n:\\d+}", download)
    return app


def proc_status_kib(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak measured is the transfer's own."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def wait_for_port(proc: subprocess.Popen[bytes], port: int, stderr_file: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}:\n{stderr_file.read_text()[-4000:]}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"gateway did not listen on {port} within 30 s:\n{stderr_file.read_text()[-4000:]}")


async def upload(session: aiohttp.ClientSession, url: str, total: int) -> tuple[str, dict[str, object]]:
    """POST `total` bytes as a chunked stream; return (digest of what was sent, the upstream's answer)."""
    digest = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        sent = index = 0
        while sent < total:
            data = chunk_at(index, min(CHUNK, total - sent))
            digest.update(data)
            yield data
            sent += len(data)
            index += 1

    async with session.post(url, data=body()) as resp:
        assert resp.status == 200, await resp.text()
        answer: dict[str, object] = await resp.json()
    return digest.hexdigest(), answer


async def download(session: aiohttp.ClientSession, url: str) -> tuple[str, int]:
    """GET `url`, hashing as it reads; return (digest, size)."""
    digest = hashlib.sha256()
    size = 0
    async with session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        async for data in resp.content.iter_chunked(CHUNK):
            digest.update(data)
            size += len(data)
    return digest.hexdigest(), size


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_one_gib_each_way_with_bounded_gateway_memory(start_upstream: StartUpstream, tmp_path: Path) -> None:
    sent_digests: dict[int, str] = {}
    upstream = await start_upstream(upstream_app(sent_digests))
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"""
routes:
  - id: stream
    uri: {upstream.url}
    predicates: ["Path=/big/**"]
    filters: [StripPrefix=1]
"""
    )
    port = free_port()
    stdout_file, stderr_file = tmp_path / "gateway.stdout", tmp_path / "gateway.stderr"
    with stdout_file.open("wb") as out, stderr_file.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(routes), "--listen", f"127.0.0.1:{port}"]
            + ["--admin-listen", f"127.0.0.1:{free_port()}"],  # never the default 9090: it may be taken
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
        )
    try:
        await wait_for_port(proc, port, stderr_file)
        base = f"http://127.0.0.1:{port}/big"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            # Warm-up: one small exchange each way, so one-time costs (lazy imports, first pooled connection)
            # are not counted as streaming growth.
            warm_digest, warm_answer = await upload(session, base + "/upload", 4 * MiB)
            assert warm_answer == {"sha256": warm_digest, "size": 4 * MiB}
            assert (await download(session, f"{base}/download/{4 * MiB}"))[0] == sent_digests[4 * MiB]

            reset = reset_peak_rss(proc.pid)
            rss_before = proc_status_kib(proc.pid, "VmRSS")
            hwm_before = proc_status_kib(proc.pid, "VmHWM")

            started = time.perf_counter()
            sent_up, answer = await upload(session, base + "/upload", TOTAL)
            up_seconds = time.perf_counter() - started
            hwm_after_upload = proc_status_kib(proc.pid, "VmHWM")

            started = time.perf_counter()
            received_down, size_down = await download(session, f"{base}/download/{TOTAL}")
            down_seconds = time.perf_counter() - started
            hwm_after = proc_status_kib(proc.pid, "VmHWM")
            rss_after = proc_status_kib(proc.pid, "VmRSS")

        growth_kib = hwm_after - rss_before
        print(
            f"\ngateway RSS before {rss_before / 1024:.1f} MiB (VmHWM {hwm_before / 1024:.1f} MiB, "
            f"peak reset: {reset}); peak after upload {hwm_after_upload / 1024:.1f} MiB, "
            f"after download {hwm_after / 1024:.1f} MiB; RSS after {rss_after / 1024:.1f} MiB\n"
            f"peak growth {growth_kib / 1024:.1f} MiB (limit {MAX_GROWTH // MiB} MiB); "
            f"upload {TOTAL / 1e6 / up_seconds:.0f} MB/s ({up_seconds:.1f} s), "
            f"download {TOTAL / 1e6 / down_seconds:.0f} MB/s ({down_seconds:.1f} s)"
        )
        assert answer == {"sha256": sent_up, "size": TOTAL}
        assert size_down == TOTAL
        assert received_down == sent_digests[TOTAL]
        assert growth_kib * 1024 <= MAX_GROWTH
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
