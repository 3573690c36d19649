"""The `services:` section: one service's image (image, build, base), process, dependencies and settings.

Each key that has more to it is in its own module beside this one: `environment.py` (environment,
env_file), `ports.py`, `volumes.py` (a service's mounts), `health.py` (healthcheck, probe). The
Compose keys for how the container runs (restart, networks, deploy, ...) are `compose_keys`'.
"""
from __future__ import annotations

import re
from typing import Any

from envctl.topology import compose_keys, platformnames
from envctl.topology.model import CONDITIONS, PULL_POLICIES, READY, STARTED, Build, Dependency, Service
from envctl.topology.readers import Reader, key_fix, kind_of
from envctl.topology.sections.environment import environment
from envctl.topology.sections.health import healthcheck, probe
from envctl.topology.sections.ports import ports
from envctl.topology.sections.volumes import volumes
from envctl.topology.source import KeyPath

SERVICE_KEYS = (
    "image", "build", "base", "command", "entrypoint", "environment", "env_file", "ports",
    "depends_on", "healthcheck", "volumes", "working_dir", "user", "init", "profiles", "probe",
    "stop_grace_period", "stop_signal", "mem_limit", "docker_socket", "pull_policy", "platform",
    *compose_keys.SERVICE_KEYS, *compose_keys.REFUSED,
)
BUILD_KEYS = ("context", "dockerfile", "args", "secrets", "ssh", "target", "labels", "cache_from")
# Mounting the engine's socket gives a container the whole engine (root on the host).
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


class _Fields(dict):
    """A service's fields as they are read; `ok` turns False when one is wrong (its problem is recorded)."""

    ok = True

    def put(self, key: str, value: Any) -> None:
        if value is None:
            self.ok = False
        self[key] = value


def service(reader: Reader, refusals: compose_keys.Refusals, name: str, raw: Any, path: KeyPath) -> Service | None:
    """One service, or None when something in it is wrong (every problem found is recorded)."""
    body = reader.mapping(raw, path, SERVICE_KEYS, f"service '{name}'")
    if body is None:
        return None
    fields = _Fields(name=name, line=reader.source.line(path))
    runtime = compose_keys.ServiceKeys(reader, refusals).parse(name, body, path, raw)
    fields.ok = runtime is not None
    fields.update(runtime or {})
    _image_source(reader, name, body, path, fields)
    _how_it_runs(reader, body, path, raw, fields)
    _settings(reader, body, path, fields)
    _engine_socket(reader, name, raw, path, fields)
    _links_as_dependencies(fields)
    if not fields.ok:
        return None
    if "probe" in body:
        readiness = probe(reader, body["probe"], path + ("probe",), fields.get("ports", ()))
        if readiness is None:
            return None
        fields["probe"] = readiness
    return Service(**fields)


def _image_source(reader: Reader, name: str, body: dict, path: KeyPath, fields: _Fields) -> None:
    """Where the image comes from: an image, a build, or one of the project's bases."""
    if "image" in body:
        fields.put("image", reader.string(body["image"], path + ("image",)))
    if "build" in body:
        fields.put("build", build(reader, body["build"], path + ("build",)))
    if "base" in body:
        fields.put("base", reader.string(body["base"], path + ("base",)))
    if "image" in body and "base" in body and "build" not in body:
        reader.problem(path + ("image",), f"service '{name}' has 'image' together with 'base'",
                       "use 'image' to run an existing image, or 'base' to run one of the project's bases")
        fields.ok = False
    if not any(k in body for k in ("image", "build", "base")):
        reader.problem(path, f"service '{name}' has no image",
                       "add 'build: DIR' (with 'base: BASE'), 'base: BASE' to run a base, or 'image: NAME'")
        fields.ok = False


