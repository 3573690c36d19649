"""A run: one stack of a topology on one engine. Bringing it up, looking at it, taking it down.

`up` builds what is missing, then starts each service the moment the dependencies it
waits for are ready (a DAG), each readiness polled from the host. Everything created
carries the run's labels; `down` removes by those labels, so it works from any process.
"""
from __future__ import annotations

import functools
import hashlib
import queue
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


from envctl import engine as eng
from envctl import containeropts, diagnostics, gate, launch, lease, reaper, registry, secrets, state
from envctl.engine import ContainerSpec, ContainerState, Engine
from envctl.errors import (Cancelled, EngineUnavailable, EnvctlError, NoRun, PortTaken, StartupFailed,
                           TeardownIncomplete, Terminated)
from envctl.graph import DependencyFailed, closure, dependents, depths, run_dag
from envctl.images import ImageBuilder, ResolvedImage, mock_image_key
from envctl.mocks.cassettes import check_cassettes
from envctl.mocks.admin import MockAdmin
from envctl.mocks.report import MockReport, fetch_report
from envctl.mocks.runtime import with_mocks
from envctl.probes import (EAGER_EXEC_INTERVAL, NotReady, ProbeHistory, ProbeResult, http_check, tcp_check,
                           wait_until_ready)
from envctl import timeline as timeline_api
from envctl.progress import Event, Progress, silent
from envctl.report import write_report
from envctl.topology import COMPLETED, READY, STARTED, Service, Topology
from envctl.topology.model import LOOPBACK, MOCK_PORT
from envctl.wiring import container_side, host_side, resolve_environment

LOG_TAIL = 20
GRANTS = "files"  # in the run's directory: the secrets and configs its containers bind
DEFAULT_PATIENCE = 120.0  # seconds to ready (or to completed) for a service without a probe timeout
# What a dependent waits for, per depends_on condition.
MILESTONE = {STARTED: "started", READY: "ready", COMPLETED: "completed"}


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    state: str  # running, exited, created, missing, on-host
    ready: bool | None
    detail: str
    ports: dict[int, int]
    exit_code: int | None = None
    oom_killed: bool = False


@dataclass
class UpResult:
    run: str
    started: list[str] = field(default_factory=list)  # created or recreated now
    unchanged: list[str] = field(default_factory=list)
    images: dict[str, ResolvedImage] = field(default_factory=dict)
    timeline: list[Event] = field(default_factory=list)
    status: list[ServiceStatus] = field(default_factory=list)  # as each service was seen ready
    warnings: list[str] = field(default_factory=list)  # e.g. the image cache was unreachable


# -- choosing what to run -----------------------------------------------------------------

def select_services(topology: Topology, requested: Iterable[str] = (), profiles: Iterable[str] = (),
                    except_services: Iterable[str] = ()) -> list[str]:
    """What `up` starts: the services and mocks requested (or all active ones) and what they need."""
    requested = list(requested)
    known = [*topology.services, *topology.mocks]
    for name in requested:
        if name not in known:
            raise EnvctlError(f"unknown service or mock '{name}'", fix="name one of: " + ", ".join(sorted(known)))
    for name in except_services:
        if name not in topology.services:
            raise EnvctlError(f"unknown service '{name}'", fix="name one of: " + ", ".join(sorted(topology.services)))
    active = set(profiles)
    roots = requested or [*[n for n, s in topology.services.items() if not s.profiles or active & set(s.profiles)],
                          *topology.mocks]
    edges = {n: _needs(topology, s) for n, s in topology.services.items()}
    chosen = closure(roots, edges) - set(except_services)
    return [n for n in known if n in chosen]


def _needs(topology: Topology, service: Service) -> list[str]:
    """What a service needs running: its dependencies and every target its environment references."""
    needed = [d.service for d in service.depends_on]
    needed += [part.target for _, template in service.environment for part in template if not isinstance(part, str)]
    return [n for n in dict.fromkeys(needed) if n != service.name and (n in topology.services or n in topology.mocks)]


# -- up -----------------------------------------------------------------------------------

