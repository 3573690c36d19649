"""Readiness on the real engine: a Docker healthcheck counts from its first pass, not from the engine's first run."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from envctl.backend import engine as eng
from envctl.backend.engine import Engine

from .conftest import PROJECT, add_services, envctl, run_up

pytestmark = pytest.mark.integration

# The engine would run this test first after 300 s; it passes at once, but only as the engine
# would run it: as the service's user, in its environment (`$$`: a literal `$`, as in Compose).
# `after` waits for it to be healthy.
CHECKED = """
  checked:
    base: os
    command: [sleep, infinity]
    user: "4321"
    environment: {HEALTH_MARK: set}
    healthcheck:
      test: ["CMD-SHELL", 'test "$(id -u)" = 4321 && test "$$HEALTH_MARK" = set']
      interval: 300s
  after:
    base: os
    command: [sleep, infinity]
    depends_on: {checked: {condition: service_healthy}}
"""


def test_a_healthcheck_s_first_pass_makes_the_service_ready_before_the_engine_runs_it(
        engine: Engine, stack_dir: Path, stack_env: dict) -> None:
    add_services(stack_dir, CHECKED)
    with run_up(engine, stack_dir, stack_env, "health", "after") as result:
        assert re.search(r"checked\s+ready\s+healthcheck passed, run by envctl", result.stderr), result.stderr
        # The engine has not run the check yet: `up` did not wait for it.
        checked = engine.containers({eng.PROJECT: PROJECT, eng.RUN: "health", eng.SERVICE: "checked"})[0]
        assert checked.health == "starting"
        # Its dependent was let go only once it was healthy (its check had passed).
        events = json.loads((stack_dir / ".envctl" / "runs" / "health" / "timeline.json").read_text())["events"]
        when = {(e["subject"], e["phase"]): e["t"] for e in events}
        assert when[("after", "wait")] >= when[("checked", "ready")], events
        status = envctl(["status"], stack_dir, stack_env).stdout
        assert "not ready" not in status and status.count("ready") >= 2, status


# Its first probe run stops it (its shell exits 3 on TERM); the runs after are execs into a
# stopped container, which the engine refuses: `up` must still fail as for any exit, with the tail.
STOPPED_BY_ITS_PROBE = """
  leaving:
    base: os
    command: [sh, -c, 'trap "echo going away; exit 3" TERM; while :; do sleep 0.1; done']
    probe: {cmd: [sh, -c, "kill 1; exit 1"], timeout: 60s}
"""

# Its first probe run hangs; only a second run, after the first was cut, can pass.
HANGS_ONCE = """
  slow:
    base: os
    command: [sleep, infinity]
    probe: {cmd: [sh, -c, "test -e /tmp/tried && exit 0; touch /tmp/tried; sleep 3600"], cmd_timeout: 1s, timeout: 60s}
"""


def test_a_cmd_probe_refused_because_its_container_exited_fails_up_with_the_log_tail(
        engine: Engine, stack_dir: Path, stack_env: dict) -> None:
    add_services(stack_dir, STOPPED_BY_ITS_PROBE)
    with run_up(engine, stack_dir, stack_env, "refused", "leaving", check=False) as result:
        assert result.returncode != 0, result.stderr
        assert "exited with code 3" in result.stderr and "going away" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr


def test_a_hanging_cmd_probe_is_cut_at_its_cmd_timeout_and_tried_again(
        engine: Engine, stack_dir: Path, stack_env: dict) -> None:
    add_services(stack_dir, HANGS_ONCE)
    with run_up(engine, stack_dir, stack_env, "hangs", "slow") as result:
        assert re.search(r"slow\s+ready", result.stderr), result.stderr
