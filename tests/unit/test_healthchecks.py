"""A container's healthcheck, without an engine: what envctl runs for it, how, and when readiness runs it."""
from __future__ import annotations

import threading

import pytest

from envctl.backend.engine import ContainerState, created_with_healthcheck
from envctl.backend.swarm import SwarmBackend
from envctl.errors import EngineUnavailable, EnvctlError
from envctl.runtime.healthchecks import EAGER_HEALTHCHECKS, HealthTest, OwnHealthcheck, eager_healthchecks, health_test
from envctl.runtime.readiness import readiness_check
from envctl.topology import Service

SECOND = 1_000_000_000


def test_a_cmd_test_runs_as_its_argv() -> None:
    test = health_test({"Healthcheck": {"Test": ["CMD", "wget", "--spider", "http://localhost/"]}})
    assert test is not None and test.argv == ("wget", "--spider", "http://localhost/")


def test_a_cmd_shell_test_runs_through_sh_or_the_image_s_shell() -> None:
    plain = health_test({"Healthcheck": {"Test": ["CMD-SHELL", "pg_isready -U $USER"]}})
    assert plain is not None and plain.argv == ("/bin/sh", "-c", "pg_isready -U $USER")
    shell = ["/bin/bash", "-o", "pipefail", "-c"]  # a Dockerfile's SHELL is the engine's shell for CMD-SHELL too
    bash = health_test({"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost | grep ok"]}, "Shell": shell})
    assert bash is not None and bash.argv == (*shell, "curl -f localhost | grep ok")
    assert bash.shown == "curl -f localhost | grep ok"


@pytest.mark.parametrize("config", [
    {}, {"Healthcheck": None}, {"Healthcheck": {"Test": ["NONE"]}}, {"Healthcheck": {"Test": []}},
    {"Healthcheck": {"Test": ["CMD"]}}, {"Healthcheck": {"Interval": 5 * SECOND}},
])
def test_no_test_to_run_leaves_the_engine_s_verdict(config: dict) -> None:
    assert health_test(config) is None


def test_timeout_and_interval_are_the_check_s_or_the_engine_s_defaults() -> None:
    own = health_test({"Healthcheck": {"Test": ["CMD", "true"], "Timeout": 5 * SECOND, "Interval": 300 * SECOND}})
    assert own is not None and (own.timeout, own.interval) == (5.0, 300.0)
    default = health_test({"Healthcheck": {"Test": ["CMD", "true"], "Timeout": 0}})
    assert default is not None and (default.timeout, default.interval) == (30.0, 30.0)


class Container:
    """A backend with one container: its state and healthcheck as given; execs recorded and answered.

    `health` may be a list: the engine's State.Health status at each look, the last repeated."""

    execs_healthchecks = True

    def __init__(self, health: str | None | list[str | None], test: list[str] | None = None, answer=(0, b"")) -> None:
        self.healths = health if isinstance(health, list) else [health]
        self.test, self.answer = test, answer
        self.ran: list[tuple] = []

    def container_state(self, container_id: str) -> ContainerState:
        health = self.healths.pop(0) if len(self.healths) > 1 else self.healths[0]
        return ContainerState(container_id, "c", "svc", "run", "running", None, False, health, {}, "image", {},
                              has_healthcheck=created_with_healthcheck({"Healthcheck": {"Test": self.test}}))

    def inspect_container(self, container_id: str) -> dict:
        return {"Config": {"Healthcheck": {"Test": self.test} if self.test else None, "User": "postgres"}}

    def exec(self, container_id: str, command: list[str], **options) -> tuple:
        self.ran.append((container_id, command, options))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer() if callable(self.answer) else self.answer


def check(backend: Container, service: Service | None = None):
    return readiness_check(backend, service or Service(name="svc"), "c1", {})  # type: ignore[arg-type]


def test_while_the_engine_says_starting_envctl_runs_the_test_as_the_engine_would() -> None:
    backend = Container("starting", ["CMD-SHELL", "pg_isready"])
    result = check(backend)()
    assert result.ok and result.detail.startswith("healthcheck passed, run by envctl")
    # No user, environment or working directory of envctl's own: the engine's exec takes the
    # container's, as its own healthchecks do (the user itself is proven in test_readiness.py).
    assert backend.ran == [("c1", ["/bin/sh", "-c", "pg_isready"], {})]


