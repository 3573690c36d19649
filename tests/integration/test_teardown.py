"""Teardown with a real engine that refuses: everything else still goes, and what is left is named by id.

A relay in front of the engine (tests/integration/relay.py) answers one container's removal
with the engine's own error; every other request reaches the real engine.
"""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from envctl.backend import engine as eng
from envctl.backend.engine import Engine
from tests.integration.conftest import PROJECT, envctl, run_resources
from tests.integration.relay import EngineRelay

pytestmark = pytest.mark.integration

BUSY = "unable to remove filesystem: device or resource busy"


def removal_of(engine: Engine, run: str, service: str) -> str:
    (found,) = [c for c in engine.containers(eng.run_labels(PROJECT, run, service))]
    return rf"/containers/{found.id}\?"


def test_one_refused_removal_leaves_only_that_container_and_names_it(
        stack_dir: Path, stack_env, engine: Engine) -> None:
    run = f"td-{uuid.uuid4().hex[:6]}"
    envctl(["up", "backend", "--run", run], stack_dir, stack_env)
    backend = [c for c in engine.containers(eng.run_labels(PROJECT, run, "backend"))][0]
    relay = EngineRelay()
    relay.refuse("DELETE", removal_of(engine, run, "backend"), 500, BUSY)  # every time: it stays
    try:
        result = envctl(["down"], stack_dir, {**stack_env, "DOCKER_HOST": relay.docker_host}, check=False)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert f"container {backend.id[:12]} (backend)" in result.stderr and BUSY in result.stderr
        assert f"envctl --run {run} down" in result.stderr
        # The backend (stopped, so off the network) is all that is left: the store, the network
        # and the volume were removed after its removal failed.
        assert run_resources(engine, run) == {"containers": [backend.name], "networks": [], "volumes": []}
        assert "nothing to take down" in envctl(["down"], stack_dir, stack_env).stdout  # the record is gone
    finally:
        relay.close()
        envctl(["--run", run, "down"], stack_dir, stack_env)
    assert run_resources(engine, run) == {"containers": [], "networks": [], "volumes": []}


def test_a_removal_refused_for_a_moment_is_retried(stack_dir: Path, stack_env, engine: Engine) -> None:
    run = f"td-{uuid.uuid4().hex[:6]}"
    envctl(["up", "store", "--run", run], stack_dir, stack_env)
    relay = EngineRelay()
    relay.refuse("DELETE", removal_of(engine, run, "store"), 409, "removal of container is not possible now",
                 times=2)
    try:
        result = envctl(["down"], stack_dir, {**stack_env, "DOCKER_HOST": relay.docker_host}, check=False)
    finally:
        relay.close()
        if any(run_resources(engine, run).values()):
            envctl(["--run", run, "down"], stack_dir, stack_env)
    assert result.returncode == 0, result.stderr
    assert sum(1 for r in relay.seen if r.startswith("DELETE /v") and "/containers/" in r) == 3
    assert run_resources(engine, run) == {"containers": [], "networks": [], "volumes": []}
