"""Taking a run down: its containers (logs saved first), networks, volumes, secrets and configs, its record and lease.

Removal goes by the run's labels alone, so it works from any process: `down` with the
topology at hand, `purge` without it (the reaper's and gc's way). Best effort: every removal
is tried, and what the engine kept is raised by id as `TeardownIncomplete`. The strict mocks
are judged here too, before their reports go with them; `verdict` says what that comes to.

Below both `run` (whose `up` tears down what it started when start-up fails) and the reaper.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from envctl.backend import engine as eng
from envctl.backend.base import Backend
from envctl.backend.engine import ContainerState
from envctl.errors import EngineUnavailable, EnvctlError, TeardownIncomplete
from envctl.mocks.report import fetch_report
from envctl.progress import Event, Progress, silent
from envctl.runtime import lease, specs, state
from envctl.topology import Topology, secrets
from envctl.topology.model import MOCK_PORT


@dataclass
class DownResult:
    """What `down` removed, where the logs went, and what strict mocks objected to."""

    runs: list[str] = field(default_factory=list)
    containers: int = 0
    logs_dir: dict[str, Path] = field(default_factory=dict)
    strict_violations: list[str] = field(default_factory=list)  # from mocks with `strict: true`


class Verdict(NamedTuple):
    """What teardowns come to: what strict mocks objected to, and the errors to tell."""

    violations: list[str]
    errors: list[EnvctlError]  # in the order to tell them; the last is the one to raise (or exit with)


def verdict(outcomes: Iterable[DownResult | EnvctlError]) -> Verdict:
    """The strict mocks' verdict over what `down` returned or raised, one outcome per run.

    The errors are each teardown that failed, in order, then the strict mocks' objection if
    they had one: a shell tells them all and fails with the last (a clean teardown of a run
    whose strict mocks objected still fails, and a failed one still says what the mocks saw).
    """
    violations: list[str] = []
    errors: list[EnvctlError] = []
    for outcome in outcomes:
        if isinstance(outcome, (DownResult, TeardownIncomplete)):
            violations += outcome.strict_violations
        if isinstance(outcome, EnvctlError):
            errors.append(outcome)
    if violations:
        errors.append(EnvctlError("strict mocks saw unmatched requests or unplayed interactions:\n"
                                  + "\n".join("  " + v for v in violations),
                                  fix="re-record the cassettes ('envctl up --record MOCK') or fix the requests; "
                                  "'envctl mocks' shows the report while the stack is up"))
    return Verdict(violations, errors)


def project_runs(engine: Backend, project: str) -> list[str]:
    labels = {eng.PROJECT: project}
    runs = {c.run for c in engine.containers(labels)}
    runs |= {n["Labels"].get(eng.RUN, "") for n in engine.networks(labels)}
    runs |= {v["Labels"].get(eng.RUN, "") for v in engine.volumes(labels)}
    runs |= {f["Labels"].get(eng.RUN, "") for f in engine.granted_files(labels)}
    return sorted(r for r in runs if r)


def down(topology: Topology, engine: Backend, run: str, *, save_logs: bool = True,
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
                result.strict_violations += fetch_report(mock.name, container.ports[MOCK_PORT],
                                                          container.address or "127.0.0.1").strict_violations()
            except EnvctlError as exc:
                result.strict_violations.append(str(exc))
    if containers and save_logs:
        log_dir = state.run_directory(topology, run) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        result.logs_dir[run] = log_dir
    grace = {n: int(s.stop_grace_period) for n, s in topology.services.items()}
    left = remove_resources(engine, labels, containers, lambda c: grace.get(c.service, 2),
                            result.logs_dir.get(run), secrets.for_topology(topology), progress)
    shutil.rmtree(state.run_path(topology, run) / specs.GRANTS, ignore_errors=True)  # secrets leave with the run
    state.clear_current(topology, run)
    lease.remove(state.run_path(topology, run))  # its reaper, if any, stands down
    if left:
        raise TeardownIncomplete(run, left, strict_violations=result.strict_violations)
    return result


def purge(engine: Backend, project: str, run: str, log_dir: Path | None = None,
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


def remove_resources(engine: Backend, labels: dict[str, str], containers: list[ContainerState], grace,
                     log_dir: Path | None, masker: secrets.Masker, progress: Progress = silent) -> list[str]:
    """Save each container's log (masked) into `log_dir` if given, remove them in parallel, then networks, volumes
    and granted files (a swarm's secrets and configs).

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
    for granted in engine.granted_files(labels):  # a swarm's secrets and configs, once no service uses them
        _attempt(lambda: engine.remove_granted_file(granted["Kind"], granted["ID"]),
                 f"{granted['Kind']} {granted['Name']}", left)
    return left


def _attempt(removal, what: str, left: list[str]) -> None:
    """One removal of a teardown: a refusal is noted in `left` and the teardown goes on; a lost engine ends it."""
    try:
        removal()
    except EngineUnavailable:
        raise
    except EnvctlError as exc:
        left.append(f"{what}: {exc.message}")


def _save_log(engine: Backend, container_id: str, path: Path, masker: secrets.Masker) -> None:
    try:
        data = engine.logs(container_id, timestamps=True)
    except EngineUnavailable:
        raise
    except EnvctlError as exc:  # the container goes anyway; the file says why its log is missing
        path.write_text(f"envctl could not save this log: {exc.message}\n")
        return
    path.write_bytes(masker.mask_bytes(data) if isinstance(data, bytes) else b"")


def remove_containers(engine: Backend, container_ids: list[str]) -> list[str]:
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