def up(
    topology: Topology,
    engine: Engine,
    *,
    services: Iterable[str] = (),
    except_services: Iterable[str] = (),
    profiles: Iterable[str] = (),
    run_id: str | None = None,
    keep_on_failure: bool = False,
    progress: Progress = silent,
    max_parallel_builds: int = 2,
    record: Iterable[str] = (),
    record_missing: Iterable[str] = (),
    make_current: bool = True,
    owner: lease.Lease | None = None,
    cache: str | None = None,
    platform: str | None = None,
) -> UpResult:
    """Bring the stack to ready; raise `StartupFailed` (after tearing down) if it cannot.

    `record` names mocks that proxy every request to their upstream and record it;
    `record_missing` names mocks that replay what matches and record only the misses.
    Either way recording appends: what the cassettes held before is kept.
    `make_current` records the run in `.envctl/` as the one the CLI acts on (the pytest
    plugin's own runs do not take that place from a developer's stack).
    `cache` is the shared image cache's location (default: $ENVCTL_CACHE, else `cache:`).
    `platform` is what the images are made for (default: $ENVCTL_PLATFORM, else the engine's).
    `owner` is the run's lease once it is up (default: this process owns it, so it is
    reaped when the process dies). Until then this process owns a new run, and a reaper
    removes it if the process dies half-way.
    """
    timeline: list[Event] = []

    def report(event: Event) -> None:
        timeline.append(event)
        progress(event)

    on_host = _parse_except(topology, except_services)
    except_services = list(on_host)
    modes = {**{name: "record_missing" for name in record_missing}, **{name: "record" for name in record}}
    recording = set(modes)
    for name in recording - set(topology.mocks):
        raise EnvctlError(f"'{name}' is not a mock, so it cannot record",
                          fix="name one of the mocks: " + (", ".join(sorted(topology.mocks)) or "(none defined)"))
    selected = select_services(topology, [*services, *sorted(recording - set(services))] if services else services,
                               profiles, except_services)
    check_cassettes(topology, [n for n in selected if n in topology.mocks], recording)
    image_cache = registry.cache_for(topology, engine, cache)  # a bad setting stops `up` before anything exists
    record = state.read_current(topology)
    run = run_id or (record.run if record is not None else None) or state.new_run_id()
    labels = eng.run_labels(topology.name, run)
    found = engine.containers(labels)
    existing = {c.service: c for c in found if not c.labels.get(eng.REPLICA)}
    old_replicas = [c for c in found if c.labels.get(eng.REPLICA)]
    fresh_run = not found and not engine.networks(labels)
    if fresh_run and run_id is None and record is not None:
        run = state.new_run_id()  # the recorded run is gone: start a new one, not a ghost of it
        labels = eng.run_labels(topology.name, run)

    _check_fixed_ports(topology, [n for n in selected if n in topology.services], existing)
    final_lease = owner if owner is not None else lease.held_by_me()
    run_dir = state.run_directory(topology, run)
    if fresh_run:
        current_lease = lease.Lease(lease.Owner.of(), final_lease.expires_at)
        lease.write(run_dir, current_lease)
        reaper.watch(topology.name, run, run_dir, topology.file)
    else:
        current_lease = lease.read(run_dir) or lease.released()
    lease_labels = current_lease.labels(run_dir)
    created_labels = {**labels, **lease_labels}
    cancel = threading.Event()
    created: list[str] = []
    launcher: launch.Launcher | None = None
    network = eng.network_name(topology.name, run)
    networks = containeropts.networks_to_create(topology, run, selected)
    volumes = containeropts.volumes_to_create(topology, run, selected)

    def create_network_and_volumes() -> None:
        report(Event("", "network", network))
        engine.create_network(network, created_labels)
        for name, declared in networks.items():
            engine.create_network(name, {**dict(declared.labels), **created_labels}, driver=declared.driver,
                                  options=dict(declared.driver_opts), internal=declared.internal)
        for name, declared in volumes.items():
            engine.create_volume(name, {**dict(declared.labels), **created_labels}, driver=declared.driver,
                                 options=dict(declared.driver_opts))

    def on_launch_failure(name: str, exc: BaseException) -> None:
        report(_failed(name, exc))
        cancel.set()

    try:
        # The launcher creates the network while images are resolved, then the containers.
        launcher = launch.Launcher(on_failure=on_launch_failure)
        launcher.submit("", create_network_and_volumes)
        images = ImageBuilder(topology, engine, report, max_parallel=max_parallel_builds,
                              cache=image_cache, platform=platform).ensure(selected, cancel)
        launcher.wait("", cancel)
        mock_images = {n: images[mock_image_key(topology, n)].ref for n in selected if n in topology.mocks}
        topology = with_mocks(topology, mock_images, modes)
        if make_current:
            state.write_current(topology, state.RunRecord(run, topology.name, str(topology.file), on_host))

        book = container_side(topology, on_host)
        specs = {name: _container_spec(topology, run, name, _image_ref(topology, name, images), book, lease_labels)
                 for name in selected}
        replicas = {n: containeropts.replica_specs(specs[n], topology.services[n].scale) for n in selected}
        replica_ids: dict[str, list[str]] = {n: [c.id for c in old_replicas if c.service == n] for n in selected}
        changed = {n for n in selected if n not in existing or not existing[n].running
                   or existing[n].labels.get(eng.CONFIG_HASH) != specs[n].labels[eng.CONFIG_HASH]}
        edges = {n: [d.service for d in topology.services[n].depends_on if d.service in selected] for n in selected}
        changed = dependents(changed, edges) & set(selected)
        result = UpResult(run=run, images=images, timeline=timeline,
                          warnings=list(image_cache.warnings) if image_cache else [])
        waits_for_completion: dict[str, list[str]] = {}  # service -> those that wait for it to exit 0
        for name in selected:
            for dependency in topology.services[name].depends_on:
                if dependency.condition == COMPLETED:
                    waits_for_completion.setdefault(dependency.service, []).append(name)

        def reported(task):
            """`task` with its failure shown as the service's 'failed' event."""
            def run_task(name: str, reach) -> None:
                try:
                    task(name, reach)
                except DependencyFailed:
                    raise
                except BaseException as exc:
                    report(_failed(name, exc))
                    raise
            return run_task

        ids = {n: existing[n].id for n in selected if n not in changed}
        requires = {n: [(d.service, MILESTONE[d.condition]) for d in topology.services[n].depends_on
                        if d.service in selected] for n in selected}
        held: set[str] = set()  # started early, their processes held at the gate (envctl.gate)
        statuses: dict[str, ServiceStatus] = {n: _on_host_row(n, ports) for n, ports in on_host.items()}
        image_configs: dict[str, dict] = {}
        image_ids = {image.ref: image.id for image in images.values()}
        gating = gate.enabled()

        def prepare(name: str) -> None:
            """Create the container; start it at once if it can be held at the gate."""
            if name in existing:
                report(Event(name, "recreate", "configuration or image changed"))
                engine.remove_container(existing[name].id, grace=int(topology.services[name].stop_grace_period))
            for old in replica_ids[name]:
                engine.remove_container(old, grace=int(topology.services[name].stop_grace_period))
            replica_ids[name] = []
            for replica in replicas[name]:  # the others of `scale`, started with it (never held)
                replica_ids[name].append(engine.create_container(replica))
                created.append(replica_ids[name][-1])
            report(Event(name, "create"))
            spec = specs[name]
            if gating and any(d in changed for d, _ in requires[name]):  # else nothing is worth holding for
                image = image_ids.get(spec.image, spec.image)  # services often share one image
                if image not in image_configs:
                    image_configs[image] = engine.inspect_image(image).get("Config") or {}
                spec = gate.held_spec(spec, image_configs[image]) or spec
            container_id = engine.create_container(spec)
            created.append(container_id)
            ids[name] = container_id
            report(Event(name, "created"))
            if spec.open_stdin:
                report(Event(name, "start"))
                try:
                    engine.start(container_id, name)
                except EnvctlError as exc:
                    if gate.lacks_shell(str(exc)):
                        raise gate.NoShell(name) from None
                    raise
                held.add(name)
                report(Event(name, "held", "until " + ", ".join(sorted({d for d, _ in requires[name]})) + " ready"))

        def start_plainly(name: str, recreate: bool = False) -> None:
            """Start the service without the gate; `recreate` its container first if its image has no shell."""
            if recreate:
                report(Event(name, "recreate", f"its image has no {gate.SHELL} to hold it at the gate"))
                engine.remove_container(ids[name], grace=0)
                held.discard(name)
                ids[name] = engine.create_container(specs[name])
                created.append(ids[name])
            report(Event(name, "start"))
            engine.start(ids[name], name)

        def start_and_wait(name: str, reach) -> None:
            service = topology.services[name]
            if name in changed:
                try:
                    launcher.wait(name, cancel)
                except DependencyFailed:
                    raise
                except gate.NoShell:
                    start_plainly(name, recreate=True)
                except BaseException:
                    raise DependencyFailed(name, "its launch") from None  # reported by the launcher
                else:
                    if name not in held:
                        start_plainly(name)
                    elif not _release(engine, ids[name]):
                        start_plainly(name, recreate=True)
                result.started.append(name)
            else:
                if existing[name].labels.get(gate.HELD_LABEL):
                    _release(engine, ids[name])  # kept from a failed run, maybe still held; harmless if not
                result.unchanged.append(name)
            if name in changed:
                for replica in replica_ids[name]:
                    engine.start(replica, name)
            reach("started")
            try:
                readiness, seen = _wait_ready(engine, topology, run, service, ids[name], cancel, report,
                                              held=name in held)
            except gate.NoShell:  # the gate's shell was missing, and it was found out only now
                start_plainly(name, recreate=True)
                readiness, seen = _wait_ready(engine, topology, run, service, ids[name], cancel, report)
            for replica in replica_ids[name]:  # ready means every replica is
                _wait_ready(engine, topology, run, service, replica, cancel, report)
            reach("ready")
            if name in waits_for_completion:
                seen = _wait_completed(engine, service, ids[name], cancel, waits_for_completion[name])
            if seen is not None:
                statuses[name] = _status_row(name, seen, readiness)
            report(Event(name, "ready", readiness.detail))

        # Containers are created dependencies first, a few at a time; a held one starts as soon
        # as it is created. The rest start, and held ones are released, the moment their
        # dependencies are ready.
        depth = depths({n: [d for d, _ in requires[n]] for n in selected})
        for name in sorted(changed, key=lambda n: (depth[n], n)):
            launcher.submit(name, functools.partial(prepare, name))
        _raise_failures(run_dag(requires, reported(start_and_wait), cancel=cancel))
        launcher.close()
        result.status = [statuses[n] for n in topology.services if n in statuses]
        report(Event("", "ready", f"{len(selected)} services and mocks ready"))
    except BaseException as exc:
        cancel.set()
        if launcher is not None:
            launcher.close()
            if launcher.failure is not None and not isinstance(exc, KeyboardInterrupt):
                # What went wrong first; whatever else failed stopped because of it.
                exc = _first_failure(dict([launcher.failure]))
        if isinstance(exc, KeyboardInterrupt):
            signal_name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("interrupt", 130)
            exc = Cancelled(f"start-up stopped by {signal_name}" + ("" if keep_on_failure else
                            "; what this run created was removed"), exit_code=code)
        _save_timeline(topology, run, timeline, selected)
        if not keep_on_failure:
            report(Event("", "teardown", "removing what this run created"))
            try:
                if fresh_run:
                    down(topology, engine, run, save_logs=True)
                elif left := _remove_containers(engine, created):
                    raise TeardownIncomplete(run, left)
            except EnvctlError as teardown:  # what went wrong first stays the error; this is added to it
                if isinstance(exc, EnvctlError):
                    exc.message += f"\nand the teardown failed too: {teardown.message}"
        else:
            if fresh_run:
                lease.write(run_dir, lease.released())  # kept for debugging: not the reaper's to take
            if isinstance(exc, EnvctlError):
                exc.fix = (exc.fix + "; " if exc.fix else "") + f"the run {run} was kept: 'envctl down' removes it"
        if isinstance(exc, EnvctlError):
            raise exc from None
        raise exc  # a bug (or an interrupt): as it is, traceback and all
    _save_timeline(topology, run, timeline, selected)
    if fresh_run and final_lease != current_lease:
        lease.write(run_dir, final_lease)  # hand the run on (or let go of it); the reaper follows
    return result


