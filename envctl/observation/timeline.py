"""A run's start-up timeline: per-service phases, the critical path, and its saved form.

`up` records progress events; this turns them into spans (build, create, start, wait for
ready) and finds the critical path: the chain of dependencies that decided when the last
service became ready. Saved as `.envctl/runs/RUN/timeline.json` beside the HTML report.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from envctl.progress import Event

IMAGE_PHASES = ("bootstrap", "import", "build")
REGISTRY_PHASES = {"pull": "pulled", "push": "pushed"}  # their own spans: a registry's time, not a build's
SERVICE_PHASES = ("create", "start", "wait")  # each runs until the next phase, or until ready


@dataclass(frozen=True)
class Span:
    phase: str  # "image", "pull", "push", "create", "start" or "wait"
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Row:
    """One service (or image) on the timeline."""

    name: str
    kind: str  # "service" or "image"
    spans: list[Span] = field(default_factory=list)
    ready_at: float | None = None
    result: str = ""  # the readiness check's last word, or why it failed
    failed: bool = False
    critical: bool = False

    @property
    def start(self) -> float:
        return min((s.start for s in self.spans), default=self.ready_at or 0.0)

    @property
    def end(self) -> float:
        return max([s.end for s in self.spans] + ([self.ready_at] if self.ready_at is not None else []), default=0.0)


@dataclass
class Timeline:
    run: str
    started: str  # ISO time of the first event
    rows: list[Row]
    critical_path: list[str]
    total: float

    def service_rows(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "service"]


def build_timeline(run: str, events: Sequence[Mapping], dependencies: Mapping[str, Sequence[str]],
                   started: str = "") -> Timeline:
    """`events` are saved rows: {"subject", "phase", "detail", "t"} with t in seconds from the start."""
    rows: dict[str, Row] = {}
    opened: dict[tuple[str, str], float] = {}
    for event in events:
        subject, phase, t = event["subject"], event["phase"], float(event["t"])
        if not subject:
            continue
        if phase in REGISTRY_PHASES:
            rows.setdefault(f"image:{subject}", Row(subject, "image"))
            opened.setdefault((phase, subject), t)
        elif phase in REGISTRY_PHASES.values():
            row = rows.setdefault(f"image:{subject}", Row(subject, "image"))
            started_at = opened.pop((phase[:-2], subject), t)  # "pulled" ends "pull"
            row.spans.append(Span(phase[:-2], started_at, t))
        elif phase in IMAGE_PHASES:
            row = rows.setdefault(f"image:{subject}", Row(subject, "image"))
            began = opened.pop(("pull", subject), None)  # a cache miss: the pull tried, then the build
            if began is not None:
                row.spans.append(Span("pull", began, t))
            opened.setdefault(("image", subject), t)
        elif phase == "built":
            row = rows.setdefault(f"image:{subject}", Row(subject, "image"))
            start = opened.pop(("image", subject), t)
            row.spans.append(Span("image", start, t))
        elif phase in SERVICE_PHASES or phase in ("created", "held", "ready", "failed"):
            row = rows.setdefault(f"service:{subject}", Row(subject, "service"))
            for previous in SERVICE_PHASES:  # close whatever phase was running
                began = opened.pop((previous, subject), None)
                if began is not None:
                    row.spans.append(Span(previous, began, t))
            if phase in SERVICE_PHASES:
                opened[(phase, subject)] = t
            elif phase in ("created", "held"):
                pass  # created (or started, held at the gate) up front: it waits for its dependencies
            elif phase == "ready":
                row.ready_at, row.result = t, event.get("detail", "")
            else:
                row.failed, row.result = True, event.get("detail", "")
    ordered = sorted(rows.values(), key=lambda r: (r.kind != "image", r.start, r.name))
    path = critical_path(ordered, dependencies)
    for row in ordered:
        row.critical = node(row) in path
    total = max((r.end for r in ordered), default=0.0)
    return Timeline(run=run, started=started, rows=ordered, critical_path=path, total=total)


def node(row: Row) -> str:
    """A row's name on the critical path: a service by its name, an image as `image NAME`."""
    return row.name if row.kind == "service" else f"{IMAGE_NODE}{row.name}"


IMAGE_NODE = "image "


def critical_path(rows: Sequence[Row], dependencies: Mapping[str, Sequence[str]]) -> list[str]:
    """From the last service to become ready, back through what held it up longest.

    What a service waits for is its dependencies and, when it was built in this run, its image
    (`image NAME` in `dependencies`); an image waits for the base it builds on. Images and
    services share one schedule, so the path runs through both."""
    finished = {node(r): r.ready_at for r in rows if r.kind == "service" and r.ready_at is not None}
    if not finished:
        return []
    finished |= {node(r): r.end for r in rows if r.kind == "image" and r.spans}
    current = max((n for n in finished if not n.startswith(IMAGE_NODE)), key=lambda name: finished[name])
    path = [current]
    while True:
        deps = [d for d in dependencies.get(current, ()) if d in finished and d not in path]
        if not deps:
            break
        current = max(deps, key=lambda name: finished[name])
        path.append(current)
    return list(reversed(path))


def save(directory: Path, run: str, events: Sequence[Event], dependencies: Mapping[str, Sequence[str]]) -> Timeline:
    """Write timeline.json; return the timeline (the HTML report is drawn from it)."""
    start = events[0].at if events else 0.0
    rows = [{"subject": e.subject, "phase": e.phase, "detail": e.detail, "t": round(e.at - start, 4)} for e in events]
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    payload = {"run": run, "started": started, "dependencies": {k: list(v) for k, v in dependencies.items()},
               "events": rows}
    (directory / "timeline.json").write_text(json.dumps(payload, indent=1))
    return build_timeline(run, rows, dependencies, started)


def load(directory: Path) -> Timeline:
    data = json.loads((directory / "timeline.json").read_text())
    return build_timeline(data["run"], data["events"], data["dependencies"], data.get("started", ""))


def as_text(timeline: Timeline) -> str:
    """The timeline as a table, critical path marked with '*'."""
    lines = [f"run {timeline.run}  started {timeline.started}  all ready after {timeline.total:.2f}s",
             f"{'':1} {'service':<18} {'image':>7} {'create':>7} {'start':>7} {'wait':>7} {'ready at':>9}  result"]
    for row in timeline.rows:
        if row.kind != "service":
            continue
        seconds = {phase: sum(s.seconds for s in row.spans if s.phase == phase) for phase in SERVICE_PHASES}
        image = next((r for r in timeline.rows if r.kind == "image" and r.name == row.name), None)
        built = f"{sum(s.seconds for s in image.spans):7.2f}" if image and image.spans else f"{'-':>7}"
        ready = f"{row.ready_at:9.2f}" if row.ready_at is not None else f"{'FAILED' if row.failed else '-':>9}"
        lines.append(f"{'*' if row.critical else ' '} {row.name:<18} {built} {seconds['create']:7.2f} "
                     f"{seconds['start']:7.2f} {seconds['wait']:7.2f} {ready}  {row.result[:60]}")
    for phase, verb in (("image", "built"), ("pull", "pulled"), ("push", "pushed")):
        spent = [(r.name, sum(s.seconds for s in r.spans if s.phase == phase)) for r in timeline.rows
                 if r.kind == "image" and any(s.phase == phase for s in r.spans)]
        if spent:
            lines.append(f"images {verb}: " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in spent))
    if timeline.critical_path:
        lines.append("critical path: " + " -> ".join(timeline.critical_path))
    return "\n".join(lines)
