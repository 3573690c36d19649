"""The engine restarting during a run: while it is down, commands say so (exit 2); once it is
back, `status` and `down` work from the labels alone.

This restarts the local dockerd the session found (same binary, arguments and environment).
When the suite runs under `envctl ci`, the stage's own stack stops with the engine, so the
test brings that stack back with `envctl up` before it ends.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from .conftest import clean_environ, envctl, run_resources

pytestmark = pytest.mark.integration

ENGINE_LOG = Path("/var/log/envctl-test-dockerd.log")


def _dockerd() -> int | None:
    found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if len(found) == 1 else None


def _answers() -> bool:
    try:
        docker.from_env(timeout=5).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means not (yet)
        return False


def _wait(predicate, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


@pytest.fixture
def local_engine() -> int:
    pid = _dockerd()
    if os.geteuid() != 0 or pid is None or os.environ.get("DOCKER_HOST", "unix://").startswith(("tcp:", "ssh:")):
        pytest.skip("needs root and the local dockerd to restart")
    return pid


def restart_engine(pid: int, while_down) -> None:
    command = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    environment = dict(line.split(b"=", 1) for line in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in line)
    os.kill(pid, 15)
    _wait(lambda: not Path(f"/proc/{pid}").exists(), 90, "dockerd did not stop")
    try:
        while_down()
    finally:
        with open(ENGINE_LOG, "ab") as log:
            subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
        _wait(_answers, 90, f"dockerd did not come back; see {ENGINE_LOG}")


def test_status_and_down_work_from_the_labels_across_an_engine_restart(local_engine, engine, stack_dir, stack_env):
    envctl(["up", "--run", "restart"], stack_dir, stack_env)
    outer_run, outer_file = os.environ.get("ENVCTL_RUN"), os.environ.get("ENVCTL_FILE")

    def while_down() -> None:
        result = envctl(["status"], stack_dir, stack_env, check=False)
        assert result.returncode == 2, result
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines[0].startswith("envctl: error: cannot reach the Docker engine") and "Traceback" not in result.stderr
        assert any("Fix:" in line for line in lines)

    try:
        restart_engine(local_engine, while_down)
        status = envctl(["status"], stack_dir, stack_env).stdout
        for service in ("store", "backend", "api"):
            assert any(line.split()[:2] == [service, "exited"] for line in status.splitlines()), status
        down = envctl(["down"], stack_dir, stack_env)
        assert "run restart removed (3 containers)" in down.stdout, down.stdout
        assert not any(run_resources(engine, "restart").values())
    finally:
        envctl(["down"], stack_dir, stack_env, check=False)
        if outer_run and outer_file:  # the enclosing 'envctl ci' stage's stack: bring it back
            subprocess.run([sys.executable, "-m", "envctl", "--run", outer_run, "-f", outer_file, "up"],
                           env=clean_environ({}), check=True, capture_output=True, timeout=600)