def _parse_except(topology: Topology, entries: Iterable[str]) -> dict[str, dict[int, int]]:
    """`SERVICE` or `SERVICE:PORT` -> the host port each of its container ports listens on, on the host.

    Without PORT, a service listens on its fixed host port, else on its container port.
    """
    on_host: dict[str, dict[int, int]] = {}
    for entry in entries:
        name, _, port = entry.partition(":")
        if name not in topology.services:
            raise EnvctlError(f"unknown service '{name}'", fix="name one of: " + ", ".join(sorted(topology.services)))
        if port and not port.isdigit():
            raise EnvctlError(f"--except {entry}: '{port}' is not a port number", fix=f"write --except {name}:8001")
        ports = topology.services[name].ports
        on_host[name] = {p.container: p.host or p.container for p in ports}
        if port and ports:
            on_host[name][ports[0].container] = int(port)
    return on_host


def _check_fixed_ports(topology: Topology, selected: list[str], existing: dict[str, ContainerState]) -> None:
    for name in selected:
        for port in topology.services[name].ports:
            if port.host is None:
                continue
            if name in existing and port.host in existing[name].ports.values():
                continue  # our own container holds it
            if not _port_free(port.host, port.protocol, port.host_ip):
                raise PortTaken(
                    f"host port {port.host} for service '{name}' is already in use on {port.host_ip}",
                    fix=f"stop whatever listens on {port.host} ('ss -ltnp | grep :{port.host}'), or change "
                    f"services.{name}.ports to another host port, or to \"{port.container}\" for an ephemeral one",
                )


