"""Compose's port syntax: ``[HOST_IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/PROTOCOL]``.

Ranges expand to one mapping per port, as Compose does. An empty or ``0`` host port means
one the engine chooses. The host address is returned as written; the loader decides what
envctl does with it (it publishes on 127.0.0.1 only).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PROTOCOLS = ("tcp", "udp", "sctp")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


class PortSyntaxError(ValueError):
    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


@dataclass(frozen=True)
class PortMapping:
    container: int
    host: int | None  # None: the engine chooses
    protocol: str = "tcp"
    host_ip: str = ""


def parse_short(text: str) -> list[PortMapping]:
    """Every mapping `text` stands for (several for a range)."""
    body, _, protocol = text.strip().partition("/")
    protocol = protocol or "tcp"
    if protocol not in PROTOCOLS:
        raise PortSyntaxError(f"unknown protocol {protocol!r}", "use tcp or udp")
    host_ip, published, target = _split(body)
    return expand(target, published, protocol, host_ip)


def expand(target: str, published: str, protocol: str, host_ip: str = "") -> list[PortMapping]:
    """Pair container ports with host ports; `published` may be empty, a port, or a range."""
    containers = _port_range(target, "container")
    if published in ("", "0"):
        return [PortMapping(c, None, protocol, host_ip) for c in containers]
    hosts = _port_range(published, "host")
    if len(containers) == 1 and len(hosts) > 1:  # Docker takes a port from the host range: the first
        return [PortMapping(containers[0], hosts[0], protocol, host_ip)]
    if len(hosts) != len(containers):
        raise PortSyntaxError(
            f"the host range {published} and the container range {target} differ in length",
            "give both ranges the same number of ports, or leave out the host ports",
        )
    return [PortMapping(c, h, protocol, host_ip) for c, h in zip(containers, hosts)]


def _split(body: str) -> tuple[str, str, str]:
    """(host IP, published, target) of the part before the protocol."""
    if body.startswith("["):  # [IPv6]:published:target
        address, bracket, rest = body[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise PortSyntaxError(f"{body!r} is not a port mapping", 'write "[::1]:8080:80"')
        published, _, target = rest[1:].rpartition(":")
        return address, published, target
    fields = body.split(":")
    if len(fields) == 1:
        return "", "", fields[0]
    if len(fields) == 2:
        return "", fields[0], fields[1]
    if len(fields) == 3:
        return fields[0], fields[1], fields[2]
    # An unbracketed IPv6 address: the last two fields are the ports.
    return ":".join(fields[:-2]), fields[-2], fields[-1]


def _port_range(text: str, what: str) -> list[int]:
    match = _RANGE.match(text.strip())
    if not match:
        raise PortSyntaxError(f"{text!r} is not a {what} port", 'write "8000", "8080:8000" or "9000-9002"')
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        raise PortSyntaxError(f"{text!r} is not a {what} port", "use numbers from 1 to 65535")
    if last < first:
        raise PortSyntaxError(f"the range {text!r} ends before it starts", f"write {last}-{first}")
    return list(range(first, last + 1))
