"""The library API's own decisions, without an engine: verdicts, which runs `down` takes, sharing, drift.

The engine here is a stand-in that records what it was asked; the work itself (starting,
removing) is runtime's and tested there and in tests/integration.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envctl.errors import EnvctlError, Problem, TeardownIncomplete, TopologyError
from envctl.mocks.drift import DriftReport, HeaderSyntaxError, MockDrift, parse_headers
from envctl.project import Project, RemovedRun, Teardown
from envctl.runtime import lease, state
from envctl.runtime import run as run_api
from envctl.runtime import teardown as teardown_api
from envctl.runtime.run import UpResult
from envctl.runtime.teardown import DownResult

TOPOLOGY = """
    name: demo
    services:
      store: {image: debian:bookworm}
      api: {image: debian:bookworm, privileged: true}
"""


@pytest.fixture
def project(write_topology) -> Project:
    return Project.load(write_topology(TOPOLOGY.replace(", privileged: true", "")), run=None)


def test_a_file_asking_for_opt_ins_loads_for_commands_that_start_nothing(write_topology, monkeypatch) -> None:
    path = write_topology(TOPOLOGY)
    monkeypatch.delenv("ENVCTL_ALLOW", raising=False)
    with pytest.raises(TopologyError, match="privileged"):
        Project.load(path)
    assert "api" in Project.load(path, starts_containers=False).topology.services


def test_a_run_named_on_loading_is_made_a_run_id(write_topology) -> None:
    path = write_topology(TOPOLOGY.replace(", privileged: true", ""))
    assert Project.load(path, run="PR 12/Build").run == "pr-12-build"


def test_down_takes_the_run_named_else_the_current_one_else_none(project: Project) -> None:
    assert project.runs_to_take_down() == []
    state.write_current(project.topology, state.RunRecord("r1", project.topology.name, str(project.topology.file)))
    assert project.runs_to_take_down() == ["r1"]
    assert project.for_run("r2").runs_to_take_down() == ["r2"]


def test_down_tries_every_run_and_gathers_what_each_left(project: Project, monkeypatch) -> None:
    def down(topology, engine, run, **kwargs):
        if run == "r1":
            raise TeardownIncomplete(run, ["network n1: busy"], strict_violations=["mock 'pay': one"])
        return DownResult(runs=[run], containers=3, logs_dir={}, strict_violations=["mock 'pay': two"])

    monkeypatch.setattr(teardown_api, "down", down)
    teardown = Project(project.topology, engine=object()).down(["r1", "r2"])
    assert teardown.removed == [RemovedRun("r2", 3, None)]
    assert [e.run for e in teardown.failed] == ["r1"]
    assert teardown.strict_violations == ["mock 'pay': one", "mock 'pay': two"]
    errors = teardown.errors()  # what the engine kept first; the strict verdict, last, decides
    assert [type(e) for e in errors] == [TeardownIncomplete, EnvctlError] and "strict mocks saw" in str(errors[-1])
    assert Teardown(["r3"], [DownResult(runs=["r3"])]).errors() == []


class Refusing:
    """A backend that refuses every service, and fails the test if asked for anything after that."""

    notes = ("runs it otherwise",)

    def __init__(self, refuse: bool = True) -> None:
        self.refuse, self.checked = refuse, []

    def check(self, topology, services):
        self.checked.append(services)
        if self.refuse:
            raise TopologyError([Problem(topology.file, 3, f"services.{services[0]}.privileged", "cannot be honoured")])

    def __getattr__(self, name):
        raise AssertionError(f"the backend was asked for {name} after it refused")


@pytest.mark.parametrize("method", ["up", "plan"])
def test_up_and_its_dry_run_ask_the_backend_what_it_refuses_before_anything_else(project: Project,
                                                                                 method: str) -> None:
    backend = Refusing()
    with pytest.raises(TopologyError, match="services.api.privileged"):
        getattr(Project(project.topology, backend), method)(["api"])  # type: ignore[arg-type]
    assert backend.checked == [["api"]]


@pytest.mark.parametrize("method", ["up", "plan"])
def test_the_backend_checks_exactly_what_up_would_start_profiles_and_exceptions_included(write_topology,
                                                                                         method: str) -> None:
    topology = Project.load(write_topology("""
        name: demo
        services:
          api: {image: debian:bookworm}
          store: {image: debian:bookworm}
          debug: {image: debian:bookworm, profiles: [debug]}
    """), run=None).topology
    backend = Refusing()
    with pytest.raises(TopologyError):
        getattr(Project(topology, backend), method)(profiles=["debug"], except_services=["store"])  # type: ignore[arg-type]
    assert [sorted(s) for s in backend.checked] == [["api", "debug"]]


def test_up_tells_how_the_backend_runs_services_otherwise(project: Project, monkeypatch) -> None:
    monkeypatch.setattr(run_api, "up", lambda *args, **kwargs: UpResult(run="r1", warnings=["cache unreachable"]))
    result = Project(project.topology, Refusing(refuse=False)).up()  # type: ignore[arg-type]
    assert result.warnings == ["cache unreachable", "runs it otherwise"]


def test_a_run_kept_for_debugging_belongs_to_nobody(project: Project) -> None:
    run_dir = state.run_directory(project.topology, "r1")
    lease.write(run_dir, lease.held_by_me())
    project.for_run("r1").keep_for_debugging()
    assert lease.read(run_dir) == lease.released()


def test_a_lease_is_bound_to_a_process_or_nobodys_and_a_bad_ttl_is_refused() -> None:
    assert Project.lease_for().owner is None
    assert Project.lease_for(bind_to=os.getpid()).owner.pid == os.getpid()
    assert Project.lease_for(ttl="1h").expires_at is not None
    with pytest.raises(ValueError):
        Project.lease_for(ttl="soon")


def test_the_first_process_to_join_a_shared_run_starts_it_and_the_last_to_leave_stops_it(project: Project) -> None:
    started, stopped = [], []
    shared = project.shared("session-1", "pytest-session")
    joined = shared.join(lambda p: started.append(p.run))
    again = project.shared("session-1", "ignored").join(lambda p: started.append(p.run))
    assert started == ["pytest-session"] and joined.run == again.run == "pytest-session"

    def users(*owners: lease.Owner) -> None:  # this process, and other workers
        data = json.loads((shared.directory / "users.json").read_text())
        data["users"] = [lease.Owner.of().label(), *(o.label() for o in owners)]
        (shared.directory / "users.json").write_text(json.dumps(data))

    users(lease.Owner.of(os.getppid()))  # a worker still at work
    assert shared.leave(lambda: stopped.append(True)) is False and stopped == []
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    users(lease.Owner(gone.pid, None, lease.Owner.of().host))  # one that crashed
    assert shared.leave(lambda: stopped.append(True)) is True and stopped == [True]
    assert not (shared.directory / "users.json").exists()


def test_config_warns_of_a_service_given_the_engines_socket(write_topology) -> None:
    path = write_topology("""
        name: demo
        services:
          ci: {image: docker:cli, docker_socket: true}
          app: {image: debian:bookworm}
    """)
    warnings = Project.load(path, starts_containers=False).config_warnings()
    assert len(warnings) == 1 and "service 'ci' gets the Docker engine's socket" in warnings[0]


def test_drift_headers_are_name_colon_value() -> None:
    assert parse_headers(["Authorization: Bearer x:y", "X-A:1"]) == {"Authorization": "Bearer x:y", "X-A": "1"}
    with pytest.raises(HeaderSyntaxError, match="'no-colon' is not 'NAME: VALUE'"):
        parse_headers(["no-colon"])
    with pytest.raises(HeaderSyntaxError):
        parse_headers([": value"])


def test_drift_fails_when_any_interaction_answers_differently() -> None:
    answer = {"mock": "pay", "upstream": "http://127.0.0.1:1", "drifted": 1, "interactions": [
        {"cassette": "c.yaml", "index": 0, "request": "GET /a", "diff": ["$.x: recorded 1, now 2"]},
        {"cassette": "c.yaml", "index": 1, "request": "GET /b", "diff": []}]}
    report = DriftReport([MockDrift.from_answer(answer)])
    assert report.drifted and report.answers() == [answer]
    assert [i.diff for i in report.mocks[0].interactions] == [["$.x: recorded 1, now 2"], []]
    assert not DriftReport([MockDrift.from_answer({**answer, "drifted": 0})]).drifted
