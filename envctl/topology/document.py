"""The loaded topology written back in topology-file syntax (what `envctl config` prints).

Host variables are filled in, paths are absolute, defaults are spelled out; references stay
as written, since they resolve per consumer. Every literal '$' is written '$$', so the output
loads again as the same topology. Secret values are masked where they stand as values
(environment values and build arguments), and a whole value that is a secret anywhere else;
an image named like a password keeps its name.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from envctl.topology import compose_document
from envctl.topology.interpolation import Reference, Template
from envctl.topology.model import LOOPBACK, READY, Base, Healthcheck, Mock, PortSpec, Probe, Service, Topology


MASK = "******"
# Where a secret is passed as a value: masked even inside a longer value (a URL's password).
_VALUE_POSITIONS = (("services", "*", "environment", "*"), ("services", "*", "build", "args", "*"),
                    ("bases", "*", "args", "*"))


def to_document(topology: Topology, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The topology as a document, with the `secrets` values masked."""
    ordered = sorted(set(secrets), key=len, reverse=True)  # a secret containing another is masked whole
    # Inside a value, a secret counts only as a whole word: the password in a URL, not the
    # 'postgres' in 'postgresql://'.
    pattern = re.compile("|".join(rf"(?<![\w]){re.escape(s)}(?![\w])" for s in ordered)) if ordered else None
    return _finished(_document(topology), (), lambda text: pattern.sub(MASK, text) if pattern else text)


def _finished(value: Any, path: tuple, mask: Callable[[str], str]) -> Any:
    """Templates and strings as written in a file: masked, with every literal '$' as '$$'."""
    if isinstance(value, dict):
        return {key: _finished(item, path + (key,), mask) for key, item in value.items()}
    if isinstance(value, list):
        return [_finished(item, path + (i,), mask) for i, item in enumerate(value)]
    if isinstance(value, _Template):
        return "".join(str(part) if isinstance(part, Reference) else _finished(part, path, mask)
                       for part in value.parts)
    if not isinstance(value, str):
        return value
    masked = mask(value)
    if masked != value and masked != MASK and not _at_value_position(path):
        masked = value  # a secret's text inside another kind of value (an image name) is not the secret
    return masked.replace("$", "$$")


@dataclass(frozen=True)
class _Template:
    """An environment value still holding its references."""

    parts: Template


def _at_value_position(path: tuple) -> bool:
    return any(len(path) == len(pattern) and all(p == "*" or p == k for p, k in zip(pattern, path))
               for pattern in _VALUE_POSITIONS)


def _document(topology: Topology) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": topology.name}
    for key in ("registry", "cache", "backend"):
        if getattr(topology, key):
            doc[key] = getattr(topology, key)
    if topology.bases:
        doc["bases"] = {name: _base(base) for name, base in topology.bases.items()}
    doc["services"] = {name: _service(service) for name, service in topology.services.items()}
    if topology.mocks:
        doc["mocks"] = {name: _mock(mock) for name, mock in topology.mocks.items()}
    if topology.secrets:  # where each value comes from, never the value
        doc["secrets"] = {name: {"file": str(s.file)} if s.file else {"environment": s.environment}
                          for name, s in topology.secrets.items()}
    doc.update(compose_document.top_keys(topology))
    return doc


