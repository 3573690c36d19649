"""What names what, checked over the typed model once every section is read.

Every base, service, mock, secret and port a topology names must exist; nothing depends on itself
or builds on itself in a cycle; two services do not publish one host port. The networks, configs,
links and container names a service names are `compose_keys.check_references`'.
"""
from __future__ import annotations

from envctl.graph import find_cycle
from envctl.topology import compose_keys
from envctl.topology.interpolation import Reference, references
from envctl.topology.model import Topology
from envctl.topology.readers import Reader, key_fix
from envctl.topology.source import KeyPath


def check_cross_references(reader: Reader, topology: Topology, declared: set[str]) -> None:
    """Record a problem for each name that names nothing; `declared` has every service and mock
    name, parsed or not (one that failed has problems of its own)."""
    for name in set(topology.services) & set(topology.mocks):
        reader.problem(("mocks", name), f"'{name}' is both a service and a mock", "rename one of them")
    _bases(reader, topology)
    for name in topology.services:
        _service(reader, topology, declared, name)
    _build_secrets(reader, topology)
    _mock_bases(reader, topology)
    compose_keys.check_references(reader, topology, lambda key, known, noun: key_fix(key, known, noun=noun))
    _dependency_cycle(reader, topology)
    _host_ports(reader, topology)


def _bases(reader: Reader, topology: Topology) -> None:
    """A base's `from` names a base, and bases do not build on each other in a cycle."""
    bases = topology.bases
    for name, base in bases.items():
        if base.parent is not None and base.parent not in bases:
            reader.problem(("bases", name, "from"), f"unknown base '{base.parent}'", key_fix(base.parent, tuple(bases), noun="base"))
    cycle = find_cycle({n: [b.parent] if b.parent in bases else [] for n, b in bases.items()})
    if cycle:
        reader.problem(("bases", cycle[0], "from"), "bases build on each other in a cycle: " + " -> ".join(cycle),
                       "make one of them start from a bootstrap or an image")


def _service(reader: Reader, topology: Topology, declared: set[str], name: str) -> None:
    """A service's base, its depends_on targets and the references in its environment."""
    service, bases = topology.services[name], topology.bases
    targets = sorted(set(topology.services) | set(topology.mocks))
    path: KeyPath = ("services", name)
    if service.base is not None and service.base not in bases:
        reader.problem(path + ("base",), f"unknown base '{service.base}'", key_fix(service.base, tuple(bases), noun="base"))
    for i, dep in enumerate(service.depends_on):
        dep_path = path + ("depends_on", i) if (path + ("depends_on", i)) in reader.source.lines else path + ("depends_on", dep.service)
        if dep.service == name:
            reader.problem(dep_path, f"service '{name}' depends on itself", "remove it from its own depends_on")
        elif dep.service not in declared and dep.required:
            reader.problem(dep_path, f"unknown service '{dep.service}'", key_fix(dep.service, tuple(targets), noun="service"))
    for key, template in service.environment:
        for ref in references(template):
            check_reference(reader, topology, declared, ref, path + ("environment", key))


def _build_secrets(reader: Reader, topology: Topology) -> None:
    """The secrets a service's build names are declared under the top-level `secrets:`."""
    for name, service in topology.services.items():
        build = service.build
        for i, secret in enumerate(build.secrets if build else ()):
            if secret not in topology.secrets:
                reader.problem(("services", name, "build", "secrets", i), f"unknown secret '{secret}'",
                               key_fix(secret, tuple(topology.secrets), noun="secret")
                               if topology.secrets else "declare it under a top-level 'secrets:' with 'file' or 'environment'")


def _mock_bases(reader: Reader, topology: Topology) -> None:
    """A mock builds on the base it names, or on the only one there is."""
    bases = topology.bases
    for name, mock in topology.mocks.items():
        if mock.base is not None and mock.base not in bases:
            reader.problem(("mocks", name, "base"), f"unknown base '{mock.base}'", key_fix(mock.base, tuple(bases), noun="base"))
        elif mock.base is None and len(bases) != 1:
            reader.problem(("mocks", name), f"mock '{name}' needs a base to build on ({len(bases)} bases are defined)",
                           "add 'base: NAME' naming a Debian-based base (the mock image adds vcrpy to it)"
                           if bases else "add a base, e.g. bases: {os: {bootstrap: {distro: debian, suite: bookworm, "
                           "packages: [python3]}}}")


def _dependency_cycle(reader: Reader, topology: Topology) -> None:
    services = topology.services
    cycle = find_cycle({n: [d.service for d in s.depends_on if d.service in services and d.service != n]
                        for n, s in services.items()})
    if cycle:
        reader.problem(("services", cycle[0], "depends_on"), "services depend on each other in a cycle: " + " -> ".join(cycle),
                       "remove one of these dependencies")


def _host_ports(reader: Reader, topology: Topology) -> None:
    """Two services do not publish the same host port."""
    seen: dict[int, str] = {}
    for name, service in topology.services.items():
        for i, port in enumerate(service.ports):
            if port.host is None:
                continue
            if port.host in seen:
                reader.problem(("services", name, "ports", i),
                               f"host port {port.host} is also published by service '{seen[port.host]}'",
                               "give one of them another host port, or publish it without one (\"8000\")")
            seen[port.host] = name


def check_reference(reader: Reader, topology: Topology, declared: set[str], ref: Reference, path: KeyPath) -> None:
    """A reference (`${store.url}`) names a service or mock, and a port it publishes."""
    if ref.target in declared and ref.target not in topology.services and ref.target not in topology.mocks:
        return  # it has problems of its own, reported where it is defined
    if ref.target not in topology.services and ref.target not in topology.mocks:
        known = tuple(sorted(set(topology.services) | set(topology.mocks)))
        reader.problem(path, f"{ref} names '{ref.target}', which is neither a service nor a mock",
                       key_fix(ref.target, known, noun="service"))
        return
    ports = topology.ports_of(ref.target)
    if ref.attr == "host":
        return
    if not ports:
        reader.problem(path, f"{ref} needs a port, and '{ref.target}' publishes none", f"add ports to '{ref.target}' or use ${{{ref.target}.host}}")
    elif ref.port is not None and not any(p.container == ref.port for p in ports):
        listed = ", ".join(str(p.container) for p in ports)
        reader.problem(path, f"'{ref.target}' has no port {ref.port} (it has {listed})",
                       f"use one of its ports, or add \"{ref.port}\" to its ports")