def _port_free(port: int, protocol: str, address: str = LOOPBACK) -> bool:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, kind) as sock:
        # As servers (and docker-proxy) do: connections in TIME_WAIT do not hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def _image_ref(topology: Topology, name: str, images: dict[str, ResolvedImage]) -> str:
    service = topology.services[name]
    if service.build is not None:
        return images[f"service:{name}"].ref
    if service.base is not None:
        return images[f"base:{service.base}"].ref
    assert service.image is not None
    return service.image


def _container_spec(topology: Topology, run: str, name: str, image: str, book,
                    extra_labels: dict[str, str] | None = None) -> ContainerSpec:
    service = topology.services[name]
    compose = containeropts.spec_fields(topology, run, service, state.run_path(topology, run) / GRANTS)
    spec = ContainerSpec(
        name=eng.container_name(topology.name, run, name),
        image=image,
        alias=name,
        labels={**eng.run_labels(topology.name, run, name), **(extra_labels or {})},
        environment=resolve_environment(name, book, topology),
        command=list(service.command) if service.command is not None else None,
        entrypoint=list(service.entrypoint) if service.entrypoint is not None else None,
        ports={f"{p.container}/{p.protocol}": (p.host_ip, p.host) for p in service.ports},
        working_dir=service.working_dir,
        user=service.user,
        init=service.init,
        healthcheck=_healthcheck(service),
        stop_timeout=max(0, int(service.stop_grace_period)),
        stop_signal=service.stop_signal,
        mem_limit=service.mem_limit,
        **compose,
    )
    digest = hashlib.sha256(json.dumps({
        "image": image, "env": spec.environment, "command": spec.command, "entrypoint": spec.entrypoint,
        "ports": spec.ports, "working_dir": spec.working_dir,
        "user": spec.user, "init": spec.init, "healthcheck": spec.healthcheck, "stop_signal": spec.stop_signal,
        "mem_limit": spec.mem_limit, "scale": service.scale,
        **{k: v for k, v in compose.items() if k != "mounts"}, "mounts": [m.as_api() for m in spec.mounts],
    }, sort_keys=True, default=_hashable).encode()).hexdigest()[:16]
    spec.labels[eng.CONFIG_HASH] = digest
    return spec


