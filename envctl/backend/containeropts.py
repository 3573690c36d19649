"""From a service in the model to the engine's options for its container: the one place that maps them.

`run.py` builds each container's spec from `spec_fields` (names, networks, mounts, the
Compose runtime keys); `networks_to_create` and `volumes_to_create` say what a run makes
beside its containers. Everything a run creates is named per run, so two runs of one file
never collide; what the file marks `external` is used as it is and never created or removed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any


from envctl.backend import engine as eng
from envctl.topology.model import ContainerOptions, FileGrant, Mount, Network, Service, Topology, Volume

DEFAULT_NETWORK = "default"


def network_name(topology: Topology, run: str, network: str) -> str:
    """The engine's name for a network of the file: the run's own, or the external one as it is."""
    if network == DEFAULT_NETWORK and network not in topology.networks:
        return eng.network_name(topology.name, run)
    declared = topology.networks.get(network)
    if declared is not None and declared.external:
        return declared.external_name or network
    return f"{eng.network_name(topology.name, run)}-{network}"


def volume_name(topology: Topology, run: str, volume: str) -> str:
    declared = topology.volume_options.get(volume)
    if declared is not None and declared.external:
        return declared.external_name or volume
    return eng.volume_name(topology.name, run, volume)


def networks_to_create(topology: Topology, run: str, services: list[str]) -> dict[str, Network]:
    """The declared, non-external networks the chosen services join, by their engine names."""
    used = {a.name for n in services if n in topology.services for a in topology.services[n].networks}
    return {network_name(topology, run, n): net for n, net in topology.networks.items()
            if n in used and not net.external}


def volumes_to_create(topology: Topology, run: str, services: list[str]) -> dict[str, Volume]:
    """The named, non-external volumes the chosen services mount, by their engine names (options or defaults)."""
    used = {m.source or "" for n in services if n in topology.services
            for m in topology.services[n].volumes if m.kind == "volume"}
    return {volume_name(topology, run, v): topology.volume_options.get(v, Volume(v)) for v in sorted(used)
            if not (topology.volume_options.get(v) or Volume(v)).external}


def attachments(topology: Topology, run: str, service: Service) -> dict[str, list[str]]:
    """Engine network name -> the names the service is reached by there (first: the primary network)."""
    names = [service.name, service.container_name, service.hostname, *_link_aliases(topology, service.name)]
    names = [n for n in dict.fromkeys(names) if n]
    if not service.networks:
        return {network_name(topology, run, DEFAULT_NETWORK): names}
    return {network_name(topology, run, a.name): list(dict.fromkeys([*names, *a.aliases])) for a in service.networks}


def _link_aliases(topology: Topology, target: str) -> list[str]:
    """The aliases other services give `target` in `links: [target:alias]`."""
    return [alias for s in topology.services.values() for link in s.links
            for name, _, alias in [link.partition(":")] if name == target and alias]


def spec_fields(topology: Topology, run: str, service: Service, files: Path, write: bool = True) -> dict[str, Any]:
    """The ContainerSpec fields that come from the service's networks, mounts and runtime options.

    Secrets and configs that are not a file as it is (a text, a host variable, an owner or
    mode) are written under `files` (the run's, removed with it) and bound from there;
    `write=False` only names those files (for a plan)."""
    networks = attachments(topology, run, service)
    primary, *others = networks
    grant_mounts = _grants(topology, service, files / service.name, write)
    fields = options_fields(service.options)
    relabelled = [m for m in service.volumes if m.kind == "bind" and m.selinux]
    if relabelled:  # the engine's mount API cannot relabel; its legacy binds can, as Compose passes them
        fields["host_options"]["binds"] = [_bind_text(m) for m in relabelled]
    return {
        "network": primary,
        "aliases": tuple(networks[primary][1:]),
        "other_networks": {n: list(networks[n]) for n in others},
        "hostname": service.hostname,
        "mounts": [*(docker_mount(topology, run, m) for m in service.volumes if m not in relabelled), *grant_mounts],
        **fields,
    }


def replica_specs(spec: eng.ContainerSpec, scale: int) -> list[eng.ContainerSpec]:
    """The 2nd..Nth containers of a service: named apart, reached by the same names (the engine's DNS answers with all)."""
    return [dataclasses.replace(spec, name=f"{spec.name}-{index}", labels={**spec.labels, eng.REPLICA: str(index)})
            for index in range(2, scale + 1)]


def options_fields(options: ContainerOptions) -> dict[str, Any]:
    """The ContainerSpec fields of Compose's runtime keys (the host config's in `host_options`)."""
    host: dict[str, Any] = {}
    if options.restart is not None:
        host["restart_policy"] = {"Name": options.restart.name, "MaximumRetryCount": options.restart.max_retries}
    for key in ("cap_add", "cap_drop", "security_opt"):
        if getattr(options, key):
            host[key] = list(getattr(options, key))
    if options.tmpfs:
        host["tmpfs"] = dict(options.tmpfs)
    if options.ulimits:
        host["ulimits"] = [{"name": u.name, "soft": u.soft, "hard": u.hard} for u in options.ulimits]
    if options.sysctls:
        host["sysctls"] = dict(options.sysctls)
    if options.log_driver or options.log_options:
        host["log_config"] = {"type": options.log_driver or "json-file", "config": dict(options.log_options)}
    if options.cpus is not None:
        host["nano_cpus"] = int(options.cpus * 1_000_000_000)
    for key in ("read_only", "privileged", "shm_size", "mem_reservation", "pids_limit"):
        value = getattr(options, key)
        if value:
            host[key] = value
    cluster = _cluster_only(options)
    return {
        "host_options": host,
        "extra_hosts": dict(options.extra_hosts),
        "exposed": list(options.expose),
        "user_labels": dict(options.labels),
        "domainname": options.domainname,
        "stdin_open": options.stdin_open,
        "tty": options.tty,
        **({"cluster": cluster} if cluster else {}),  # only when set: a spec's config hash stays as it was
    }


def _cluster_only(options: ContainerOptions) -> dict[str, Any]:
    """What a swarm's scheduler honours and one engine ignores (as docker compose does): placement, CPU reservation."""
    found = {"constraints": list(options.placement), "spread": list(options.placement_spread),
             "cpu_reservation": options.cpu_reservation}
    return {key: value for key, value in found.items() if value}


def docker_mount(topology: Topology, run: str, mount: Mount) -> eng.Mount:
    if mount.kind == "bind":
        return eng.Mount(mount.target, mount.source, type="bind", read_only=mount.read_only,
                         propagation=mount.propagation)
    if mount.kind == "volume":
        return eng.Mount(mount.target, volume_name(topology, run, mount.source or ""), type="volume",
                         read_only=mount.read_only, no_copy=mount.nocopy, subpath=mount.subpath)
    if mount.kind == "tmpfs":
        return eng.Mount(mount.target, None, type="tmpfs", tmpfs_size=mount.tmpfs_size, tmpfs_mode=mount.tmpfs_mode)
    return eng.Mount(mount.target, None, type="volume", no_copy=mount.nocopy)


def _bind_text(mount: Mount) -> str:
    """A bind in the engine's legacy `SOURCE:TARGET:MODE` form, which carries `z`/`Z`."""
    modes = ["ro" if mount.read_only else "rw", mount.selinux or "", mount.propagation or ""]
    return f"{mount.source}:{mount.target}:" + ",".join(m for m in modes if m)


def _grants(topology: Topology, service: Service, directory: Path, write: bool = True) -> list[eng.Mount]:
    """Secrets and configs, each bound read-only at its target (as Compose binds a file secret).

    A bind, not a copy into the container: a read-only container takes no copies."""
    mounts: list[eng.Mount] = []
    for kind, grant, source in [*(("secret", g, topology.secrets.get(g.source)) for g in service.secrets),
                                *(("config", g, topology.configs.get(g.source)) for g in service.configs)]:
        if source is None:
            continue
        file = getattr(source, "file", None)
        if file is None or grant.uid is not None or grant.gid is not None or grant.mode is not None:
            file = _write_grant(directory, grant, _grant_bytes(source)) if write else _grant_path(directory, grant)
        mounts.append(eng.Mount(grant.target, str(file), type="bind", read_only=True, grant=kind))
    return mounts


def _grant_path(directory: Path, grant: FileGrant) -> Path:
    return directory / hashlib.sha256(grant.target.encode()).hexdigest()[:16]


def _write_grant(directory: Path, grant: FileGrant, data: bytes) -> Path:
    """The grant's bytes in a file of its own, owned and moded as asked (readable by the owner only by default)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = _grant_path(directory, grant)
    mode, uid, gid = _ownership(grant)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    try:
        os.chown(path, uid, gid)
    except PermissionError:  # not root: the container's user may still read it if the mode allows
        pass
    os.chmod(path, mode)
    return path


def _grant_bytes(source: Any) -> bytes:
    if getattr(source, "file", None) is not None:
        return source.file.read_bytes()
    if getattr(source, "content", None) is not None:
        return source.content.encode()
    value = getattr(source, "value", None)
    if value is None and getattr(source, "environment", None):
        value = os.environ.get(source.environment, "")
    return (value or "").encode()


def _ownership(grant: FileGrant) -> tuple[int, int, int]:
    mode = grant.mode if grant.mode is not None else 0o444
    return mode, int(grant.uid or 0), int(grant.gid or 0)
