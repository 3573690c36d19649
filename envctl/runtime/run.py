"""A run: one stack of a topology on one engine. Bringing it up, and looking at it.

`up` checks the request, finds what of the run exists, makes the plan (`envctl.planning.plan`)
and carries it out: images resolve in the background while each container is created as soon
as its own image is there, and started the moment what it waits for is reached (a DAG), its
readiness polled from the host (`readiness.py`). Everything created carries the run's labels;
`teardown.down` removes by those labels, so it works from any process. `status`, `logs`,
`exec_in`, ports and the host's environment look at a run.
"""
from __future__ import annotations

import functools
import queue
import socket
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from envctl.backend import containeropts
from envctl.backend import engine as eng
from envctl.backend.base import Backend
from envctl.backend.engine import ContainerSpec, ContainerState, Engine
from envctl.errors import Cancelled, EnvctlError, NoRun, PortTaken, TeardownIncomplete, Terminated
from envctl.graph import DependencyFailed, run_dag
from envctl.images import registry
from envctl.images.builder import BUILD_PARALLELISM, ImageBuilder, ResolvedImage, image_targets, service_image_key
from envctl.mocks.admin import MockAdmin
from envctl.mocks.cassettes import check_cassettes
from envctl.mocks.report import MockReport
from envctl.mocks.runtime import with_mocks
from envctl.observation import timeline as timeline_api
from envctl.observation.report import write_report
from envctl.planning import gate, selection
from envctl.planning.plan import ImagePlan, Plan, Running, make_plan
from envctl.planning.wiring import Endpoint, container_side, host_side, resolve_environment
from envctl.progress import Event, Progress, silent
from envctl.runtime import launch, lease, readiness, reaper, specs, state
from envctl.runtime.probes import ProbeResult
from envctl.runtime.teardown import down, remove_containers
from envctl.topology import Topology
from envctl.topology.model import LOOPBACK, MOCK_PORT



@dataclass(frozen=True)
class ServiceStatus:
    service: str
    state: str  # running, exited, created, missing, on-host
    ready: bool | None
    detail: str
    ports: dict[int, int]
    exit_code: int | None = None
    oom_killed: bool = False
    node: str | None = None  # on a cluster: the node its task runs on
    address: str | None = None  # where the host dials its ports (None: 127.0.0.1, or the file's address)


@dataclass
class UpResult:
    run: str
    started: list[str] = field(default_factory=list)  # created or recreated now
    unchanged: list[str] = field(default_factory=list)
    images: dict[str, ResolvedImage] = field(default_factory=dict)
    timeline: list[Event] = field(default_factory=list)
    status: list[ServiceStatus] = field(default_factory=list)  # as each service was seen ready
    warnings: list[str] = field(default_factory=list)  # e.g. the image cache was unreachable


# -- up: plan, then apply -----------------------------------------------------------------

@dataclass(frozen=True)
class _Request:
    """What `up` was asked for, checked against the topology before anything exists."""

    selected: list[str]
    on_host: dict[str, dict[int, int]]  # --except: services the developer runs on the host
    modes: dict[str, str]  # recording mocks: "record" or "record_missing"

    @classmethod
    def checked(cls, topology: Topology, engine: Backend, services: Iterable[str], except_services: Iterable[str],
                profiles: Iterable[str], record: Iterable[str], record_missing: Iterable[str]) -> _Request:
        on_host = selection.parse_except(topology, except_services)
        modes = selection.recording_modes(topology, record, record_missing)
        selected = selection.selection(topology, services, profiles, on_host, modes)
        check_cassettes(topology, [n for n in selected if n in topology.mocks], set(modes))
        engine.check(topology, selected)  # what this backend cannot honour, of exactly what would start
        return cls(selected, on_host, modes)


