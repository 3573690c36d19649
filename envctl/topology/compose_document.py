"""Compose's runtime keys written back (for `envctl config`): the inverse of `compose_keys`.

What is written loads again as the same model; defaults are left out.
"""
from __future__ import annotations

from typing import Any

from envctl.topology.compose_keys import ALLOW_KEY, PRIVILEGED, PUBLISH_BEYOND_LOOPBACK
from envctl.topology.model import ContainerOptions, FileGrant, Mount, Service, Topology


def service_keys(service: Service) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("container_name", "hostname"):
        if getattr(service, key) is not None:
            out[key] = getattr(service, key)
    if service.networks:
        out["networks"] = {a.name: {"aliases": list(a.aliases)} if a.aliases else None for a in service.networks}
    if service.scale != 1:
        out["scale"] = service.scale
    for key in ("secrets", "configs"):
        if getattr(service, key):
            out[key] = [_grant(g) for g in getattr(service, key)]
    if service.links:
        out["links"] = list(service.links)
    out.update(_options(service.options))
    opt_ins = [*([PRIVILEGED] if service.options.privileged else []),
               *([PUBLISH_BEYOND_LOOPBACK] if any(p.beyond_loopback for p in service.ports) else [])]
    if opt_ins:  # what the user allowed, from the file or the command line, so the output loads again
        out[ALLOW_KEY] = opt_ins
    return out


def _grant(grant: FileGrant) -> dict[str, Any]:
    out: dict[str, Any] = {"source": grant.source, "target": grant.target}
    for key in ("uid", "gid"):
        if getattr(grant, key) is not None:
            out[key] = getattr(grant, key)
    if grant.mode is not None:
        out["mode"] = f"0{grant.mode:o}"
    return out


def _options(options: ContainerOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if options.restart is not None:
        name, retries = options.restart.name, options.restart.max_retries
        out["restart"] = f"{name}:{retries}" if retries else name
    for key in ("cap_add", "cap_drop", "security_opt", "expose"):
        if getattr(options, key):
            out[key] = list(getattr(options, key))
    for key in ("read_only", "privileged", "stdin_open", "tty"):
        if getattr(options, key):
            out[key] = True
    if options.tmpfs:
        out["tmpfs"] = [f"{path}:{opts}" if opts else path for path, opts in options.tmpfs]
    for key in ("extra_hosts", "labels", "sysctls"):
        if getattr(options, key):
            out[key] = dict(getattr(options, key))
    if options.ulimits:
        out["ulimits"] = {u.name: {"soft": u.soft, "hard": u.hard} for u in options.ulimits}
    if options.log_driver or options.log_options:
        out["logging"] = {"driver": options.log_driver or "json-file", "options": dict(options.log_options)}
    for key in ("shm_size", "mem_reservation"):
        if getattr(options, key):
            out[key] = f"{getattr(options, key)}b"
    for key in ("cpus", "pids_limit", "domainname"):
        if getattr(options, key) is not None:
            out[key] = getattr(options, key)
    return out


def mount(mount: Mount) -> str | dict[str, Any]:
    """A volume in the short syntax where it says everything, else the long one."""
    if mount.kind in ("tmpfs",) or mount.subpath or (mount.kind == "volume" and mount.source is None and mount.nocopy):
        out: dict[str, Any] = {"type": mount.kind if mount.kind != "anonymous" else "volume", "target": mount.target}
        if mount.tmpfs_size is not None or mount.tmpfs_mode is not None:
            out["tmpfs"] = {k: v for k, v in (("size", mount.tmpfs_size), ("mode", mount.tmpfs_mode)) if v is not None}
        if mount.source:
            out["source"] = mount.source
        if mount.subpath or mount.nocopy:
            out["volume"] = {k: v for k, v in (("subpath", mount.subpath), ("nocopy", mount.nocopy)) if v}
        if mount.read_only:
            out["read_only"] = True
        return out
    modes = [m for m in ("ro" if mount.read_only else "", mount.selinux, mount.propagation,
                         "nocopy" if mount.nocopy else "") if m]
    text = f"{mount.source}:{mount.target}" if mount.source else mount.target
    return text + (":" + ",".join(modes) if modes else "")


def top_keys(topology: Topology) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if topology.networks:
        out["networks"] = {n: _declared(net, ("internal",)) for n, net in topology.networks.items()}
    if topology.volumes:
        out["volumes"] = {v: _declared(topology.volume_options[v], ()) if v in topology.volume_options else None
                          for v in topology.volumes}
    if topology.configs:
        out["configs"] = {n: {"file": str(c.file)} if c.file else {"content": c.content} if c.content is not None
                          else {"environment": c.environment} for n, c in topology.configs.items()}
    return out


def _declared(declared: Any, flags: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if declared.external:
        out["external"] = True
        out["name"] = declared.external_name
    if declared.driver:
        out["driver"] = declared.driver
    for key in ("driver_opts", "labels"):
        if getattr(declared, key):
            out[key] = dict(getattr(declared, key))
    for key in flags:
        if getattr(declared, key):
            out[key] = True
    return out
