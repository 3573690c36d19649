"""`.envctl/` beside the topology: which run is current, and each run's saved files.

The engine's labels are the truth about what exists; this is only a pointer for the CLI
and a place for logs, timelines and diagnostics.
"""
from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from envctl.topology import Topology

RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")


@dataclass
class RunRecord:
    run: str
    project: str
    file: str
    on_host: dict[str, dict[int, int]] = field(default_factory=dict)  # `up --except` services

    @classmethod
    def from_json(cls, data: dict) -> "RunRecord":
        on_host = {svc: {int(k): int(v) for k, v in ports.items()} for svc, ports in data.get("on_host", {}).items()}
        return cls(run=data["run"], project=data["project"], file=data["file"], on_host=on_host)


def new_run_id() -> str:
    return secrets.token_hex(3)


def sanitize_run_id(text: str) -> str:
    """Make a run id from free text such as Jenkins' BUILD_TAG."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return cleaned[:40] or new_run_id()


def directory(topology: Topology) -> Path:
    path = topology.root / ".envctl"
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        (path / ".gitignore").write_text("*\n")
    return path


def run_directory(topology: Topology, run: str) -> Path:
    path = run_path(topology, run)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_path(topology: Topology, run: str) -> Path:
    """Where the run's files are (or would be), without creating anything."""
    return topology.root / ".envctl" / "runs" / run


def _current_file(topology: Topology) -> Path:
    return directory(topology) / f"current-{topology.name}.json"  # see forget_current


def read_current(topology: Topology) -> RunRecord | None:
    try:
        return RunRecord.from_json(json.loads(_current_file(topology).read_text()))
    except (OSError, ValueError, KeyError):
        return None


def write_current(topology: Topology, record: RunRecord) -> None:
    target = _current_file(topology)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2))
    tmp.replace(target)


def clear_current(topology: Topology, run: str) -> None:
    forget_current(topology.root / ".envctl", topology.name, run)


def forget_current(state_directory: Path, project: str, run: str) -> None:
    """Stop naming `run` as the project's current one (also usable without the topology)."""
    path = state_directory / f"current-{project}.json"
    try:
        if json.loads(path.read_text()).get("run") == run:
            path.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass
