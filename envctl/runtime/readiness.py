"""Readiness: waiting, from the host, until a service is what its dependents wait for.

A service is ready when its probe passes (http or tcp on a published port, or a command run
in the container), else when its Docker healthcheck passes, else when its container runs
(or a one-shot job exited 0). A `service_completed_successfully` dependency is waited for until
it exits 0. Each wait is bounded by the probe's timeout; a failure says why, with the logs'
tail and a diagnostics bundle. A container held at the start gate is released here.

A healthcheck's test is run by envctl too (`healthchecks.py`), on the probes' eager schedule,
rather than only after the engine's `interval`: its first pass, or the engine's own "healthy"
if that comes first, makes the service ready.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from envctl.backend.base import Backend
from envctl.backend.engine import ContainerState
from envctl.errors import EnvctlError, StartupFailed
from envctl.graph import DependencyFailed
from envctl.planning import gate
from envctl.progress import Event, Progress
from envctl.runtime import diagnostics
from envctl.runtime.healthchecks import HealthTest, OwnHealthcheck, health_test, run_exec
from envctl.runtime.probes import (EAGER_EXEC_INTERVAL, NotReady, ProbeHistory, ProbeResult, http_check, tcp_check,
                                   wait_until_ready)
from envctl.topology import Service, Topology

LOG_TAIL = 20
DEFAULT_PATIENCE = 120.0  # seconds to ready (or to completed) for a service without a probe timeout


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

    healthcheck = OwnHealthcheck(engine, container_id, cancel)
    probe = readiness_check(engine, service, container_id, current, healthcheck)
    try:
        own_test = declared = None
        if service.probe is None:
            alive()  # its state says whether it was created with a healthcheck: no inspect for one without
            if current["state"].has_healthcheck or current["state"].health is not None:
                own_test = healthcheck.test
                declared = _declared_test(engine, service, container_id, own_test)
        report(Event(service.name, "wait", _describe_readiness(service, own_test, declared)))
        by_exec = own_test is not None or (service.probe is not None and service.probe.kind not in ("http", "tcp"))
        result = wait_until_ready(probe, timeout=timeout, max_interval=interval, cancel=cancel,
                                  alive=alive, history=history, alive_first=service.probe is not None,
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
    healthcheck = healthcheck or OwnHealthcheck(engine, container_id)
    if probe is not None:
        # Each run bounded, as a healthcheck's: a hung command must not hold `up` past its patience.
        run_timeout = min(probe.cmd_timeout, probe.timeout)

        def command_probe() -> ProbeResult:
            return run_exec(engine, container_id, probe.command, " ".join(probe.command), run_timeout,
                            healthcheck.cancel)
        return command_probe

    def engine_state() -> ProbeResult:
        # The check itself: a state handed in is used once, then each check asks afresh.
        container = current.pop("state", None) or engine.container_state(container_id)
        current["seen"] = container
        if container is None:
            return ProbeResult(False, "no container")
        health = _health(container)
        if health is not None:
            # Only while the engine has no verdict: its "unhealthy" (retries spent) stands. Never an exec
            # but of envctl's own test (none when switched off, on Swarm, or with a NONE test).
            if health == "starting" and container.running and healthcheck.test is not None:
                return healthcheck()
            return ProbeResult(health == "healthy", f"healthcheck: {health}")
        if container.status == "exited" and container.exit_code == 0:
            return ProbeResult(True, "completed")
        return ProbeResult(container.running, f"container {container.status}")
    return engine_state


def _health(container: ContainerState) -> str | None:
    """The engine's health verdict; "starting" for a running container created with a healthcheck whose
    State.Health the engine does not show yet (the first instant after start)."""
    if container.health is None and container.has_healthcheck and container.running:
        return "starting"
    return container.health


def _declared_test(engine: Backend, service: Service, container_id: str,
                   own_test: HealthTest | None) -> HealthTest | None:
    """The container's healthcheck (the topology's or its image's) when envctl does not run it but
    waits for the engine's verdict (ENVCTL_EAGER_HEALTHCHECKS=0): one inspect, for the report."""
    if own_test is not None or service.probe is not None or not engine.execs_healthchecks:
        return None
    try:
        info = engine.inspect_container(container_id)
    except EnvctlError:
        return None  # gone, or the engine lost: `alive` says so
    return health_test(info.get("Config") or {})


def _describe_readiness(service: Service, own_test: HealthTest | None = None,
                        declared: HealthTest | None = None) -> str:
    probe = service.probe
    if own_test is not None:
        return f"healthcheck, run by envctl at once (docker's own first after {own_test.interval:g}s)"
    if declared is not None:
        return f"healthcheck, docker's own (first after {declared.interval:g}s)"
    if probe is None:
        return "healthcheck" if service.healthcheck and not service.healthcheck.disable else "running"
    if probe.kind == "http":
        return f"http {probe.path} on {probe.port}"
    if probe.kind == "tcp":
        return f"tcp {probe.port}"
    return "cmd " + " ".join(probe.command) + f" (each run at most {min(probe.cmd_timeout, probe.timeout):g}s)"


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
