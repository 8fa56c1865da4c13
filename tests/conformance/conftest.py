"""Fixtures of the conformance tests: upstreams of three stacks and the gateway routed to them.

nginx and httpbin-under-gunicorn are processes started once for this package (they cost seconds to start and hold
no per-test state a test could depend on); the aiohttp upstream and every gateway are per test, as elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import needs
from tests.conformance import servers
from tests.conformance.apps import conformance_app
from tests.conftest import GatewayUnderTest, StartGateway, StartRaw, StartUpstream
from tests.helpers import one_route

if TYPE_CHECKING:
    from tests.conformance.scripted import ScriptedUpstream

# The shared client and comparison helpers assert; their failures should report like a test's own.
pytest.register_assert_rewrite("tests.conformance.client", "tests.conformance.compare", "tests.conformance.scripted")
LOG_GUARD = 20.0  # seconds an upstream process may take to write its access-log line; a guard, not a measurement


@dataclass
class NginxUpstream:
    service: servers.Service
    large_sha256: str


@pytest.fixture(scope="package")
def httpbin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Service]:
    """httpbin under gunicorn on 127.0.0.1:<ephemeral>, for the whole package."""
    root = Path(tmp_path_factory.mktemp("httpbin"))
    service = servers.start_httpbin(root)
    yield service
    service.stop()


@pytest.fixture(scope="package")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxUpstream]:
    """Debian's nginx serving static files and `return` locations, for the whole package."""
    needs.tools("nginx")
    root = Path(tmp_path_factory.mktemp("nginx"))
    large = servers.write_static(root)
    service = servers.start_nginx(root)
    yield NginxUpstream(service, large)
    service.stop()


@dataclass
class Stack:
    """One upstream under test and where it offers each behaviour the common tests exercise.

    Targets are what the upstream itself serves; the gateway forwards every path unchanged (one `Path=/**` route).
    """

    name: str
    port: int
    seen: Callable[[str], bool]  # did a request whose target holds this marker reach the upstream?
    pipeline: list[tuple[str, bytes]]  # three targets with distinguishable bodies
    head: str  # a GET target with a fixed Content-Length
    no_content: str  # answers 204
    etag: str  # answers with an ETag and 304 to If-None-Match with it
    redirect: str
    repeated: tuple[str, str, list[str]]  # target, a response header name it repeats, its values in order
    chunked: tuple[str, list[tuple[str, str]]]  # a target (and request headers) answered chunked, deterministically
    gzip: tuple[str, list[tuple[str, str]], bool]  # target, headers, whether the bytes are the same on every call

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"


def nginx_stack(nginx: NginxUpstream) -> Stack:
    service = nginx.service
    return Stack(
        name="nginx",
        port=service.port,
        seen=service.seen,
        pipeline=[("/ok", b"ok\n"), ("/multi", b"multi\n"), ("/ok", b"ok\n")],
        head="/static/small.txt",
        no_content="/no-content",
        etag="/static/small.txt",
        redirect="/redirect",
        repeated=("/multi", "X-Multi", ["one", "two"]),
        chunked=("/gzip/small.txt", [("Accept-Encoding", "gzip")]),
        gzip=("/gzip/small.txt", [("Accept-Encoding", "gzip")], True),
    )


def httpbin_stack(httpbin: servers.Service) -> Stack:
    return Stack(
        name="httpbin",
        port=httpbin.port,
        seen=httpbin.seen,
        pipeline=[("/base64/Zmlyc3QK", b"first\n"), ("/base64/c2Vjb25kCg==", b"second\n"), ("/base64/Zmlyc3QK", b"")],
        head="/bytes/64?seed=3",
        no_content="/status/204",
        etag="/etag/conformance",
        redirect="/redirect-to?url=/get&status_code=307",
        repeated=("/response-headers?a=1&a=2", "a", ["1", "2"]),
        chunked=("/stream-bytes/3000?chunk_size=7&seed=5", []),
        gzip=("/gzip", [], False),  # the body echoes the request, which differs between direct and proxied
    )


@pytest.fixture(params=["aiohttp", "nginx", "httpbin"])
async def stack(request: pytest.FixtureRequest, start_upstream: StartUpstream) -> Stack:
    """Each upstream stack in turn."""
    if request.param == "nginx":
        return nginx_stack(request.getfixturevalue("nginx"))
    if request.param == "httpbin":
        return httpbin_stack(request.getfixturevalue("httpbin"))
    upstream = await start_upstream(conformance_app())
    return Stack(
        name="aiohttp",
        port=upstream.port,
        seen=lambda marker: any(marker in hit.raw_path for hit in upstream.hits),
        pipeline=[("/ok", b"ok\n"), ("/multi", b"multi\n"), ("/ok", b"ok\n")],
        head="/doc",
        no_content="/no-content",
        etag="/not-modified",
        redirect="/redirect",
        repeated=("/multi", "X-Multi", ["one", "two"]),
        chunked=("/stream?n=50&size=333", []),
        gzip=("/gzip", [], True),
    )


async def gateway_to(start_gateway: StartGateway, port: int) -> GatewayUnderTest:
    """A gateway forwarding every path, unchanged, to 127.0.0.1:`port`."""
    return await start_gateway(one_route(f"http://127.0.0.1:{port}", "[]"))


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait (within the guard) until `check()` holds: for effects that land in another process's log."""
    deadline = time.monotonic() + LOG_GUARD
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def stack_gateway(stack: Stack, start_gateway: StartGateway) -> AsyncIterator[GatewayUnderTest]:
    yield await gateway_to(start_gateway, stack.port)


@pytest.fixture
async def scripted(start_raw: StartRaw, start_gateway: StartGateway) -> tuple[ScriptedUpstream, int]:
    from tests.conformance.scripted import ScriptedUpstream  # after the assert-rewrite registration above

    upstream = ScriptedUpstream()
    port = await start_raw(upstream.serve)
    gw = await start_gateway(one_route(f"http://127.0.0.1:{port}", "[]"))
    return upstream, gw.port
