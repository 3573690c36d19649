"""Faults on the 3-node lab: what cannot be placed, what crashes, what a swarm cannot do, owners that die.

Each test writes its own topology beside the swarm stack's images (the same tiny busybox
base and app), so after the first build nothing is built or pushed again.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from envctl.backend import engine as eng

from .. import swarmlab
from ..conftest import Background, envctl
from .conftest import PROJECT
from .test_swarm_backend import STACK, on_lab

pytestmark = pytest.mark.integration

HEAD = """name: envctl-swarm-test
bases:
  tiny:
    bootstrap: {distro: debian, suite: bookworm, variant: extract, packages: [busybox-static]}
services:
"""
STORE = """
  store:
    build: app
    base: tiny
    command: [sh, /app/store.sh]
    ports: ["8000"]
    probe: {http: /healthz, port: 8000, timeout: 60s}
    volumes: ["store-data:/data"]
"""
REAP_LIMIT = 30.0  # seconds: the reaper polls four times a second, then removes services, network, volumes


def stack_with(tmp_path: Path, services: str) -> Path:
    target = tmp_path / "stack"
    shutil.copytree(STACK, target)
    (target / "envctl.yaml").write_text(HEAD + services)
    return target


def project_on_lab(lab: swarmlab.Lab) -> dict[str, list[str]]:
    """Anything of the test project anywhere on the lab (every run: a failed `up` leaves no current run)."""
    left = on_lab(lab, "")  # containers by name prefix (every run); services, networks, volumes asked below
    labels = {eng.PROJECT: PROJECT}
    manager = lab.engines[1]
    left.update({"services": [s["Spec"]["Name"] for s in manager.services(labels)],
                 "networks": [n["Name"] for n in manager.networks(labels)],
                 **{f"{kind}s": [f["Spec"]["Name"] for f in manager.swarm_files(kind, labels)]
                    for kind in ("secret", "config")}})
    for index, engine in lab.engines.items():
        left[f"n{index} volumes"] = [v["Name"] for v in engine.volumes(labels)]
    return {k: v for k, v in left.items() if v}


def failed_up(stack: Path, env: dict[str, str]) -> tuple[str, float]:
    """`envctl up` that must fail without a traceback: what it said, and after how many seconds."""
    began = time.monotonic()
    up = envctl(["up"], stack, env, check=False)
    said = up.stdout + up.stderr
    assert up.returncode != 0 and "Traceback" not in said, said
    return said, time.monotonic() - began


def wait_until_nothing_left(lab: swarmlab.Lab, limit: float) -> float:
    began = time.monotonic()
    while project_on_lab(lab) and time.monotonic() - began < limit:
        time.sleep(0.25)
    assert project_on_lab(lab) == {}, f"left on the lab after {limit:g}s"
    return time.monotonic() - began


@pytest.mark.parametrize(("deploy", "reason"), [
    ("{placement: {constraints: [node.labels.zone == nowhere]}}", "scheduling constraints not satisfied on 3 nodes"),
    ("{resources: {reservations: {memory: 4000G}}}", "insufficient resources on 3 nodes"),
])
def test_a_service_no_node_can_take_fails_up_with_the_swarm_s_reason(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                                                     lab_env: dict[str, str], deploy: str,
                                                                     reason: str) -> None:
    stack = stack_with(tmp_path, STORE + f"""
  unplaceable:
    build: app
    base: tiny
    command: [sh, /app/store.sh]
    depends_on: [store]
    ports: ["8000"]
    probe: {{http: /healthz, port: 8000, timeout: 120s}}
    deploy: {deploy}
