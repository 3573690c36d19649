"""The library API: a `Project` is a topology on an engine, and the run it acts on.

The command line, the pytest plugin and `envctl ci` are shells over this one class: what one
of them needs (a verdict, a lease, a choice of runs) is decided here, once, and the shells
only present it. `Project` delegates the work to the stages below it (`envctl.runtime`,
`envctl.images`, `envctl.mocks`, ...) and adds no work of its own.

    from envctl.project import Project

    project = Project.load("envctl.yaml")
    project.up()                   # builds what is missing, starts, waits until ready
    print(project.url("api"))      # http://127.0.0.1:PORT
    teardown = project.down()      # saves the logs, removes the run
    for error in teardown.errors():
        print(error)

The types the methods return are importable from here too.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from envctl import doctor as doctor_api
from envctl.doctor import Diagnosis, Finding
from envctl.backend import engine as eng
from envctl.backend.base import Backend
from envctl.errors import EnvctlError, NoRun, TeardownIncomplete
from envctl.images import builder as image_api
from envctl.images import package_cache
from envctl.images import registry as registry_api
from envctl.images.builder import BUILD_PARALLELISM, ImageRow, ResolvedImage
from envctl.images.platforms import COMPOSE_PLATFORM_ENV, PLATFORM_ENV
from envctl.images.registry import CACHE_ENV, REGISTRY_ENV, Pushed
from envctl.mocks import drift as drift_api
from envctl.mocks.admin import MockAdmin, VerificationFailed
from envctl.mocks.drift import DriftReport, HeaderSyntaxError
from envctl.mocks.report import MockReport
from envctl.mocks.verify import SentRequest
from envctl.observation import drawing
from envctl.observation import timeline as timeline_api
from envctl.observation.report import REPORT_FILE
from envctl.planning.plan import Plan
from envctl.planning.plan import describe as describe_plan
from envctl.planning.selection import select_services
from envctl.progress import Progress, silent
from envctl.runtime import backends
from envctl.runtime.backends import BACKEND_ENV, BACKENDS
from envctl.runtime import gc as gc_api
from envctl.runtime import lease, state
from envctl.runtime import run as run_api
from envctl.runtime import teardown as teardown_api
from envctl.runtime.gc import FoundRun
from envctl.runtime.lease import Lease
from envctl.runtime.run import ServiceStatus, UpResult
from envctl.runtime.teardown import DownResult
from envctl.topology import Topology, load_topology, secrets
from envctl.topology.compose_keys import ALLOW_ENV, OPT_INS, differences
from envctl.topology.document import to_document

__all__ = [
    "Project", "SharedRun", "Teardown", "RemovedRun", "Built", "Drawing", "StartupTimeline", "Exec",
    "GarbageCollection",
    # what the methods return, from the stages below
    "BUILD_PARALLELISM", "Plan", "describe_plan", "UpResult", "DownResult", "ServiceStatus", "MockAdmin",
    "MockReport", "SentRequest", "VerificationFailed", "DriftReport", "HeaderSyntaxError", "ResolvedImage", "Pushed",
    "ImageRow", "FoundRun", "Diagnosis", "Finding", "Lease",
    # the settings it reads from the environment
    "ALLOW_ENV", "OPT_INS", "CACHE_ENV", "REGISTRY_ENV", "PLATFORM_ENV", "COMPOSE_PLATFORM_ENV", "BACKEND_ENV",
    "BACKENDS",
]


# -- what the methods return ----------------------------------------------------------------

@dataclass(frozen=True)
class RemovedRun:
    """A run `down` removed: how many containers it had, and where their logs were saved."""

    run: str
    containers: int
    logs_dir: Path | None


@dataclass
class Teardown:
    """What `Project.down` did, run by run: each run's `DownResult`, or the error its teardown
    ended in (`TeardownIncomplete` names what the engine kept). `errors()` is the verdict."""

    runs: list[str]
    outcomes: list[DownResult | EnvctlError] = field(default_factory=list)  # one per run tried, in order

    @property
    def removed(self) -> list[RemovedRun]:
        """The runs removed completely."""
        return [RemovedRun(o.runs[0], o.containers, o.logs_dir.get(o.runs[0]))
                for o in self.outcomes if isinstance(o, DownResult)]

    @property
    def failed(self) -> list[EnvctlError]:
        """Each run's teardown that did not finish, in order."""
        return [o for o in self.outcomes if isinstance(o, EnvctlError)]

    @property
    def strict_violations(self) -> list[str]:
        """What the strict mocks of every run objected to (unmatched requests, unplayed interactions)."""
        return teardown_api.verdict(self.outcomes).violations

    def errors(self) -> list[EnvctlError]:
        """What went wrong, in the order to tell it: each failed teardown, then the strict mocks'
        objection. The last is the one to raise (or exit with); empty when all went well."""
        return teardown_api.verdict(self.outcomes).errors