@dataclass(frozen=True)
class _Found:
    """The run `up` works on, and what of it already exists."""

    run: str
    fresh: bool  # nothing of it exists: this `up` creates it (and removes it all on failure)
    existing: dict[str, ContainerState]  # each service's first container
    old_replicas: list[ContainerState]

    @classmethod
    def find(cls, topology: Topology, engine: Backend, run_id: str | None) -> _Found:
        record = state.read_current(topology)
        run = run_id or (record.run if record is not None else None) or state.new_run_id()
        found = engine.containers(eng.run_labels(topology.name, run))
        fresh = not found and not engine.networks(eng.run_labels(topology.name, run))
        if fresh and run_id is None and record is not None:
            run = state.new_run_id()  # the recorded run is gone: start a new one, not a ghost of it
        return cls(run, fresh, {c.service: c for c in found if not c.labels.get(eng.REPLICA)},
                   [c for c in found if c.labels.get(eng.REPLICA)])

    def running(self) -> dict[str, Running]:
        return {name: Running(c.running, c.labels.get(eng.CONFIG_HASH)) for name, c in self.existing.items()}


def plan_up(topology: Topology, engine: Engine, *, services: Iterable[str] = (),
            except_services: Iterable[str] = (), profiles: Iterable[str] = (), run_id: str | None = None,
            record: Iterable[str] = (), record_missing: Iterable[str] = (), platform: str | None = None) -> Plan:
    """What `up` with these options would do now, changing nothing (`envctl up --dry-run`)."""
    request = _Request.checked(topology, engine, services, except_services, profiles, record, record_missing)
    found = _Found.find(topology, engine, run_id)
    planned = ImageBuilder(topology, engine.builder, platform=platform).planned(request.selected)
    return _planned(topology, found, request, planned, engine.holds_at_gate)[2]


def _planned(topology: Topology, found: _Found, request: _Request,
             planned: dict[str, tuple[str | None, bool]], holds_at_gate: bool) -> tuple[Topology, dict, Plan]:
    """The plan, from the refs the images will have (known before building, where their bases exist).

    Also the topology with its mocks folded in as services, and the address book containers see."""
    refs = {key: ref for key, (ref, _) in planned.items()}
    keys = {n: service_image_key(topology, n) for n in request.selected}
    mock_refs = {n: refs.get(keys[n]) or "" for n in request.selected if n in topology.mocks}
    topology = with_mocks(topology, mock_refs, request.modes)
    book = container_side(topology, request.on_host)
    hashes: dict[str, str | None] = {}
    for name in request.selected:
        spec = _spec(topology, found.run, name, refs.get(keys[name]), book, write_files=False)
        hashes[name] = spec.labels[eng.CONFIG_HASH] if spec is not None else None
    plan = make_plan(topology, found.run, request.selected, hashes, found.running(), fresh=found.fresh,
                     gating=gate.enabled() and holds_at_gate,
                     images=tuple(ImagePlan(k, r, p) for k, (r, p) in planned.items()),
                     networks=(eng.network_name(topology.name, found.run),
                               *containeropts.networks_to_create(topology, found.run, request.selected)),
                     volumes=tuple(containeropts.volumes_to_create(topology, found.run, request.selected)),
                     on_host=request.on_host)
    return topology, book, plan


def _spec(topology: Topology, run: str, name: str, ref: str | None, book: dict,
          labels: dict[str, str] | None = None, write_files: bool = True) -> ContainerSpec | None:
    """Service `name`'s container on its image `ref` (None while that ref is not known)."""
    service = topology.services[name]
    if name not in topology.mocks and service.build is None and service.base is None:
        ref = service.image  # a registry's image, by its name
    if ref is None:
        return None
    return specs.container_spec(topology, run, name, ref, book, labels, write_files=write_files)


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
    max_parallel_builds: int = BUILD_PARALLELISM,
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
    request = _Request.checked(topology, engine, services, except_services, profiles, record, record_missing)
    image_cache = registry.cache_for(topology, engine.builder, cache)  # a bad setting stops `up` before anything exists
    found = _Found.find(topology, engine, run_id)
    _check_fixed_ports(topology, [n for n in request.selected if n in topology.services], found.existing)
    final_lease = owner if owner is not None else lease.held_by_me()
    run_dir = state.run_directory(topology, found.run)
    if found.fresh:
        current_lease = lease.Lease(lease.Owner.of(), final_lease.expires_at)
        lease.write(run_dir, current_lease)
        reaper.watch(topology.name, found.run, run_dir, topology.file)
    else:
        current_lease = lease.read(run_dir) or lease.released()
    builder = functools.partial(ImageBuilder, topology, engine.builder, max_parallel=max_parallel_builds,
                                cache=image_cache, platform=platform)
    applying = _Apply(topology, engine, found, request, current_lease.labels(run_dir), progress)
    result = applying.carry_out(builder, make_current, keep_on_failure)
    if image_cache:
        result.warnings[:0] = image_cache.warnings
    if found.fresh and final_lease != current_lease:
        lease.write(run_dir, final_lease)  # hand the run on (or let go of it); the reaper follows
    return result


