"""The swarm lab for one test session: a real 3-node Docker Swarm (see ../swarmlab.py).

Skipped, with the reason, where it cannot run (not root, a tool missing). One lab at a time
on the machine: a second session waits for the first one's lock.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from envctl.backend import engine as eng
from envctl.backend.engine import Engine

from .. import swarmlab
from ..conftest import remove_images_since

PROJECT = "envctl-swarm-test"
PROJECTS = (PROJECT, "shop")  # the swarm stack's, and the reference stack's


@pytest.fixture(scope="session")
def swarm_lab() -> Iterator[swarmlab.Lab]:
    reason = swarmlab.unavailable()
    if reason:
        pytest.skip(reason)
    with swarmlab.LabLock():
        lab = swarmlab.up()
        print(f"\nswarm lab up in {lab.timings['up']:.2f}s (engines {lab.timings['engines']:.2f}s, "
              f"swarm {lab.timings['swarm']:.2f}s)")
        try:
            yield lab
        finally:
            began = time.monotonic()
            swarmlab.down(lab.root)
            print(f"\nswarm lab down in {time.monotonic() - began:.2f}s")


@pytest.fixture(scope="session")
def built_images(swarm_lab: swarmlab.Lab) -> Iterator[None]:
    """At the end, remove the images of the test projects this session made on the local engine,
    and the lab registry's tags it put on images that were there before."""
    local = Engine.connect()
    before = {project: {image["Id"] for image in local.images({eng.PROJECT: project})} for project in PROJECTS}
    yield
    for project in PROJECTS:
        remove_images_since(local, project, before[project])
        swarm_lab.untag_pushed(local, project)


BUILD_ON_LAB = "ENVCTL_SWARMLAB_BUILD_ON_LAB"  # "1": build on the lab's manager (no use of this machine's engine)


@pytest.fixture
def lab_env(swarm_lab: swarmlab.Lab, request: pytest.FixtureRequest) -> dict[str, str]:
    """envctl's environment for the lab: its manager, its registry (as this engine and the nodes reach it)."""
    env = {"PATH": os.environ["PATH"], **swarm_lab.envctl_environment()}
    if os.environ.get(BUILD_ON_LAB) == "1":  # for working on the backend while the machine's engine is busy
        return {**env, "ENVCTL_BUILD_HOST": swarm_lab.manager, "ENVCTL_REGISTRY": f"{swarm_lab.registry}/lab"}
    request.getfixturevalue("built_images")
    return env
