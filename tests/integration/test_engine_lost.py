"""When the engine goes away mid-command: exit 2 and one paragraph for people, never a traceback.

A relay stands between envctl and the real engine (tests/integration/relay.py) and is cut
at a chosen request: the engine itself keeps running for everyone else.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from envctl.backend.engine import Engine
from tests.integration.conftest import envctl, run_resources
from tests.integration.relay import EngineRelay

pytestmark = pytest.mark.integration

CONTAINER = r"/containers/[0-9a-f]{64}"
# Each command, and the request at which the engine goes away: one it makes after the first few.
CUTS = [
    (["status"], "GET", CONTAINER + r"/json"),
    (["logs"], "GET", CONTAINER + r"/logs"),
    (["logs", "--follow"], "GET", CONTAINER + r"/logs"),
    (["down"], "POST", CONTAINER + r"/stop"),
    (["doctor"], "GET", r"/info$"),
]


def assert_one_paragraph_exit_2(result, what: str) -> None:
    assert result.returncode == 2, f"{what}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "the Docker engine" in result.stderr and "Fix:" in result.stderr, result.stderr
    paragraph = [line for line in result.stderr.splitlines() if line.startswith(("envctl:", "  "))]
    assert len(paragraph) == 2, result.stderr  # the message and its fix


def test_commands_exit_2_when_the_engine_goes_away_mid_command(
        stack_dir: Path, stack_env, engine: Engine) -> None:
    run = f"lost-{uuid.uuid4().hex[:6]}"
    envctl(["up", "store", "--run", run], stack_dir, stack_env)
    try:
        for command, method, path in CUTS:
            relay = EngineRelay()
            relay.cut_on(method, path)
            try:
                result = envctl(command, stack_dir, {**stack_env, "DOCKER_HOST": relay.docker_host}, check=False)
            finally:
                relay.close()
            assert any(r.startswith(method) and path.split("/")[-1].rstrip("$") in r for r in relay.seen), \
                f"{command} never made the request the engine went away at: {relay.seen}"
            assert_one_paragraph_exit_2(result, " ".join(command))
    finally:
        envctl(["down"], stack_dir, stack_env)
    assert run_resources(engine, run) == {"containers": [], "networks": [], "volumes": []}


def test_a_command_finds_the_engine_gone_before_it_starts(stack_dir: Path, stack_env) -> None:
    relay = EngineRelay()
    relay.close()
    result = envctl(["--run", "gone", "status"], stack_dir, {**stack_env, "DOCKER_HOST": relay.docker_host},
                    check=False)
    assert_one_paragraph_exit_2(result, "status")
