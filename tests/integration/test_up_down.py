"""`up` and `down` on the real engine: wiring across services, host-side env, ports, teardown."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from envctl.runtime import run as run_api
from envctl.runtime import teardown
from envctl.backend.engine import Engine
from envctl.errors import PortTaken, StartupFailed
from envctl.topology import Topology, load_topology
from tests.integration.conftest import envctl, run_resources

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(topology: Topology, engine: Engine):
    result = run_api.up(topology, engine)
    yield result
    teardown.down(topology, engine, result.run)
    assert run_resources(engine, result.run) == {"containers": [], "networks": [], "volumes": []}


def test_a_request_through_the_published_port_crosses_two_services(stack, topology: Topology, stack_env) -> None:
    api = f"http://127.0.0.1:{stack_env['API_PORT']}"
    assert requests.put(f"{api}/items/greeting", data=b"hello", timeout=10).status_code == 201
    body = requests.get(f"{api}/items/greeting", timeout=10).json()
    # api reached backend, and backend reached store, each through its wired environment
    assert body["value"] == "hello" and body["store"] == "primary"
    assert body["backend_url"] == "http://backend:8000" and body["store_url"] == "http://store:8000"


def test_env_values_work_from_the_host(stack, topology: Topology, engine: Engine) -> None:
    record = run_api.current_run(topology)
    env = run_api.host_environment(engine, topology, record, "backend")
    assert env["STORE_HOST"] == "127.0.0.1"
    assert env["STORE_URL"] == f"http://127.0.0.1:{env['STORE_PORT']}"
    assert requests.get(env["STORE_URL"] + "/healthz", timeout=10).json() == {"ok": True}


def test_cli_status_port_env_and_logs(stack, stack_dir: Path, stack_env) -> None:
    status = envctl(["status"], stack_dir, stack_env).stdout
    for name in ("store", "backend", "api"):
        assert name in status
    assert status.count("ready") >= 3 and "not ready" not in status
    assert envctl(["port", "api"], stack_dir, stack_env).stdout.strip() == f"127.0.0.1:{stack_env['API_PORT']}"
    lines = envctl(["env", "backend"], stack_dir, stack_env).stdout.splitlines()
    store_url = dict(line.split("=", 1) for line in lines)["STORE_URL"]
    assert requests.get(store_url + "/healthz", timeout=10).ok
    logs = envctl(["logs", "store"], stack_dir, stack_env).stdout
    assert "store primary listening on 8000" in logs
    exec_result = envctl(["exec", "store", "--", "sh", "-c", "exit 7"], stack_dir, stack_env, check=False)
    assert exec_result.returncode == 7


def test_up_again_is_a_no_op_and_a_change_recreates_the_service_and_its_dependents(
        stack, topology: Topology, engine: Engine, stack_dir: Path, stack_env) -> None:
    again = run_api.up(topology, engine)
    assert again.run == stack.run and again.started == [] and sorted(again.unchanged) == ["api", "backend", "store"]
    assert not any(image.built for image in again.images.values())

    before = run_api.containers_by_service(engine, topology, stack.run)
    changed = load_topology(stack_dir / "envctl.yaml", environ={**stack_env, "STORE_NAME": "secondary"})
    third = run_api.up(changed, engine)
    after = run_api.containers_by_service(engine, topology, stack.run)
    assert sorted(third.started) == ["api", "backend", "store"]  # store changed; the rest depend on it
    assert all(after[n].id != before[n].id for n in ("store", "backend", "api"))
    body = requests.get(f"http://127.0.0.1:{stack_env['API_PORT']}/items/none", timeout=10).json()
    assert body["error"] == "no items_none"


def test_dry_run_prints_the_plan_and_changes_nothing(
        stack, topology: Topology, engine: Engine, stack_dir: Path, stack_env) -> None:
    """The plan against a live run: all kept; a changed setting recreates store and what depends on it."""
    before = {n: c.id for n, c in run_api.containers_by_service(engine, topology, stack.run).items()}
    kept = envctl(["up", "--dry-run"], stack_dir, stack_env).stdout
    assert f"run {stack.run}\n" in kept
    for name in ("store", "backend", "api"):
        assert f"{name:<20} keep     (unchanged)" in kept
    changed = envctl(["up", "--dry-run"], stack_dir, {**stack_env, "STORE_NAME": "secondary"}).stdout
    assert f"{'store':<20} recreate (configuration or image changed)" in changed
    assert f"{'backend':<20} recreate (a dependency is recreated); waits for store ready" in changed
    after = {n: c.id for n, c in run_api.containers_by_service(engine, topology, stack.run).items()}
    assert after == before  # planned, not done


def test_down_saves_logs_and_leaves_nothing(topology: Topology, engine: Engine) -> None:
    result = run_api.up(topology, engine, services=["store"])
    assert run_resources(engine, result.run)["volumes"]  # the named volume exists while up
    down = teardown.down(topology, engine, result.run)
    assert run_resources(engine, result.run) == {"containers": [], "networks": [], "volumes": []}
    assert "store primary listening" in (down.logs_dir[result.run] / "store.log").read_text()
    again = teardown.down(topology, engine, result.run)  # twice is fine
    assert again.containers == 0


def test_a_taken_fixed_port_is_an_error_before_anything_starts(topology: Topology, engine: Engine, stack_env) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(stack_env["API_PORT"])))
        holder.listen()
        with pytest.raises(PortTaken) as caught:
            run_api.up(topology, engine, run_id="porttaken")
    text = str(caught.value)
    assert f"host port {stack_env['API_PORT']} for service 'api' is already in use" in text
    assert "Fix:" in text
    assert run_resources(engine, "porttaken") == {"containers": [], "networks": [], "volumes": []}


def test_a_service_that_never_gets_ready_fails_with_its_logs_and_leaves_nothing(
        stack_dir: Path, stack_env, engine: Engine) -> None:
    path = stack_dir / "envctl.yaml"
    text = path.read_text().replace("probe: {http: /healthz, port: 8000, timeout: 60s}",
                                    "probe: {http: /missing, port: 8000, timeout: 3s}")
    path.write_text(text)
    topology = load_topology(path, environ=stack_env)
    with pytest.raises(StartupFailed) as caught:
        run_api.up(topology, engine, run_id="neverready")
    message = str(caught.value)
    assert "service 'store' did not become ready: it was not ready after 3s" in message
    assert "HTTP 404" in message  # the probe's last result
    assert '"GET /missing HTTP/1.1" 404' in message  # the container's last log lines
    assert run_resources(engine, "neverready") == {"containers": [], "networks": [], "volumes": []}
    report = (stack_dir / ".envctl" / "runs" / "neverready" / "report.html").read_text()
    assert "failed" in report  # a failed start-up is recorded too


def test_a_crashing_service_is_reported_at_once_with_its_exit_code(stack_dir: Path, stack_env, engine: Engine) -> None:
    path = stack_dir / "envctl.yaml"
    path.write_text(path.read_text().replace(
        "  store:\n    build: store\n    command: [python3, -u, /app/app.py]",
        "  store:\n    build: store\n    command: [sh, -c, 'echo cannot open database; exit 3']"))
    topology = load_topology(path, environ=stack_env)
    with pytest.raises(StartupFailed) as caught:
        run_api.up(topology, engine, run_id="crashes")
    # reported as the exit, not as the 60 s readiness timeout running out
    assert "its container exited with code 3" in str(caught.value)
    assert "not ready after" not in str(caught.value)
    assert "cannot open database" in str(caught.value)
    assert run_resources(engine, "crashes") == {"containers": [], "networks": [], "volumes": []}


def test_one_service_on_the_host_and_the_rest_in_containers(topology: Topology, engine: Engine,
                                                          stack_dir: Path, stack_env) -> None:
    result = run_api.up(topology, engine, except_services=["backend"])
    host_backend = None
    try:
        assert sorted(result.started) == ["api", "store"]
        record = run_api.current_run(topology)
        env = run_api.host_environment(engine, topology, record, "backend")
        port = stack_env["BACKEND_PORT"]
        host_backend = subprocess.Popen(
            [sys.executable, str(stack_dir / "backend" / "app.py")],
            env={**os.environ, **env, "PORT": port}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        api = f"http://127.0.0.1:{stack_env['API_PORT']}"
        # container (api) -> host (backend, via the host gateway) -> container (store)
        assert requests.put(f"{api}/items/k", data=b"v", timeout=10).status_code == 201
        body = requests.get(f"{api}/items/k", timeout=10).json()
        assert body["value"] == "v"
        assert body["backend_url"] == f"http://host.docker.internal:{port}"
        status = {row.service: row.state for row in run_api.status(engine, topology, record)}
        assert status["backend"] == "on-host"
    finally:
        if host_backend is not None:
            host_backend.terminate()
            host_backend.wait(10)
        teardown.down(topology, engine, result.run)
    assert run_resources(engine, result.run) == {"containers": [], "networks": [], "volumes": []}


def test_two_runs_of_one_topology_do_not_collide(stack_dir: Path, engine: Engine, stack_env) -> None:
    topology = load_topology(stack_dir / "envctl.yaml", environ=stack_env)
    first = run_api.up(topology, engine, services=["store"], run_id="first")
    try:
        second = run_api.up(topology, engine, services=["store"], run_id="second")
        try:
            names = run_resources(engine, "first")["containers"] + run_resources(engine, "second")["containers"]
            assert len(set(names)) == 2 and all(("first" in n) or ("second" in n) for n in names)
        finally:
            teardown.down(topology, engine, second.run)
    finally:
        teardown.down(topology, engine, first.run)
