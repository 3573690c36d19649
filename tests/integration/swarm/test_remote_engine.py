"""A remote engine without a cluster: one of the lab's engines, at tcp://ADDRESS, as another host would be.

Host-side addresses are then that host's, not 127.0.0.1, and publishing beyond the remote's
loopback is an explicit choice ($ENVCTL_PUBLISH_ADDRESS).
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
import requests

from envctl.backend import engine as eng

from .. import swarmlab
from ..conftest import envctl
from .conftest import PROJECT
from .test_swarm_backend import STACK, current_run

pytestmark = pytest.mark.integration

NODE = 2


@pytest.fixture
def remote_env(swarm_lab: swarmlab.Lab) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "DOCKER_HOST": swarm_lab.serve_tcp(NODE)}


def left_on(lab: swarmlab.Lab, run: str) -> dict[str, list[str]]:
    engine, labels = lab.engines[NODE], {eng.PROJECT: PROJECT, eng.RUN: run}
    left = {"containers": [c.name for c in engine.containers(labels)],
            "networks": [n["Name"] for n in engine.networks(labels)],
            "volumes": [v["Name"] for v in engine.volumes(labels)]}
    return {k: v for k, v in left.items() if v}


def test_up_status_down_on_a_remote_engine(swarm_lab: swarmlab.Lab, tmp_path: Path,
                                           remote_env: dict[str, str]) -> None:
    stack = tmp_path / "stack"
    shutil.copytree(STACK, stack)
    refused = envctl(["up"], stack, remote_env, check=False)
    assert refused.returncode == 1 and "ENVCTL_PUBLISH_ADDRESS" in refused.stderr, refused.stderr
    env = {**remote_env, "ENVCTL_PUBLISH_ADDRESS": swarmlab.node_address(NODE)}
    began = time.monotonic()
    envctl(["up"], stack, env)
    print(f"\nup on a remote engine (bootstrap, build there, start, ready) {time.monotonic() - began:.2f}s")
    run = current_run(stack)
    status = envctl(["status"], stack, {**env, "COLUMNS": "250"}).stdout
    assert f"{swarmlab.node_address(NODE)}:" in status and "127.0.0.1" not in status, status
    address = envctl(["port", "api"], stack, env).stdout.strip()
    assert address.startswith(swarmlab.node_address(NODE) + ":"), address
    answer = requests.get(f"http://{address}/cgi-bin/who", timeout=10).text.strip()
    assert re.fullmatch(r"api \S+ store \S+ one", answer), answer  # the api reached the store by name
    assert f"STORE_HOST={swarmlab.node_address(NODE)}" in envctl(["env", "api"], stack, env).stdout
    envctl(["down"], stack, env)
    assert left_on(swarm_lab, run) == {}