@dataclass(frozen=True)
class Built:
    """What `Project.build` made: each image (built, pulled or found), what it pushed, and warnings."""

    images: dict[str, ResolvedImage]
    pushed: list[Pushed]
    warnings: list[str]


@dataclass(frozen=True)
class Drawing:
    """The topology drawn: `format` is svg, dot or mermaid."""

    format: str
    text: str


@dataclass(frozen=True)
class StartupTimeline:
    """The last start-up of a run: per-service phases and the critical path, and its HTML report."""

    timeline: timeline_api.Timeline
    report: Path

    def as_text(self) -> str:
        """The timeline as a text table, the critical path marked with '*'."""
        return timeline_api.as_text(self.timeline)


@dataclass(frozen=True)
class GarbageCollection:
    """What `Project.gc` removed (with why) and kept (each says why)."""

    removed: list[tuple[FoundRun, str]]
    kept: list[FoundRun]


class Exec:
    """A command running in a service's container: its output as it comes, then its exit code."""

    def __init__(self, engine: Backend, exec_id: str, output: Iterator[bytes]) -> None:
        self._engine, self._id = engine, exec_id
        self.output = output

    def exit_code(self) -> int:
        """The command's status, once its output has been read to the end."""
        return self._engine.exec_exit_code(self._id) or 0


# -- the project ----------------------------------------------------------------------------

