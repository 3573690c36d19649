"""A service's container spec: image, environment, ports, Compose's runtime keys, and its config hash.

The config hash (a label on the container) is what the plan compares to decide whether a running
container is kept or recreated: it covers everything that shapes the container, and mounted
files by their content's digest.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from envctl.backend import containeropts
from envctl.backend import engine as eng
from envctl.backend.engine import ContainerSpec
from envctl.images.builder import base_key
from envctl.planning.wiring import resolve_environment
from envctl.runtime import state
from envctl.topology import Service, Topology

GRANTS = "files"  # in the run's directory: the secrets and configs its containers bind


def image_ref(topology: Topology, name: str, refs: Mapping[str, str | None]) -> str | None:
    """The image service `name` runs, from the refs of the images made for it (by target key)."""
    service = topology.services[name]
    if service.build is not None:
        return refs[f"service:{name}"]
    if service.base is not None:
        return refs[base_key(service.base, service.platform)]
    assert service.image is not None
    return service.image


def container_spec(topology: Topology, run: str, name: str, image: str, book,
                   extra_labels: dict[str, str] | None = None, write_files: bool = True) -> ContainerSpec:
    """The container for service `name` of `run` on `image`, its config hash among its labels.

    `write_files=False` names the run's secret and config files without writing them (for a plan)."""
    service = topology.services[name]
    compose = containeropts.spec_fields(topology, run, service, state.run_path(topology, run) / GRANTS, write_files)
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
        healthcheck=healthcheck(service),
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
    }, sort_keys=True, default=hashable).encode()).hexdigest()[:16]
    spec.labels[eng.CONFIG_HASH] = digest
    return spec


def hashable(value: object) -> object:
    """What the config hash sees of a value json cannot write (a file's bytes by their digest)."""
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    return str(value)


def healthcheck(service: Service) -> dict | None:
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
