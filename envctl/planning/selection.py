"""Choosing what `up` runs: the services and mocks asked for, what they need, and what stays on the host.

Pure: from the topology and the command's options to names. `--except SERVICE[:PORT]` keeps a
service out of the run (a developer runs it on the host); `--record`/`--record-missing` name mocks.
"""
from __future__ import annotations

from collections.abc import Iterable

from envctl.errors import EnvctlError
from envctl.graph import closure
from envctl.topology import Service, Topology


def select_services(topology: Topology, requested: Iterable[str] = (), profiles: Iterable[str] = (),
                    except_services: Iterable[str] = ()) -> list[str]:
    """What `up` starts: the services and mocks requested (or all active ones) and what they need."""
    requested = list(requested)
    known = [*topology.services, *topology.mocks]
    for name in requested:
        if name not in known:
            raise EnvctlError(f"unknown service or mock '{name}'", fix="name one of: " + ", ".join(sorted(known)))
    for name in except_services:
        if name not in topology.services:
            raise EnvctlError(f"unknown service '{name}'", fix="name one of: " + ", ".join(sorted(topology.services)))
    active = set(profiles)
    roots = requested or [*[n for n, s in topology.services.items() if not s.profiles or active & set(s.profiles)],
                          *topology.mocks]
    edges = {n: _needs(topology, s) for n, s in topology.services.items()}
    chosen = closure(roots, edges) - set(except_services)
    return [n for n in known if n in chosen]


def _needs(topology: Topology, service: Service) -> list[str]:
    """What a service needs running: its dependencies and every target its environment references."""
    needed = [d.service for d in service.depends_on]
    needed += [part.target for _, template in service.environment for part in template if not isinstance(part, str)]
    return [n for n in dict.fromkeys(needed) if n != service.name and (n in topology.services or n in topology.mocks)]


def parse_except(topology: Topology, entries: Iterable[str]) -> dict[str, dict[int, int]]:
    """`SERVICE` or `SERVICE:PORT` -> the host port each of its container ports listens on, on the host.

    Without PORT, a service listens on its fixed host port, else on its container port.
    """
    on_host: dict[str, dict[int, int]] = {}
    for entry in entries:
        name, _, port = entry.partition(":")
        if name not in topology.services:
            raise EnvctlError(f"unknown service '{name}'", fix="name one of: " + ", ".join(sorted(topology.services)))
        if port and not port.isdigit():
            raise EnvctlError(f"--except {entry}: '{port}' is not a port number", fix=f"write --except {name}:8001")
        ports = topology.services[name].ports
        on_host[name] = {p.container: p.host or p.container for p in ports}
        if port and ports:
            on_host[name][ports[0].container] = int(port)
    return on_host


def recording_modes(topology: Topology, record: Iterable[str], record_missing: Iterable[str]) -> dict[str, str]:
    """Each recording mock's mode: "record" (everything) or "record_missing" (only what no interaction matches)."""
    modes = {**{name: "record_missing" for name in record_missing}, **{name: "record" for name in record}}
    for name in sorted(set(modes) - set(topology.mocks)):
        raise EnvctlError(f"'{name}' is not a mock, so it cannot record",
                          fix="name one of the mocks: " + (", ".join(sorted(topology.mocks)) or "(none defined)"))
    return modes


def selection(topology: Topology, services: Iterable[str], profiles: Iterable[str], on_host: Iterable[str],
              recording: Iterable[str]) -> list[str]:
    """`up`'s selection: as `select_services`, with every recording mock added when services are named."""
    services, recording = list(services), set(recording)
    requested = [*services, *sorted(recording - set(services))] if services else services
    return select_services(topology, requested, profiles, on_host)
