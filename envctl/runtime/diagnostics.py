"""The bundle a failed start-up leaves behind: what someone needs to see why a service was not ready.

`.envctl/runs/RUN/diagnostics/SERVICE/` holds the failing service's log and those of
everything it depends on, its probe history (every try, with times), and `docker inspect`
of each of those containers. Secrets are masked throughout, environment values included.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from envctl.backend import engine as eng
from envctl.topology import secrets
from envctl.runtime import state
from envctl.backend.engine import Engine
from envctl.errors import EnvctlError
from envctl.graph import closure
from envctl.runtime.probes import ProbeHistory
from envctl.topology import Topology


def write_bundle(engine: Engine, topology: Topology, run: str, service: str, why: str,
                 history: ProbeHistory) -> Path:
    directory = state.run_directory(topology, run) / "diagnostics" / service
    directory.mkdir(parents=True, exist_ok=True)
    masker = secrets.for_topology(topology)
    edges = {n: [d.service for d in s.depends_on] for n, s in topology.services.items()}
    involved = sorted(closure([service], edges))
    containers = {c.service: c for c in engine.containers(eng.run_labels(topology.name, run))}
    for name in involved:
        container = containers.get(name)
        if container is None:
            continue
        try:
            data = engine.logs(container.id, timestamps=True)
            (directory / f"{name}.log").write_bytes(masker.mask_bytes(data if isinstance(data, bytes) else b""))
            inspect = engine.inspect_container(container.id)
        except (EnvctlError, OSError) as exc:  # a bundle with a gap beats no bundle
            (directory / f"{name}.error.txt").write_text(f"could not collect: {exc}\n")
            continue
        (directory / f"{name}.inspect.json").write_text(masker.mask(json.dumps(inspect, indent=2)))
    lines = [f"service '{service}' did not become ready: {why}", f"{history.attempts} readiness checks", ""]
    lines += [f"{time.strftime('%H:%M:%S', time.localtime(at))}.{int(at % 1 * 1000):03d}  "
              f"{'ok  ' if result.ok else 'fail'}  {result.detail}"
              for at, result in zip(history.times, history.results)]
    (directory / "probe-history.txt").write_text(masker.mask("\n".join(lines) + "\n"))
    return directory


def try_write_bundle(engine: Engine, topology: Topology, run: str, service: str, why: str,
                     history: ProbeHistory) -> Path | None:
    try:
        return write_bundle(engine, topology, run, service, why, history)
    except (EnvctlError, OSError):
        return None