class _Apply:
    """Carrying out a plan: images, then containers created dependencies first, started as
    soon as what each waits for is reached, each waited on until ready.

    Containers are created a few at a time by the launcher; one held at the start gate
    starts as soon as it is created, and is released the moment its dependencies are ready.
    """

    def __init__(self, topology: Topology, engine: Engine, found: _Found, request: _Request,
                 lease_labels: dict[str, str], progress: Progress) -> None:
        self.topology, self.engine, self.found, self.request = topology, engine, found, request
        self.run = found.run
        self.labels = {**eng.run_labels(topology.name, found.run), **lease_labels}
        self.lease_labels = lease_labels
        self.progress = progress
        self.timeline: list[Event] = []
        self.cancel = threading.Event()
        self.created: list[str] = []  # container ids, for removal if this `up` fails
        self.launcher: launch.Launcher | None = None
        self.ids: dict[str, str] = {}
        self.held: set[str] = set()  # started early, their processes held at the gate
        self.image_configs: dict[str, dict] = {}

    def report(self, event: Event) -> None:
        self.timeline.append(event)
        self.progress(event)

    # -- the whole of it -------------------------------------------------------------------

    def carry_out(self, builder, make_current: bool, keep_on_failure: bool) -> UpResult:
        selected = self.request.selected
        try:
            result = self._converge(builder, make_current)
        except BaseException as exc:
            self.cancel.set()
            exc = self._what_went_wrong(exc, keep_on_failure)
            _save_timeline(self.topology, self.run, self.timeline, selected)
            self._after_failure(exc, keep_on_failure)
            if isinstance(exc, EnvctlError):
                raise exc from None
            raise exc  # a bug (or an interrupt): as it is, traceback and all
        _save_timeline(self.topology, self.run, self.timeline, selected)
        return result

    def _converge(self, builder, make_current: bool) -> UpResult:
        # One schedule for images and containers: the launcher creates the network at once, and
        # each container as soon as its own image is there, while other images still build.
        self.launcher = launch.Launcher(on_failure=self._on_launch_failure)
        self.launcher.submit("", self._create_networks_and_volumes, rank=-1)
        self.images = builder(progress=self.report)
        self._make_plan(self.images.planned(self.request.selected), make_current)
        images = self._build_in_background()
        _raise_failures(run_dag(self.plan.requirements(), self._reported(self._start_and_wait), cancel=self.cancel))
        images.join()
        self.launcher.close()
        self.result.images = dict(self.images.resolved)
        self.result.status = [self.statuses[n] for n in self.topology.services if n in self.statuses]
        self.report(Event("", "ready", f"{len(self.request.selected)} services and mocks ready"))
        return self.result

    def _make_plan(self, planned: dict[str, tuple[str | None, bool]], make_current: bool) -> None:
        selected = self.request.selected
        self.topology, self.book, self.plan = _planned(self.topology, self.found, self.request, planned,
                                                        self.engine.holds_at_gate)
        if make_current:
            state.write_current(self.topology, state.RunRecord(self.run, self.topology.name, str(self.topology.file),
                                                               self.request.on_host))
        self.image_key = {n: service_image_key(self.topology, n) for n in selected}
        self.specs: dict[str, ContainerSpec] = {}
        self.replica_ids = {n: [c.id for c in self.found.old_replicas if c.service == n] for n in selected}
        self.ids = {n: self.found.existing[n].id for n in selected if not self.plan.services[n].changes}
        self.result = UpResult(run=self.run, timeline=self.timeline)
        self.statuses = {n: _on_host_row(n, ports) for n, ports in self.request.on_host.items()}
        for name in self.plan.creation_order():
            self.launcher.expect(name)

    def _build_in_background(self) -> threading.Thread:
        """Resolve the images in a thread; each resolved one lets the containers on it be created."""
        waiting = {name: self.image_key[name] for name in self.plan.creation_order()}
        rank = {name: index for index, name in enumerate(waiting)}  # dependencies first
        lock = threading.Lock()

        def resolved(key: str) -> None:
            with lock:
                ready = [n for n, k in waiting.items() if k == key]
                for name in ready:
                    del waiting[name]
            for name in ready:
                self.launcher.submit(name, functools.partial(self._prepare, name), rank=rank[name])

        def build() -> None:
            try:
                self.images.ensure(self.request.selected, self.cancel, on_resolved=resolved)
            except BaseException as exc:  # noqa: BLE001 - reported by `up`, after the DAG stops
                self.image_failure = exc
                self.cancel.set()

        self.image_failure: BaseException | None = None
        thread = threading.Thread(target=build, name="envctl-images", daemon=True)
        thread.start()
        self.image_thread = thread
        return thread

    def _create_networks_and_volumes(self) -> None:
        network = eng.network_name(self.topology.name, self.run)
        self.report(Event("", "network", network))
        self.engine.create_network(network, self.labels)
        selected = self.request.selected
        for name, declared in containeropts.networks_to_create(self.topology, self.run, selected).items():
            self.engine.create_network(name, {**dict(declared.labels), **self.labels}, driver=declared.driver,
                                       options=dict(declared.driver_opts), internal=declared.internal)
        for name, declared in containeropts.volumes_to_create(self.topology, self.run, selected).items():
            self.engine.create_volume(name, {**dict(declared.labels), **self.labels}, driver=declared.driver,
                                      options=dict(declared.driver_opts))

    def _on_launch_failure(self, name: str, exc: BaseException) -> None:
        self.report(_failed(name, exc))
        self.cancel.set()

    def _reported(self, task):
        """`task` with its failure shown as the service's 'failed' event."""
        def run_task(name: str, reach) -> None:
            try:
                task(name, reach)
            except DependencyFailed:
                raise
            except BaseException as exc:
                self.report(_failed(name, exc))
                raise
        return run_task

    # -- one service -----------------------------------------------------------------------

    def _prepare(self, name: str) -> None:
        """Create the container (and its replicas); start it at once if it is held at the gate."""
        self.launcher.wait("", self.cancel)  # the run's network first
        ref = self.images.resolved[self.image_key[name]].ref
        self.specs[name] = _spec(self.topology, self.run, name, ref, self.book, self.lease_labels)
        grace = int(self.topology.services[name].stop_grace_period)
        if name in self.found.existing:
            self.report(Event(name, "recreate", "configuration or image changed"))
            self.engine.remove_container(self.found.existing[name].id, grace=grace)
        for old in self.replica_ids[name]:
            self.engine.remove_container(old, grace=grace)
        self.replica_ids[name] = []
        replicas = containeropts.replica_specs(self.specs[name], self.topology.services[name].scale)
        for replica in replicas:  # the others of `scale`, started with it (never held)
            self.replica_ids[name].append(self.engine.create_container(replica))
            self.created.append(self.replica_ids[name][-1])
        self.report(Event(name, "create"))
        spec = self._held_spec(name) if self.plan.services[name].held else self.specs[name]
        self.ids[name] = self.engine.create_container(spec)
        self.created.append(self.ids[name])
        self.report(Event(name, "created"))
        if spec.open_stdin:
            self._start_held(name)

    def _held_spec(self, name: str) -> ContainerSpec:
        """The spec that holds the process at the gate, or the plain one where the image cannot be held."""
        spec = self.specs[name]
        image = self.images.resolved[self.image_key[name]].id  # services often share one image
        if image not in self.image_configs:
            self.image_configs[image] = self.engine.inspect_image(image).get("Config") or {}
        return gate.held_spec(spec, self.image_configs[image]) or spec

    def _start_held(self, name: str) -> None:
        # Without a probe, "running" is ready: an init that cannot run the missing shell exits at
        # once, but a release sooner than that would see it running. So ask first (a probe sees
        # the exit itself, and the question costs the engine a mount of the container's files).
        if self.topology.services[name].probe is None and self.engine.path_kind(self.ids[name], gate.SHELL) is None:
            raise gate.NoShell(name)
        self.report(Event(name, "start"))
        try:
            self.engine.start(self.ids[name], name)
        except EnvctlError as exc:
            if gate.lacks_shell(str(exc)):
                raise gate.NoShell(name) from None
            raise
        self.held.add(name)
        waits = sorted({d for d, _ in self.plan.services[name].waits_for})
        self.report(Event(name, "held", "until " + ", ".join(waits) + " ready"))

    def _start_plainly(self, name: str, recreate: bool = False) -> None:
        """Start the service without the gate; `recreate` its container first if its image has no shell."""
        if recreate:
            self.report(Event(name, "recreate", f"its image has no {gate.SHELL} to hold it at the gate"))
            self.engine.remove_container(self.ids[name], grace=0)
            self.held.discard(name)
            self.ids[name] = self.engine.create_container(self.specs[name])
            self.created.append(self.ids[name])
        self.report(Event(name, "start"))
        self.engine.start(self.ids[name], name)

    def _start_and_wait(self, name: str, reach) -> None:
        """Start a service whose dependencies reached what it waits for; wait until it is ready."""
        if self.plan.services[name].changes:
            self._start_created(name)
        else:
            if self.found.existing[name].labels.get(gate.HELD_LABEL):
                readiness.release(self.engine, self.ids[name])  # kept from a failed run, maybe still held
            self.result.unchanged.append(name)
        reach("started")
        self._wait_ready(name)
        reach("ready")

    def _start_created(self, name: str) -> None:
        try:
            self.launcher.wait(name, self.cancel)
        except DependencyFailed:
            raise
        except gate.NoShell:
            self._start_plainly(name, recreate=True)
        except BaseException:
            raise DependencyFailed(name, "its launch") from None  # reported by the launcher
        else:
            if name not in self.held:
                self._start_plainly(name)
            elif not readiness.release(self.engine, self.ids[name]):
                self._start_plainly(name, recreate=True)
        self.result.started.append(name)
        for replica in self.replica_ids[name]:
            self.engine.start(replica, name)

    def _wait_ready(self, name: str) -> None:
        service, step = self.topology.services[name], self.plan.services[name]
        wait = functools.partial(readiness.wait_ready, self.engine, self.topology, self.run, service,
                                 cancel=self.cancel, report=self.report)
        try:
            result, seen = wait(self.ids[name], held=name in self.held)
        except gate.NoShell:  # the gate's shell was missing, and it was found out only now
            self._start_plainly(name, recreate=True)
            result, seen = wait(self.ids[name])
        for replica in self.replica_ids[name]:  # ready means every replica is
            wait(replica)
        if step.awaited_exit_by:
            seen = readiness.wait_completed(self.engine, service, self.ids[name], self.cancel,
                                            list(step.awaited_exit_by))
        if seen is not None:
            self.statuses[name] = status_row(name, seen, result)
        self.report(Event(name, "ready", result.detail))

    # -- when it fails ---------------------------------------------------------------------

    def _what_went_wrong(self, exc: BaseException, keep_on_failure: bool) -> BaseException:
        """The error to report: the first failure, an interrupt as `Cancelled` with its exit code."""
        interrupted = isinstance(exc, KeyboardInterrupt)
        if getattr(self, "image_thread", None) is not None:
            # Nothing new starts once cancelled; a build under way is let finish (briefly, on a signal).
            self.image_thread.join(timeout=5 if interrupted else None)
        if self.launcher is not None:
            self.launcher.close()
            if self.launcher.failure is not None and not interrupted:
                # What went wrong first; whatever else failed stopped because of it.
                exc = _first_failure(dict([self.launcher.failure]))
            elif getattr(self, "image_failure", None) is not None and not interrupted:
                exc = self.image_failure
        if interrupted:
            signal_name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("interrupt", 130)
            exc = Cancelled(f"start-up stopped by {signal_name}" + ("" if keep_on_failure else
                            "; what this run created was removed"), exit_code=code)
        return exc

    def _after_failure(self, exc: BaseException, keep_on_failure: bool) -> None:
        """Remove what this `up` created, or keep it for debugging and say how to remove it."""
        if keep_on_failure:
            if self.found.fresh:
                lease.keep_for_debugging(state.run_directory(self.topology, self.run))
            if isinstance(exc, EnvctlError):
                exc.fix = (exc.fix + "; " if exc.fix else "") + f"the run {self.run} was kept: 'envctl down' removes it"
            return
        self.report(Event("", "teardown", "removing what this run created"))
        try:
            if self.found.fresh:
                down(self.topology, self.engine, self.run, save_logs=True)
            elif left := remove_containers(self.engine, self.created):
                raise TeardownIncomplete(self.run, left)
        except EnvctlError as teardown:  # what went wrong first stays the error; this is added to it
            if isinstance(exc, EnvctlError):
                exc.message += f"\nand the teardown failed too: {teardown.message}"