def _how_it_runs(reader: Reader, body: dict, path: KeyPath, raw: Any, fields: _Fields) -> None:
    """command, entrypoint, environment, ports, depends_on, healthcheck and volumes."""
    for key in ("command", "entrypoint"):
        if key in body:
            fields.put(key, reader.command(body[key], path + (key,)))
    fields.put("environment", environment(reader, body, path))
    if "ports" in body:
        fields.put("ports", ports(reader, body["ports"], path + ("ports",), raw))
    if "depends_on" in body:
        fields.put("depends_on", depends_on(reader, body["depends_on"], path + ("depends_on",)))
    if "healthcheck" in body:
        fields.put("healthcheck", healthcheck(reader, body["healthcheck"], path + ("healthcheck",)))
    if "volumes" in body:
        fields.put("volumes", volumes(reader, body["volumes"], path + ("volumes",)))


def _settings(reader: Reader, body: dict, path: KeyPath, fields: _Fields) -> None:
    """working_dir, user, init, profiles, stop_signal, stop_grace_period, mem_limit, docker_socket, pull_policy, platform."""
    for key in ("working_dir", "user"):
        if key in body:
            fields.put(key, reader.string(body[key], path + (key,)))
    if "init" in body:
        fields.put("init", reader.boolean(body["init"], path + ("init",)))
    if "profiles" in body:
        fields.put("profiles", reader.string_list(body["profiles"], path + ("profiles",), "profiles"))
    if "stop_signal" in body:
        fields.put("stop_signal", stop_signal(reader, body["stop_signal"], path + ("stop_signal",)))
    if "stop_grace_period" in body:
        fields.put("stop_grace_period", reader.duration(body["stop_grace_period"], path + ("stop_grace_period",)))
    if "mem_limit" in body:
        fields.put("mem_limit", reader.byte_size(body["mem_limit"], path + ("mem_limit",)))
    if "docker_socket" in body:
        fields.put("docker_socket", reader.boolean(body["docker_socket"], path + ("docker_socket",)))
    if "pull_policy" in body:
        fields.put("pull_policy", pull_policy(reader, body["pull_policy"], path + ("pull_policy",), body))
    if "platform" in body:
        fields.put("platform", platform(reader, body["platform"], path + ("platform",)))


def _engine_socket(reader: Reader, name: str, raw: Any, path: KeyPath, fields: _Fields) -> None:
    """A service that mounts the engine's socket must say so (`docker_socket: true` or the opt-in)."""
    for i, mount in enumerate(fields.get("volumes") or ()):
        if mount.kind == "bind" and mount.source in DOCKER_SOCKETS and not fields.get("docker_socket"):
            if compose_keys.allowed(reader, raw, path, compose_keys.DOCKER_SOCKET):
                fields["docker_socket"] = True
                continue
            reader.problem(path + ("volumes", i), f"service '{name}' mounts the Docker engine's socket, which "
                           "gives it control of the engine (and root on the host)",
                           "remove the mount; if the service truly needs the engine, opt in with "
                           f"'{compose_keys.ALLOW_KEY}: [docker-socket]' (or 'docker_socket: true') on it, or "
                           "'envctl --allow docker-socket'")
            fields.ok = False


def _links_as_dependencies(fields: _Fields) -> None:
    """A linked service starts first, as in Compose: a link not in depends_on adds one (started)."""
    for link in fields.get("links") or ():
        target = link.partition(":")[0]
        if target not in {d.service for d in fields.get("depends_on") or ()}:
            fields["depends_on"] = (*(fields.get("depends_on") or ()), Dependency(target, STARTED))


def stop_signal(reader: Reader, raw: Any, path: KeyPath) -> str | None:
    signal_name = reader.string(raw, path)
    if signal_name is not None and not re.match(r"^(SIG[A-Z0-9]+|\d+)$", signal_name):
        reader.problem(path, f"{signal_name!r} is not a signal", "write e.g. SIGINT")
        return None
    return signal_name


