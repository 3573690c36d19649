"""Readiness: waiting, from the host, until a service is what its dependents wait for.

A service is ready when its probe passes (http or tcp on a published port, or a command run
in the container), else when its Docker healthcheck passes, else when its container runs
(or a one-shot job exited 0). A `service_completed_successfully` dependency is waited for until
it exits 0. Each wait is bounded by the probe's timeout; a failure says why, with the logs'
tail and a diagnostics bundle. A container held at the start gate is released here.

The engine runs a healthcheck's first test only after its `interval` (30 s by default; Docker
20.10 has no `start_interval`), so waiting for its "healthy" costs that long however soon the
service is up. envctl runs the test itself meanwhile, as the engine would (an exec, with the
container's user, environment and working directory, bounded by the check's timeout), on the
probes' eager schedule: healthy means that one test passed, and the first pass, or the
engine's own "healthy" if that comes first, makes the service ready. Not on Swarm, where the
engine's verdict is what puts a task in its service's DNS; not with ENVCTL_EAGER_HEALTHCHECKS=0.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from envctl.backend.base import Backend
from envctl.backend.engine import ContainerState
from envctl.errors import EngineUnavailable, EnvctlError, StartupFailed
from envctl.graph import DependencyFailed
from envctl.planning import gate
from envctl.progress import Event, Progress
from envctl.runtime import diagnostics
from envctl.runtime.probes import (EAGER_EXEC_INTERVAL, NotReady, ProbeHistory, ProbeResult, http_check, tcp_check,
                                   wait_until_ready)
from envctl.topology import Service, Topology

LOG_TAIL = 20
DEFAULT_PATIENCE = 120.0  # seconds to ready (or to completed) for a service without a probe timeout
EAGER_HEALTHCHECKS = "ENVCTL_EAGER_HEALTHCHECKS"  # "0": wait for the engine's own "healthy", as before
# The engine's defaults for a healthcheck that does not say.
ENGINE_HEALTHCHECK_INTERVAL = 30.0
ENGINE_HEALTHCHECK_TIMEOUT = 30.0
ENGINE_SHELL = ("/bin/sh", "-c")  # CMD-SHELL's, unless the image sets a SHELL

T = TypeVar("T")


def release(engine: Backend, container_id: str) -> bool:
    """Let a held container's process run; False if it cannot, because the image has no shell."""
    try:
        engine.release(container_id)
    except EnvctlError:
        if _shell_missing(engine, container_id):
            return False
        raise
    return True


def _shell_missing(engine: Backend, container_id: str) -> bool:
    """Whether a held container died because the gate's shell is not in its image (said by the init)."""
    container = engine.container_state(container_id)
    if container is None or container.exit_code != 127:
        return False
    return gate.lacks_shell("\n".join(log_tail(engine, container_id, 5)))


def wait_ready(engine: Backend, topology: Topology, run: str, service: Service, container_id: str,
                cancel: threading.Event, report: Progress,
                held: bool = False) -> tuple[ProbeResult, ContainerState | None]:
    """Poll the service's readiness; return the passing result and the container as last seen.

    `held`: it was just released from the gate (`gate.NoShell` if the gate's shell turns
    out to be missing)."""
    timeout = _patience(service)
    interval = service.probe.interval if service.probe else 0.5
    history = ProbeHistory()
    current: dict[str, ContainerState] = {}

    def alive() -> None:
        container = engine.container_state(container_id)
        if container is None:
            raise NotReady("its container was removed")
        current["state"] = container
        if container.status in ("exited", "dead"):
            if container.exit_code == 0 and service.probe is None and container.health is None:
                return  # a one-shot job that finished
            if held and _shell_missing(engine, container_id):
                raise gate.NoShell(service.name)
            oom = " (killed: out of memory)" if container.oom_killed else ""
            if container.exit_code is None and container.detail:  # a cluster could not run it, and said why
                raise NotReady(f"it could not run: {container.detail}")
            said = f": {container.detail}" if container.detail else ""
            raise NotReady(f"its container exited with code {container.exit_code}{oom}{said}")

    healthcheck = OwnHealthcheck(engine, container_id)
    probe = readiness_check(engine, service, container_id, current, healthcheck)
    own_test = healthcheck.test if service.probe is None else None
    report(Event(service.name, "wait", _describe_readiness(service, own_test)))
    try:
        by_exec = own_test is not None or (service.probe is not None and service.probe.kind not in ("http", "tcp"))
        result = wait_until_ready(probe, timeout=timeout, max_interval=interval, cancel=cancel,
                                  alive=alive, history=history,
                                  eager_interval=EAGER_EXEC_INTERVAL if by_exec else None)
    except NotReady as exc:
        why = str(exc)
    else:
        if result.ok:
            return result, current.get("state") or current.get("seen")
        if cancel.is_set():
            raise DependencyFailed(service.name, "the run was cancelled")
        why = f"it was not ready after {timeout:g}s"
    bundle = diagnostics.try_write_bundle(engine, topology, run, service.name, why, history)
    raise startup_failed(engine, service, container_id, why, history, bundle)