def _check_fixed_ports(topology: Topology, selected: list[str], existing: dict[str, ContainerState]) -> None:
    for name in selected:
        for port in topology.services[name].ports:
            if port.host is None:
                continue
            if name in existing and port.host in existing[name].ports.values():
                continue  # our own container holds it
            if not port_free(port.host, port.protocol, port.host_ip):
                raise PortTaken(
                    f"host port {port.host} for service '{name}' is already in use on {port.host_ip}",
                    fix=f"stop whatever listens on {port.host} ('ss -ltnp | grep :{port.host}'), or change "
                    f"services.{name}.ports to another host port, or to \"{port.container}\" for an ephemeral one",
                )


def port_free(port: int, protocol: str, address: str = LOOPBACK) -> bool:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, kind) as sock:
        # As servers (and docker-proxy) do: connections in TIME_WAIT do not hold the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


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


def _save_timeline(topology: Topology, run: str, timeline: list[Event], selected: list[str]) -> None:
    """timeline.json and the HTML report, for every up: the successful and the failed."""
    if not timeline:
        return
    directory = state.run_directory(topology, run)
    dependencies = _timeline_dependencies(topology, selected)
    write_report(directory, timeline_api.save(directory, run, timeline, dependencies), f"{topology.name}: start-up")


def _timeline_dependencies(topology: Topology, selected: list[str]) -> dict[str, list[str]]:
    """What each service waited for (its dependencies and its image), and each image (its base)."""
    targets = image_targets(topology, selected)

    def image(key: str) -> str:  # as the builder names an image's progress events
        return timeline_api.IMAGE_NODE + targets[key].subject

    dependencies: dict[str, list[str]] = {}
    for name in selected:
        needs = [d.service for d in topology.services[name].depends_on] if name in topology.services else []
        key = service_image_key(topology, name)
        dependencies[name] = needs + ([image(key)] if key in targets else [])
    for key, target in targets.items():
        if target.parent:
            dependencies[image(key)] = [image(target.parent)]
    return dependencies


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
    book = host_side(topology, published_ports(engine, topology, record))
    for name, container in containers_by_service(engine, topology, record.run).items():
        if container.address and name in book:  # a cluster's task: at its node's address
            book[name] = Endpoint(container.address, book[name].ports)
    return resolve_environment(service, book, topology)


