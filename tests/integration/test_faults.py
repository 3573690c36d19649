"""Faults survived and reported: crashes and OOM kills, readiness timeouts, secrets never shown."""
from __future__ import annotations

import textwrap
import time
import uuid

import pytest

from envctl.backend import engine as eng
from envctl.backend.engine import Engine

from .conftest import PROJECT, add_services, envctl, run_resources

pytestmark = pytest.mark.integration

pytest_plugins = ["pytester"]

# Two services that fail on demand (`touch /tmp/go`): one exits 3, one allocates past its memory limit.
FAILING = """
  crasher:
    base: os
    command: [python3, -u, -c, "import os, time, sys\\nprint('crasher started', flush=True)\\nwhile not os.path.exists('/tmp/go'): time.sleep(0.05)\\nprint('crasher failing now', flush=True)\\nsys.exit(3)"]
  hog:
    base: os
    mem_limit: 48m
    command: [python3, -u, -c, "import os, time\\nprint('hog started', flush=True)\\nwhile not os.path.exists('/tmp/go'): time.sleep(0.05)\\nprint('hog allocating', flush=True)\\nx = bytearray(512 * 1024 * 1024)\\ntime.sleep(60)"]
"""


def wait_exited(engine: Engine, run: str, services: set[str], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        exited = {c.service for c in engine.exited_containers({eng.PROJECT: PROJECT, eng.RUN: run})}
        if services <= exited:
            return
        time.sleep(0.1)
    raise AssertionError(f"{services} did not all exit")


def test_a_crash_and_an_oom_kill_show_in_status_and_logs_keep_their_output(engine, stack_dir, stack_env):
    add_services(stack_dir, FAILING)
    envctl(["up", "--run", "faults", "crasher", "hog"], stack_dir, stack_env)
    try:
        for service in ("crasher", "hog"):
            envctl(["exec", service, "touch", "/tmp/go"], stack_dir, stack_env)
        wait_exited(engine, "faults", {"crasher", "hog"})
        status = envctl(["status"], stack_dir, stack_env).stdout
        rows = {line.split()[0]: line for line in status.splitlines() if line.strip()}
        assert "exited (3)" in rows["crasher"], status
        assert "exited (137)" in rows["hog"] and "OOM-killed" in rows["hog"], status
        assert "crasher failing now" in envctl(["logs", "crasher"], stack_dir, stack_env).stdout
        assert "hog allocating" in envctl(["logs", "hog"], stack_dir, stack_env).stdout
    finally:
        envctl(["down"], stack_dir, stack_env)
    assert (stack_dir / ".envctl/runs/faults/logs/hog.log").read_text().count("hog allocating") == 1


def test_the_fixture_fails_the_next_test_naming_the_oom_killed_service(
        pytester: pytest.Pytester, monkeypatch, engine, stack_dir, stack_env):
    add_services(stack_dir, FAILING)
    for key, value in stack_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ENVCTL_RUN", raising=False)
    monkeypatch.delenv("ENVCTL_FILE", raising=False)
    pytester.makepyfile(textwrap.dedent('''
        import time
        import pytest

        @pytest.mark.envctl_services("hog")
        def test_1_overloads_the_hog(envctl_stack):
            envctl_stack.exec("hog", ["touch", "/tmp/go"])
            for _ in range(300):
                if envctl_stack.dead():
                    break
                time.sleep(0.1)

        def test_2_uses_the_stack(envctl_stack):
            raise AssertionError("must not run")
    '''))
    result = pytester.runpytest_subprocess("--envctl-file", str(stack_dir / "envctl.yaml"))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the stack is broken: service 'hog' exited with code 137 (OOM-killed)*",
                                 "*hog allocating*"])