def readiness_check(engine: Backend, service: Service, container_id: str, current: dict[str, ContainerState],
                    healthcheck: OwnHealthcheck | None = None):
    """The check that says whether the service is ready now; `current` holds the container as last seen.

    `healthcheck`: the container's own, run by envctl while the engine has not said healthy."""
    probe = service.probe
    if probe is not None and probe.kind in ("http", "tcp"):
        address = service.port(probe.port).reach  # the loader checked that the probed port is listed

        def host_probe() -> ProbeResult:
            container = current.get("state") or engine.container_state(container_id)
            port = container.ports.get(probe.port) if container else None
            if port is None:
                return ProbeResult(False, f"port {probe.port} is not published yet")
            host = container.address or address  # a cluster's task: its node's address
            if probe.kind == "http":
                return http_check(host, port, probe.path)
            return tcp_check(host, port)
        return host_probe
    if probe is not None:
        def command_probe() -> ProbeResult:
            code, output = engine.exec(container_id, list(probe.command))
            return _exec_result(" ".join(probe.command), code, output)
        return command_probe
    healthcheck = healthcheck or OwnHealthcheck(engine, container_id)

    def engine_state() -> ProbeResult:
        # The check itself: a state handed in is used once, then each check asks afresh.
        container = current.pop("state", None) or engine.container_state(container_id)
        current["seen"] = container
        if container is None:
            return ProbeResult(False, "no container")
        if container.health is not None:
            if container.health != "healthy" and container.running and healthcheck.test is not None:
                return healthcheck()
            return ProbeResult(container.health == "healthy", f"healthcheck: {container.health}")
        if container.status == "exited" and container.exit_code == 0:
            return ProbeResult(True, "completed")
        return ProbeResult(container.running, f"container {container.status}")
    return engine_state


@dataclass(frozen=True)
class HealthTest:
    """A container's healthcheck test as the engine runs it."""

    argv: tuple[str, ...]
    timeout: float  # seconds one run may take; longer is a failure
    interval: float  # the engine's own schedule, for the report
    shown: str  # the test as the file wrote it


def health_test(config: Mapping[str, Any]) -> HealthTest | None:
    """The healthcheck in a container's inspected `Config` (where the engine merged in the image's
    HEALTHCHECK), as the engine would run it; None without one (or with `NONE`).

    CMD runs as an argv, CMD-SHELL through the image's SHELL or /bin/sh -c. User, environment and
    working directory need nothing here: the engine's exec takes the container's, as its checks do."""
    check = config.get("Healthcheck") or {}
    test = list(check.get("Test") or [])
    if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL"):
        return None  # none, NONE (disabled), or nothing to run: the engine's verdict stands
    argv = test[1:] if test[0] == "CMD" else [*(config.get("Shell") or ENGINE_SHELL), *test[1:]]
    return HealthTest(tuple(argv), _seconds(check.get("Timeout")) or ENGINE_HEALTHCHECK_TIMEOUT,
                      _seconds(check.get("Interval")) or ENGINE_HEALTHCHECK_INTERVAL, " ".join(test[1:]))


def _seconds(nanoseconds: int | None) -> float:
    return (nanoseconds or 0) / 1e9


