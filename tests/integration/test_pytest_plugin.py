"""The pytest plugin, exercised by real pytest sessions (pytester) against a real stack."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from envctl.backend import engine as eng
from envctl.runtime import run as run_api
from envctl.runtime import teardown
from envctl.backend.engine import Engine
from envctl.topology import load_topology

from .conftest import run_resources
from .test_reaping import with_stuck_service

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

USES_STACK = '''
import json, os, pathlib, requests
import pytest

def record(stack, name):
    path = pathlib.Path(os.environ["RUNS_FILE"])
    with open(path, "a") as fh:
        fh.write(json.dumps({"test": name, "run": stack.run}) + "\\n")
'''


@pytest.fixture
def session_env(monkeypatch: pytest.MonkeyPatch, stack_env: dict[str, str], tmp_path: Path) -> Path:
    for key, value in stack_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ENVCTL_RUN", raising=False)  # when this suite itself runs under 'envctl ci'
    monkeypatch.delenv("ENVCTL_FILE", raising=False)
    runs = tmp_path / "runs.jsonl"
    monkeypatch.setenv("RUNS_FILE", str(runs))
    return runs


def runs_seen(path: Path) -> set[str]:
    return {json.loads(line)["run"] for line in path.read_text().splitlines()}


def left(engine: Engine, run: str) -> list[str]:
    return [c.name for c in engine.containers({eng.PROJECT: "envctl-test", eng.RUN: run})]


def test_the_fixture_hands_tests_a_live_stack_and_tears_it_down(
        pytester: pytest.Pytester, stack_dir: Path, session_env: Path, engine: Engine) -> None:
    pytester.makepyfile(USES_STACK + textwrap.dedent('''
        def test_urls_ports_env_exec(envctl_stack):
            record(envctl_stack, "a")
            assert requests.get(envctl_stack.url("api") + "/healthz", timeout=10).json() == {"ok": True}
            assert envctl_stack.host("store") == "127.0.0.1"
            env = envctl_stack.env("backend")
            assert requests.get(env["STORE_URL"] + "/healthz", timeout=10).ok
            code, output = envctl_stack.exec("store", ["sh", "-c", "echo hi; exit 3"])
            assert (code, output.strip()) == (3, "hi")
            assert "store primary listening" in envctl_stack.logs("store")
            assert envctl_stack.port("api", 8000) == int(os.environ["API_PORT"])
    '''))
    result = pytester.runpytest_subprocess("--envctl-file", str(stack_dir / "envctl.yaml"), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    (run,) = runs_seen(session_env)
    assert left(engine, run) == []
    result.stdout.fnmatch_lines([f"*envctl: stack {run} removed; logs in*"])


def test_a_marker_starts_only_what_the_tests_name(
        pytester: pytest.Pytester, stack_dir: Path, session_env: Path, engine: Engine) -> None:
    pytester.makepyfile(USES_STACK + textwrap.dedent('''
        @pytest.mark.envctl_services("store")
        def test_store_only(envctl_stack):
            record(envctl_stack, "s")
            assert [row.service for row in envctl_stack.status()] == ["store"]
    '''))
    result = pytester.runpytest_subprocess("--envctl-file", str(stack_dir / "envctl.yaml"))
    result.assert_outcomes(passed=1)


def test_xdist_workers_share_one_stack_and_the_last_one_tears_it_down(
        pytester: pytest.Pytester, stack_dir: Path, session_env: Path, engine: Engine) -> None:
    pytester.makepyfile(USES_STACK + textwrap.dedent('''
        @pytest.mark.parametrize("n", range(6))
        def test_many(envctl_stack, n):
            record(envctl_stack, f"t{n}")
            assert requests.get(envctl_stack.url("store") + "/healthz", timeout=10).ok
    '''))
    result = pytester.runpytest_subprocess("-n", "2", "--envctl-file", str(stack_dir / "envctl.yaml"),
                                           "--envctl-services", "store")
    result.assert_outcomes(passed=6)
    runs = runs_seen(session_env)
    assert len(runs) == 1, runs  # both workers used the same stack
    assert left(engine, runs.pop()) == []


def test_reuse_attaches_to_the_stack_envctl_up_started(
        pytester: pytest.Pytester, stack_dir: Path, session_env: Path, engine: Engine, stack_env) -> None:
    topology = load_topology(stack_dir / "envctl.yaml", environ=stack_env)
    running = run_api.up(topology, engine, services=["store"])
    try:
        pytester.makepyfile(USES_STACK + textwrap.dedent('''
            def test_attached(envctl_stack):
                record(envctl_stack, "r")
                assert requests.get(envctl_stack.url("store") + "/healthz", timeout=10).ok
        '''))
        result = pytester.runpytest_subprocess("--envctl-file", str(stack_dir / "envctl.yaml"), "--envctl-reuse")
        result.assert_outcomes(passed=1)
        assert runs_seen(session_env) == {running.run}
        assert left(engine, running.run)  # reuse never stops what it did not start
    finally:
        teardown.down(topology, engine, running.run)


def test_a_failing_test_gets_the_service_logs_in_its_report(
        pytester: pytest.Pytester, stack_dir: Path, session_env: Path) -> None:
    pytester.makepyfile(USES_STACK + textwrap.dedent('''
        @pytest.mark.envctl_services("store")
        def test_fails(envctl_stack):
            requests.get(envctl_stack.url("store") + "/items/missing", timeout=10)
            assert False, "the item should be there"
    '''))
    result = pytester.runpytest_subprocess("--envctl-file", str(stack_dir / "envctl.yaml"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*envctl log: store (last 20 lines)*", '*"GET /items/missing HTTP/1.1" 404*'])


def test_a_service_that_dies_fails_the_next_test_at_once(
        pytester: pytest.Pytester, stack_dir: Path, session_env: Path, engine: Engine) -> None:
    pytester.makepyfile(USES_STACK + textwrap.dedent('''
        import time

        @pytest.mark.envctl_services("store")
        def test_1_kills_the_store(envctl_stack):
            record(envctl_stack, "k")
            envctl_stack.exec("store", ["sh", "-c", "echo going down; kill -TERM 1"])
            for _ in range(100):
                if envctl_stack.dead():
                    break
                time.sleep(0.1)

        def test_2_uses_the_stack(envctl_stack):
            raise AssertionError("must not run")
    '''))
    result = pytester.runpytest_subprocess("--envctl-file", str(stack_dir / "envctl.yaml"))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the stack is broken: service 'store' exited with code*"])
    assert "must not run" not in result.stdout.str()
    (run,) = runs_seen(session_env)
    assert left(engine, run) == []


def started_runs(engine: Engine, stack_dir: Path) -> list[str]:
    """The runs of this stack copy whose containers exist already."""
    runs = stack_dir / ".envctl" / "runs"
    return [d.name for d in runs.iterdir() if run_resources(engine, d.name)["containers"]] if runs.is_dir() else []


def test_sigterm_during_start_up_ends_the_session_with_143_and_removes_the_stack(
        pytester: pytest.Pytester, stack_dir: Path, session_env: Path, engine: Engine) -> None:
    with_stuck_service(stack_dir)  # start-up waits on it until stopped
    pytester.makepyfile(USES_STACK + textwrap.dedent('''
        def test_never_runs(envctl_stack):
            raise AssertionError("must not run")
    '''))
    session = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--envctl-file",
                                str(stack_dir / "envctl.yaml"), "--envctl-services", "stuck"],
                               cwd=pytester.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not (runs := started_runs(engine, stack_dir)) and session.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runs, "start-up never created a container"
    session.send_signal(signal.SIGTERM)
    output = session.communicate(timeout=120)[0]
    assert session.returncode == 143, output
    assert "start-up stopped by SIGTERM" in output and "must not run" not in output
    assert run_resources(engine, runs[0])["containers"] == []
