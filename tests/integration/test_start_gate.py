"""The start gate: dependents' containers start early, their processes only once the dependencies are ready."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from envctl.backend import engine as eng
from envctl.backend.engine import Engine
from envctl.planning.gate import HELD_LABEL

from .conftest import PROJECT, add_services, envctl, run_resources

pytestmark = pytest.mark.integration

# `slow` takes a second before it listens; `early` depends on it and says when its own
# process began, which PID it has and what it read from stdin.
GATED = """
  slow:
    base: os
    command: [python3, -u, -c, "import http.server, time\\ntime.sleep(1)\\nprint('listening at', time.time(), flush=True)\\nhttp.server.ThreadingHTTPServer(('', 8000), http.server.SimpleHTTPRequestHandler).serve_forever()"]
    ports: ["8000"]
    probe: {http: /, port: 8000, timeout: 60s}
  early:
    base: os
    depends_on: [slow]
    command: [python3, -u, -c, "import os, sys, time\\nprint('started at', time.time(), 'pid', os.getpid(), 'stdin', repr(sys.stdin.read()), flush=True)\\ntime.sleep(300)"]
"""
# A dependency that never gets ready, for a run that fails while `early` is held.
NEVER_READY = """
  slow:
    base: os
    command: [python3, -c, "import time; time.sleep(300)"]
    ports: ["8000"]
    probe: {tcp: 8000, timeout: 3s}
"""
# An image without /bin/sh: the gate cannot hold it.
SHELLESS = """
  noshell:
    build: noshell
    base: os
    depends_on: [store]
    command: [python3, -u, -c, "print('noshell runs', flush=True)\\nimport time; time.sleep(300)"]
"""


def events(stack_dir: Path, run: str) -> list[dict]:
    return json.loads((stack_dir / ".envctl" / "runs" / run / "timeline.json").read_text())["events"]


def first(rows: list[dict], subject: str, phase: str) -> float:
    return next(e["t"] for e in rows if e["subject"] == subject and e["phase"] == phase)


def log_number(text: str, label: str) -> float:
    match = re.search(rf"{label} ([0-9.]+)", text)
    assert match, f"no '{label}' in:\n{text}"
    return float(match.group(1))


def processes(stack_dir: Path, env: dict, service: str) -> list[list[str]]:
    """Every process in the service's container, as argv lists (read from /proc inside it)."""
    script = ("import os, json; print(json.dumps([open(f'/proc/{p}/cmdline').read().split(chr(0))[:-1] "
              "for p in os.listdir('/proc') if p.isdigit() and os.path.exists(f'/proc/{p}/cmdline')]))")
    out = envctl(["exec", service, "python3", "-c", script], stack_dir, env).stdout
    return [argv for argv in json.loads(out) if argv]


def test_a_dependent_starts_early_and_its_process_runs_only_once_the_dependency_is_ready(
        engine: Engine, stack_dir: Path, stack_env: dict) -> None:
    add_services(stack_dir, GATED)
    result = envctl(["up", "--run", "gate", "early"], stack_dir, stack_env)
    try:
        assert re.search(r"early\s+held\s+until slow ready", result.stderr), result.stderr
        rows = events(stack_dir, "gate")
        # The container started while its dependency was still getting ready ...
        assert first(rows, "early", "held") < first(rows, "slow", "ready"), rows
        # ... and the process began only after the dependency listened.
        listening = log_number(envctl(["logs", "slow"], stack_dir, stack_env).stdout, "listening at")
        early_log = envctl(["logs", "early"], stack_dir, stack_env).stdout
        assert log_number(early_log, "started at") > listening, early_log
        # Released, it is the service's own process: stdin at its end, no shell left behind.
        assert "stdin ''" in early_log, early_log
        argvs = processes(stack_dir, stack_env, "early")
        assert not [a for a in argvs if a[0] in ("/bin/sh", "sh")], argvs
        assert any(a[:2] == ["python3", "-u"] for a in argvs), argvs
        container = engine.containers({eng.PROJECT: PROJECT, eng.RUN: "gate", eng.SERVICE: "early"})[0]
        assert container.labels.get(HELD_LABEL) == "true"
        # A restart runs the service again at once: the gate holds a container only the first time.
        engine.api.restart(container.id, timeout=1)
        deadline = time.monotonic() + 60
        while envctl(["logs", "early"], stack_dir, stack_env).stdout.count("started at") < 2:
            assert time.monotonic() < deadline, "the restarted service did not run again"
            time.sleep(0.2)
    finally:
        envctl(["down", "--run", "gate"], stack_dir, stack_env)
    assert not any(run_resources(engine, "gate").values())


def test_a_held_service_whose_dependency_fails_never_runs_and_is_removed(
        engine: Engine, stack_dir: Path, stack_env: dict) -> None:
    add_services(stack_dir, NEVER_READY + "  early:" + GATED.split("  early:")[1])
    result = envctl(["up", "--run", "gate-fails", "early"], stack_dir, stack_env, check=False)
    assert result.returncode != 0
    assert re.search(r"early\s+held", result.stderr), result.stderr
    assert "service 'slow' did not become ready" in result.stderr, result.stderr
    assert not any(run_resources(engine, "gate-fails").values())
    saved = stack_dir / ".envctl" / "runs" / "gate-fails" / "logs" / "early.log"
    assert saved.exists() and "started at" not in saved.read_text(), "the held process must never have run"


def test_an_image_without_a_shell_is_started_the_plain_way(engine: Engine, stack_dir: Path, stack_env: dict) -> None:
    (stack_dir / "noshell").mkdir()
    (stack_dir / "noshell" / "Dockerfile").write_text('ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN ["/bin/rm", "/bin/sh"]\n')
    add_services(stack_dir, SHELLESS)
    result = envctl(["up", "--run", "noshell", "noshell"], stack_dir, stack_env)
    try:
        assert re.search(r"noshell\s+recreate\s+its image has no /bin/sh", result.stderr), result.stderr
        assert "noshell runs" in envctl(["logs", "noshell"], stack_dir, stack_env).stdout
        rows = events(stack_dir, "noshell")
        assert first(rows, "noshell", "wait") > first(rows, "store", "ready"), rows
    finally:
        envctl(["down", "--run", "noshell"], stack_dir, stack_env)
    assert not any(run_resources(engine, "noshell").values())


def test_with_the_gate_switched_off_a_dependent_starts_after_its_dependency(
        engine: Engine, stack_dir: Path, stack_env: dict) -> None:
    add_services(stack_dir, GATED)
    result = envctl(["up", "--run", "no-gate", "early"], stack_dir, {**stack_env, "ENVCTL_START_GATE": "0"})
    try:
        assert "held" not in result.stderr, result.stderr
        rows = events(stack_dir, "no-gate")
        assert first(rows, "early", "start") > first(rows, "slow", "ready"), rows
        container = engine.containers({eng.PROJECT: PROJECT, eng.RUN: "no-gate", eng.SERVICE: "early"})[0]
        assert HELD_LABEL not in container.labels
    finally:
        envctl(["down", "--run", "no-gate"], stack_dir, stack_env)
    assert not any(run_resources(engine, "no-gate").values())
