"""Resolving address references for one consumer.

A consumer in a container reaches another service by its network alias and container
port; a consumer on the host (tests, `envctl env`, a service run on the host) reaches it
at 127.0.0.1 (or the address the file publishes on) and the published port. A service run on the host (`up --except`) is reached
from containers through the host gateway.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from envctl.errors import EnvctlError
from envctl.topology import Reference, Template, Topology
from envctl.topology.model import LOOPBACK

HOST_GATEWAY = "host.docker.internal"


@dataclass(frozen=True)
class Endpoint:
    """Where one target can be reached from one side: a host name and port numbers."""

    host: str
    ports: Mapping[int, int]  # the target's container port -> the port to dial

    def port(self, container_port: int) -> int:
        return self.ports[container_port]


AddressBook = Mapping[str, Endpoint]


def container_side(topology: Topology, on_host: Mapping[str, Mapping[int, int]] = {}) -> dict[str, Endpoint]:
    """Addresses as seen from a container on the run's network.

    `on_host` names targets that run on the host instead (``up --except``), with the host
    port each of their container ports listens on there.
    """
    book: dict[str, Endpoint] = {}
    for name in [*topology.services, *topology.mocks]:
        if name in on_host:
            book[name] = Endpoint(HOST_GATEWAY, dict(on_host[name]))
        else:
            book[name] = Endpoint(name, {p.container: p.container for p in topology.ports_of(name)})
    return book


def host_side(topology: Topology, published: Mapping[str, Mapping[int, int]]) -> dict[str, Endpoint]:
    """Addresses as seen from the host: the published port of each target, at the address its first
    port is published on (127.0.0.1 unless the file asks for another)."""
    return {name: Endpoint(topology.reach(name), dict(ports)) for name, ports in published.items()}


class Unreachable(EnvctlError):
    """A reference names a target that has no address from this side (e.g. not running)."""


def resolve(template: Template, book: AddressBook, topology: Topology) -> str:
    return "".join(part if isinstance(part, str) else _address(part, book, topology) for part in template)


def resolve_environment(service: str, book: AddressBook, topology: Topology) -> dict[str, str]:
    return {key: resolve(value, book, topology) for key, value in topology.services[service].environment}


def _address(ref: Reference, book: AddressBook, topology: Topology) -> str:
    endpoint = book.get(ref.target)
    if endpoint is None:
        raise Unreachable(
            f"{ref} cannot be resolved: '{ref.target}' is not part of this run",
            fix=f"start it (envctl up {ref.target}) or include it in the services you bring up",
        )
    if ref.attr == "host":
        return endpoint.host
    container_port = ref.port if ref.port is not None else topology.ports_of(ref.target)[0].container
    if container_port not in endpoint.ports:
        raise Unreachable(
            f"{ref} cannot be resolved: port {container_port} of '{ref.target}' is not published",
            fix=f"check that '{ref.target}' is running (envctl status)",
        )
    port = endpoint.port(container_port)
    if ref.attr == "port":
        return str(port)
    return f"http://{endpoint.host}:{port}"