def test_the_engine_s_healthy_is_enough_without_running_anything() -> None:
    backend = Container("healthy", ["CMD", "true"])
    assert check(backend)().ok and backend.ran == []


def test_the_engine_s_unhealthy_stands_without_running_anything() -> None:
    backend = Container("unhealthy", ["CMD", "true"])
    result = check(backend)()
    assert not result.ok and result.detail == "healthcheck: unhealthy" and backend.ran == []


def test_a_failing_test_is_not_ready_and_says_what_it_printed() -> None:
    backend = Container("starting", ["CMD", "pg_isready"], answer=(2, b"noise\nno response\n"))
    result = check(backend)()
    assert not result.ok and result.detail == "healthcheck pg_isready: exit 2: no response"


def hanging_test(cancel: threading.Event | None = None) -> tuple[OwnHealthcheck, threading.Event]:
    """A healthcheck whose run does not end until the returned event is set."""
    let_go = threading.Event()

    def hangs() -> tuple:
        let_go.wait(60)
        return 0, b""

    own = OwnHealthcheck(Container("starting", answer=hangs), "c1", cancel)  # type: ignore[arg-type]
    own.test = HealthTest(("sleep", "100"), timeout=0.05, interval=30.0, shown="sleep 100")
    return own, let_go


def test_a_test_that_overruns_its_timeout_fails() -> None:
    own, let_go = hanging_test()
    try:
        result = own()
    finally:
        let_go.set()
    assert not result.ok and result.detail == "healthcheck sleep 100: timed out after 0.05s"


def test_a_cancelled_run_does_not_wait_for_a_test_under_way() -> None:
    cancel = threading.Event()
    own, let_go = hanging_test(cancel)
    own.test = HealthTest(("sleep", "100"), timeout=3600.0, interval=30.0, shown="sleep 100")
    cancel.set()
    try:
        result = own()
    finally:
        let_go.set()
    assert not result.ok and result.detail == "healthcheck sleep 100: cancelled"


def test_an_exec_the_engine_refuses_is_a_failed_check_and_a_lost_engine_is_an_error() -> None:
    refused = Container("starting", ["CMD", "true"], answer=EnvctlError("container is not running"))
    assert check(refused)().detail == "healthcheck true: container is not running"
    lost = Container("starting", ["CMD", "true"], answer=EngineUnavailable("cannot reach the Docker engine"))
    with pytest.raises(EngineUnavailable):
        check(lost)()


def test_switched_off_or_on_swarm_the_engine_s_verdict_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = Container("starting", ["CMD", "true"])
    monkeypatch.setenv(EAGER_HEALTHCHECKS, "0")
    result = check(backend)()
    assert not result.ok and result.detail == "healthcheck: starting" and backend.ran == []
    assert eager_healthchecks(backend, {}) is True  # type: ignore[arg-type]
    assert SwarmBackend.execs_healthchecks is False  # Swarm lists a task in DNS only once it saw it healthy


def test_a_container_without_a_healthcheck_is_ready_when_it_runs() -> None:
    backend = Container(None)
    result = check(backend)()
    assert result.ok and result.detail == "container running" and backend.ran == []


def test_a_cmd_probe_run_is_bounded_by_its_cmd_timeout_and_a_refused_exec_is_a_failed_check() -> None:
    from envctl.topology.model import Probe
    let_go = threading.Event()
    hangs = Container(None, answer=lambda: let_go.wait(60) and (0, b""))
    service = Service(name="svc", probe=Probe(kind="cmd", command=("sleep", "100"), cmd_timeout=0.05))
    try:
        assert check(hangs, service)().detail == "sleep 100: timed out after 0.05s"
    finally:
        let_go.set()
    refused = Container(None, answer=EnvctlError("container is not running"))
    assert check(refused, service)().detail == "sleep 100: container is not running"
    lost = Container(None, answer=EngineUnavailable("cannot reach the Docker engine"))
    with pytest.raises(EngineUnavailable):
        check(lost, service)()


def test_a_cmd_probe_run_never_outlasts_the_probe_s_patience() -> None:
    from envctl.runtime.readiness import _describe_readiness
    from envctl.topology.model import Probe
    service = Service(name="svc", probe=Probe(kind="cmd", command=("true",), timeout=5.0))
    assert _describe_readiness(service) == "cmd true (each run at most 5s)"