class Project:
    """A topology on an engine, and the run it acts on: everything envctl does, as methods.

    `topology` is the loaded file (`Project.load` reads it as the CLI does). `engine` is
    connected on first use, so commands that only read the file never need Docker. `run` is
    the run the methods act on; None means the current one (the last `up` of this directory,
    recorded in `.envctl/`), and `up` sets it to the run it brought up.
    """

    def __init__(self, topology: Topology, engine: Backend | None = None, run: str | None = None) -> None:
        self.topology = topology
        self._engine = engine
        self.run = run

    @classmethod
    def load(cls, files: Sequence[str | Path] | str | Path | None = None, *, env_files: Sequence[str | Path] = (),
             run: str | None = None, engine: Backend | None = None, starts_containers: bool = True) -> Project:
        """Load and validate the topology from `files` (default: the current directory's, as Compose finds
        it), with host variables from `env_files` instead of the `.env` beside it.

        `run` is made a valid run id (as `--run` is). A project that will not start containers
        (`starts_containers=False`: it only looks, builds or removes) loads a file that asks
        for opt-ins (privileged, the Docker socket...) without them being given: a run started
        with `--allow` is seen and taken down without it. Raises `TopologyError`.
        """
        if isinstance(files, (str, Path)):
            files = [files]
        environ = None if starts_containers else {**os.environ, ALLOW_ENV: ",".join(OPT_INS)}
        topology = load_topology(list(files or []) or None, environ=environ, env_files=list(env_files) or None)
        return cls(topology, engine, cls.run_id(run) if run else None)

    @property
    def engine(self) -> Backend:
        """Where runs go (the local engine, or a swarm), connected on first use (`EngineUnavailable` when it does
        not answer)."""
        if self._engine is None:
            self._engine = backends.connect(self.topology)
        return self._engine

    def connect(self) -> Project:
        """Connect to the engine now rather than on first use; returns the project."""
        self.engine  # noqa: B018 - connects
        return self

    def for_run(self, run: str | None) -> Project:
        """The same project (topology and engine) acting on `run` (None: the current run)."""
        return Project(self.topology, self._engine, run)

    # -- runs -------------------------------------------------------------------------------

    @staticmethod
    def run_id(text: str) -> str:
        """A valid run id made from free text, such as Jenkins' BUILD_TAG."""
        return state.sanitize_run_id(text)

    @staticmethod
    def new_run_id() -> str:
        """A fresh, random run id."""
        return state.new_run_id()

    def record(self) -> state.RunRecord:
        """The run the methods act on: the one named, else the current one (`NoRun` when there is none)."""
        return run_api.current_run(self.topology, self.run)

    def _run(self) -> str:
        return self.run if self.run is not None else self.record().run

    def runs(self) -> list[str]:
        """Every run of this project on the engine, whoever started it."""
        return teardown_api.project_runs(self.engine, self.topology.name)

    def running(self) -> str | None:
        """The run the methods act on, if it has containers on the engine; else None."""
        try:
            run = self._run()
        except NoRun:
            return None
        return run if run_api.containers_by_service(self.engine, self.topology, run) else None

    def run_directory(self) -> Path:
        """Where the run's files are saved: logs, timeline, report, diagnostics."""
        return state.run_directory(self.topology, self._run())

    # -- up and down ------------------------------------------------------------------------

    @staticmethod
    def lease_for(bind_to: int | None = None, ttl: str | None = None) -> Lease:
        """Who owns a run `up` starts: process `bind_to` (the run goes when it exits), else nobody
        (it stays until `down`); either way it goes after `ttl` (90s, 30m, 2h, 1d) if given.
        Raises `ValueError` for a `ttl` that is no duration or a `bind_to` that is no process id."""
        seconds = lease.parse_ttl(ttl) if ttl is not None else None
        return lease.bound_to(bind_to, seconds) if bind_to else lease.released(seconds)

    def up(self, services: Iterable[str] = (), *, except_services: Iterable[str] = (), profiles: Iterable[str] = (),
           keep_on_failure: bool = False, progress: Progress = silent, max_parallel_builds: int = BUILD_PARALLELISM,
           record: Iterable[str] = (), record_missing: Iterable[str] = (), record_all: bool = False,
           record_missing_all: bool = False, make_current: bool = True, owner: Lease | None = None,
           cache: str | None = None, platform: str | None = None) -> UpResult:
        """Build what is missing and bring the stack (or `services` and what they need) to ready.

        `except_services` ("name" or "name:port") run on the host instead; `record` /
        `record_missing` name mocks that record every request / only the misses (`record_all`,
        `record_missing_all`: every mock). `owner` is the run's lease once up (default: this
        process, so the run is reaped when it exits; see `lease_for`). `make_current` makes it
        the run the CLI acts on. Raises `StartupFailed` (after tearing down, unless
        `keep_on_failure`) when a service does not become ready, and `TopologyError` before anything
        is created when the backend cannot honour a key (a swarm: `privileged`...). The project then
        acts on the run.
        """
        recording = tuple(self.topology.mocks) if record_all else tuple(record)
        filling = tuple(self.topology.mocks) if record_missing_all else tuple(record_missing)
        result = run_api.up(self.topology, self.engine, services=services, except_services=except_services,
                            profiles=profiles, run_id=self.run, keep_on_failure=keep_on_failure, progress=progress,
                            max_parallel_builds=max_parallel_builds, record=recording, record_missing=filling,
                            make_current=make_current, owner=owner, cache=cache, platform=platform)
        result.warnings.extend(self.engine.notes)
        self.run = result.run
        return result

    def plan(self, services: Iterable[str] = (), *, except_services: Iterable[str] = (),
             profiles: Iterable[str] = (), record: Iterable[str] = (), record_missing: Iterable[str] = (),
             record_all: bool = False, record_missing_all: bool = False, platform: str | None = None) -> Plan:
        """What `up` with the same options would do now, as plain data; nothing is built, created or written.

        Per service: create, recreate or keep and why, what it waits for, whether it is held at
        the start gate, and the creation order; the images (present or to build), networks and
        volumes. `describe_plan(plan)` gives it as lines (`envctl up --dry-run`)."""
        recording = tuple(self.topology.mocks) if record_all else tuple(record)
        filling = tuple(self.topology.mocks) if record_missing_all else tuple(record_missing)
        return run_api.plan_up(self.topology, self.engine, services=services, except_services=except_services,
                               profiles=profiles, run_id=self.run, record=recording, record_missing=filling,
                               platform=platform)

    def select_services(self, services: Iterable[str] = ()) -> list[str]:
        """What `up(services)` starts: those named (or all active ones) and what they need."""
        return select_services(self.topology, services)

    def runs_to_take_down(self, *, all_runs: bool = False) -> list[str]:
        """What `down` removes: the run named, else the current one if any (`all_runs`: every run of the project)."""
        if all_runs:
            return self.runs()
        current = state.read_current(self.topology)
        return [self.run] if self.run else ([current.run] if current else [])

    def down(self, runs: Sequence[str] | None = None, *, all_runs: bool = False, save_logs: bool = True,
             progress: Progress = silent) -> Teardown:
        """Save each container's log, then remove the containers, network and volumes of `runs`
        (default: `runs_to_take_down(all_runs=all_runs)`). Strict mocks are judged first, while
        they still answer.

        Best effort: every removal of every run is tried; what the engine kept is in the
        result (`Teardown.errors()`), not raised. Only a lost engine stops it at once.
        """
        engine = self.engine
        runs = self.runs_to_take_down(all_runs=all_runs) if runs is None else list(runs)
        teardown = Teardown(runs)
        for run in runs:  # each run is tried, whatever happened to the one before
            try:
                teardown.outcomes.append(teardown_api.down(self.topology, engine, run, save_logs=save_logs,
                                                           progress=progress))
            except TeardownIncomplete as exc:
                teardown.outcomes.append(exc)
        return teardown

    def keep_for_debugging(self) -> None:
        """Leave the run up on purpose: it belongs to nobody, so neither its reaper nor `gc` removes
        it when its owner exits; `down` does."""
        lease.keep_for_debugging(state.run_directory(self.topology, self._run()))

    def shared(self, key: str, run: str) -> SharedRun:
        """The run named `run` that the processes of `key` (e.g. one pytest-xdist session) share."""
        return SharedRun(self, key, run)

    # -- looking at a run -------------------------------------------------------------------

    def status(self) -> list[ServiceStatus]:
        """Each service's state, readiness (checked now) and host ports."""
        record = self.record()
        return run_api.status(self.engine, self.topology, record)

    def dead(self) -> list[ServiceStatus]:
        """Services whose containers have stopped, with exit code and OOM flag (one cheap call when none has)."""
        run = self._run()
        stopped = self.engine.exited_containers(eng.run_labels(self.topology.name, run))
        # run's own status row for a stopped container (no readiness to check)
        return [run_api.status_row(c.service, c, None) for c in stopped]

    def logs(self, service: str | None = None, tail: int | str = "all") -> dict[str, str]:
        """The log of `service` (or of every service), by service; `tail` lines from the end."""
        record = self.record()
        return run_api.logs(self.engine, self.topology, record, service, tail=tail)

    def follow_logs(self, service: str | None = None) -> Iterator[tuple[str, str]]:
        """(service, line) pairs as they are written, until the containers stop or the caller does."""
        record = self.record()
        return run_api.follow_logs(self.engine, self.topology, record, service)

    def exec(self, service: str, command: Sequence[str]) -> Exec:
        """Run `command` in `service`'s running container."""
        engine = self.engine
        _, (exec_id, stream) = run_api.exec_in(engine, self.topology, self.record(), service, list(command))
        return Exec(engine, exec_id, stream)

    def port(self, service: str, container_port: int | None = None) -> int:
        """The host port of `service`'s `container_port` (default: its first port)."""
        engine = self.engine
        return run_api.host_port(engine, self.topology, self.record(), service, container_port)

    def host(self, service: str) -> str:
        """Where the host reaches `service`: loopback, unless the file publishes it on another address."""
        self.port(service)  # a clear error for an unknown or stopped service
        return run_api.host_address(self.engine, self.topology, self.record(), service)

    def address(self, service: str, container_port: int | None = None) -> str:
        """HOST:PORT where the host reaches `service`'s `container_port` (default: its first port)."""
        port = self.port(service, container_port)
        return f"{run_api.host_address(self.engine, self.topology, self.record(), service, container_port)}:{port}"

    def url(self, service: str, container_port: int | None = None) -> str:
        """http://HOST:PORT of `service`'s `container_port`."""
        return f"http://{self.address(service, container_port)}"

    def env(self, service: str) -> dict[str, str]:
        """`service`'s environment with references resolved as the host sees them (to run it on the host)."""
        engine = self.engine
        return run_api.host_environment(engine, self.topology, self.record(), service)

    def timeline(self) -> StartupTimeline:
        """The run's last start-up; `EnvctlError` when it has none recorded."""
        record = self.record()
        directory = state.run_directory(self.topology, record.run)
        if not (directory / "timeline.json").is_file():
            raise EnvctlError(f"run {record.run} has no recorded start-up", fix="run 'envctl up' first")
        return StartupTimeline(timeline_api.load(directory), directory / REPORT_FILE)

    # -- mocks ------------------------------------------------------------------------------

    def mocks(self, name: str | None = None) -> list[MockAdmin]:
        """The admin API of each running mock of the run (or of mock `name`, which must be running)."""
        record = self.record()
        return run_api.mock_admins(self.engine, self.topology, record, name)

    def mock_reports(self, name: str | None = None) -> list[MockReport]:
        """What each running mock (or `name`) played, left unplayed, could not match and recorded."""
        return [admin.report() for admin in self.mocks(name)]

    def mock_requests(self, name: str | None = None, *, method: str | None = None,
                      path: str | None = None) -> dict[str, list[SentRequest]]:
        """Every request each mock (or `name`) saw, scrubbed, by mock; only `method` `path` if given."""
        return {admin.name: admin.requests(method=method, path=path) for admin in self.mocks(name)}

    def reset_mocks(self, name: str | None = None) -> int:
        """Play counts, journals, unmatched requests and injected faults back to none; how many mocks."""
        admins = self.mocks(name)
        for admin in admins:
            admin.reset()
        return len(admins)

    def mock_drift(self, name: str | None = None, headers: Iterable[str] = ()) -> DriftReport:
        """Each mock's (or `name`'s) recorded requests sent to its real upstream again, with `headers`
        ("NAME: VALUE", e.g. credentials) added; the report says which answers now differ.
        Raises `HeaderSyntaxError` for a header that is not NAME: VALUE."""
        admins = self.mocks(name)
        return drift_api.check_drift(admins, drift_api.parse_headers(headers))

    def tell_mocks(self, test: str | None) -> None:
        """Name the test running now to every mock: what they are sent from now on is that test's."""
        if not self.topology.mocks:
            return  # nothing to tell, and no engine call per test
        for admin in self.mocks():
            admin.set_test(test)

    def strict_violations(self) -> list[str]:
        """What the strict mocks (`strict: true`) objected to so far: unmatched requests, unplayed interactions."""
        out: list[str] = []
        for report in self.mock_reports():
            if self.topology.mocks[report.name].strict:
                out += report.strict_violations()
        return out

    # -- images -----------------------------------------------------------------------------

    def _check_services(self, services: Iterable[str]) -> None:
        for name in services:
            if name not in self.topology.services:
                raise EnvctlError(f"unknown service '{name}'",
                                  fix="name one of: " + ", ".join(sorted(self.topology.services)))

    def build(self, services: Sequence[str] = (), *, parallel: int = BUILD_PARALLELISM, tag_commit: bool = False,
              push: bool = False, registry: str | None = None, tag_branch: bool = False, cache: str | None = None,
              fill_cache: bool = False, platform: str | None = None, progress: Progress = silent) -> Built:
        """Build the bases and service images (or `services'`) that are missing, tagged by content hash.

        `cache` is the shared image cache (pulled from before building, pushed to after;
        `fill_cache` also pushes what was found locally); `push` then pushes the images to
        `registry`, as `push` does; `platform` is what they are made for (linux/ARCH).
        """
        self._check_services(services)
        engine = self.engine.builder
        location = registry_api.push_location(self.topology, registry) if push else None
        image_cache = registry_api.cache_for(self.topology, engine, cache)
        if fill_cache and image_cache is None:
            raise EnvctlError("--fill-cache needs an image cache",
                              fix=f"give --cache, ${registry_api.CACHE_ENV} or 'cache:'")
        builder = image_api.ImageBuilder(self.topology, engine, progress, max_parallel=parallel, tag_commit=tag_commit,
                                         cache=image_cache, fill_cache=fill_cache, platform=platform)
        resolved = builder.ensure(list(services) or None)
        pushed = registry_api.push_project_images(self.topology, engine, resolved.values(), location, tag_branch,
                                                  progress) if location else []
        return Built(resolved, pushed, image_cache.warnings if image_cache else [])

    def push(self, services: Sequence[str] = (), *, parallel: int = BUILD_PARALLELISM, registry: str | None = None,
             tag_branch: bool = False, progress: Progress = silent) -> list[Pushed]:
        """Push the project's images (or `services'`) to `registry`, tagged by content hash and git commit
        (and branch, `tag_branch`); what is missing is built first."""
        self._check_services(services)
        engine = self.engine.builder
        location = registry_api.push_location(self.topology, registry)
        builder = image_api.ImageBuilder(self.topology, engine, progress, max_parallel=parallel)
        resolved = builder.ensure(list(services) or None)
        return registry_api.push_project_images(self.topology, engine, resolved.values(), location, tag_branch,
                                                progress)

    def pull(self, services: Sequence[str] = (), *, progress: Progress = silent) -> dict[str, str]:
        """Pull the registry images the topology runs ('image:' services and bases), or `services'`: ref -> id."""
        self._check_services(services)
        return registry_api.pull_topology_images(self.topology, self.engine.builder, services, progress)

    def images(self) -> list[ImageRow]:
        """The project's images on the engine: current or stale, in use or not."""
        return image_api.project_images(self.topology, self.engine.builder)

    def prune_images(self) -> list[ImageRow]:
        """Remove the images the topology no longer produces (never one in use); returns them."""
        return image_api.prune_images(self.topology, self.engine.builder)

    # -- the file ---------------------------------------------------------------------------

    def differences(self) -> list[str]:
        """Where envctl runs this file differently from docker compose, on purpose."""
        return differences(self.topology)

    def config_warnings(self) -> list[str]:
        """What in the file gives a service the host (the engine's socket)."""
        return [f"service '{name}' gets the Docker engine's socket (docker_socket: true): "
                "it can control the engine, and so the host, as root"
                for name, service in self.topology.services.items() if service.docker_socket]

    def config(self, *, reveal: bool = False) -> dict[str, Any]:
        """The topology resolved, as a document that loads again as the same topology; secret values
        masked unless `reveal`. `topology.notes` lists what envctl changed or ignored."""
        return to_document(self.topology, secrets=() if reveal else self.secret_values())

    def secret_values(self) -> set[str]:
        """Every secret value the topology holds (declared, or in a secret-looking variable)."""
        return secrets.topology_secrets(self.topology)

    def masker(self) -> secrets.Masker:
        """Replaces the topology's secret values with ****** in text."""
        return secrets.for_topology(self.topology)

    @staticmethod
    def graph_format() -> str:
        """How `graph` draws by default: svg when Graphviz is installed, else dot (text)."""
        return "svg" if drawing.dot_available() else "dot"

    def graph(self, fmt: str | None = None) -> Drawing:
        """The topology drawn as `fmt` (svg, dot or mermaid; default: `graph_format()`)."""
        fmt = fmt or self.graph_format()
        render = {"svg": drawing.to_svg, "dot": drawing.to_dot, "mermaid": drawing.to_mermaid}[fmt]
        return Drawing(fmt, render(self.topology))

    # -- the machine ------------------------------------------------------------------------

    def doctor(self) -> Diagnosis:
        """Check the engine, storage, disk, address pool, CA bundle, tools, this file's ports and stale runs."""
        return Diagnosis(doctor_api.diagnose(self.topology))

    @staticmethod
    def doctor_machine() -> Diagnosis:
        """`doctor` without a topology: the engine, the host and the tools only."""
        return Diagnosis(doctor_api.diagnose(None))

    @staticmethod
    def gc(engine: Backend | None = None, *, dry_run: bool = False) -> GarbageCollection:
        """Remove every run on the engine (any project) whose owner has died or whose time ran out;
        runs nobody owns are kept. `dry_run` only says what would go."""
        removed, kept = gc_api.collect(engine or backends.connect_for_removal(), dry_run=dry_run)
        return GarbageCollection(removed, kept)

    @staticmethod
    def prune_package_cache(*, dry_run: bool = False) -> tuple[Path | None, int, int]:
        """Empty this user's package cache (bootstraps download again): (its place, .debs, bytes)."""
        root = package_cache.cache_root()
        if root is None or not root.is_dir():
            return root, 0, 0
        cache = package_cache.PackageCache(root)
        count, size = cache.size() if dry_run else package_cache.prune(cache)
        return root, count, size


