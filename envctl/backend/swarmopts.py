"""A container's options as a swarm service carries them, and the Compose keys a swarm cannot carry.

`service_options` maps what the local engine puts in a container's host config
(`ContainerSpec.host_options`, from envctl.backend.containeropts) and what only a scheduler
honours (`ContainerSpec.cluster`: placement, CPU reservation) onto a swarm service's fields.
`refused` names, with the file, line and key, what a swarm service cannot do at all
(privileged, security options, ...), so `up --backend swarm` stops before creating anything.
"""
from __future__ import annotations

from typing import Any

from envctl.backend.engine import ContainerSpec, Mount
from envctl.errors import Problem
from envctl.topology.model import ContainerOptions, Topology

NANO = 1_000_000_000
# A task's restart condition for each restart policy. `restart: no` (the default) is
# "on-failure": with "none", Swarm would not replace the task of a node that was lost (its
# restart supervisor treats a lost node's task as any other ended one). A job that exits 0 is
# still done, and a task that fails during `up` fails `up` at once (envctl reads its status).
RESTART = {"no": "on-failure", "": "on-failure", "on-failure": "on-failure", "always": "any",
           "unless-stopped": "any"}
# What a swarm service cannot do, and what to do instead.
CANNOT = {
    "privileged": "a swarm service cannot run privileged; grant what it needs with cap_add (and sysctls), "
                  "or run it on the local engine (--backend engine)",
    "security_opt": "a swarm service takes no security options (API 1.41); remove them for the swarm, "
                    "or run it on the local engine",
    "domainname": "a swarm service has no domain name; remove it, or set 'hostname' to a full name",
}
RELABEL = "a swarm service cannot relabel a bind mount (:z, :Z); remove the suffix for the swarm"


def restart_condition(spec: ContainerSpec) -> str:
    return RESTART.get(str((spec.host_options.get("restart_policy") or {}).get("Name") or ""), "on-failure")


def service_options(spec: ContainerSpec) -> dict[str, Any]:
    """ServiceSpec fields for `spec`'s runtime options: resources, placement, the task container's own."""
    host = spec.host_options
    runtime: dict[str, Any] = {key: list(host[key]) for key in ("cap_add", "cap_drop") if host.get(key)}
    runtime.update({"sysctls": dict(host["sysctls"])} if host.get("sysctls") else {})
    runtime.update({key: True for key, on in (("read_only", host.get("read_only")), ("tty", spec.tty),
                                               ("open_stdin", spec.stdin_open)) if on})
    log = host.get("log_config")
    return {
        "resources": resources(spec),
        "constraints": tuple(spec.cluster.get("constraints") or ()),
        "spread": tuple(spec.cluster.get("spread") or ()),
        "runtime": runtime,
        "ulimits": tuple((u["name"], u["soft"], u["hard"]) for u in host.get("ulimits") or ()),
        "log_driver": (log["type"], dict(log.get("config") or {})) if log else None,
    }


def resources(spec: ContainerSpec) -> dict[str, int]:
    host = spec.host_options
    cpus = spec.cluster.get("cpu_reservation")
    found = {"cpu_limit": host.get("nano_cpus"), "cpu_reservation": int(cpus * NANO) if cpus else None,
             "mem_limit": spec.mem_limit, "mem_reservation": host.get("mem_reservation"),
             "pids_limit": host.get("pids_limit")}
    return {key: int(value) for key, value in found.items() if value}


def extra_mounts(spec: ContainerSpec) -> list[Mount]:
    """`tmpfs` and `shm_size` as tmpfs mounts (a swarm service has neither key; size and mode carry over)."""
    mounts = [Mount(path, None, type="tmpfs", **_tmpfs_options(text))
              for path, text in (spec.host_options.get("tmpfs") or {}).items()]
    if spec.host_options.get("shm_size"):
        mounts.append(Mount("/dev/shm", None, type="tmpfs", tmpfs_size=int(spec.host_options["shm_size"])))
    return mounts


def _tmpfs_options(text: str) -> dict[str, Any]:
    options = dict(item.partition("=")[::2] for item in text.split(",") if "=" in item)
    out: dict[str, Any] = {}
    if options.get("size"):
        out["tmpfs_size"] = options["size"]
    if options.get("mode"):
        out["tmpfs_mode"] = int(options["mode"], 8)
    return out


def refused(topology: Topology, services: list[str]) -> list[Problem]:
    """What of `services` a swarm cannot carry: each at its service's line, with the key and what to do."""
    problems = []
    for name in services:
        service = topology.services.get(name)
        if service is None:
            continue
        for key, why in _cannot(service.options).items():
            problems.append(Problem(topology.file, service.line, f"services.{name}.{key}",
                                    "cannot be honoured on a swarm (--backend swarm)", why))
        if any(m.kind == "bind" and m.selinux for m in service.volumes):
            problems.append(Problem(topology.file, service.line, f"services.{name}.volumes",
                                    "cannot be honoured on a swarm (--backend swarm)", RELABEL))
    return problems


def _cannot(options: ContainerOptions) -> dict[str, str]:
    return {key: why for key, why in CANNOT.items() if getattr(options, key)}
