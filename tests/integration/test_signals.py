"""SIGINT / SIGTERM at each phase of `up`: the work stops, what was created is removed, 130 / 143.

Each test waits for the progress line that shows `up` inside the phase, then signals it.
"""
from __future__ import annotations

import signal
import subprocess
import time
import uuid

import pytest

from envctl.backend import engine as eng

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("remove_runs_afterwards")]

from .conftest import PROJECT, Background, run_resources, wait_until_gone
from .test_reaping import REAP_LIMIT, with_stuck_service

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def assert_stopped_cleanly(engine, up: Background, run: str, sig: int) -> None:
    code = up.wait()
    assert code == EXIT[sig], f"exit {code}:\n{up.output}"
    assert "Traceback" not in up.output, up.output
    assert "stopped by" in up.output or "interrupted" in up.output or "terminated" in up.output, up.output
    assert not any(run_resources(engine, run).values()), run_resources(engine, run)


def test_signal_while_bootstrapping_a_base_stops_mmdebstrap(engine, stack_dir, stack_env):
    # A base nobody has built (its package list is new), so `up` must bootstrap it.
    topology = stack_dir / "envctl.yaml"
    topology.write_text(topology.read_text().replace(
        "packages: [python3, ca-certificates]", "packages: [python3, ca-certificates, less]"))
    up = Background(["up", "--run", "sig-bootstrap"], stack_dir, stack_env)
    up.wait_for(r"base:os\s+bootstrap")
    tool = _wait_for_child(up.process.pid, "mmdebstrap")
    time.sleep(1)  # into its package downloads
    up.signal(signal.SIGTERM)
    assert_stopped_cleanly(engine, up, "sig-bootstrap", signal.SIGTERM)
    # mmdebstrap runs in its own process group (apt and dpkg below it): all of it must be gone.
    alive = [line for line in _run(["ps", "-o", "pid=,stat=,args=", "-g", str(tool)]) if line.split()[1][0] != "Z"]
    assert not alive, f"mmdebstrap (and apt below it) must be stopped: {alive}"
    assert not [i for i in engine.images({eng.PROJECT: PROJECT}) if "less" in str(i.get("RepoTags"))]


def test_signal_during_an_image_build_aborts_the_build(engine, stack_dir, stack_env):
    nonce = uuid.uuid4().hex[:12]
    (stack_dir / "store" / "Dockerfile").write_text(
        (stack_dir / "store" / "Dockerfile").read_text() + f"\nRUN echo building-{nonce} && sleep 300\n")
    up = Background(["up", "--run", "sig-build"], stack_dir, stack_env)
    up.wait_for(r"store\s+build")
    _wait_for_container_running(f"building-{nonce}")
    up.signal(signal.SIGINT)
    assert_stopped_cleanly(engine, up, "sig-build", signal.SIGINT)
    # The engine's build container goes with the build (it carries no envctl labels).
    assert wait_for_no_container(f"building-{nonce}")


def test_signal_while_creating_containers(engine, stack_dir, stack_env):
    up = Background(["up", "--run", "sig-create"], stack_dir, stack_env)
    up.wait_for(r"store\s+create")
    up.signal(signal.SIGTERM)
    assert_stopped_cleanly(engine, up, "sig-create", signal.SIGTERM)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_waiting_for_readiness(engine, stack_dir, stack_env, sig):
    with_stuck_service(stack_dir)
    run = f"sig-ready-{sig.name.lower()}"
    up = Background(["up", "--run", run], stack_dir, stack_env)
    up.wait_for(r"stuck\s+wait")
    up.signal(sig)
    assert_stopped_cleanly(engine, up, run, sig)
    assert "what this run created was removed" in up.output


def test_a_second_signal_forces_and_the_reaper_finishes(engine, stack_dir, stack_env):
    with_stuck_service(stack_dir)
    up = Background(["up", "--run", "sig-twice"], stack_dir, stack_env)
    up.wait_for(r"stuck\s+wait")
    up.signal(signal.SIGTERM)
    up.wait_for(r"teardown")
    up.signal(signal.SIGTERM)
    assert up.wait() == 143
    assert "Traceback" not in up.output, up.output
    wait_until_gone(engine, "sig-twice", REAP_LIMIT)


def _run(command: list[str]) -> list[str]:
    return subprocess.run(command, capture_output=True, text=True).stdout.splitlines()


def _wait_for_child(parent: int, name: str, limit: float = 60) -> int:
    deadline = time.monotonic() + limit
    while True:
        found = _run(["pgrep", "-P", str(parent), "-x", name])
        if found:
            return int(found[0])
        assert time.monotonic() < deadline, f"{name} never started under {parent}"
        time.sleep(0.1)


def _build_containers(text: str) -> list[str]:
    listed = subprocess.run(["docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"],
                            capture_output=True, text=True).stdout
    return [line for line in listed.splitlines() if text in line]


def _wait_for_container_running(text: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not _build_containers(text):
        assert time.monotonic() < deadline, f"no build container running {text}"
        time.sleep(0.2)


def wait_for_no_container(text: str, limit: float = 30) -> bool:
    deadline = time.monotonic() + limit
    while _build_containers(text):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