# -- a run shared by processes ------------------------------------------------------------

SHARED_AREA = "pytest"  # under .envctl/: where processes sharing a run count each other
USERS = "users.json"


class SharedRun:
    """One run that several processes use at once (pytest-xdist's workers): the first to join
    starts it, the last to leave stops it.

    The users are counted in a file under a file lock, each as a process (pid and start
    time): one that crashed no longer counts, nor does a later process that got its pid.
    """

    def __init__(self, project: Project, key: str, run: str) -> None:
        self.project = project
        self.directory = state.directory(project.topology) / SHARED_AREA / hashlib.sha256(key.encode()).hexdigest()[:12]
        self.run = run

    def join(self, start: Callable[[Project], object]) -> Project:
        """Count this process in; the first one calls `start` with the shared run's project. Returns that project."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.directory / "lock")):
            data = self._read() or {"run": self.run, "users": [], "up": False}
            project = self.project.for_run(data["run"])
            if not data["up"]:
                start(project)
                data["up"] = True
            data["users"] = sorted(set(data["users"]) | {lease.Owner.of().label()})
            self._write(data)
        return project

    def leave(self, stop: Callable[[], object]) -> bool:
        """Count this process out; the last one calls `stop` (still under the lock). True if this was the last."""
        with FileLock(str(self.directory / "lock")):
            data = self._read() or {"users": []}
            data["users"] = [u for u in data["users"] if _still_using(u, besides=os.getpid())]
            self._write(data)
            if data["users"]:
                return False  # others still use it; the last one out stops it
            stop()
            (self.directory / USERS).unlink(missing_ok=True)
        return True

    def _read(self) -> dict | None:
        try:
            return json.loads((self.directory / USERS).read_text())
        except (OSError, ValueError):
            return None

    def _write(self, data: dict) -> None:
        (self.directory / USERS).write_text(json.dumps(data))


def _still_using(label: str, besides: int) -> bool:
    """Another process, alive: a crashed one no longer counts, nor does a process that later got its pid."""
    owner = lease.Owner.parse(label)
    return owner is not None and owner.pid != besides and owner.alive() is not False
