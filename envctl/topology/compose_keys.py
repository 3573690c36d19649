"""Compose's service keys for how containers run, parsed into the model.

The service parser (`sections/services.py`) hands each service's raw keys here, and the loader
the top-level `networks`, `configs` and volume options; this module knows what each key means
in Compose and what envctl does with it. Keys envctl cannot honour are collected per key, so a
file that uses one in ten services hears about it once, with the ten services named (`Refusals`).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from envctl.topology.model import (
    LOOPBACK, Config, ContainerOptions, FileGrant, Network, NetworkAttachment, RestartPolicy, Ulimit, Volume,
)
from envctl.topology.readers import Reader  # the typed readers every parser here is given
from envctl.topology.source import KeyPath

# The service keys parsed here, beyond the loader's own.
SERVICE_KEYS = (
    "container_name", "hostname", "networks", "restart", "deploy", "scale", "cap_add", "cap_drop",
    "privileged", "read_only", "tmpfs", "security_opt", "logging", "expose", "extra_hosts", "labels",
    "ulimits", "sysctls", "shm_size", "stdin_open", "tty", "secrets", "configs", "cpus",
    "mem_reservation", "pids_limit", "links", "domainname",
)
# Compose keys envctl refuses, and why (with what to do instead).
REFUSED = {
    "network_mode": "every service joins the run's networks, so runs never collide; remove it",
    "pid": "services do not share the host's or another container's process space; remove it",
    "ipc": "services do not share IPC namespaces; remove it",
    "userns_mode": "envctl does not change user namespaces; remove it",
    "cgroup_parent": "envctl does not place containers in other cgroups; remove it",
    "volumes_from": "mount the same named volume in both services instead",
    "external_links": "containers outside the run are not reachable by name; publish a port and use the host",
    "devices": "envctl does not pass host devices into containers; remove it",
    "runtime": "envctl uses the engine's default runtime; remove it",
    "isolation": "envctl uses the engine's default isolation; remove it",
}
# Swarm-only keys: Compose ignores them on one engine, and so does envctl (said once, as a warning).
SWARM_ONLY = ("update_config", "rollback_config", "endpoint_mode", "labels", "mode")
# Kept for a swarm (`--backend swarm`), ignored on one engine as docker compose ignores them (said once).
ON_A_SWARM = "is honoured on a swarm (--backend swarm); on one engine envctl, like docker compose, ignores it"
PLACEMENT_KEYS = ("constraints", "preferences", "max_replicas_per_node")
RESTART_NAMES = ("no", "always", "on-failure", "unless-stopped")
RESTART_CONDITIONS = {"none": "no", "on-failure": "on-failure", "any": "always"}
# The opt-ins for what gives a container the host: per service (`x-envctl-allow`) or for a
# whole invocation (ENVCTL_ALLOW, which `envctl --allow` sets).
ALLOW_KEY = "x-envctl-allow"
ALLOW_ENV = "ENVCTL_ALLOW"
PRIVILEGED = "privileged"
DOCKER_SOCKET = "docker-socket"
# Ports on an address other than loopback: reachable from other machines, which a test stack rarely means.
PUBLISH_BEYOND_LOOPBACK = "publish-beyond-loopback"
OPT_INS = (PRIVILEGED, DOCKER_SOCKET, PUBLISH_BEYOND_LOOPBACK)
SECRETS_DIR = "/run/secrets"


class Refusals:
    """Compose keys envctl does not honour, gathered so each is said once with every service using it."""

    def __init__(self) -> None:
        self.refused: dict[str, tuple[KeyPath, str, list[str]]] = {}
        self.ignored: dict[str, tuple[str, list[str]]] = {}

    def refuse(self, key: str, service: str, path: KeyPath, why: str) -> None:
        self.refused.setdefault(key, (path, why, []))[2].append(service)

    def ignore(self, key: str, service: str, why: str) -> None:
        self.ignored.setdefault(key, (why, []))[1].append(service)

    def report(self, reader: Reader) -> list[str]:
        """Record the refusals as problems (at each key's first use); return the warnings."""
        for key, (path, why, services) in self.refused.items():
            reader.problem(path, f"envctl cannot honour the Compose key '{key}' (used by {_names(services)})", why)
        return [f"'{key}' (in {_names(services)}) {why}" for key, (why, services) in self.ignored.items()]


def _names(services: list[str]) -> str:
    return ", ".join(f"'{s}'" for s in dict.fromkeys(services))


def whole(reader: Reader, value: Any, path: KeyPath, least: int = 0) -> int | None:
    number = reader.integer(value, path)
    if number is not None and number < least:
        reader.problem(path, f"{number} is less than {least}", f"write a whole number of at least {least}")
        return None
    return number


def pairs(reader: Reader, raw: Any, path: KeyPath, what: str) -> tuple[tuple[str, str], ...] | None:
    """A map-or-list of strings (labels, sysctls, driver options), values made text."""
    found = reader.key_values(raw, path, what)
    if found is None:
        return None
    out = []
    for key, value in found:
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = reader.string(value if value is not None else "", path + (key,))
        if text is None:
            return None
        out.append((str(key), text))
    return tuple(out)


def allowed(reader: Reader, body: dict, path: KeyPath, what: str) -> bool:
    """Whether the user opted in to `what` (one of OPT_INS): on the service or for the invocation."""
    invocation = reader.interp.variables.get(ALLOW_ENV, "")
    if what in re.split(r"[,\s]+", invocation):
        return True
    raw = body.get(ALLOW_KEY)
    if raw is None:
        return False
    names = reader.string_list(raw, path + (ALLOW_KEY,), ALLOW_KEY) or ()
    for i, name in enumerate(names):
        if name not in OPT_INS:
            reader.problem(path + (ALLOW_KEY, i), f"unknown opt-in {name!r}", "use one of: " + ", ".join(OPT_INS))
    return what in names


class ServiceKeys:
    """Parses one service's runtime keys into the model's fields (see `parse`)."""

    def __init__(self, reader: Reader, refusals: Refusals) -> None:
        self.reader = reader
        self.refusals = refusals

    def parse(self, name: str, body: dict, path: KeyPath, raw: dict) -> dict[str, Any] | None:
        """The Service fields these keys give (None if one is wrong; its problem is recorded).

        `raw` is the service as written, extension keys (the opt-ins) included."""
        r = self.reader
        for key in REFUSED:
            if key in body:
                self.refusals.refuse(key, name, path + (key,), REFUSED[key])
        fields: dict[str, Any] = {}
        options: dict[str, Any] = {}
        simple: dict[str, tuple[str, Callable[[Any, KeyPath], Any]]] = {
            "container_name": ("name", self.dns_name), "hostname": ("name", self.dns_name),
            "domainname": ("option", lambda v, p: r.string(v, p)),
            "networks": ("name", self.networks), "scale": ("name", lambda v, p: whole(r, v, p, 1)),
            "secrets": ("name", self.secrets),
            "configs": ("name", self.configs),
            "restart": ("option", self.restart), "cap_add": ("option", self.capabilities),
            "cap_drop": ("option", self.capabilities), "read_only": ("option", lambda v, p: r.boolean(v, p)),
            "tmpfs": ("option", self.tmpfs), "security_opt": ("option", lambda v, p: r.string_list(v, p, "security_opt")),
            "expose": ("option", self.expose), "extra_hosts": ("option", self.extra_hosts),
            "labels": ("option", lambda v, p: pairs(r, v, p, "labels")), "ulimits": ("option", self.ulimits),
            "sysctls": ("option", lambda v, p: pairs(r, v, p, "sysctls")),
            "shm_size": ("option", r.byte_size), "stdin_open": ("option", lambda v, p: r.boolean(v, p)),
            "tty": ("option", lambda v, p: r.boolean(v, p)), "cpus": ("option", self.cpus),
            "mem_reservation": ("option", r.byte_size), "pids_limit": ("option", lambda v, p: whole(r, v, p, -1)),
            "privileged": ("option", lambda v, p: r.boolean(v, p)), "links": ("name", self.links),
        }
        ok = True
        for key, (where, parse) in simple.items():
            if key not in body:
                continue
            value = parse(body[key], path + (key,))
            if value is None:
                ok = False
            elif where == "name":
                fields[key] = value
            elif where == "option":
                options[key] = value
        if "logging" in body:
            logging = self.logging(body["logging"], path + ("logging",))
            ok = ok and logging is not None
            options.update(logging or {})
        if "deploy" in body:
            deploy = self.deploy(name, body["deploy"], path + ("deploy",))
            ok = ok and deploy is not None
            for key, value in (deploy or {}).items():
                (fields if key in ("scale", "mem_limit") else options).setdefault(key, value)
        if options.get("privileged") and not allowed(r, raw, path, PRIVILEGED):
            r.problem(path + ("privileged",), f"service '{name}' asks to run privileged, which gives it the whole "
                      "host (every device, every capability)",
                      f"remove 'privileged'; if the service truly needs it, opt in with '{ALLOW_KEY}: [privileged]' "
                      f"on the service or 'envctl --allow privileged' ({ALLOW_ENV}=privileged)")
            ok = False
        if not ok:
            return None
        fields["options"] = ContainerOptions(**options)
        return fields

    # -- one key each ----------------------------------------------------------------------

    def dns_name(self, value: Any, path: KeyPath) -> str | None:
        text = self.reader.string(value, path)
        if text is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", text):
            self.reader.problem(path, f"{text!r} is not a usable name", "use letters, digits, '_', '.' and '-'")
            return None
        return text

    def restart(self, value: Any, path: KeyPath) -> RestartPolicy | None:
        if value is False:  # YAML 1.1 reads an unquoted `no` as false
            value = "no"
        text = self.reader.string(value, path)
        if text is None:
            return None
        name, _, retries = text.partition(":")
        if name not in RESTART_NAMES or (retries and (name != "on-failure" or not retries.isdigit())):
            self.reader.problem(path, f"{text!r} is not a restart policy",
                                'use "no", always, on-failure[:N] or unless-stopped')
            return None
        return RestartPolicy(name, int(retries or 0))

    def capabilities(self, value: Any, path: KeyPath) -> tuple[str, ...] | None:
        names = self.reader.string_list(value, path, "capabilities")
        if names is None:
            return None
        return tuple(n.upper().removeprefix("CAP_") if n.upper() != "ALL" else "ALL" for n in names)

    def tmpfs(self, value: Any, path: KeyPath) -> tuple[tuple[str, str], ...] | None:
        entries = self.reader.string_list(value, path, "tmpfs")
        if entries is None:
            return None
        out = []
        for i, entry in enumerate(entries):
            target, _, options = entry.partition(":")
            if not target.startswith("/"):
                self.reader.problem(path + (i,), f"the tmpfs target {target!r} is not an absolute path",
                                    "write /path[:options]")
                return None
            out.append((target, options))
        return tuple(out)

    def expose(self, value: Any, path: KeyPath) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            value = [value]
        out = []
        for i, item in enumerate(value):
            match = re.fullmatch(r"(\d+)(?:-(\d+))?(?:/(tcp|udp))?", str(item).strip()) if not isinstance(item, bool) else None
            if match is None:
                self.reader.problem(path + (i,), f"{item!r} is not a port to expose", 'write "3306" or "53/udp"')
                return None
            first, last, proto = int(match[1]), int(match[2] or match[1]), match[3] or "tcp"
            out += [f"{port}/{proto}" for port in range(first, last + 1)]
        return tuple(out)

    def extra_hosts(self, value: Any, path: KeyPath) -> tuple[tuple[str, str], ...] | None:
        if isinstance(value, dict):
            entries = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            entries = []
            for i, item in enumerate(value):
                text = self.reader.string(item, path + (i,))
                if text is None:
                    return None
                host, sep, address = text.partition("=") if "=" in text else text.partition(":")
                if not sep:
                    self.reader.problem(path + (i,), f"{text!r} is not HOST:ADDRESS", 'write "somehost:162.242.195.82"')
                    return None
                entries.append((host, address))
        else:
            self.reader.problem(path, "extra_hosts must be a list or a mapping", 'write ["somehost:162.242.195.82"]')
            return None
        out = []
        for host, address in entries:
            text = self.reader.string(address, path + (host,))
            if text is None:
                return None
            out.append((host, text.strip("[]")))
        return tuple(out)

    def ulimits(self, value: Any, path: KeyPath) -> tuple[Ulimit, ...] | None:
        body = self.reader.mapping(value, path, tuple(value) if isinstance(value, dict) else (), "ulimits")
        if body is None:
            return None
        out = []
        for limit, spec in body.items():
            if isinstance(spec, dict):
                part = self.reader.mapping(spec, path + (limit,), ("soft", "hard"), f"ulimits.{limit}")
                if part is None or "soft" not in part or "hard" not in part:
                    self.reader.problem(path + (limit,), f"ulimit {limit} needs 'soft' and 'hard'", "write {soft: N, hard: N}")
                    return None
                soft, hard = whole(self.reader, part["soft"], path + (limit, "soft"), -1), whole(self.reader, part["hard"], path + (limit, "hard"), -1)
            else:
                soft = hard = whole(self.reader, spec, path + (limit,), -1)
            if soft is None or hard is None:
                return None
            out.append(Ulimit(str(limit), soft, hard))
        return tuple(out)

    def cpus(self, value: Any, path: KeyPath) -> float | None:
        try:
            cpus = float(value) if not isinstance(value, bool) else -1.0
        except (TypeError, ValueError):
            cpus = -1.0
        if cpus <= 0:
            self.reader.problem(path, f"{value!r} is not a number of CPUs", "write e.g. 0.5 or 2")
            return None
        return cpus

    def links(self, value: Any, path: KeyPath) -> tuple[str, ...] | None:
        """`SERVICE` or `SERVICE:ALIAS`: a dependency, and (with ALIAS) another name for it."""
        return self.reader.string_list(value, path, "links")

    def logging(self, value: Any, path: KeyPath) -> dict[str, Any] | None:
        body = self.reader.mapping(value, path, ("driver", "options"), "logging")
        if body is None:
            return None
        out: dict[str, Any] = {}
        if "driver" in body:
            out["log_driver"] = self.reader.string(body["driver"], path + ("driver",))
        if body.get("options") is not None:
            out["log_options"] = pairs(self.reader, body["options"], path + ("options",), "logging options")
        return None if any(v is None for v in out.values()) else out

    def networks(self, value: Any, path: KeyPath) -> tuple[NetworkAttachment, ...] | None:
        if isinstance(value, list):
            names = self.reader.string_list(value, path, "networks")
            return None if names is None else tuple(NetworkAttachment(n) for n in names)
        body = self.reader.mapping(value, path, tuple(value) if isinstance(value, dict) else (), "networks")
        if body is None:
            return None
        out = []
        for network, spec in body.items():
            where = path + (network,)
            part = self.reader.mapping(spec, where, ("aliases", "ipv4_address", "ipv6_address", "priority",
                                                     "link_local_ips", "mac_address", "driver_opts"), f"networks.{network}")
            if part is None:
                return None
            for key in ("ipv4_address", "ipv6_address", "link_local_ips", "mac_address"):
                if key in part:
                    self.reader.problem(where + (key,), f"envctl cannot honour '{key}': it lets the engine choose "
                                        "addresses, so two runs never ask for the same one",
                                        "remove it; other services reach this one by its name and aliases")
                    return None
            aliases = self.reader.string_list(part.get("aliases", []), where + ("aliases",), "aliases")
            if aliases is None:
                return None
            out.append(NetworkAttachment(str(network), aliases))
        return tuple(out)

    def secrets(self, value: Any, path: KeyPath) -> tuple[FileGrant, ...] | None:
        return self.grants(value, path, "secrets", lambda name: f"{SECRETS_DIR}/{name}")

    def configs(self, value: Any, path: KeyPath) -> tuple[FileGrant, ...] | None:
        return self.grants(value, path, "configs", lambda name: f"/{name}")

    def grants(self, value: Any, path: KeyPath, what: str, default: Callable[[str], str]) -> tuple[FileGrant, ...] | None:
        if not isinstance(value, list):
            self.reader.problem(path, f"{what} must be a list, not a {type(value).__name__}", f"write {what}: [NAME]")
            return None
        out = []
        for i, item in enumerate(value):
            where = path + (i,)
            if not isinstance(item, dict):
                source = self.reader.string(item, where)
                if source is None:
                    return None
                out.append(FileGrant(source, default(source)))
                continue
            body = self.reader.mapping(item, where, ("source", "target", "uid", "gid", "mode"), f"a {what[:-1]}")
            if body is None or "source" not in body:
                self.reader.problem(where, f"a long-syntax {what[:-1]} needs 'source'", "add 'source: NAME'")
                return None
            source = self.reader.string(body["source"], where + ("source",))
            target = self.reader.string(body.get("target", source), where + ("target",))
            if source is None or target is None:
                return None
            if not target.startswith("/"):
                target = f"{SECRETS_DIR}/{target}" if what == "secrets" else default(target)
            mode = body.get("mode")
            if isinstance(mode, str) and re.fullmatch(r"0?[0-7]{3,4}", mode):
                mode = int(mode, 8)
            if mode is not None and (isinstance(mode, bool) or not isinstance(mode, int)):
                self.reader.problem(where + ("mode",), f"{mode!r} is not a file mode", "write e.g. 0440")
                return None
            uid = self.reader.string(body["uid"], where + ("uid",)) if "uid" in body else None
            gid = self.reader.string(body["gid"], where + ("gid",)) if "gid" in body else None
            out.append(FileGrant(source, target, uid, gid, mode))
        return tuple(out)

    def deploy(self, service: str, value: Any, path: KeyPath) -> dict[str, Any] | None:
        keys = ("resources", "restart_policy", "replicas", "placement", *SWARM_ONLY)
        body = self.reader.mapping(value, path, keys, "deploy")
        if body is None:
            return None
        out: dict[str, Any] = {}
        for key in SWARM_ONLY:
            if key in body and not (key == "mode" and body[key] in ("replicated", "global")):
                self.refusals.ignore(f"deploy.{key}", service, "is for Swarm; envctl, like docker compose on "
                                     "one engine, ignores it")
        if "replicas" in body:
            out["scale"] = whole(self.reader, body["replicas"], path + ("replicas",), 1)
        if "resources" in body:
            resources = self.resources(service, body["resources"], path + ("resources",))
            if resources is None:
                return None
            out.update(resources)
        if "restart_policy" in body:
            out["restart"] = self.restart_policy(service, body["restart_policy"], path + ("restart_policy",))
        if "placement" in body:
            placement = self.placement(service, body["placement"], path + ("placement",))
            if placement is None:
                return None
            out.update(placement)
        return None if any(v is None for v in out.values()) else out

    def placement(self, service: str, value: Any, path: KeyPath) -> dict[str, Any] | None:
        """`deploy.placement`: constraints and spread preferences, for a swarm's scheduler."""
        body = self.reader.mapping(value, path, PLACEMENT_KEYS, "deploy.placement")
        if body is None:
            return None
        self.refusals.ignore("deploy.placement", service, ON_A_SWARM)
        if "max_replicas_per_node" in body:
            self.refusals.ignore("deploy.placement.max_replicas_per_node", service,
                                 "is ignored: envctl places at most one replica of a service with ports per node")
        constraints = self.reader.string_list(body.get("constraints", []), path + ("constraints",), "constraints")
        spread = []
        for i, item in enumerate(body.get("preferences") or []):
            where = path + ("preferences", i)
            preference = self.reader.mapping(item, where, ("spread",), "a placement preference")
            text = self.reader.string(preference.get("spread"), where + ("spread",)) if preference else None
            if not text:
                self.reader.problem(where, "a placement preference is '{spread: DESCRIPTOR}'",
                                    "write e.g. '- spread: node.labels.zone'")
                return None
            spread.append(text)
        if constraints is None:
            return None
        return {"placement": constraints, "placement_spread": tuple(spread)}

    def resources(self, service: str, value: Any, path: KeyPath) -> dict[str, Any] | None:
        body = self.reader.mapping(value, path, ("limits", "reservations"), "deploy.resources")
        if body is None:
            return None
        out: dict[str, Any] = {}
        limits = self.reader.mapping(body.get("limits"), path + ("limits",), ("cpus", "memory", "pids"), "limits")
        reservations = self.reader.mapping(body.get("reservations"), path + ("reservations",),
                                           ("cpus", "memory", "devices", "generic_resources"), "reservations")
        if limits is None or reservations is None:
            return None
        if "cpus" in limits:
            out["cpus"] = self.cpus(limits["cpus"], path + ("limits", "cpus"))
        if "memory" in limits:
            out["mem_limit"] = self.reader.byte_size(limits["memory"], path + ("limits", "memory"))
        if "pids" in limits:
            out["pids_limit"] = whole(self.reader, limits["pids"], path + ("limits", "pids"), -1)
        if "memory" in reservations:
            out["mem_reservation"] = self.reader.byte_size(reservations["memory"], path + ("reservations", "memory"))
        if "cpus" in reservations:
            out["cpu_reservation"] = self.cpus(reservations["cpus"], path + ("reservations", "cpus"))
            self.refusals.ignore("deploy.resources.reservations.cpus", service, ON_A_SWARM)
        for key in ("devices", "generic_resources"):
            if key in reservations:
                self.refusals.refuse(f"deploy.resources.reservations.{key}", service, path + ("reservations", key),
                                     "envctl does not pass host devices (GPUs) into containers; remove it")
        return out

    def restart_policy(self, service: str, value: Any, path: KeyPath) -> RestartPolicy | None:
        body = self.reader.mapping(value, path, ("condition", "delay", "max_attempts", "window"), "restart_policy")
        if body is None:
            return None
        condition = body.get("condition", "any")
        if condition not in RESTART_CONDITIONS:
            self.reader.problem(path + ("condition",), f"unknown condition {condition!r}", "use none, on-failure or any")
            return None
        for key in ("delay", "window"):
            if key in body:
                self.refusals.ignore(f"deploy.restart_policy.{key}", service,
                                     "is ignored: the engine restarts with its own back-off (as with docker compose)")
        retries = whole(self.reader, body.get("max_attempts", 0), path + ("max_attempts",))
        if retries is None:
            return None
        name = RESTART_CONDITIONS[condition]
        return RestartPolicy(name, retries if name == "on-failure" else 0)


def env_files(reader: Reader, value: Any, path: KeyPath) -> list[tuple[str, bool]] | None:
    """`env_file`: paths, or `{path, required}` entries (a missing optional file is skipped)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        where = path + (i,) if isinstance(value, list) else path
        if isinstance(item, dict):
            body = reader.mapping(item, where, ("path", "required", "format"), "an env_file")
            if body is None or "path" not in body:
                reader.problem(where, "a long-syntax env_file needs 'path'", "add 'path: ./file.env'")
                return None
            name = reader.string(body["path"], where + ("path",))
            required = reader.boolean(body.get("required", True), where + ("required",))
        else:
            name, required = reader.string(item, where), True
        if name is None or required is None:
            return None
        out.append((name, required))
    return out


# -- volumes ------------------------------------------------------------------------------

VOLUME_MODES = ("ro", "rw", "z", "Z", "nocopy", "cached", "delegated", "consistent",
                "shared", "rshared", "slave", "rslave", "private", "rprivate")


def short_volume_modes(reader: Reader, text: str, mode: str, path: KeyPath) -> dict[str, Any] | None:
    """The Mount fields of a short-syntax volume's mode (`ro,z`, `nocopy`, `rprivate`...)."""
    out: dict[str, Any] = {"read_only": False}
    for word in filter(None, mode.split(",")):
        if word not in VOLUME_MODES:
            reader.problem(path, f"{text!r} has an unknown mode {word!r}", "use ro, rw, z, Z, nocopy or a propagation")
            return None
        if word in ("ro", "rw"):
            out["read_only"] = word == "ro"
        elif word in ("z", "Z"):
            out["selinux"] = word
        elif word == "nocopy":
            out["nocopy"] = True
        elif word.endswith(("shared", "slave", "private")):
            out["propagation"] = word
        # cached, delegated, consistent: for Docker Desktop's file sharing; nothing to do on Linux
    return out


def long_volume(reader: Reader, body: dict, path: KeyPath) -> dict[str, Any] | None:
    """The Mount fields of a long-syntax volume's options (read_only, bind, volume, tmpfs)."""
    out: dict[str, Any] = {"read_only": False}
    if "read_only" in body:
        out["read_only"] = reader.boolean(body["read_only"], path + ("read_only",))
    bind = reader.mapping(body.get("bind"), path + ("bind",), ("propagation", "create_host_path", "selinux"), "bind")
    volume = reader.mapping(body.get("volume"), path + ("volume",), ("nocopy", "subpath"), "volume")
    tmpfs = reader.mapping(body.get("tmpfs"), path + ("tmpfs",), ("size", "mode"), "tmpfs")
    if bind is None or volume is None or tmpfs is None:
        return None
    if "propagation" in bind:
        out["propagation"] = reader.string(bind["propagation"], path + ("bind", "propagation"))
    if "selinux" in bind:
        out["selinux"] = reader.string(bind["selinux"], path + ("bind", "selinux"))
    if "nocopy" in volume:
        out["nocopy"] = reader.boolean(volume["nocopy"], path + ("volume", "nocopy"))
    if "subpath" in volume:
        out["subpath"] = reader.string(volume["subpath"], path + ("volume", "subpath"))
    if "size" in tmpfs:
        out["tmpfs_size"] = reader.byte_size(tmpfs["size"], path + ("tmpfs", "size"))
    if "mode" in tmpfs:
        out["tmpfs_mode"] = whole(reader, tmpfs["mode"], path + ("tmpfs", "mode"))
    return None if any(v is None for v in out.values()) else out


LONG_VOLUME_KEYS = ("type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency")


# -- top level ----------------------------------------------------------------------------

def external(reader: Reader, body: dict, path: KeyPath, name: str) -> tuple[bool, str | None] | None:
    """Compose's `external: true` (with `name:`), or the old `external: {name: N}`."""
    raw = body.get("external", False)
    if isinstance(raw, dict):
        part = reader.mapping(raw, path + ("external",), ("name",), "external")
        return None if part is None else (True, reader.string(part.get("name", name), path + ("external", "name")))
    is_external = reader.boolean(raw, path + ("external",))
    if is_external is None:
        return None
    given = reader.string(body["name"], path + ("name",)) if "name" in body else None
    return is_external, (given or name) if is_external else None


def driver_fields(reader: Reader, body: dict, path: KeyPath) -> dict[str, Any]:
    """A network's or volume's driver, driver_opts and labels (a None value: that one is wrong)."""
    fields: dict[str, Any] = {}
    if "driver" in body:
        fields["driver"] = reader.string(body["driver"], path + ("driver",))
    for key in ("driver_opts", "labels"):
        if body.get(key) is not None:
            fields[key] = pairs(reader, body[key], path + (key,), key)
    return fields


def declared(reader: Reader, model: type[Network] | type[Volume], name: str, body: dict, path: KeyPath,
             flags: tuple[str, ...] = ()) -> Any:
    """A network or volume the top level declares: external or not, its driver fields, and the
    true-or-false `flags` it has (None if one is wrong)."""
    ext = external(reader, body, path, name)
    fields = driver_fields(reader, body, path)
    for key in flags:
        if key in body:
            fields[key] = reader.boolean(body[key], path + (key,))
    if ext is None or any(v is None for v in fields.values()):
        return None
    return model(name, external=ext[0], external_name=ext[1], **fields)


def network(reader: Reader, name: str, raw: Any, path: KeyPath) -> Network | None:
    keys = ("driver", "driver_opts", "internal", "external", "name", "labels", "attachable", "enable_ipv6", "ipam")
    body = reader.mapping(raw, path, keys, f"network '{name}'")
    if body is None:
        return None
    if body.get("ipam") or body.get("enable_ipv6"):
        key = "ipam" if body.get("ipam") else "enable_ipv6"
        reader.problem(path + (key,), f"envctl cannot honour '{key}' on network '{name}': it lets the engine choose "
                       "address ranges, so two runs never ask for the same one", f"remove '{key}'")
        return None
    return declared(reader, Network, name, body, path, flags=("internal",))


def volume(reader: Reader, name: str, raw: Any, path: KeyPath) -> Volume | None:
    body = reader.mapping(raw, path, ("driver", "driver_opts", "external", "name", "labels"), f"volume '{name}'")
    if body is None:
        return None
    return declared(reader, Volume, name, body, path)


def config(reader: Reader, name: str, raw: Any, path: KeyPath) -> Config | None:
    body = reader.mapping(raw, path, ("file", "content", "environment", "external", "name"), f"config '{name}'")
    if body is None:
        return None
    if body.get("external"):
        reader.problem(path + ("external",), f"envctl cannot honour an external config ('{name}'): external "
                       "configs live in a Swarm", "give it 'file:', 'content:' or 'environment:'")
        return None
    kinds = [k for k in ("file", "content", "environment") if k in body]
    if len(kinds) != 1:
        reader.problem(path, f"config '{name}' needs exactly one of file, content or environment",
                       "write 'file: ./path', 'content: TEXT' or 'environment: HOST_VARIABLE'")
        return None
    text = reader.string(body[kinds[0]], path + (kinds[0],))
    if text is None:
        return None
    if kinds[0] == "file":
        file = reader.host_path(text, path + ("file",))
        if file is not None and not file.is_file():
            reader.problem(path + ("file",), f"no file at {file}", "fix the path (relative to the topology file)")
            return None
        return None if file is None else Config(name, file=file)
    if kinds[0] == "content":
        return Config(name, content=text)
    return Config(name, environment=text)


# -- what names what ----------------------------------------------------------------------

def check_references(reader: Reader, topology: Any, fix: Callable[[str, tuple[str, ...], str], str]) -> None:
    """Networks, secrets, configs and links a service names exist; names others reach it by are unique."""
    names: dict[str, str] = {n: n for n in (*topology.services, *topology.mocks)}
    for name, service in topology.services.items():
        path: KeyPath = ("services", name)
        for attachment in service.networks:
            if attachment.name != "default" and attachment.name not in topology.networks:
                reader.problem(path + ("networks",), f"service '{name}' joins network '{attachment.name}', "
                               "which the top-level 'networks:' does not declare",
                               fix(attachment.name, tuple(topology.networks), "network"))
        for what, declared in (("secrets", topology.secrets), ("configs", topology.configs)):
            for i, grant in enumerate(getattr(service, what)):
                if grant.source not in declared:
                    reader.problem(path + (what, i), f"unknown {what[:-1]} '{grant.source}'",
                                   fix(grant.source, tuple(declared), what[:-1]) if declared else
                                   f"declare it under a top-level '{what}:' with 'file:'")
        for i, link in enumerate(service.links):
            if link.partition(":")[0] not in topology.services:
                reader.problem(path + ("links", i), f"unknown service '{link.partition(':')[0]}'",
                               fix(link.partition(":")[0], tuple(topology.services), "service"))
        for key in ("container_name", "hostname"):
            value = getattr(service, key)
            if value is not None and names.setdefault(value, name) != name and key == "container_name":
                reader.problem(path + (key,), f"'{value}' is also the name of service '{names[value]}'",
                               "give each service its own container_name")
        if service.scale > 1 and service.container_name:
            reader.problem(path + ("container_name",), f"service '{name}' has {service.scale} replicas and one "
                           "container_name (Compose refuses this too)", "remove container_name or the scale")
        if service.scale > 1 and any(p.host is not None for p in service.ports):
            reader.problem(path + ("ports",), f"service '{name}' has {service.scale} replicas and a fixed host port, "
                           "which only one of them can have", "publish the port without a host port (\"8000\")")


# -- where envctl differs from Compose on purpose ------------------------------------------

def differences(topology: Any) -> list[str]:
    """What this file gets that differs from `docker compose up`, each said once (for `config` and `up`)."""
    services = topology.services.values()
    notes = []
    if any(p.host_ip == LOOPBACK for s in services for p in s.ports):
        notes.append("ports are published on 127.0.0.1 only, unless the file names another loopback address or you "
                     "opt in to more (docker compose: on every address)")
    beyond = sorted({s.name for s in services for p in s.ports if p.beyond_loopback})
    if beyond:
        notes.append(f"ports of {_names(beyond)} are published beyond loopback, on the addresses the file "
                     "names, because you opted in")
    notes.append("each run gets its own networks and containers named envctl-PROJECT-RUN-SERVICE, so runs never "
                 "collide; services reach each other by service name, container_name, hostname and aliases")
    with_init = sorted(s.name for s in services if s.init)
    if with_init:
        notes.append(f"services run under an init (docker compose: only with 'init: true'); 'init: false' turns it "
                     f"off ({len(with_init)} of {len(topology.services)} services)")
    if any(s.options.privileged for s in services):
        notes.append("privileged services run because you opted in")
    return notes
