"""The lab itself: three nodes in one swarm, a registry every node pulls from."""
from __future__ import annotations

import pytest


from .. import swarmlab

pytestmark = pytest.mark.integration


def test_three_ready_nodes_on_their_own_addresses(swarm_lab: swarmlab.Lab) -> None:
    nodes = swarm_lab.engines[1].nodes()
    assert sorted(n["Description"]["Hostname"] for n in nodes) == [swarmlab.node_name(i) for i in (1, 2, 3)]
    assert sorted(n["Status"]["Addr"] for n in nodes) == [swarmlab.node_address(i) for i in (1, 2, 3)]
    assert all(n["Status"]["State"] == "ready" for n in nodes)
    assert all(e.swarm_state()["LocalNodeState"] == "active" for e in swarm_lab.engines.values())
