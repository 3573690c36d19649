"""`envctl ci`: the CI stage's body. Exit status passed on, start-up as JUnit, teardown always."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from envctl.backend.engine import Engine
from tests.integration.conftest import clean_environ, envctl, run_resources
from tests.integration.relay import EngineRelay

pytestmark = pytest.mark.integration

CHECK_STACK = (
    "import os, sys, urllib.request; "
    "assert os.environ['ENVCTL_RUN'] == 'citest-{tag}'; "
    "port = os.environ['API_PORT']; "
    "urllib.request.urlopen(f'http://127.0.0.1:{{port}}/healthz', timeout=10); "
    "sys.exit(3)"
)


def cases(junit: Path) -> dict[str, str]:
    suite = ET.parse(junit).getroot()
    out = {}
    for case in suite.iter("testcase"):
        outcome = "passed"
        if case.find("failure") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        out[case.get("name")] = outcome
    return out


def test_ci_runs_the_command_against_the_stack_and_passes_on_its_status(
        stack_dir: Path, stack_env, engine: Engine, tmp_path: Path) -> None:
    result = envctl(["ci", "--run", "citest-ok", "--junit-dir", str(tmp_path / "reports"),
                     "--artifacts", str(tmp_path / "artifacts"), "--",
                     sys.executable, "-c", CHECK_STACK.format(tag="ok")], stack_dir, stack_env, check=False)
    assert result.returncode == 3, result.stderr
    assert cases(tmp_path / "reports" / "envctl-startup.xml") == {
        "store is ready": "passed", "backend is ready": "passed", "api is ready": "passed"}
    assert "store primary listening" in (tmp_path / "artifacts" / "logs" / "store.log").read_text()
    assert (tmp_path / "artifacts" / "timeline.json").is_file()
    assert run_resources(engine, "citest-ok") == {"containers": [], "networks": [], "volumes": []}


def test_a_stack_that_fails_to_start_shows_as_the_failing_service_in_junit(
        stack_dir: Path, stack_env, engine: Engine, tmp_path: Path) -> None:
    path = stack_dir / "envctl.yaml"
    path.write_text(path.read_text().replace("probe: {tcp: 8000, timeout: 60s}", "probe: {tcp: 8000, timeout: 2s}")
                    .replace("  backend:\n    build: backend\n    command: [python3, -u, /app/app.py]",
                             "  backend:\n    build: backend\n    command: [sleep, '60']"))
    result = envctl(["ci", "--run", "citest-fail", "--junit-dir", str(tmp_path), "--", "true"],
                    stack_dir, stack_env, check=False)
    assert result.returncode == 1
    assert "service 'backend' did not become ready" in result.stderr and "Traceback" not in result.stderr
    junit = tmp_path / "envctl-startup.xml"
    assert cases(junit) == {"store is ready": "passed", "backend is ready": "failed", "api is ready": "skipped"}
    assert "connection closed at once" in junit.read_text()  # the probe's last result
    assert run_resources(engine, "citest-fail") == {"containers": [], "networks": [], "volumes": []}


def test_sigterm_stops_the_command_tears_down_and_exits_143(
        stack_dir: Path, stack_env, engine: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "child-started"
    child = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(120)"
    process = subprocess.Popen([sys.executable, "-m", "envctl", "ci", "--run", "citest-term", "--",
                                sys.executable, "-c", child], cwd=stack_dir, env=clean_environ(stack_env),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):  # bounded: the stack comes up, then the command starts
        if marker.exists() or process.poll() is not None:
            break
        time.sleep(0.1)
    assert marker.exists(), process.stderr.read() if process.poll() is not None else "the command never started"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert run_resources(engine, "citest-term") == {"containers": [], "networks": [], "volumes": []}
    leftover = subprocess.run(["pgrep", "-f", str(marker)], capture_output=True, text=True).stdout.strip()
    assert leftover == ""  # the command was stopped too


def test_a_failing_teardown_keeps_the_command_status_and_the_artifacts(
        stack_dir: Path, stack_env, engine: Engine, tmp_path: Path) -> None:
    relay = EngineRelay()
    relay.refuse("DELETE", r"/containers/[0-9a-f]{64}\?", 500, "unable to remove filesystem: device or resource busy")
    try:
        result = envctl(["ci", "--run", "citest-teardown", "--services", "store", "--artifacts",
                         str(tmp_path / "artifacts"), "--", sys.executable, "-c", "import sys; sys.exit(3)"],
                        stack_dir, {**stack_env, "DOCKER_HOST": relay.docker_host}, check=False)
    finally:
        relay.close()
        envctl(["--run", "citest-teardown", "down"], stack_dir, stack_env)
    assert result.returncode == 3, result.stderr
    assert "run citest-teardown was not removed completely" in result.stderr and "(store)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "store primary listening" in (tmp_path / "artifacts" / "logs" / "store.log").read_text()
    assert run_resources(engine, "citest-teardown") == {"containers": [], "networks": [], "volumes": []}


STATUS_CASSETTE = """\
interactions:
- request:
    body: null
    headers: {}
    method: GET
    uri: https://api.status.example/v1/status
  response:
    body: {string: '{"status": "operational"}'}
    headers:
      Content-Type: [application/json]
    status: {code: 200, message: OK}
version: 1
"""


def test_a_strict_mock_fails_a_passing_command(stack_dir: Path, stack_env, engine: Engine, tmp_path: Path) -> None:
    (stack_dir / "cassettes").mkdir()
    (stack_dir / "cassettes" / "status.yaml").write_text(STATUS_CASSETTE)
    path = stack_dir / "envctl.yaml"
    path.write_text(path.read_text() + "mocks:\n  status:\n    cassettes: cassettes\n    strict: true\n")
    result = envctl(["ci", "--run", "citest-strict", "--services", "status", "--artifacts",
                     str(tmp_path / "artifacts"), "--", "true"], stack_dir, stack_env, check=False)
    assert result.returncode == 1, result.stderr
    assert "strict mocks saw" in result.stderr and "v1/status" in result.stderr and "never played" in result.stderr
    assert (tmp_path / "artifacts" / "logs").is_dir()
    assert run_resources(engine, "citest-strict") == {"containers": [], "networks": [], "volumes": []}