def test_with_eager_healthchecks_off_an_image_s_healthcheck_is_still_described_as_one() -> None:
    from envctl.runtime.readiness import _describe_readiness
    declared = HealthTest(("true",), timeout=30.0, interval=30.0, shown="true")
    assert _describe_readiness(Service(name="svc"), None, declared) == "healthcheck, docker's own (first after 30s)"
    assert _describe_readiness(Service(name="svc")) == "running"


class Counting(Container):
    """The one container, counting what readiness asks the engine."""

    def __init__(self, health: str | None, test: list[str] | None = None) -> None:
        super().__init__(health, test)
        self.states = self.inspects = 0

    def container_state(self, container_id: str) -> ContainerState:
        self.states += 1
        return super().container_state(container_id)

    def inspect_container(self, container_id: str) -> dict:
        self.inspects += 1
        return super().inspect_container(container_id)


def wait(backend: Counting) -> tuple[str, list]:
    from envctl.runtime.readiness import wait_ready
    events: list = []
    result, _ = wait_ready(backend, None, "run", Service(name="svc"), "c1", threading.Event(),  # type: ignore[arg-type]
                           events.append)
    assert result.ok
    return result.detail, [e.detail for e in events if e.phase == "wait"]


def test_without_a_healthcheck_its_state_is_all_readiness_asks_for() -> None:
    backend = Counting(None)
    assert wait(backend) == ("container running", ["running"])
    assert (backend.states, backend.inspects) == (1, 0)  # the state says it has none: nothing to inspect


def test_with_a_healthcheck_its_test_is_inspected_once_and_run() -> None:
    backend = Counting("starting", ["CMD", "true"])
    detail, said = wait(backend)
    assert detail.startswith("healthcheck passed, run by envctl")
    assert said[0].startswith("healthcheck, run by envctl at once")
    assert (backend.states, backend.inspects) == (1, 1) and len(backend.ran) == 1


def test_a_healthcheck_is_known_from_what_the_container_was_created_with() -> None:
    assert created_with_healthcheck({"Healthcheck": {"Test": ["CMD-SHELL", "pg_isready"]}})
    assert created_with_healthcheck({"Healthcheck": {"Test": ["CMD", "true"]}})
    for config in ({}, {"Healthcheck": None}, {"Healthcheck": {"Test": ["NONE"]}}, {"Healthcheck": {"Test": []}}):
        assert not created_with_healthcheck(config)


def test_the_engine_s_state_carries_the_healthcheck_before_state_health_shows() -> None:
    from envctl.backend.engine import Engine

    class API:
        def inspect_container(self, container_id: str) -> dict:
            return {"Id": container_id, "Name": "/c", "Image": "sha256:1", "State": {"Status": "running"},
                    "Config": {"Labels": {}, "Healthcheck": {"Test": ["CMD", "true"]}},
                    "NetworkSettings": {"Ports": {}}}

    class Client:
        api = API()

    state = Engine(Client()).container_state("c1")  # type: ignore[arg-type]
    assert state is not None and state.health is None and state.has_healthcheck


def test_a_healthcheck_the_engine_does_not_show_yet_is_waited_for_not_taken_for_running() -> None:
    # The first look: State.Health absent for a moment; the container was created with a healthcheck.
    backend = Counting([None, "starting"], ["CMD", "true"])
    detail, said = wait(backend)
    assert detail.startswith("healthcheck passed, run by envctl")
    assert said[0].startswith("healthcheck, run by envctl at once")


@pytest.mark.parametrize("health", [None, "starting", "healthy", "unhealthy"])
@pytest.mark.parametrize("why_not_own", ["switched off", "swarm", "NONE"])
def test_the_engine_s_state_never_execs_without_a_test_of_envctl_s_own(
        monkeypatch: pytest.MonkeyPatch, health: str | None, why_not_own: str) -> None:
    backend = Container(health, ["NONE"] if why_not_own == "NONE" else ["CMD", "true"])
    if why_not_own == "switched off":
        monkeypatch.setenv(EAGER_HEALTHCHECKS, "0")
    if why_not_own == "swarm":
        backend.execs_healthchecks = False
    for _ in range(3):
        check(backend)()
    assert backend.ran == []