def _hashable(value: object) -> object:
    """What the config hash sees of a value json cannot write (a file's bytes by their digest)."""
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    return str(value)


def _healthcheck(service: Service) -> dict | None:
    check = service.healthcheck
    if check is None:
        return None
    if check.disable:
        return {"test": ["NONE"]}
    out: dict = {"test": list(check.test)}
    for key in ("interval", "timeout", "start_period"):
        value = getattr(check, key)
        if value is not None:
            out[key] = int(value * 1_000_000_000)
    if check.retries is not None:
        out["retries"] = check.retries
    return out


# -- readiness ----------------------------------------------------------------------------

def _release(engine: Engine, container_id: str) -> bool:
    """Let a held container's process run; False if it cannot, because the image has no shell."""
    try:
        engine.release(container_id)
    except EnvctlError:
        if _shell_missing(engine, container_id):
            return False
        raise
    return True


def _shell_missing(engine: Engine, container_id: str) -> bool:
    """Whether a held container died because the gate's shell is not in its image (said by the init)."""
    container = engine.container_state(container_id)
    if container is None or container.exit_code != 127:
        return False
    return gate.lacks_shell("\n".join(_log_tail(engine, container_id, 5)))


def _wait_ready(engine: Engine, topology: Topology, run: str, service: Service, container_id: str,
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
            raise NotReady(f"its container exited with code {container.exit_code}{oom}")

    check = _readiness_check(engine, service, container_id, current)
    report(Event(service.name, "wait", _describe_readiness(service)))
    try:
        by_exec = service.probe is not None and service.probe.kind not in ("http", "tcp")
        result = wait_until_ready(check, timeout=timeout, max_interval=interval, cancel=cancel,
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
    raise _startup_failed(engine, service, container_id, why, history, bundle)


def _readiness_check(engine: Engine, service: Service, container_id: str, current: dict[str, ContainerState]):
    probe = service.probe
    if probe is not None and probe.kind in ("http", "tcp"):
        address = service.port(probe.port).reach  # the loader checked that the probed port is listed

        def host_probe() -> ProbeResult:
            container = current.get("state") or engine.container_state(container_id)
            port = container.ports.get(probe.port) if container else None
            if port is None:
                return ProbeResult(False, f"port {probe.port} is not published yet")
            if probe.kind == "http":
                return http_check(address, port, probe.path)
            return tcp_check(address, port)
        return host_probe
    if probe is not None:
        def command_probe() -> ProbeResult:
            code, output = engine.exec(container_id, list(probe.command))
            text = output.decode(errors="replace").strip().splitlines()[-1:] if output else []
            return ProbeResult(code == 0, f"{' '.join(probe.command)}: exit {code}" + (f": {text[0]}" if text else ""))
        return command_probe

    def engine_state() -> ProbeResult:
        # The check itself: a state handed in is used once, then each check asks afresh.
        container = current.pop("state", None) or engine.container_state(container_id)
        current["seen"] = container
        if container is None:
            return ProbeResult(False, "no container")
        if container.health is not None:
            return ProbeResult(container.health == "healthy", f"healthcheck: {container.health}")
        if container.status == "exited" and container.exit_code == 0:
            return ProbeResult(True, "completed")
        return ProbeResult(container.running, f"container {container.status}")
    return engine_state


def _describe_readiness(service: Service) -> str:
    probe = service.probe
    if probe is None:
        return "healthcheck" if service.healthcheck else "running"
    if probe.kind == "http":
        return f"http {probe.path} on {probe.port}"
    if probe.kind == "tcp":
        return f"tcp {probe.port}"
    return "cmd " + " ".join(probe.command)


def _patience(service: Service) -> float:
    """How long `up` waits for a service to reach what its dependents wait for: its probe's timeout."""
    return service.probe.timeout if service.probe else DEFAULT_PATIENCE


def _wait_completed(engine: Engine, service: Service, container_id: str, cancel: threading.Event,
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
            raise _startup_failed(engine, service, container_id, f"{waiting} for it to complete successfully "
                                  f"(service_completed_successfully), and it exited with code {code}", ProbeHistory())
        if time.monotonic() > deadline:
            raise _startup_failed(engine, service, container_id, f"{waiting} for it to complete successfully "
                                  f"(service_completed_successfully), and it was still {container.status} "
                                  f"after {timeout:g}s", ProbeHistory(),
                                  fix=f"make it finish sooner, or give it longer with services.{service.name}"
                                  ".probe.timeout")
        cancel.wait(0.1)
    raise DependencyFailed(service.name, "the run was cancelled")


def _startup_failed(engine: Engine, service: Service, container_id: str, why: str, history: ProbeHistory,
                    bundle: Path | None = None, fix: str | None = None) -> StartupFailed:
    last = history.last
    lines = [f"service '{service.name}' did not become ready: {why}."]
    if last is not None:
        lines.append(f"  last readiness check ({history.attempts} tries): {last.detail}")
    tail = _log_tail(engine, container_id, LOG_TAIL)
    lines.append(f"  last {LOG_TAIL} log lines:" if tail else "  it logged nothing.")
    lines += ["    " + line for line in tail]
    if bundle is not None:
        lines.append(f"  diagnostics (logs of it and its dependencies, probe history, inspect): {bundle}")
    return StartupFailed("\n".join(lines), service=service.name,
                         fix=fix or f"look at the service's logs and its probe in envctl.yaml (services.{service.name})")


def _failed(name: str, exc: BaseException) -> Event:
    """The 'failed' progress event for `name`: the first line of what went wrong."""
    return Event(name, "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _raise_failures(outcome) -> None:
    failures = {n: e for n, e in outcome.errors.items() if not isinstance(e, DependencyFailed)}
    if failures:
        raise _first_failure(failures)
    if outcome.errors:
        raise Cancelled("start-up was cancelled")


def _first_failure(failures: dict[str, BaseException]) -> BaseException:
    """The failure to report: the first by name. A bug stays itself, traceback and all."""
    return failures[sorted(failures)[0]]


def _log_tail(engine: Engine, container_id: str, lines: int) -> list[str]:
    try:
        data = engine.logs(container_id, tail=lines)
    except EnvctlError:
        return []
    assert isinstance(data, bytes)
    return data.decode(errors="replace").rstrip().splitlines()[-lines:]


def _save_timeline(topology: Topology, run: str, timeline: list[Event], selected: list[str]) -> None:
    """timeline.json and the HTML report, for every up: the successful and the failed."""
    if not timeline:
        return
    directory = state.run_directory(topology, run)
    dependencies = {n: [d.service for d in topology.services[n].depends_on] if n in topology.services else []
                    for n in selected}
    write_report(directory, timeline_api.save(directory, run, timeline, dependencies), f"{topology.name}: start-up")


# -- looking at a run ---------------------------------------------------------------------

def current_run(topology: Topology, run: str | None = None) -> state.RunRecord:
    """The run a command acts on: the one named, else the topology's current run."""
    record = state.read_current(topology)
    if run is not None:
        if record is not None and record.run == run:
            return record
        return state.RunRecord(run, topology.name, str(topology.file))
    if record is None:
        raise NoRun(f"no run of '{topology.name}' is recorded in {state.directory(topology)}",
                    fix="start one with 'envctl up' (or name it with --run)")
    return record


def containers_by_service(engine: Engine, topology: Topology, run: str) -> dict[str, ContainerState]:
    """Each service's first container (a service with `scale` has more, labelled as replicas)."""
    return {c.service: c for c in engine.containers(eng.run_labels(topology.name, run)) if not c.labels.get(eng.REPLICA)}


def published_ports(engine: Engine, topology: Topology, record: state.RunRecord) -> dict[str, dict[int, int]]:
    """Host ports of every target in the run (services and mocks), including services run on the host."""
    ports = {name: dict(c.ports) for name, c in containers_by_service(engine, topology, record.run).items()}
    ports.update(record.on_host)
    return ports


def host_environment(engine: Engine, topology: Topology, record: state.RunRecord, service: str) -> dict[str, str]:
    """`service`'s environment with references resolved as the host sees them."""
    topology = with_mocks(topology)
    if service not in topology.services:
        raise EnvctlError(f"unknown service '{service}'", fix="name one of: " + ", ".join(sorted(topology.services)))
    return resolve_environment(service, host_side(topology, published_ports(engine, topology, record)), topology)


def host_port(engine: Engine, topology: Topology, record: state.RunRecord, service: str,
              container_port: int | None = None) -> int:
    topology = with_mocks(topology)
    if service not in topology.services:
        raise EnvctlError(f"unknown service '{service}'", fix="name one of: " + ", ".join(sorted(topology.services)))
    spec = topology.services[service].port(container_port)
    if spec is None:
        listed = ", ".join(str(p.container) for p in topology.ports_of(service)) or "none"
        raise EnvctlError(f"service '{service}' has no port {container_port if container_port else ''}".rstrip(),
                          fix=f"its ports are: {listed}")
    ports = published_ports(engine, topology, record).get(service, {})
    if spec.container not in ports:
        raise NoRun(f"service '{service}' is not running in run {record.run}", fix=f"start it with 'envctl up {service}'")
    return ports[spec.container]


def status(engine: Engine, topology: Topology, record: state.RunRecord) -> list[ServiceStatus]:
    topology = with_mocks(topology)
    found = containers_by_service(engine, topology, record.run)

    def row(name: str) -> ServiceStatus | None:
        if name in record.on_host:
            return _on_host_row(name, record.on_host[name])
        container = found.get(name)
        if container is None:
            return None
        readiness = None
        if container.running:
            readiness = _readiness_check(engine, topology.services[name], container.id, {"state": container})()
        return _status_row(name, container, readiness)

    with ThreadPoolExecutor(max_workers=8) as pool:  # each check is a round trip
        rows = list(pool.map(row, topology.services))
    return [r for r in rows if r is not None]


def _status_row(name: str, container: ContainerState, readiness: ProbeResult | None) -> ServiceStatus:
    if container.running and readiness is not None:
        return ServiceStatus(name, "running", readiness.ok, readiness.detail, container.ports)
    detail = f"exited with code {container.exit_code}" + (" (OOM-killed)" if container.oom_killed else "")
    return ServiceStatus(name, container.status, False, detail, container.ports,
                         container.exit_code, container.oom_killed)


def _on_host_row(name: str, ports: dict[int, int]) -> ServiceStatus:
    return ServiceStatus(name, "on-host", None, "run on the host ('envctl env %s')" % name, dict(ports))


def logs(engine: Engine, topology: Topology, record: state.RunRecord, service: str | None = None,
         tail: int | str = "all") -> dict[str, str]:
    found = containers_by_service(engine, topology, record.run)
    names = [service] if service else sorted(found)
    if service and service not in found:
        raise NoRun(f"service '{service}' has no container in run {record.run}", fix="check 'envctl status'")
    out = {}
    for name in names:
        data = engine.logs(found[name].id, tail=tail)
        out[name] = data.decode(errors="replace") if isinstance(data, bytes) else ""
    return out


def follow_logs(engine: Engine, topology: Topology, record: state.RunRecord,
                service: str | None = None) -> Iterator[tuple[str, str]]:
    """(service, line) pairs from every selected container until they stop or the caller does."""
    found = containers_by_service(engine, topology, record.run)
    names = [service] if service else sorted(found)
    lines: "queue.Queue[tuple[str, str] | EnvctlError | None]" = queue.Queue()

    def pump(name: str) -> None:
        buffer = b""
        try:
            for chunk in engine.logs(found[name].id, follow=True, tail=50):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    lines.put((name, line.decode(errors="replace")))
        except EnvctlError as exc:  # the engine went away: the caller hears of it, not the thread
            lines.put(exc)
            return
        lines.put(None)

    for name in names:
        threading.Thread(target=pump, args=(name,), daemon=True).start()
    remaining = len(names)
    while remaining:
        item = lines.get()
        if item is None:
            remaining -= 1
        elif isinstance(item, EnvctlError):
            raise item
        else:
            yield item


def exec_in(engine: Engine, topology: Topology, record: state.RunRecord, service: str, command: list[str]):
    found = containers_by_service(engine, topology, record.run)
    if service not in found or not found[service].running:
        raise NoRun(f"service '{service}' is not running in run {record.run}", fix="check 'envctl status'")
    return engine.exec(found[service].id, command, stream=True)


# -- down ---------------------------------------------------------------------------------

@dataclass
class DownResult:
    runs: list[str] = field(default_factory=list)
    containers: int = 0
    logs_dir: dict[str, Path] = field(default_factory=dict)
    strict_violations: list[str] = field(default_factory=list)  # from mocks with `strict: true`


def project_runs(engine: Engine, project: str) -> list[str]:
    labels = {eng.PROJECT: project}
    runs = {c.run for c in engine.containers(labels)}
    runs |= {n["Labels"].get(eng.RUN, "") for n in engine.networks(labels)}
    runs |= {v["Labels"].get(eng.RUN, "") for v in engine.volumes(labels)}
    return sorted(r for r in runs if r)


def down(topology: Topology, engine: Engine, run: str, *, save_logs: bool = True,
         progress: Progress = silent) -> DownResult:
    """Save each container's log, then remove the run's containers, network and volumes.

    Best effort: every removal is tried even when one fails, and the run's record and lease
    go either way; what the engine kept is then raised, by id, as `TeardownIncomplete`
    (which carries the strict mocks' verdict too). Only a lost engine stops it at once.
    """
    labels = eng.run_labels(topology.name, run)
    containers = engine.containers(labels)
    result = DownResult(runs=[run], containers=len(containers))
    for container in containers:  # strict mocks are judged before their reports are gone
        mock = topology.mocks.get(container.service)
        if mock is not None and mock.strict and container.running and MOCK_PORT in container.ports:
            try:
                result.strict_violations += fetch_report(mock.name, container.ports[MOCK_PORT]).strict_violations()
            except EnvctlError as exc:
                result.strict_violations.append(str(exc))
    if containers and save_logs:
        log_dir = state.run_directory(topology, run) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        result.logs_dir[run] = log_dir
    grace = {n: int(s.stop_grace_period) for n, s in topology.services.items()}
    left = remove_resources(engine, labels, containers, lambda c: grace.get(c.service, 2),
                            result.logs_dir.get(run), secrets.for_topology(topology), progress)
    shutil.rmtree(state.run_path(topology, run) / GRANTS, ignore_errors=True)  # secrets leave with the run
    state.clear_current(topology, run)
    lease.remove(state.run_path(topology, run))  # its reaper, if any, stands down
    if left:
        raise TeardownIncomplete(run, left, strict_violations=result.strict_violations)
    return result


def purge(engine: Engine, project: str, run: str, log_dir: Path | None = None,
          masker: secrets.Masker | None = None) -> int:
    """Remove a run from its labels alone, without its topology and without grace (the reaper's and gc's way).

    Returns how many containers there were; raises `TeardownIncomplete` if the engine kept some.
    """
    labels = eng.run_labels(project, run)
    containers = engine.containers(labels)
    if log_dir is not None and containers:
        log_dir.mkdir(parents=True, exist_ok=True)
    left = remove_resources(engine, labels, containers, lambda c: 0, log_dir if containers else None,
                            masker or secrets.Masker())
    if left:
        raise TeardownIncomplete(run, left)
    return len(containers)


def remove_resources(engine: Engine, labels: dict[str, str], containers: list[ContainerState], grace,
                     log_dir: Path | None, masker: secrets.Masker, progress: Progress = silent) -> list[str]:
    """Save each container's log (masked) into `log_dir` if given, remove them in parallel, then networks and volumes.

    Every removal is tried, whatever happened to the others (the engine retries what it
    refuses for a moment); returns what the engine kept, each by id with its reason.
    """
    left: list[str] = []

    def remove(container: ContainerState) -> None:
        name = container.service or container.name
        if log_dir is not None:
            _save_log(engine, container.id, log_dir / f"{name}.log", masker)
        progress(Event(container.service, "remove"))
        _attempt(lambda: engine.remove_container(container.id, grace=grace(container)),
                 f"container {container.id[:12]} ({name})", left)

    _in_parallel(remove, containers)
    for network in engine.networks(labels):
        _attempt(lambda: engine.remove_network(network["Id"]), f"network {network['Id'][:12]} ({network['Name']})", left)
    for volume in engine.volumes(labels):
        _attempt(lambda: engine.remove_volume(volume["Name"]), f"volume {volume['Name']}", left)
    return left


def _attempt(removal, what: str, left: list[str]) -> None:
    """One removal of a teardown: a refusal is noted in `left` and the teardown goes on; a lost engine ends it."""
    try:
        removal()
    except EngineUnavailable:
        raise
    except EnvctlError as exc:
        left.append(f"{what}: {exc.message}")


def _save_log(engine: Engine, container_id: str, path: Path, masker: secrets.Masker) -> None:
    try:
        data = engine.logs(container_id, timestamps=True)
    except EngineUnavailable:
        raise
    except EnvctlError as exc:  # the container goes anyway; the file says why its log is missing
        path.write_text(f"envctl could not save this log: {exc.message}\n")
        return
    path.write_bytes(masker.mask_bytes(data) if isinstance(data, bytes) else b"")


def _remove_containers(engine: Engine, container_ids: list[str]) -> list[str]:
    """Remove containers (best effort, in parallel); returns what the engine kept."""
    left: list[str] = []
    _in_parallel(lambda cid: _attempt(lambda: engine.remove_container(cid, grace=1), f"container {cid[:12]}", left),
                 container_ids)
    return left


def _in_parallel(fn, items) -> None:
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


# -- mocks --------------------------------------------------------------------------------

def mock_admins(engine: Engine, topology: Topology, record: state.RunRecord,
                name: str | None = None) -> list[MockAdmin]:
    """The admin API of each running mock of the run (or of `name`)."""
    if name is not None and name not in topology.mocks:
        raise EnvctlError(f"unknown mock '{name}'", fix="name one of: " + (", ".join(sorted(topology.mocks)) or "(none)"))
    found = containers_by_service(engine, topology, record.run)
    admins = []
    for mock in ([name] if name else sorted(topology.mocks)):
        container = found.get(mock)
        if container is None or not container.running or MOCK_PORT not in container.ports:
            if name:
                raise NoRun(f"mock '{mock}' is not running in run {record.run}", fix=f"start it with 'envctl up {mock}'")
            continue
        admins.append(MockAdmin(mock, container.ports[MOCK_PORT]))
    return admins


def mock_reports(engine: Engine, topology: Topology, record: state.RunRecord,
                 name: str | None = None) -> list[MockReport]:
    """The admin report of each running mock of the run (or of `name`)."""
    return [admin.report() for admin in mock_admins(engine, topology, record, name)]