def build(reader: Reader, raw: Any, path: KeyPath) -> Build | None:
    if isinstance(raw, str):
        raw = {"context": raw}
    body = reader.mapping(raw, path, BUILD_KEYS, "build")
    if body is None:
        return None
    if "context" not in body:
        reader.problem(path, "build needs a 'context' directory", "add 'context: DIR' (relative to the topology file)")
        return None
    context = reader.relative_path(body["context"], path + ("context",))
    dockerfile = reader.string(body.get("dockerfile", "Dockerfile"), path + ("dockerfile",))
    args = reader.args(body["args"], path + ("args",)) if "args" in body else ()
    secrets = reader.string_list(body["secrets"], path + ("secrets",), "secrets") if "secrets" in body else ()
    ssh = reader.string_list(body["ssh"], path + ("ssh",), "ssh") if "ssh" in body else ()
    extra = build_options(reader, body, path)
    if context is None or dockerfile is None or args is None or secrets is None or ssh is None or extra is None:
        return None
    if not context.is_dir():
        reader.problem(path, f"build context {context} is not a directory", "fix the path (relative to the topology file)")
        return None
    if not (context / dockerfile).is_file():
        reader.problem(path, f"no Dockerfile at {context / dockerfile}",
                       "add one (starting 'ARG BASE_IMAGE' / 'FROM ${BASE_IMAGE}'), or set build.dockerfile")
        return None
    return Build(context=context, dockerfile=dockerfile, args=args, secrets=secrets, ssh=ssh, **extra)


def build_options(reader: Reader, body: dict, path: KeyPath) -> dict[str, Any] | None:
    """build.target, build.labels and build.cache_from."""
    out: dict[str, Any] = {}
    if "target" in body:
        out["target"] = reader.string(body["target"], path + ("target",))
    if "labels" in body:
        out["labels"] = compose_keys.pairs(reader, body["labels"], path + ("labels",), "labels")
    if "cache_from" in body:
        out["cache_from"] = reader.string_list(body["cache_from"], path + ("cache_from",), "cache_from")
    return None if any(v is None for v in out.values()) else out


def depends_on(reader: Reader, raw: Any, path: KeyPath) -> tuple[Dependency, ...] | None:
    if isinstance(raw, list):
        deps = []
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                reader.problem(path + (i,), f"expected a service name, not {kind_of(item)}", "write the service's name")
                return None
            deps.append(Dependency(item, READY))
        return tuple(deps)
    if isinstance(raw, dict):
        deps = []
        for name, spec in raw.items():
            body = reader.mapping(spec, path + (name,), ("condition", "required", "restart"), f"depends_on.{name}")
            if body is None:
                return None
            condition = body.get("condition", READY)
            if condition not in CONDITIONS:
                reader.problem(path + (name, "condition"), f"unknown condition {condition!r}",
                               key_fix(str(condition), CONDITIONS, noun="condition"))
                return None
            flags = {k: reader.boolean(body[k], path + (name, k)) for k in ("required", "restart") if k in body}
            if None in flags.values():
                return None
            deps.append(Dependency(name, condition, **flags))
        return tuple(deps)
    reader.problem(path, f"depends_on must be a list or a mapping, not {kind_of(raw)}", "write depends_on: [db, cache]")
    return None


def platform(reader: Reader, raw: Any, path: KeyPath) -> str | None:
    """Compose's per-service `platform:` ('linux/arm64'), in Docker's spelling."""
    text = reader.string(raw, path)
    if text is None:
        return None
    found = platformnames.canonical(text)
    if found is None:
        reader.problem(path, f"{text!r} is not a platform envctl can build for", platformnames.KNOWN)
    return found


def pull_policy(reader: Reader, raw: Any, path: KeyPath, body: dict) -> str | None:
    policy = reader.string(raw, path)
    if policy is None:
        return None
    if policy not in PULL_POLICIES:
        reader.problem(path, f"{policy!r} is not a pull policy", "use one of: " + ", ".join(PULL_POLICIES))
        return None
    if policy == "build" and "build" not in body and "base" not in body:
        reader.problem(path, "'pull_policy: build' needs a 'build:' to build from",
                       "use 'always', 'missing' or 'never' for an 'image:' service")
        return None
    return policy
