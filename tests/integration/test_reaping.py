"""Nothing left behind: a run whose owner dies is reaped; a laptop run is not; `envctl gc`.

The 15-second limit below is the product's promise (issue 6), not a speed check: the
reaper polls four times a second and then removes the run without grace.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from envctl.backend import engine as eng
from envctl.runtime.lease import Owner

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("remove_runs_afterwards")]

from .conftest import PROJECT, Background, add_services, envctl, free_port, run_resources, wait_until_gone

REAP_LIMIT = 15.0

STUCK = """
  stuck:
    base: os
    command: [python3, -c, "import time; time.sleep(900)"]
    ports: ["9999"]
    probe: {tcp: 9999, timeout: 900s}
"""


def with_stuck_service(stack_dir: Path) -> None:
    """Add a service that starts but never becomes ready: `up` waits on it until stopped."""
    add_services(stack_dir, STUCK)


def test_sigkill_of_the_whole_process_group_during_up_is_reaped(engine, stack_dir, stack_env):
    with_stuck_service(stack_dir)
    up = Background(["up", "--run", "killed-up"], stack_dir, stack_env)
    up.wait_for(r"stuck\s+wait")
    assert run_resources(engine, "killed-up")["containers"], "the run should be half-way up"
    up.kill_group()  # as a CI abort does: every process of the job's group, at once
    assert up.wait() == -signal.SIGKILL
    seconds = wait_until_gone(engine, "killed-up", REAP_LIMIT)
    reaper_log = (stack_dir / ".envctl/runs/killed-up/reaper.log").read_text()
    assert "removed run killed-up" in reaper_log and "is gone" in reaper_log, reaper_log
    assert (stack_dir / ".envctl/runs/killed-up/logs/store.log").exists(), "logs are saved before removal"
    assert not (stack_dir / ".envctl/current-envctl-test.json").exists(), "the dead run is no longer current"
    print(f"reaped {seconds:.1f}s after SIGKILL")


def test_a_laptop_up_outlives_its_command_and_gc_keeps_it(engine, stack_dir, stack_env):
    envctl(["up", "--run", "laptop"], stack_dir, stack_env)
    try:
        time.sleep(1.0)  # four reaper polls: a reaper that wrongly took the run would have by now
        assert len(run_resources(engine, "laptop")["containers"]) == 3
        gc = envctl(["gc"], stack_dir, stack_env)
        assert "kept envctl-test run laptop: nobody owns it" in gc.stdout, gc.stdout
        assert len(run_resources(engine, "laptop")["containers"]) == 3
    finally:
        envctl(["down"], stack_dir, stack_env)
    assert not any(run_resources(engine, "laptop").values())


def test_bind_to_and_ttl_end_a_run_without_down(engine, stack_dir, stack_env):
    owner = subprocess.Popen(["sleep", "600"])
    try:
        envctl(["up", "--run", "bound", "--bind-to", str(owner.pid)], stack_dir, stack_env)
        envctl(["up", "--run", "ttl", "--ttl", "3s"], stack_dir, {**stack_env, "API_PORT": str(free_port()), "BACKEND_PORT": str(free_port())})
        assert run_resources(engine, "bound")["containers"] and run_resources(engine, "ttl")["containers"]
        gc = envctl(["gc", "--dry-run"], stack_dir, stack_env)
        assert f"kept envctl-test run bound: its owner (process {owner.pid}" in gc.stdout, gc.stdout
    finally:
        owner.kill()
        owner.wait()
    wait_until_gone(engine, "bound", REAP_LIMIT)
    wait_until_gone(engine, "ttl", 3 + REAP_LIMIT)
    assert "time to live ran out" in (stack_dir / ".envctl/runs/ttl/reaper.log").read_text()


def test_gc_removes_a_run_whose_owner_and_reaper_both_died(engine, stack_dir, stack_env):
    owner = subprocess.Popen(["sleep", "600"])
    envctl(["up", "--run", "orphan", "--bind-to", str(owner.pid)], stack_dir, stack_env)
    reaper_pid = int((stack_dir / ".envctl/runs/orphan/reaper.pid").read_text())
    os.kill(reaper_pid, signal.SIGKILL)  # e.g. the machine's OOM killer, or a too-broad pkill
    owner.kill()
    owner.wait()
    time.sleep(0.5)
    assert run_resources(engine, "orphan")["containers"], "without its reaper the run stays"
    gc = envctl(["gc"], stack_dir, stack_env)
    assert "removed envctl-test run orphan (3 containers, 1 networks, 1 volumes)" in gc.stdout, gc.stdout
    assert "is gone" in gc.stdout
    assert not any(run_resources(engine, "orphan").values())


def test_sigkill_of_a_pytest_session_reaps_its_stack(engine, stack_dir, stack_env, tmp_path):
    """The plugin's stack belongs to the session: a killed session (no teardown at all) leaves nothing."""
    marker = tmp_path / "stack-is-up"
    (stack_dir / "test_hold.py").write_text(textwrap.dedent(f"""
        import pathlib, time

        def test_hold(envctl_stack):
            pathlib.Path({str(marker)!r}).write_text(envctl_stack.run)
            time.sleep(300)  # bounded; the test kills the session long before
    """))
    (stack_dir / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    env = {k: v for k, v in os.environ.items() if k not in ("ENVCTL_RUN", "ENVCTL_FILE")}
    session = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "test_hold.py"], cwd=stack_dir,
                               env={**env, **stack_env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not marker.exists() and session.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), f"the session never got its stack (exit {session.poll()})"
    run = marker.read_text()
    assert run_resources(engine, run)["containers"]
    session.kill()
    session.wait()
    wait_until_gone(engine, run, REAP_LIMIT)


def test_everything_envctl_creates_carries_its_owner_and_directory(engine, stack_dir, stack_env):
    owner = subprocess.Popen(["sleep", "600"])
    try:
        envctl(["up", "--run", "labelled", "--bind-to", str(owner.pid)], stack_dir, stack_env)
        labels = {eng.PROJECT: PROJECT, eng.RUN: "labelled"}
        found = [c.labels for c in engine.containers(labels)]
        found += [n["Labels"] for n in engine.networks(labels)] + [v["Labels"] for v in engine.volumes(labels)]
        assert len(found) == 5
        for item in found:
            assert item["envctl.state"] == str(stack_dir / ".envctl/runs/labelled")
            assert Owner.parse(item["envctl.owner"]) is not None
        lease = json.loads((stack_dir / ".envctl/runs/labelled/lease.json").read_text())
        assert Owner.parse(lease["owner"]).pid == owner.pid, "after up, the bound process owns the run"
    finally:
        envctl(["down"], stack_dir, stack_env)
        owner.kill()
        owner.wait()


def test_sigkill_of_an_envctl_ci_stage_reaps_its_stack(engine, stack_dir, stack_env):
    """A Jenkins abort that kills the whole job: the stage's stack goes with it."""
    stage = Background(["ci", "--run", "killed-ci", "--", "sleep", "300"], stack_dir, stack_env)
    stage.wait_for(r"run\s+run\s+sleep 300")
    assert len(run_resources(engine, "killed-ci")["containers"]) == 3
    stage.kill_group()
    stage.wait()
    wait_until_gone(engine, "killed-ci", REAP_LIMIT)
