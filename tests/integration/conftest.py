"""Integration fixtures: a real Docker engine, the test stack copied per test, one shared base.

The base is bootstrapped once per session; images the session created are removed at the
end, and a run left behind by a test is a failure, not something to clean quietly.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envctl.backend import engine as eng
from envctl.backend.engine import Engine
from envctl.errors import EnvctlError
from envctl.images.builder import ImageBuilder
from envctl.topology import Topology, load_topology

STACK = Path(__file__).parent / "stack"
PROJECT = "envctl-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.connect()


@pytest.fixture(scope="session")
def session_images(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Build the shared base once; at the end remove every image of the test project this session made."""
    before = {image["Id"] for image in engine.images({eng.PROJECT: PROJECT})}
    # A container from before the session (e.g. one the engine could not remove after a crash)
    # is not this session's to judge.
    already_there = {c.id for c in engine.containers({eng.PROJECT: PROJECT})}
    root = tmp_path_factory.mktemp("base")
    shutil.copytree(STACK, root, dirs_exist_ok=True)
    topology = load_topology(root / "envctl.yaml", environ={})
    builder = ImageBuilder(topology, engine)
    builder.ensure(["store"])  # the base and one service: the slow part, done once
    yield
    leftovers = [c.name for c in engine.containers({eng.PROJECT: PROJECT}) if c.id not in already_there]
    remove_images_since(engine, PROJECT, before)
    assert not leftovers, f"containers left behind by the tests: {leftovers}"


def remove_images_since(engine: Engine, project: str, before: set[str]) -> None:
    """Remove the project's images that are not in `before` (the ids present at the start)."""
    for image in engine.images({eng.PROJECT: project}):
        if image["Id"] not in before:
            for ref in image.get("RepoTags") or [image["Id"]]:
                try:
                    engine.remove_image(ref)
                except EnvctlError:
                    pass  # in use by another session's run (or a child image): theirs to remove


@pytest.fixture
def stack_dir(tmp_path: Path, session_images: None) -> Path:
    """A private copy of the test stack (tests may edit its build contexts)."""
    target = tmp_path / "stack"
    shutil.copytree(STACK, target, ignore=shutil.ignore_patterns(".envctl"))
    return target


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Host variables for the topology: fixed host ports that are free right now."""
    return {"API_PORT": str(free_port()), "BACKEND_PORT": str(free_port()), "PATH": os.environ["PATH"]}


@pytest.fixture
def topology(stack_dir: Path, stack_env: dict[str, str]) -> Topology:
    return load_topology(stack_dir / "envctl.yaml", environ=stack_env)


def add_services(stack_dir: Path, text: str) -> None:
    """Append services (YAML under `services:`, two-space indented) to the stack copy's topology."""
    path = stack_dir / "envctl.yaml"
    path.write_text(path.read_text() + text)


def run_resources(engine: Engine, run: str) -> dict[str, list[str]]:
    labels = {eng.PROJECT: PROJECT, eng.RUN: run}
    return {
        "containers": [c.name for c in engine.containers(labels)],
        "networks": [n["Name"] for n in engine.networks(labels)],
        "volumes": [v["Name"] for v in engine.volumes(labels)],
    }


@contextlib.contextmanager
def run_up(engine: Engine, stack_dir: Path, env: dict[str, str], run: str, *services: str,
           check: bool = True) -> Iterator[subprocess.CompletedProcess]:
    """`envctl up --run RUN SERVICES` for the body to look at; then `down`, and nothing of the run is left."""
    result = envctl(["up", "--run", run, *services], stack_dir, env, check=check)
    try:
        yield result
    finally:
        envctl(["down", "--run", run], stack_dir, env, check=check)
    assert not any(run_resources(engine, run).values())


def clean_environ(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a child envctl: without the run and file of an enclosing 'envctl ci'."""
    base = {k: v for k, v in os.environ.items() if k not in ("ENVCTL_RUN", "ENVCTL_FILE")}
    return {**base, **extra}


def envctl(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would."""
    result = subprocess.run([sys.executable, "-m", "envctl", *args], cwd=cwd, capture_output=True,
                            text=True, env=clean_environ(env), timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"envctl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


class Background:
    """An envctl command running in its own process group, its output collected line by line.

    Tests wait for a progress line (e.g. a service entering a phase) and then signal or kill it.
    """

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "envctl", *args], cwd=cwd, env=clean_environ(env),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.lines: list[str] = []
        self._done = False
        self._new = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()
        with self._new:
            self._done = True
            self._new.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 180) -> str:
        """The first output line matching the regular expression `pattern` (bounded wait)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new:
            while True:
                for line in self.lines:
                    if regex.search(line):
                        return line
                if self._done or time.monotonic() > deadline:
                    break
                self._new.wait(min(max(deadline - time.monotonic(), 0.01), 1))
        raise AssertionError(f"no line matching {pattern!r}; exit {self.process.poll()}; output:\n{self.output}")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill_group(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)

    def wait(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout)
        time.sleep(0.1)  # the pump thread's last lines
        return code


def wait_until_gone(engine: Engine, run: str, limit: float) -> float:
    """Seconds until nothing of `run` is left on the engine; fails after `limit` (a promise of the product)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if not any(run_resources(engine, run).values()):
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"run {run} still has {run_resources(engine, run)} after {limit}s")


@pytest.fixture
def remove_runs_afterwards(engine: Engine, stack_dir: Path) -> Iterator[None]:
    """For tests that kill envctl: whatever the outcome, remove every run made from this stack copy."""
    yield
    from envctl.runtime.gc import find_runs
    from envctl.runtime.teardown import purge

    for found in find_runs(engine):
        if found.project == PROJECT and str(found.directory or "").startswith(str(stack_dir)):
            purge(engine, found.project, found.run)
