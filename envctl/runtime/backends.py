"""Choosing where a run's containers go: the local engine, or the Docker Swarm DOCKER_HOST manages.

`--backend`, else $ENVCTL_BACKEND, else `backend:` in the topology, else the local engine.
On a swarm, images are still built on this machine's engine ($ENVCTL_BUILD_HOST to build
elsewhere) and pushed to the registry (`--registry`, $ENVCTL_REGISTRY, `registry:`) that the
nodes pull from ($ENVCTL_SWARM_REGISTRY when they reach it by another address).
"""
from __future__ import annotations

import os

from envctl.backend.base import Backend
from envctl.backend.engine import Engine, local_engine_location
from envctl.backend.swarm import NODES_ENV, PULL_REGISTRY_ENV, SwarmBackend, node_engines
from envctl.errors import EnvctlError
from envctl.images import registry
from envctl.topology import Topology
from envctl.topology.sections.project import BACKENDS  # noqa: F401 - also the library API's

BACKEND_ENV = "ENVCTL_BACKEND"
BUILD_HOST_ENV = "ENVCTL_BUILD_HOST"


def choice(topology: Topology, flag: str | None = None) -> str:
    for text, source in ((flag, "--backend"), (os.environ.get(BACKEND_ENV), f"${BACKEND_ENV}"),
                         (topology.backend, f"'backend:' in {topology.file.name}")):
        if text:
            if text not in BACKENDS:
                raise EnvctlError(f"{source}: unknown backend {text!r}", fix="use 'engine' or 'swarm'")
            return text
    return "engine"


def connect(topology: Topology, flag: str | None = None, registry_flag: str | None = None) -> Backend:
    """The backend runs of `topology` use, connected."""
    engine = Engine.connect()
    if choice(topology, flag) == "engine":
        return engine
    _check_manager(engine)
    # Without a registry, `status` and `down` still work; pushing an image says what is missing.
    location = registry.location_setting(registry_flag, registry.REGISTRY_ENV, topology.registry, "registry")
    pull = registry.location_setting(None, PULL_REGISTRY_ENV, None, "registry")
    builder = Engine.at(os.environ.get(BUILD_HOST_ENV) or local_engine_location()[0])
    return SwarmBackend(engine, builder, location, pull, node_engines(os.environ.get(NODES_ENV, "")))


def connect_for_removal() -> Backend:
    """For `gc` (any project's runs, no topology): the backend $ENVCTL_BACKEND names; removing needs no registry."""
    engine = Engine.connect()
    if os.environ.get(BACKEND_ENV, "engine") != "swarm":
        return engine
    _check_manager(engine)
    return SwarmBackend(engine, engine, None, None, node_engines(os.environ.get(NODES_ENV, "")))


def _check_manager(engine: Engine) -> None:
    swarm = engine.swarm_state()
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise EnvctlError("the swarm backend needs a swarm manager, and the engine envctl reaches is not one "
                          f"(swarm state: {swarm.get('LocalNodeState') or 'unknown'})",
                          fix="point DOCKER_HOST (or the docker context) at a manager of the cluster, "
                          "or use '--backend engine'")
