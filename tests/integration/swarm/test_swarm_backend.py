"""The swarm backend on the 3-node lab: a stack placed across nodes, traffic between them, nothing left.

The stack's images are built on this machine's engine (a 2 MB busybox base), pushed to the
lab's registry by content hash, and pulled by the nodes.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from envctl.backend import engine as eng
from envctl.runtime import state
from envctl.topology import load_topology

from .. import swarmlab
from ..conftest import envctl
from .conftest import PROJECT

pytestmark = pytest.mark.integration

STACK = Path(__file__).parent / "stack"


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    target = tmp_path / "stack"
    shutil.copytree(STACK, target)
    return target


def on_lab(lab: swarmlab.Lab, run: str) -> dict[str, list[str]]:
    """What of `run` is anywhere on the lab: services, networks, containers and volumes on every node."""
    labels = {eng.PROJECT: PROJECT, eng.RUN: run}
    manager = lab.engines[1]
    left = {"services": [s["Spec"]["Name"] for s in manager.services(labels)],
            "networks": [n["Name"] for n in manager.networks(labels)]}
    for index, engine in lab.engines.items():
        left[f"n{index} containers"] = [c.name for c in engine.containers({})
                                        if c.labels.get("envctl.swarm-service", "").startswith(f"envctl-{PROJECT}-{run}")]
        left[f"n{index} volumes"] = [v["Name"] for v in engine.volumes(labels)]
    return {k: v for k, v in left.items() if v}


def current_run(stack: Path) -> str:
    record = state.read_current(load_topology(stack / "envctl.yaml", environ={}))
    assert record is not None
    return record.run


def status_rows(stack: Path, env: dict[str, str]) -> dict[str, list[str]]:
    out = envctl(["status"], stack, {**env, "COLUMNS": "250"}).stdout
    return {line.split()[0]: line.split() for line in out.splitlines() if line.split() and line.split()[0] in
            ("store", "api", "worker")}


def nodes_of(stack: Path, env: dict[str, str]) -> dict[str, str]:
    """Each service's node, as `envctl status` shows it."""
    return {name: next((cell for cell in row if cell.startswith("envsw-n")), "-")
            for name, row in status_rows(stack, env).items()}


def ask_api(stack: Path, env: dict[str, str]) -> str:
    """The api's answer to the host, at its node's address (it asks the store across the overlay)."""
    address = envctl(["port", "api"], stack, env).stdout.strip()
    assert address.startswith(swarmlab.SUBNET + "."), address
    return requests.get(f"http://{address}/cgi-bin/who", timeout=10).text.strip()


def test_a_stack_across_nodes_talks_across_them_and_leaves_nothing(swarm_lab: swarmlab.Lab, stack: Path,
                                                                   lab_env: dict[str, str]) -> None:
    began = time.monotonic()
    up = envctl(["up"], stack, lab_env)
    deployed = time.monotonic() - began
    run = current_run(stack)
    assert "endpoint_mode dnsrr" in up.stdout + up.stderr  # it says how it deploys, and why
    nodes = nodes_of(stack, lab_env)
    assert set(nodes) == {"store", "api", "worker"} and all(n.startswith("envsw-n") for n in nodes.values()), nodes
    assert len(set(nodes.values())) > 1, f"all tasks on one node: {nodes}"
    assert ask_api(stack, lab_env) == f"api {nodes['api']}-api store {nodes['store']}-store one"
    if nodes["api"] != nodes["store"]:
        print(f"\ntraffic crossed nodes: api on {nodes['api']} reached the store on {nodes['store']}")
    logs = envctl(["logs", "worker"], stack, lab_env).stdout
    assert f"store {nodes['store']}-store one" in logs
    # exec reaches the task's container on its node; env gives the host's view: the store's node address
    assert envctl(["exec", "store", "--", "cat", "/www/who.txt"], stack, lab_env).stdout.strip() == \
        f"{nodes['store']}-store one"
    host_env = envctl(["env", "api"], stack, lab_env).stdout
    assert f"STORE_HOST={swarmlab.SUBNET}.1{nodes['store'][-1]}" in host_env, host_env
    print(f"\nup (build, push, deploy, ready) {deployed:.2f}s; nodes {nodes}")
    began = time.monotonic()
    envctl(["down"], stack, lab_env)
    print(f"down {time.monotonic() - began:.2f}s")
    assert on_lab(swarm_lab, run) == {}


def test_two_runs_side_by_side_do_not_collide(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                              lab_env: dict[str, str]) -> None:
    stacks = {tag: tmp_path / tag for tag in ("one", "two")}
    for tag, copy in stacks.items():
        shutil.copytree(STACK, copy)
    try:
        began = time.monotonic()
        for tag, copy in stacks.items():
            envctl(["up"], copy, {**lab_env, "TAG": tag})
        print(f"\ntwo runs up one after the other in {time.monotonic() - began:.2f}s (images pushed already)")
        runs = {tag: current_run(copy) for tag, copy in stacks.items()}
        assert runs["one"] != runs["two"]
        for tag, copy in stacks.items():  # each api reaches its own run's store, by the same name "store"
            assert ask_api(copy, lab_env).endswith(f"-store {tag}")
    finally:
        for copy in stacks.values():
            envctl(["down"], copy, lab_env, check=False)
    assert all(on_lab(swarm_lab, run) == {} for run in runs.values())


def test_a_lost_node_s_task_comes_back_elsewhere_and_status_says_where(swarm_lab: swarmlab.Lab, stack: Path,
                                                                        lab_env: dict[str, str]) -> None:
    """Last in the module: it kills a node's engine (and starts it again after)."""
    envctl(["up"], stack, lab_env)
    run = current_run(stack)
    before = nodes_of(stack, lab_env)
    victim = next(name for name in ("worker", "api", "store") if before[name] != swarmlab.node_name(1))
    lost = int(before[victim].removeprefix("envsw-n"))
    try:
        began = time.monotonic()
        swarm_lab.kill_engine(lost)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = nodes_of(stack, lab_env)
            rows = status_rows(stack, lab_env)
            if after[victim] not in ("-", before[victim]) and rows[victim][1:3] == ["running", "ready"]:
                break
            time.sleep(0.5)
        moved = time.monotonic() - began
        assert after[victim] != before[victim], f"{victim} still on {before[victim]} after 60s: {rows}"
        print(f"\n{victim} moved from {before[victim]} to {after[victim]} in {moved:.2f}s")
        assert ask_api(stack, lab_env).startswith("api ")
    finally:
        swarm_lab.restart_engine(lost)
        envctl(["down"], stack, lab_env, check=False)
    deadline = time.monotonic() + 30
    while on_lab(swarm_lab, run) and time.monotonic() < deadline:  # the restarted node stops its orphans
        time.sleep(0.5)
    assert on_lab(swarm_lab, run) == {}
