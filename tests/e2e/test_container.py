"""The container image, proven without a Docker engine (none runs on these machines).

Everything is read from the Dockerfile itself, so a change there changes what is tested:

- the builder stage's `pip wheel` runs on exactly the files its COPY lines take from the build context, and yields
  a wheel of the `gateway` and `filters` packages with the entry points pyproject.toml declares;
- the runtime stage's `pip install` puts those wheels, and nothing from an index, into a fresh virtualenv standing
  in for the image's (its ENV applied, the image's VIRTUAL_ENV mapped to the temporary one);
- the exact ENTRYPOINT + CMD starts from that virtualenv with only its ports and config paths rewritten (free ports
  on 127.0.0.1, a copy of the image's default routes.yaml with the demo upstream on a free loopback port): the
  demo route answers through the data port, the HEALTHCHECK's own command exits 0 against it, SIGTERM ends the
  gateway with exit status 0, and the health check then exits 1 (unhealthy, never Docker's reserved 2).

Not proven here: the base image itself, the user and file ownership, BuildKit's mounts, the layer cache. The
Python is the one running the tests, not the image's, so the dependencies' binary wheels differ by ABI.

Readiness, and the HEALTHCHECK's own command, are checked on the admin listener's `/health/ready` (the image's
`--admin-listen`, moved to a free loopback port), as the image probes them. (The test still falls back to the data
port's demo route for a build whose `sluicegate run --help` has no `--admin-listen`.)
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
GUARD = 30.0  # seconds: a guard against a hang (also Kubernetes' default grace period), never a measured threshold
PIP_GUARD = 300.0  # seconds: a guard for pip, which may download the dependencies' wheels
DEMO_UPSTREAM = "127.0.0.1:8081"  # where the shipped routes.yaml puts the demo echo backend
CONTEXT_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")  # as .dockerignore keeps them out
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# -- reading the Dockerfile ----------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case
    args: str
    line: int


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name!r} has no {keyword}"
        return found[-1]


@dataclass
class Run:
    """A shell-form RUN: its --mount options, and the commands of its `&&` chain split as sh would."""

    mounts: list[dict[str, str]]
    commands: list[list[str]]


@dataclass
class Dockerfile:
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def runtime(self) -> Stage:
        return self.stages[-1]

    def entry_command(self) -> list[str]:
        return exec_form(self.runtime.last("ENTRYPOINT")) + exec_form(self.runtime.last("CMD"))

    def healthcheck(self) -> list[str]:
        instruction = self.runtime.last("HEALTHCHECK")
        match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", instruction.args)
        assert match, f"Dockerfile:{instruction.line}: HEALTHCHECK [OPTIONS] CMD [...] expected"
        return exec_form(Instruction("HEALTHCHECK CMD", match[2], instruction.line))


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, instruction) with continuation lines joined and comment lines dropped, as Docker does."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        yield start, buffer + stripped
        buffer = ""
    assert not buffer, "the Dockerfile ends in a continuation line"


def expand(value: str, variables: dict[str, str]) -> str:
    """$NAME and ${NAME} substituted, as Docker does in FROM and ENV."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: variables.get(m[1] or m[2], ""), value)


