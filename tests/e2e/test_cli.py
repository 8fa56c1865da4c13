"""Whole-process tests of the `sluicegate` command: validate, run (with the shipped demo), python -m gateway."""

from __future__ import annotations

import importlib.metadata
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_for_port(port: int, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"gateway exited early with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} did not open within {timeout}s")


def sluicegate(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_validate_accepts_the_shipped_routes() -> None:
    result = sluicegate("validate", "routes.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_validate_prints_every_error_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - id: x\n    uri: http://h\n    filters: [StripPrefix=-2, Nope=1]\n")
    result = sluicegate("validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}:4: routes[0].filters[0].args.parts:" in result.stderr
    assert "routes[0].filters[1]: unknown filter 'Nope'" in result.stderr


def test_run_refuses_an_invalid_file_before_listening(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [{id: x, uri: 'lb://pool'}]\n")
    port = free_port()
    result = sluicegate(
        "run", "--config", str(bad), "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{free_port()}"
    )
    assert result.returncode == 1
    assert "routes[0].uri" in result.stderr and "lb://" in result.stderr


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    absent = str(tmp_path / "absent.yaml")
    result = sluicegate("run", "--config", absent, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
    assert result.returncode == 1 and "absent.yaml" in result.stderr


@pytest.fixture
def demo_gateway(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`python -m gateway run` with the shipped routes.yaml (demo backend moved to a free port)."""
    demo_port, port = free_port(), free_port()
    shipped = (ROOT / "routes.yaml").read_text()
    assert "127.0.0.1:8081" in shipped
    config = tmp_path / "routes.yaml"
    config.write_text(shipped.replace("127.0.0.1:8081", f"127.0.0.1:{demo_port}"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-listen",
            f"127.0.0.1:{free_port()}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)
        yield port, proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            proc.communicate(timeout=20)


def test_demo_answers_through_the_full_chain(demo_gateway: tuple[int, subprocess.Popen[str]]) -> None:
    port, proc = demo_gateway
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/echo/hello/world?x=1", timeout=10) as resp:
        body = resp.read().decode()
        assert resp.status == 200
        assert resp.headers["X-Gateway"] == "sluicegate"
    assert '"path": "/hello/world"' in body and "X-Demo-Segment" in body
    proc.terminate()
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert '"route":"echo"' in out and '"status":200' in out


def console_script() -> Path:
    """The installed `sluicegate` console script next to this interpreter (`pip install -e .` puts it there)."""
    script = Path(sys.executable).parent / "sluicegate"
    assert script.exists(), f"{script} is missing: install the project (pip install -e '.[dev]')"
    return script


@pytest.mark.parametrize("entry", ["python -m gateway", "sluicegate"])
def test_bare_command_prints_help_and_exits_with_usage_status(entry: str) -> None:
    """Without a command nothing starts: the help goes to stdout and the status is 2 (a usage error)."""
    program = [sys.executable, "-m", "gateway"] if entry == "python -m gateway" else [str(console_script())]
    result = subprocess.run(program, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert result.stdout.startswith("usage: sluicegate "), result.stdout
    assert all(command in result.stdout for command in ("run", "validate", "filters", "demo", "--version"))
    assert "Traceback" not in result.stderr and "listening" not in result.stderr


@pytest.mark.parametrize("entry", ["python -m gateway", "sluicegate"])
def test_version_prints_the_installed_distribution_version(entry: str) -> None:
    program = [sys.executable, "-m", "gateway"] if entry == "python -m gateway" else [str(console_script())]
    result = subprocess.run([*program, "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"sluicegate {importlib.metadata.version('sluicegate')}\n"