def eager_healthchecks(engine: Backend, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether envctl runs healthchecks itself here (see module docstring)."""
    switched_off = environ.get(EAGER_HEALTHCHECKS, "1").strip().lower() in ("0", "off", "false", "no")
    return engine.execs_healthchecks and not switched_off


class OwnHealthcheck:
    """A container's healthcheck, run by envctl: looked up (one inspect) when first needed."""

    def __init__(self, engine: Backend, container_id: str) -> None:
        self.engine = engine
        self.container_id = container_id

    @functools.cached_property
    def test(self) -> HealthTest | None:
        if not eager_healthchecks(self.engine):
            return None
        try:
            info = self.engine.inspect_container(self.container_id)
        except EngineUnavailable:
            raise
        except EnvctlError:
            return None  # gone: `alive` says so
        return health_test(info.get("Config") or {})

    def __call__(self) -> ProbeResult:
        test = self.test
        assert test is not None
        try:
            ran = _bounded(lambda: self.engine.exec(self.container_id, list(test.argv)), test.timeout)
        except EngineUnavailable:
            raise
        except EnvctlError as exc:  # e.g. it stopped meanwhile: `alive` will say how
            return ProbeResult(False, f"healthcheck {test.shown}: {exc}")
        if ran is None:
            return ProbeResult(False, f"healthcheck {test.shown}: timed out after {test.timeout:g}s")
        code, output = ran
        if code == 0:
            return ProbeResult(True, f"healthcheck passed, run by envctl (docker's own: every {test.interval:g}s)")
        return _exec_result(f"healthcheck {test.shown}", code, output)


def _bounded(call: Callable[[], T], timeout: float) -> T | None:
    """`call()`'s result, or None if it takes longer than `timeout` seconds; what it raises is raised.

    A call that overruns is left to finish on its own, as the engine leaves an overrunning check."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="healthcheck", daemon=True)
    worker.start()
    worker.join(timeout)
    if failure:
        raise failure[0]
    return outcome[0] if outcome else None


def _exec_result(label: str, code: int | None, output: bytes | None) -> ProbeResult:
    text = output.decode(errors="replace").strip().splitlines()[-1:] if output else []
    return ProbeResult(code == 0, f"{label}: exit {code}" + (f": {text[0]}" if text else ""))


def _describe_readiness(service: Service, own_test: HealthTest | None = None) -> str:
    probe = service.probe
    if own_test is not None:
        return f"healthcheck, run by envctl at once (docker's own first after {own_test.interval:g}s)"
    if probe is None:
        return "healthcheck" if service.healthcheck and not service.healthcheck.disable else "running"
    if probe.kind == "http":
        return f"http {probe.path} on {probe.port}"
    if probe.kind == "tcp":
        return f"tcp {probe.port}"
    return "cmd " + " ".join(probe.command)


def _patience(service: Service) -> float:
    """How long `up` waits for a service to reach what its dependents wait for: its probe's timeout."""
    return service.probe.timeout if service.probe else DEFAULT_PATIENCE


def wait_completed(engine: Backend, service: Service, container_id: str, cancel: threading.Event,
                    dependents: list[str]) -> ContainerState | None:
    """Wait, at most the service's patience after it was ready, for it to exit 0, as `dependents` need."""
    timeout = _patience(service)
    deadline = time.monotonic() + timeout
    waiting = ", ".join(f"'{d}'" for d in dependents) + (" waits" if len(dependents) == 1 else " wait")
    while not cancel.is_set():
        container = engine.container_state(container_id)
        if container is None or container.status in ("exited", "dead"):
            code = container.exit_code if container else None
            if code == 0:
                return container
            raise startup_failed(engine, service, container_id, f"{waiting} for it to complete successfully "
                                  f"(service_completed_successfully), and it exited with code {code}", ProbeHistory())
        if time.monotonic() > deadline:
            raise startup_failed(engine, service, container_id, f"{waiting} for it to complete successfully "
                                  f"(service_completed_successfully), and it was still {container.status} "
                                  f"after {timeout:g}s", ProbeHistory(),
                                  fix=f"make it finish sooner, or give it longer with services.{service.name}"
                                  ".probe.timeout")
        cancel.wait(0.1)
    raise DependencyFailed(service.name, "the run was cancelled")


def startup_failed(engine: Backend, service: Service, container_id: str, why: str, history: ProbeHistory,
                    bundle: Path | None = None, fix: str | None = None) -> StartupFailed:
    last = history.last
    lines = [f"service '{service.name}' did not become ready: {why}."]
    if last is not None:
        lines.append(f"  last readiness check ({history.attempts} tries): {last.detail}")
    tail = log_tail(engine, container_id, LOG_TAIL)
    lines.append(f"  last {LOG_TAIL} log lines:" if tail else "  it logged nothing.")
    lines += ["    " + line for line in tail]
    if bundle is not None:
        lines.append(f"  diagnostics (logs of it and its dependencies, probe history, inspect): {bundle}")
    return StartupFailed("\n".join(lines), service=service.name,
                         fix=fix or f"look at the service's logs and its probe in envctl.yaml (services.{service.name})")


def log_tail(engine: Backend, container_id: str, lines: int) -> list[str]:
    try:
        data = engine.logs(container_id, tail=lines)
    except EnvctlError:
        return []
    assert isinstance(data, bytes)
    return data.decode(errors="replace").rstrip().splitlines()[-lines:]