def parse_dockerfile(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, content in logical_lines(text):
        keyword, _, rest = content.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, expand(words[0], global_args)))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name] = " ".join(shlex.split(default))
        else:
            assert stages, f"Dockerfile:{line}: {keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, rest, line))
    return Dockerfile(stages)


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON array of an exec-form instruction (anything else fails: a shell would stand between it and SIGTERM)."""
    try:
        value: Any = json.loads(instruction.args)
    except json.JSONDecodeError:
        value = None
    assert isinstance(value, list) and value and all(isinstance(v, str) for v in value), (
        f"Dockerfile:{instruction.line}: {instruction.keyword} is not in exec form (a JSON array of strings)"
    )
    return [str(v) for v in value]


def parse_run(instruction: Instruction) -> Run:
    words = shlex.split(instruction.args)
    mounts: list[dict[str, str]] = []
    while words and words[0].startswith("--"):
        option = words.pop(0)
        if option.startswith("--mount="):
            mount: dict[str, str] = {}
            for part in option.removeprefix("--mount=").split(","):
                key, _, value = part.partition("=")
                mount[key] = value
            mounts.append(mount)
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    return Run(mounts, commands)


def pip_command(stage: Stage, subcommand: str) -> tuple[Run, list[str]]:
    """The one RUN of `stage` running `pip <subcommand>`, and that command from `pip` on."""
    found: list[tuple[Run, list[str]]] = []
    for instruction in stage.all("RUN"):
        run = parse_run(instruction)
        for command in run.commands:
            found += [(run, command[i:]) for i in range(len(command) - 1) if command[i : i + 2] == ["pip", subcommand]]
    assert len(found) == 1, f"expected one `pip {subcommand}` in stage {stage.name!r}, found {len(found)}"
    return found[0]


def option_value(argv: list[str], *names: str) -> str | None:
    """The value of the first of `names` in argv (`--name value` or `--name=value`), or None."""
    for i, word in enumerate(argv):
        for name in names:
            if word == name and i + 1 < len(argv):
                return argv[i + 1]
            if word.startswith(name + "="):
                return word.partition("=")[2]
    return None


def rewrite_options(argv: list[str], values: dict[str, str | None]) -> list[str]:
    """argv with the value of each option in `values` replaced; an option mapped to None is dropped with its value."""
    out: list[str] = []
    words = iter(argv)
    for word in words:
        name = word.partition("=")[0]
        if name not in values:
            out.append(word)
            continue
        if "=" not in word:
            next(words)
        new = values[name]
        if new is not None:
            out += [name, new]
    return out


def map_paths(argv: list[str], mapping: Callable[[str], str]) -> list[str]:
    """argv with every absolute path (a word, or an option's `=value`) passed through `mapping`."""
    out: list[str] = []
    for word in argv:
        name, sep, value = word.partition("=")
        if word.startswith("/"):
            out.append(mapping(word))
        elif word.startswith("--") and sep and value.startswith("/"):
            out.append(f"{name}={mapping(value)}")
        else:
            out.append(word)
    return out


def stage_env(stage: Stage, base: dict[str, str]) -> dict[str, str]:
    """The variables a stage's ENV lines set (only those), expanded against `base` and each other."""
    declared: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for word in shlex.split(instruction.args):
            name, sep, value = word.partition("=")
            assert sep, f"Dockerfile:{instruction.line}: write ENV as NAME=value"
            declared[name] = expand(value, base | declared)
    return declared


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def builder_stage(dockerfile: Dockerfile) -> Stage:
    stages = [s for s in dockerfile.stages if any("pip wheel" in i.args for i in s.all("RUN"))]
    assert len(stages) == 1, "expected exactly one stage running `pip wheel`"
    return stages[0]


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


# -- the static contract -------------------------------------------------------------------------------------------


def test_dockerfile_declares_the_container_contract(dockerfile: Dockerfile) -> None:
    builder, runtime = builder_stage(dockerfile), dockerfile.runtime
    assert builder is not runtime, "multi-stage: the wheels are built in a stage of their own"
    assert not any("pip wheel" in i.args for i in runtime.all("RUN"))
    _, install = pip_command(runtime, "install")
    assert "--no-index" in install, "the runtime installs only the builder's wheels"

    for stage in (builder, runtime):
        base = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stage.base)
        assert base, f"stage {stage.name!r}: an official slim Python image pinned to a release, not {stage.base!r}"
        assert (int(base[1]), int(base[2])) > (3, 11), "a newer Python than 3.11"
    assert builder.base == runtime.base

    user = runtime.last("USER").args.partition(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric non-root user (Kubernetes' runAsNonRoot checks the UID)"

    env = stage_env(runtime, {})
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1" and env.get("PYTHONUNBUFFERED") == "1"

    argv = dockerfile.entry_command()  # exec form, or this fails
    listen, admin = option_value(argv, "--listen"), option_value(argv, "--admin-listen")
    assert listen == "0.0.0.0:8080" and admin == "0.0.0.0:9090", "both listeners on all interfaces in the container"
    exposed = {int(p.partition("/")[0]) for i in runtime.all("EXPOSE") for p in i.args.split()}
    assert exposed == {port_of(listen), port_of(admin)}

    probe = " ".join(dockerfile.healthcheck())  # exec form, or this fails
    assert f"127.0.0.1:{port_of(admin)}/health/ready" in probe and "curl" not in probe and "wget" not in probe

    config, settings = option_value(argv, "--config"), option_value(argv, "--settings")
    assert config == "/etc/sluicegate/routes.yaml" and settings == "/etc/sluicegate/settings.yaml"
    copies = [shlex.split(i.args) for i in runtime.all("COPY")]
    assert ["routes.yaml", config] in copies, "the shipped demo routes are the image's default routes"
    assert any(settings in i.args for i in runtime.all("RUN") + runtime.all("COPY")), "a default settings file"

    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", ".git", "benchmarks/results", "**/__pycache__", "build", "dist"} <= ignored


# -- the builder stage's wheel -------------------------------------------------------------------------------------


def in_rootfs(rootfs: Path, path: str) -> Path:
    """Where the container path `path` lies in the directory standing in for a stage's file system."""
    return rootfs / path.lstrip("/")


def lay_out_build_context(stage: Stage, rootfs: Path) -> Path:
    """Copy what the stage's COPY lines take from the build context into `rootfs`; return its WORKDIR there."""
    workdir = "/"
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = posixpath.join(workdir, instruction.args)
        elif instruction.keyword == "COPY":
            words = shlex.split(instruction.args)
            assert not any(w.startswith("--from") for w in words), "the builder copies only from the build context"
            *sources, dest = [w for w in words if not w.startswith("--")]
            target = in_rootfs(rootfs, posixpath.join(workdir, dest))
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"Dockerfile:{instruction.line}: COPY {source}: not in the repository"
                if path.is_dir():
                    shutil.copytree(path, target, ignore=CONTEXT_IGNORED, dirs_exist_ok=True)
                elif dest.endswith("/") or len(sources) > 1:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target / path.name)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
    in_rootfs(rootfs, workdir).mkdir(parents=True, exist_ok=True)
    return in_rootfs(rootfs, workdir)


@dataclass
class Wheels:
    directory: Path  # on this machine
    container_path: str  # where the builder stage leaves them


@pytest.fixture(scope="module")
def wheels(dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    """The builder stage, as far as Python goes: its COPY lines, then its own `pip wheel` command."""
    builder = builder_stage(dockerfile)
    rootfs = tmp_path_factory.mktemp("builder")
    workdir = lay_out_build_context(builder, rootfs)
    _, pip = pip_command(builder, "wheel")
    wheel_dir = option_value(pip, "--wheel-dir", "-w")
    assert wheel_dir and wheel_dir.startswith("/"), "the builder writes its wheels to an absolute --wheel-dir"
    env = os.environ | stage_env(builder, dict(os.environ))
    argv = [sys.executable, "-m", *map_paths(pip, lambda path: str(in_rootfs(rootfs, path)))]
    result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=PIP_GUARD)
    assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return Wheels(in_rootfs(rootfs, wheel_dir), wheel_dir)


def entry_points(text: str) -> dict[str, dict[str, str]]:
    """A wheel's entry_points.txt: {group: {name: object reference}}, names kept as written."""
    groups: dict[str, dict[str, str]] = {}
    group: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            group = groups.setdefault(line[1:-1], {})
        elif "=" in line:
            name, _, value = line.partition("=")
            group[name.strip()] = value.strip()
    return groups


@pytest.mark.timeout(300)  # a guard: the first test to use the module's fixtures pays for pip
def test_builder_stage_builds_the_gateway_wheel(wheels: Wheels) -> None:
    built = sorted(wheels.directory.glob("sluicegate-*.whl"))
    assert len(built) == 1, f"one wheel of the gateway expected, found {built}"
    with zipfile.ZipFile(built[0]) as wheel:
        names = set(wheel.namelist())
        (metadata,) = {n.partition("/")[0] for n in names if n.partition("/")[0].endswith(".dist-info")}
        points = entry_points(wheel.read(f"{metadata}/entry_points.txt").decode())
        description = wheel.read(f"{metadata}/METADATA").decode()

    assert {n.partition("/")[0] for n in names} == {"gateway", "filters", metadata}, "nothing but the two packages"
    for package in ("gateway", "filters"):
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")}
        assert sources <= names, f"modules missing from the wheel: {sorted(sources - names)}"
        assert f"{package}/py.typed" in names

    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[0]
    assert readme in description, "the long description (the builder stage copies README.md) is in the metadata"

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert points["console_scripts"]["sluicegate"] == "gateway.launch:main"
    assert points["console_scripts"] == project["scripts"]
    for group in ("sluicegate.filters", "sluicegate.predicates"):
        assert points[group], f"no {group} entry points"
        assert points[group] == project["entry-points"][group]


# -- the runtime stage's install and entry command -----------------------------------------------------------------


@dataclass
class Installed:
    venv: Path
    env: dict[str, str]  # this machine's environment with the runtime stage's ENV applied

    def resolve(self, program: str) -> str:
        """`program` found on the image's PATH, which must find it in the virtualenv standing in for the image's."""
        found = shutil.which(program, path=self.env["PATH"])
        assert found and Path(found).is_relative_to(self.venv), f"{program} resolves to {found}, not into the venv"
        return found


@pytest.fixture(scope="module")
def installed(dockerfile: Dockerfile, wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh virtualenv in place of the image's, filled by the runtime stage's own `pip install` command."""
    runtime, builder = dockerfile.runtime, builder_stage(dockerfile)
    # This machine's environment, less what would reach past the virtualenv or change the gateway's settings.
    host = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("SLUICEGATE_")
    }
    declared = stage_env(runtime, host)
    image_venv = declared.get("VIRTUAL_ENV")
    assert image_venv, "the runtime stage names its virtualenv in ENV VIRTUAL_ENV"
    venv = tmp_path_factory.mktemp("image") / image_venv.strip("/").replace("/", "-")
    env = host | {name: value.replace(image_venv, str(venv)) for name, value in declared.items()}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=PIP_GUARD)
    installed = Installed(venv, env)

    run, pip = pip_command(runtime, "install")
    (mount,) = [m for m in run.mounts if m.get("from") == builder.name]
    assert mount.get("source") == wheels.container_path, "the runtime installs what the builder stage built"
    target = mount["target"]

    def to_wheels(path: str) -> str:
        assert path == target or path.startswith(target + "/"), f"an unexpected path in `pip install`: {path}"
        return str(wheels.directory) + path.removeprefix(target)

    argv = [installed.resolve(pip[0]), *map_paths(pip[1:], to_wheels)]
    result = subprocess.run(argv, cwd=venv, env=env, capture_output=True, text=True, timeout=PIP_GUARD)
    assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return installed


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """One GET without proxies; an error status is returned, not raised."""
    try:
        with NO_PROXY.open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def wait_for_ok(url: str, proc: subprocess.Popen[bytes], logs: Path) -> None:
    """Poll `url` until it answers 200; fail at once if the process exits, and after the guard otherwise."""
    deadline = time.monotonic() + GUARD
    while True:
        assert proc.poll() is None, f"the gateway exited with {proc.returncode}:\n{logs.read_text(errors='replace')}"
        try:
            if get(url)[0] == 200:
                return
        except (OSError, HTTPException):
            pass
        assert time.monotonic() < deadline, f"{url} not 200 within {GUARD}s:\n{logs.read_text(errors='replace')}"
        time.sleep(0.05)


def group_gone(pgid: int, guard: float = GUARD) -> bool:
    """Whether every process of the process group `pgid` has exited (waiting up to `guard` seconds)."""
    deadline = time.monotonic() + guard
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


@pytest.mark.timeout(300)  # a guard, as above
def test_entry_command_starts_serves_passes_the_health_check_and_stops_on_sigterm(
    dockerfile: Dockerfile, installed: Installed, tmp_path: Path
) -> None:
    # The installed wheel runs, not the repository's sources.
    where = subprocess.run(
        [installed.resolve("python"), "-c", "import gateway, filters; print(gateway.__file__, filters.__file__)"],
        cwd=tmp_path,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=True,
    )
    assert all(Path(p).is_relative_to(installed.venv) for p in where.stdout.split()), where.stdout

    image_argv = dockerfile.entry_command()
    program = installed.resolve(image_argv[0])
    usage = subprocess.run(
        [program, "run", "--help"], env=installed.env, capture_output=True, text=True, timeout=GUARD, check=True
    ).stdout
    has_admin = "--admin-listen" in usage

    image_config, image_admin = option_value(image_argv, "--config"), option_value(image_argv, "--admin-listen")
    assert image_config and image_admin
    (routes_source,) = [
        words[0] for words in (shlex.split(i.args) for i in dockerfile.runtime.all("COPY")) if words[-1] == image_config
    ]
    shipped = (ROOT / routes_source).read_text(encoding="utf-8")
    assert DEMO_UPSTREAM in shipped
    demo, data, admin = free_port(), free_port(), free_port()
    routes, settings = tmp_path / "routes.yaml", tmp_path / "settings.yaml"
    routes.write_text(shipped.replace(DEMO_UPSTREAM, f"127.0.0.1:{demo}"), encoding="utf-8")
    settings.write_text("{}\n", encoding="utf-8")  # the image's default: every setting at its default
    argv = rewrite_options(
        image_argv,
        {
            "--config": str(routes),
            "--settings": str(settings),
            "--listen": f"127.0.0.1:{data}",
            "--admin-listen": f"127.0.0.1:{admin}" if has_admin else None,
        },
    )
    readiness = f"127.0.0.1:{admin}/health/ready" if has_admin else f"127.0.0.1:{data}/echo/ready"

    image_probe = f"127.0.0.1:{port_of(image_admin)}/health/ready"
    healthcheck = dockerfile.healthcheck()
    assert image_probe in " ".join(healthcheck)
    healthcheck = [installed.resolve(healthcheck[0]), *(a.replace(image_probe, readiness) for a in healthcheck[1:])]

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(healthcheck, env=installed.env, capture_output=True, text=True, timeout=GUARD)

    logs = tmp_path / "gateway.log"
    with logs.open("wb") as log:  # a session of its own, so that no worker can outlive the test
        proc = subprocess.Popen(
            [program, *argv[1:]], cwd=tmp_path, env=installed.env, stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_for_ok(f"http://{readiness}", proc, logs)

        status, headers, body = get(f"http://127.0.0.1:{data}/echo/container/probe")
        assert status == 200 and headers.get("X-Gateway") == "sluicegate"
        echo = json.loads(body)
        assert echo["path"] == "/container/probe"
        assert ["X-Demo-Segment", "container"] in echo["headers"]

        result = health()
        assert result.returncode == 0, f"the HEALTHCHECK command failed:\n{result.stdout}{result.stderr}"

        proc.send_signal(signal.SIGTERM)  # to the entry process alone, as Docker and Kubernetes send it to PID 1
        assert proc.wait(timeout=GUARD) == 0, logs.read_text(errors="replace")
        assert group_gone(proc.pid), "a process of the gateway outlived its entry process"
    finally:
        if not group_gone(proc.pid, guard=0):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(timeout=GUARD)

    assert health().returncode == 1, "with the gateway gone the health check reports unhealthy (1, not 2)"