""")
    said, failed_in = failed_up(stack, lab_env)
    assert "service 'unplaceable' did not become ready: it could not run: no suitable node" in said, said
    assert reason in said, said
    assert "not ready after 120s" not in said
    print(f"\nunplaceable ({reason}): up failed after {failed_in:.2f}s (its probe would wait 120s)")
    assert project_on_lab(swarm_lab) == {}


@pytest.mark.parametrize("restart", ["no", "always"])
def test_a_task_that_crashes_during_up_fails_it_with_its_exit_code(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                                                   lab_env: dict[str, str], restart: str) -> None:
    stack = stack_with(tmp_path, f"""
  crasher:
    build: app
    base: tiny
    command: [sh, -c, "echo about to fail; sleep 1; exit 3"]
    restart: "{restart}"
    ports: ["8000"]
    probe: {{http: /healthz, port: 8000, timeout: 120s}}
""")
    said, failed_in = failed_up(stack, lab_env)
    assert "service 'crasher' did not become ready: its container exited with code 3" in said, said
    assert "about to fail" in said  # its log's tail
    print(f"\nrestart {restart}: up failed {failed_in:.2f}s after it began (its probe would wait 120s)")
    assert project_on_lab(swarm_lab) == {}


def test_placement_and_runtime_keys_reach_the_task(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                                   lab_env: dict[str, str]) -> None:
    node = swarmlab.node_name(3)
    stack = stack_with(tmp_path, f"""
  tuned:
    build: app
    base: tiny
    command: [sh, /app/store.sh]
    ports: ["8000"]
    probe: {{http: /healthz, port: 8000, timeout: 60s}}
    cap_drop: [NET_RAW]
    cap_add: [SYS_TIME]
    ulimits: {{nofile: {{soft: 1234, hard: 2345}}}}
    sysctls: {{net.ipv4.tcp_syncookies: "0"}}
    tmpfs: ["/scratch:size=1m"]
    deploy:
      placement: {{constraints: [node.hostname == {node}]}}
      resources: {{limits: {{cpus: "0.5", pids: 64}}, reservations: {{cpus: "0.1", memory: 8M}}}}
""")
    envctl(["up"], stack, lab_env)
    try:
        status = envctl(["status"], stack, {**lab_env, "COLUMNS": "250"}).stdout
        assert node in status, status
        inside = envctl(["exec", "tuned", "--", "sh", "-c",
                         "ulimit -n; ulimit -Hn; cat /proc/sys/net/ipv4/tcp_syncookies; "
                         "grep CapBnd /proc/self/status; df -k /scratch | tail -1"], stack, lab_env).stdout.split("\n")
        assert inside[:3] == ["1234", "2345", "0"], inside
        bounding = int(inside[3].split()[1], 16)
        assert bounding & (1 << 25) and not bounding & (1 << 13), inside[3]  # SYS_TIME added, NET_RAW dropped
        assert inside[4].split()[1] == "1024", inside[4]  # a 1 MiB tmpfs
        service = swarm_lab.engines[1].services({eng.PROJECT: PROJECT})[0]["Spec"]["TaskTemplate"]
        assert service["Resources"] == {"Limits": {"NanoCPUs": 500_000_000, "Pids": 64},
                                        "Reservations": {"NanoCPUs": 100_000_000, "MemoryBytes": 8 << 20}}
    finally:
        envctl(["down"], stack, lab_env)
    assert project_on_lab(swarm_lab) == {}


def test_what_a_swarm_service_cannot_do_stops_up_before_anything_exists(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                                                        lab_env: dict[str, str]) -> None:
    stack = stack_with(tmp_path, STORE + """
  powerful:
    build: app
    base: tiny
    privileged: true
    x-envctl-allow: [privileged]
""")
    said, _ = failed_up(stack, lab_env)
    assert f"{stack / 'envctl.yaml'}:" in said and "services.powerful.privileged" in said, said
    assert "cap_add" in said  # what to do instead
    assert project_on_lab(swarm_lab) == {}


STUCK = STORE + """
  stuck:
    build: app
    base: tiny
    command: [sleep, "900"]
    depends_on: [store]
    ports: ["9999"]
    probe: {tcp: 9999, timeout: 900s}