def host_address(engine: Engine, topology: Topology, record: state.RunRecord, service: str,
                 container_port: int | None = None) -> str:
    """Where the host dials `service`: its node's address on a cluster, else where the file publishes it."""
    container = containers_by_service(engine, topology, record.run).get(service)
    return (container.address if container is not None else None) or topology.reach(service, container_port)


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
        check = None
        if container.running:
            check = readiness.readiness_check(engine, topology.services[name], container.id, {"state": container})()
        return status_row(name, container, check)

    with ThreadPoolExecutor(max_workers=8) as pool:  # each check is a round trip
        rows = list(pool.map(row, topology.services))
    return [r for r in rows if r is not None]


def status_row(name: str, container: ContainerState, readiness: ProbeResult | None) -> ServiceStatus:
    if container.running and readiness is not None:
        return ServiceStatus(name, "running", readiness.ok, readiness.detail, container.ports,
                             node=container.node, address=container.address)
    detail = f"exited with code {container.exit_code}" + (" (OOM-killed)" if container.oom_killed else "")
    if container.detail:  # what a cluster said of it: why it could not run, or that its node is down
        detail = container.detail if container.exit_code is None else f"{detail}: {container.detail}"
    return ServiceStatus(name, container.status, False, detail, container.ports,
                         container.exit_code, container.oom_killed, node=container.node, address=container.address)


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
        admins.append(MockAdmin(mock, container.ports[MOCK_PORT], container.address or LOOPBACK))
    return admins


def mock_reports(engine: Engine, topology: Topology, record: state.RunRecord,
                 name: str | None = None) -> list[MockReport]:
    """The admin report of each running mock of the run (or of `name`)."""
    return [admin.report() for admin in mock_admins(engine, topology, record, name)]