def test_a_readiness_timeout_leaves_a_diagnostics_bundle_and_says_where(engine, stack_dir, stack_env):
    canary = f"pw-{uuid.uuid4().hex}"
    add_services(stack_dir, textwrap.dedent(f"""
          slowpoke:
            base: os
            depends_on: [store]
            command: [python3, -u, -c, "import time; print('slowpoke up, never listening', flush=True); time.sleep(600)"]
            ports: ["9999"]
            probe: {{tcp: 9999, timeout: 3s}}
            environment:
              SLOWPOKE_PASSWORD: {canary}
        """).replace("\n", "\n  ").rstrip() + "\n")
    result = envctl(["up", "--run", "timeout", "slowpoke"], stack_dir, stack_env, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    bundle = stack_dir / ".envctl/runs/timeout/diagnostics/slowpoke"
    assert str(bundle) in result.stderr, result.stderr
    assert "slowpoke up, never listening" in (bundle / "slowpoke.log").read_text()
    assert "store" in (bundle / "store.log").read_text(), "the dependency's log is there too"
    history = (bundle / "probe-history.txt").read_text()
    assert history.count("fail") >= 5 and "not ready after 3s" in history, history
    inspect = (bundle / "slowpoke.inspect.json").read_text()
    assert '"SLOWPOKE_PASSWORD=******"' in inspect and canary not in inspect
    assert (bundle / "store.inspect.json").exists()
    assert not any(run_resources(engine, "timeout").values())


def test_waiting_for_a_job_to_complete_is_bounded_and_says_who_waits(engine, stack_dir, stack_env):
    add_services(stack_dir, textwrap.dedent("""
          job:
            base: os
            command: [sleep, "600"]
            probe: {cmd: ["true"], timeout: 2s}
          after:
            base: os
            command: [sleep, "600"]
            depends_on:
              job: {condition: service_completed_successfully}
        """).replace("\n", "\n  ").rstrip() + "\n")
    result = envctl(["up", "--run", "neverdone", "after"], stack_dir, stack_env, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "service 'job'" in result.stderr and "'after' waits for it to complete successfully" in result.stderr
    assert "still running after 2s" in result.stderr and "services.job.probe.timeout" in result.stderr
    assert not any(run_resources(engine, "neverdone").values())


def test_secrets_are_masked_everywhere_but_env(engine, stack_dir, stack_env, remove_runs_afterwards):
    token = f"tok-{uuid.uuid4().hex}"
    password = f"pw-{uuid.uuid4().hex}"
    add_services(stack_dir, textwrap.dedent(f"""
          talker:
            base: os
            command: [python3, -u, -c, "import os, time; print('my token is', os.environ['TALKER_TOKEN'], 'db', os.environ['DATABASE_URL'], flush=True); time.sleep(600)"]
            environment:
              TALKER_TOKEN: {token}
              DATABASE_URL: postgres://app:{password}@store/app
          blurter:
            base: os
            command: [python3, -u, -c, "import os; print('my token is', os.environ['TALKER_TOKEN'], flush=True); raise SystemExit(1)"]
            ports: ["9999"]
            probe: {{tcp: 9999, timeout: 60s}}
            environment:
              TALKER_TOKEN: {token}
        """).replace("\n", "\n  ").rstrip() + "\n")
    shown = []
    up = envctl(["up", "--run", "masked", "talker"], stack_dir, stack_env)
    shown.append(up.stdout + up.stderr)
    try:
        for args in (["status"], ["logs"], ["logs", "talker"], ["config"], ["mocks"]):
            result = envctl(args, stack_dir, stack_env, check=False)
            shown.append(result.stdout + result.stderr)
        assert "my token is ******" in envctl(["logs", "talker"], stack_dir, stack_env).stdout
        assert token in envctl(["config", "--reveal"], stack_dir, stack_env).stdout
        handed_over = envctl(["env", "talker"], stack_dir, stack_env).stdout
        assert f"TALKER_TOKEN={token}" in handed_over and password in handed_over, "env hands values over as they are"
    finally:
        down = envctl(["down"], stack_dir, stack_env)
        shown.append(down.stdout + down.stderr)
    saved = (stack_dir / ".envctl/runs/masked/logs/talker.log").read_text()
    assert "my token is ******" in saved
    shown.append(saved)
    # An error that quotes the service's output (its last log lines) is masked too.
    failed = envctl(["up", "--run", "masked-error", "blurter"], stack_dir, stack_env, check=False)
    assert failed.returncode == 1 and "my token is ******" in failed.stderr, failed.stderr
    shown.append(failed.stdout + failed.stderr)
    for text in shown:
        assert token not in text and password not in text, text
