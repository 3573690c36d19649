"""The swarm lab for one test session: a real 3-node Docker Swarm (see ../swarmlab.py).

Skipped, with the reason, where it cannot run (not root, a tool missing). One lab at a time
on the machine: a second session waits for the first one's lock.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .. import swarmlab


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
