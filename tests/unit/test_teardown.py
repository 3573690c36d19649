"""Teardown is best effort: one refused removal does not skip the rest, the record or the lease.

The engine here is a stand-in that records what it was asked: the ordering logic is
tested, not Docker (tests/integration/test_teardown.py makes a real engine refuse).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from envctl.runtime import lease, state
from envctl.runtime import teardown
from envctl.backend.engine import ContainerState
from envctl.errors import EngineUnavailable, EnvctlError, TeardownIncomplete
from envctl.topology import load_topology


def container(service: str) -> ContainerState:
    return ContainerState(id=f"{service}-id-0123456789", name=f"c-{service}", service=service, run="r1",
                          status="running", exit_code=None, oom_killed=False, health=None, ports={},
                          image_id="img", labels={})


class RecordingEngine:
    """Answers like an engine whose removal of `refuse` fails; records every removal asked for."""

    def __init__(self, refuse: str, error: EnvctlError) -> None:
        self.refuse, self.error = refuse, error
        self.removed: list[str] = []

    def containers(self, labels):
        return [container("store"), container("backend"), container("api")]

    def logs(self, container_id, **kwargs):
        return b"a line\n"

    def remove_container(self, container_id, grace=2):
        self.removed.append(container_id)
        if container_id.startswith(self.refuse):
            raise self.error

    def networks(self, labels=None):
        return [{"Id": "net-id-0123456789", "Name": "envctl-demo-r1"}]

    def remove_network(self, network_id):
        self.removed.append(network_id)

    def volumes(self, labels):
        return [{"Name": "envctl-demo-r1-data"}]

    def remove_volume(self, name):
        self.removed.append(name)

    def granted_files(self, labels):  # the run's one secret, found only by the run's own labels
        self.asked_files = labels
        mine = {"envctl.managed": "true", "envctl.project": "demo", "envctl.run": "r1"}
        return [{"Kind": "secret", "ID": "secret-id-0123", "Name": "envctl-0a1b", "Labels": mine}] if labels == mine else []

    def remove_granted_file(self, kind, file_id):
        self.removed.append(file_id)


@pytest.fixture
def topology(write_topology):
    return load_topology(write_topology("""
        name: demo
        services:
          store: {image: debian:bookworm}
          backend: {image: debian:bookworm}
          api: {image: debian:bookworm}
    """), environ={})


def test_one_refused_removal_skips_nothing_else_and_is_reported_by_id(topology) -> None:
    engine = RecordingEngine("backend", EnvctlError("cannot remove container backend-id-01: device or resource busy"))
    state.write_current(topology, state.RunRecord("r1", topology.name, str(topology.file)))
    run_dir = state.run_directory(topology, "r1")
    lease.write(run_dir, lease.held_by_me())

    with pytest.raises(TeardownIncomplete) as raised:
        teardown.down(topology, engine, "r1")

    assert sorted(engine.removed) == sorted(["store-id-0123456789", "backend-id-0123456789", "api-id-0123456789",
                                             "net-id-0123456789", "envctl-demo-r1-data", "secret-id-0123"])
    assert engine.removed[-1] == "secret-id-0123"  # after the services that use it
    assert engine.asked_files == {"envctl.managed": "true", "envctl.project": "demo", "envctl.run": "r1"}
    assert raised.value.left == ["container backend-id-0 (backend): cannot remove container backend-id-01: "
                                 "device or resource busy"]
    assert "envctl --run r1 down" in str(raised.value)
    assert state.read_current(topology) is None
    assert lease.read(run_dir) is None
    assert (run_dir / "logs" / "store.log").read_text() == "a line\n"


def test_a_lost_engine_stops_the_teardown_and_keeps_the_record(topology) -> None:
    engine = RecordingEngine("backend", EngineUnavailable("lost the Docker engine: connection refused"))
    state.write_current(topology, state.RunRecord("r1", topology.name, str(topology.file)))
    with pytest.raises(EngineUnavailable):
        teardown.down(topology, engine, "r1", save_logs=False)
    assert state.read_current(topology) is not None  # 'envctl down' works again once it is back


def test_the_pytest_plugin_reports_a_failed_teardown_and_fails_the_session(topology, monkeypatch) -> None:
    from types import SimpleNamespace

    from envctl.project import Project
    from envctl.shells import pytest_plugin
    from envctl.stack import Stack

    def down(*args, **kwargs):
        raise TeardownIncomplete("r1", ["container backend-id-0 (backend): device or resource busy"])

    monkeypatch.setattr(Project, "down", down)
    manager = pytest_plugin.StackManager(config=None)
    monkeypatch.setattr(pytest_plugin, "_setting", lambda config, name: False)
    manager._down(Stack(topology, engine=None, run="r1"), session=None)
    assert manager.teardown_failed
    assert "container backend-id-0 (backend)" in manager.notes[-1]
    session = SimpleNamespace(config=SimpleNamespace(stash={pytest_plugin._KEY: manager}), exitstatus=0)
    pytest_plugin.pytest_sessionfinish(session, 0)
    assert session.exitstatus == pytest.ExitCode.TESTS_FAILED


def test_the_strict_verdict_follows_every_failed_teardown_and_is_the_one_to_raise() -> None:
    clean = teardown.DownResult(runs=["r1"])
    objected = teardown.DownResult(runs=["r2"], strict_violations=["payments: unmatched GET /v1/status"])
    kept = TeardownIncomplete("r3", ["network net-id-0 (envctl-demo-r3): in use"],
                              strict_violations=["payments: never played POST /v1/charge"])
    lost = EnvctlError("lost the Docker engine")

    assert teardown.verdict([clean]) == ([], [])
    assert teardown.verdict([kept]).errors[0] is kept  # a failed teardown is told first ...
    violations, errors = teardown.verdict([objected, kept, lost])
    assert violations == ["payments: unmatched GET /v1/status", "payments: never played POST /v1/charge"]
    assert errors[:2] == [kept, lost]
    assert "strict mocks saw" in str(errors[-1])  # ... and what strict mocks saw is the one to raise
    assert "unmatched GET /v1/status" in str(errors[-1]) and "never played POST" in str(errors[-1])
    assert "envctl up --record" in str(errors[-1])

