"""Integration fixtures: a real Docker engine, the test stack copied per test, one shared base.

The base is bootstrapped once per session; images the session created are removed at the
end, and a run left behind by a test is a failure, not something to clean quietly.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envctl import engine as eng
from envctl.engine import Engine
from envctl.errors import EnvctlError
from envctl.images import ImageBuilder
from envctl.topology import Topology, load_topology

STACK = Path(__file__).parent / "stack"
PROJECT = "envctl-test"

pytestmark = pytest.mark.integration


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
    root = tmp_path_factory.mktemp("base")
    shutil.copytree(STACK, root, dirs_exist_ok=True)
    topology = load_topology(root / "envctl.yaml", environ={})
    builder = ImageBuilder(topology, engine)
    builder.ensure(["store"])  # the base and one service: the slow part, done once
    yield
    leftovers = [c.name for c in engine.containers({eng.PROJECT: PROJECT})]
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


def run_resources(engine: Engine, run: str) -> dict[str, list[str]]:
    labels = {eng.PROJECT: PROJECT, eng.RUN: run}
    return {
        "containers": [c.name for c in engine.containers(labels)],
        "networks": [n["Name"] for n in engine.networks(labels)],
        "volumes": [v["Name"] for v in engine.volumes(labels)],
    }


def clean_environ(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a child envctl: without the run and file of an enclosing 'envctl ci'."""
    base = {k: v for k, v in os.environ.items() if k not in ("ENVCTL_RUN", "ENVCTL_FILE")}
    return {**base, **extra}


def envctl(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would."""
    result = subprocess.run([sys.executable, "-m", "envctl.cli", *args], cwd=cwd, capture_output=True,
                            text=True, env=clean_environ(env), timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"envctl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result