def duration_text(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def _base(base: Base) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if base.bootstrap is not None:
        b = base.bootstrap
        out["bootstrap"] = {"distro": b.distro, "suite": b.suite, "packages": list(b.packages), "variant": b.variant}
        if b.mirror:
            out["bootstrap"]["mirror"] = b.mirror
    if base.image:
        out["image"] = base.image
    if base.parent:
        out["from"] = base.parent
    if base.dockerfile:
        out["dockerfile"] = str(base.dockerfile)
        out["context"] = str(base.context)
    if base.args:
        out["args"] = dict(base.args)
    out["trust_host_ca"] = base.trust_host_ca
    return out


def _service(service: Service) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if service.image:
        out["image"] = service.image
    if service.build:
        out["build"] = {"context": str(service.build.context), "dockerfile": service.build.dockerfile}
        if service.build.args:
            out["build"]["args"] = dict(service.build.args)
        if service.build.secrets:
            out["build"]["secrets"] = list(service.build.secrets)
        if service.build.ssh:
            out["build"]["ssh"] = list(service.build.ssh)
        if service.build.target:
            out["build"]["target"] = service.build.target
        if service.build.labels:
            out["build"]["labels"] = dict(service.build.labels)
        if service.build.cache_from:
            out["build"]["cache_from"] = list(service.build.cache_from)
    if service.base:
        out["base"] = service.base
    for key in ("command", "entrypoint"):
        value = getattr(service, key)
        if value is not None:
            out[key] = list(value)
    if service.environment:
        out["environment"] = {key: _Template(value) for key, value in service.environment}
    if service.ports:
        out["ports"] = [_port(p) for p in service.ports]
    if service.depends_on:
        out["depends_on"] = {d.service: {"condition": d.condition, **({"required": False} if not d.required else {}),
                                         **({"restart": True} if d.restart else {})} for d in service.depends_on}
    if service.healthcheck:
        out["healthcheck"] = _healthcheck(service.healthcheck)
    if service.volumes:
        out["volumes"] = [compose_document.mount(m) for m in service.volumes]
    for key in ("working_dir", "user"):
        if getattr(service, key) is not None:
            out[key] = getattr(service, key)
    out["init"] = service.init
    if service.profiles:
        out["profiles"] = list(service.profiles)
    if service.probe:
        out["probe"] = _probe(service.probe)
    out["stop_grace_period"] = duration_text(service.stop_grace_period)
    if service.stop_signal:
        out["stop_signal"] = service.stop_signal
    if service.mem_limit:
        out["mem_limit"] = f"{service.mem_limit}b"
    if service.docker_socket:
        out["docker_socket"] = True
    if service.pull_policy != "missing":
        out["pull_policy"] = service.pull_policy
    if service.platform is not None:
        out["platform"] = service.platform
    out.update(compose_document.service_keys(service))
    return out


def _port(port: PortSpec) -> str | dict[str, Any]:
    if port.host_ip != LOOPBACK:  # the long syntax: no brackets to get right for an IPv6 address
        published = {"published": port.host} if port.host else {}
        return {"target": port.container, **published, "host_ip": port.host_ip, "protocol": port.protocol}
    text = f"{port.host}:{port.container}" if port.host else str(port.container)
    return text if port.protocol == "tcp" else f"{text}/{port.protocol}"


def _healthcheck(check: Healthcheck) -> dict[str, Any]:
    if check.disable:
        return {"disable": True}
    out: dict[str, Any] = {"test": list(check.test)}
    for key in ("interval", "timeout", "start_period"):
        if getattr(check, key) is not None:
            out[key] = duration_text(getattr(check, key))
    if check.retries is not None:
        out["retries"] = check.retries
    return out


def _probe(probe: Probe) -> dict[str, Any]:
    if probe.kind == "http":
        out: dict[str, Any] = {"http": probe.path, "port": probe.port}
    elif probe.kind == "tcp":
        out = {"tcp": probe.port}
    else:
        out = {"cmd": list(probe.command)}
    out["timeout"] = duration_text(probe.timeout)
    out["interval"] = duration_text(probe.interval)
    return out


def _mock(mock: Mock) -> dict[str, Any]:
    out: dict[str, Any] = {"cassettes": str(mock.cassettes)}
    if mock.upstream:
        out["upstream"] = mock.upstream
    out["match_on"] = list(mock.match_on)
    out["allow_repeats"] = mock.allow_repeats
    out["strict"] = mock.strict
    scrub = {k: list(v) for k, v in vars(mock.scrub).items() if v}
    if scrub:
        out["scrub"] = scrub
    volatile = {k: list(v) for k, v in vars(mock.volatile).items() if v and k != "recorded_as"}
    if volatile:
        out["volatile"] = {("json" if k == "json_paths" else k): v for k, v in volatile.items()}
        out["volatile"]["recorded_as"] = mock.volatile.recorded_as
    if mock.fault.latency_ms or mock.fault.error_rate:
        out["fault"] = {"latency_ms": mock.fault.latency_ms, "error_rate": mock.fault.error_rate}
    if mock.base:
        out["base"] = mock.base
    return out


__all__ = ["READY", "duration_text", "to_document"]
