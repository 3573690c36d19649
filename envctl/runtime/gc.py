"""`envctl gc`: find every run on the engine whose owner is gone or whose time is up, and remove it.

Works from the engine's labels alone, for every project: the labels name each run's
directory (where its current lease is) and its first owner (used when that directory is
gone). A run nobody watches (a laptop `envctl up`) is kept; so is one whose owner lives on
another host, since its liveness cannot be judged from here.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from envctl.backend import engine as eng
from envctl.runtime import lease as leases
from envctl.backend.base import Backend
from envctl.runtime.reaper import reap
from envctl.runtime.teardown import purge


@dataclass
class FoundRun:
    project: str
    run: str
    directory: Path | None
    lease: leases.Lease | None
    containers: int = 0
    networks: int = 0
    volumes: int = 0
    files: int = 0  # a swarm's secrets and configs
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> str | None:
        """Why this run is garbage, or None to keep it."""
        if self.lease is None:
            return None
        return self.lease.abandoned()

    @property
    def keep_reason(self) -> str:
        if self.lease is None or not self.lease.watched:
            return "nobody owns it: it lives until 'envctl down'"
        if self.lease.owner is not None and self.lease.owner.alive() is None:
            return f"its owner is on another host ({self.lease.owner.host})"
        if self.lease.owner is not None:
            return f"its owner ({self.lease.owner}) is running"
        return "it has not expired yet"


def find_runs(engine: Backend) -> list[FoundRun]:
    """Every envctl run on the engine, with the lease that decides its fate."""
    managed = {eng.MANAGED: "true"}
    seen: dict[tuple[str, str], dict[str, str]] = {}
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def note(labels: dict[str, str], kind: str) -> None:
        key = (labels.get(eng.PROJECT, ""), labels.get(eng.RUN, ""))
        if not all(key):
            return
        merged = seen.setdefault(key, {})
        for name, value in labels.items():
            merged.setdefault(name, value)
        counts[key][kind] += 1

    for container in engine.containers(managed):
        note(container.labels, "containers")
    for network in engine.networks(managed):
        note(network.get("Labels") or {}, "networks")
    for volume in engine.volumes(managed):
        note(volume.get("Labels") or {}, "volumes")
    for granted in engine.granted_files(managed):  # a swarm's: an `up` may have died before anything else
        note(granted["Labels"], "files")
    runs = []
    for (project, run), labels in sorted(seen.items()):
        directory = Path(labels[leases.STATE_LABEL]) if labels.get(leases.STATE_LABEL) else None
        lease = None
        if directory is not None and (directory / leases.LEASE_FILE).exists():
            lease = leases.read(directory)
        elif directory is None or not directory.exists():
            lease = leases.Lease.from_labels(labels)  # its directory is gone: the first owner decides
        count = counts[(project, run)]
        runs.append(FoundRun(project, run, directory, lease, count["containers"], count["networks"], count["volumes"],
                             count["files"], labels))
    return runs


def collect(engine: Backend, dry_run: bool = False) -> tuple[list[tuple[FoundRun, str]], list[FoundRun]]:
    """Remove abandoned runs; returns (removed with why, kept)."""
    removed, kept = [], []
    for found in find_runs(engine):
        reason = found.verdict
        if reason is None:
            kept.append(found)
            continue
        if not dry_run:
            directory = found.directory if found.directory is not None and found.directory.exists() else None
            if directory is not None:
                reap(found.project, found.run, directory, reason, engine)
            else:
                purge(engine, found.project, found.run)
        removed.append((found, reason))
    return removed, kept
