"""Many runs on one engine: eight `up`s of one topology at once, and an engine out of network addresses."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid

import docker
import pytest

from envctl.backend import engine as eng

from .conftest import clean_environ, envctl, free_port, run_resources

pytestmark = pytest.mark.integration

RUNS = 8


def test_eight_ups_of_one_topology_at_once_all_succeed_and_tear_down(engine, stack_dir, stack_env,
                                                                     remove_runs_afterwards):
    # A fresh image for 'store', so all eight also race to build it (one builds, seven wait and reuse).
    (stack_dir / "store" / "marker.txt").write_text(uuid.uuid4().hex)
    dockerfile = stack_dir / "store" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nCOPY marker.txt /marker.txt\n")
    runs = [f"many-{i}" for i in range(RUNS)]

    def start(args: list[str], run: str) -> subprocess.Popen:
        env = {**stack_env, "API_PORT": str(free_port()), "BACKEND_PORT": str(free_port())}
        return subprocess.Popen([sys.executable, "-m", "envctl", "--run", run, *args], cwd=stack_dir,
                                env=clean_environ(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    ups = {run: start(["up"], run) for run in runs}
    outputs = {run: process.communicate(timeout=600)[0] for run, process in ups.items()}
    failed = {run: out for run, out in outputs.items() if ups[run].returncode != 0}
    assert not failed, failed
    built = [run for run, out in outputs.items() if re.search(r"store\s+build\s", out)]
    assert len(built) == 1, f"exactly one run builds the store image, the rest reuse it: {built}"
    for run in runs:
        found = run_resources(engine, run)
        assert len(found["containers"]) == 3 and len(found["networks"]) == 1 and len(found["volumes"]) == 1, found
    names = [name for run in runs for name in run_resources(engine, run)["containers"]]
    assert len(set(names)) == RUNS * 3

    downs = {run: start(["down"], run) for run in runs}
    for run, process in downs.items():
        out = process.communicate(timeout=300)[0]
        assert process.returncode == 0, out
    for run in runs:
        assert not any(run_resources(engine, run).values()), run


def test_running_out_of_network_addresses_is_a_clear_error(engine, stack_dir, stack_env):
    """Fill the engine's address pools with networks of our own, then ask for one more."""
    filler = {"envctl.test": f"pool-{uuid.uuid4().hex[:8]}"}
    created = []
    try:
        for index in range(256):  # bounded: default pools hold about 30 networks
            try:
                created.append(engine.api.create_network(f"envctl-test-pool-{index}-{filler['envctl.test']}",
                                                          labels=filler)["Id"])
            except docker.errors.APIError as exc:
                assert eng.POOL_EXHAUSTED in str(exc), exc
                break
        else:
            pytest.skip("this engine's address pools did not run out after 256 networks")
        result = envctl(["up", "--run", "no-room"], stack_dir, stack_env, check=False)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert "no free address range" in result.stderr and "default-address-pools" in result.stderr, result.stderr
        assert "envctl gc" in result.stderr
        assert not any(run_resources(engine, "no-room").values())
    finally:
        for network_id in created:
            engine.api.remove_network(network_id)
