"""Security of a running stack: loopback-only ports, and the engine's socket only when asked for."""
from __future__ import annotations

import pytest

from .conftest import PROJECT, envctl
from .exposure import assert_loopback_only, assert_no_docker_socket

pytestmark = pytest.mark.integration


def test_published_ports_bind_loopback_only_and_no_container_gets_the_socket(engine, stack_dir, stack_env):
    envctl(["up", "--run", "exposure"], stack_dir, stack_env)
    try:
        assert assert_loopback_only(engine, PROJECT, "exposure") == 3  # fixed and ephemeral ports alike
        assert assert_no_docker_socket(engine, PROJECT, "exposure") == 3
    finally:
        envctl(["down"], stack_dir, stack_env)


def test_the_docker_socket_needs_an_explicit_opt_in_and_then_config_warns(stack_dir, stack_env):
    path = stack_dir / "envctl.yaml"
    original = path.read_text()
    with_socket = original.replace('    volumes: ["store-data:/data"]',
                                   '    volumes: ["store-data:/data", "/var/run/docker.sock:/var/run/docker.sock"]')
    assert with_socket != original
    path.write_text(with_socket)
    refused = envctl(["config"], stack_dir, stack_env, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"{path}:" in refused.stderr and "services.store.volumes[1]" in refused.stderr, refused.stderr
    assert "docker_socket: true" in refused.stderr
    path.write_text(with_socket.replace("  store:\n", "  store:\n    docker_socket: true\n", 1))
    allowed = envctl(["config"], stack_dir, stack_env)
    assert "warning: service 'store' gets the Docker engine's socket" in allowed.stderr, allowed.stderr