"""


def test_an_up_killed_half_way_is_reaped_from_every_node(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                                         lab_env: dict[str, str]) -> None:
    stack = stack_with(tmp_path, STUCK)
    up = Background(["up", "--run", "killed"], stack, lab_env)
    up.wait_for(r"stuck\s+wait")
    assert project_on_lab(swarm_lab).get("services"), "the run should be half-way up"
    up.kill_group()  # as a CI abort does: every process of the job's group, at once
    assert up.wait() == -signal.SIGKILL
    seconds = wait_until_nothing_left(swarm_lab, REAP_LIMIT)
    reaper_log = (stack / ".envctl/runs/killed/reaper.log").read_text()
    assert "removed run killed" in reaper_log and "is gone" in reaper_log, reaper_log
    print(f"\nreaped from every node {seconds:.1f}s after SIGKILL")


def test_gc_removes_a_swarm_run_whose_owner_and_reaper_both_died(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                                                 lab_env: dict[str, str]) -> None:
    stack = stack_with(tmp_path, STORE)
    owner = subprocess.Popen(["sleep", "600"])
    try:
        envctl(["up", "--run", "orphan", "--bind-to", str(owner.pid)], stack, lab_env)
        os.kill(int((stack / ".envctl/runs/orphan/reaper.pid").read_text()), signal.SIGKILL)
    finally:
        owner.kill()
        owner.wait()
    time.sleep(0.5)
    assert project_on_lab(swarm_lab).get("services"), "without its reaper the run stays"
    gc = envctl(["gc"], stack, lab_env)
    assert f"removed {PROJECT} run orphan (1 containers, 1 networks, 1 volumes)" in gc.stdout, gc.stdout
    assert "is gone" in gc.stdout
    assert project_on_lab(swarm_lab) == {}


def test_secrets_and_configs_are_the_swarm_s_own_and_go_with_the_run(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                                                     lab_env: dict[str, str]) -> None:
    stack = stack_with(tmp_path, STORE + """
    secrets: [token]
    configs: [{source: settings, target: /etc/app.conf, mode: "0440"}]
secrets:
  token: {file: ./token.txt}
configs:
  settings: {content: "answer=42"}
""")
    (stack / "token.txt").write_text("s3cret\n")
    envctl(["up"], stack, lab_env)
    try:
        kinds = {kind: [f["Spec"]["Name"] for f in swarm_lab.engines[1].swarm_files(kind, {eng.PROJECT: PROJECT})]
                 for kind in ("secret", "config")}
        assert len(kinds["secret"]) == 1 and len(kinds["config"]) == 1, kinds
        (stack / "token.txt").write_text("changed here\n")  # a bind of this machine's file would show it
        inside = envctl(["exec", "store", "--", "sh", "-c", "cat /run/secrets/token /etc/app.conf; echo; "
                         "stat -c %a /etc/app.conf"], stack, lab_env).stdout.split()
        assert inside == ["s3cret", "answer=42", "440"], inside
    finally:
        envctl(["down"], stack, lab_env)
    assert project_on_lab(swarm_lab) == {}


def test_gc_removes_a_run_of_which_only_a_secret_was_made(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                                          lab_env: dict[str, str]) -> None:
    """An `up` that died after making a service's secret and before anything else: the secret alone is the run."""
    from envctl.runtime import lease

    owner = subprocess.Popen(["sleep", "600"])
    dead = lease.Lease(lease.Owner.of(owner.pid))
    owner.kill()
    owner.wait()
    labels = {**eng.run_labels(PROJECT, "secretonly"), **dead.labels(tmp_path / ".envctl/runs/secretonly")}
    swarm_lab.engines[1].create_swarm_file("secret", "envctl-secretonly-token", b"s3cret", labels)
    gc = envctl(["gc"], tmp_path, lab_env)
    assert (f"removed {PROJECT} run secretonly (0 containers, 0 networks, 0 volumes, 1 secrets and configs)"
            in gc.stdout), gc.stdout
    assert project_on_lab(swarm_lab) == {}
