"""A service's `ports:`, short and long syntax, and the host address each is published on.

The Compose port syntax itself (ranges, protocols) is read by `envctl.topology.ports`.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from envctl.topology import compose_keys
from envctl.topology.compose_keys import PUBLISH_BEYOND_LOOPBACK
from envctl.topology.model import LOOPBACK, PortSpec
from envctl.topology.ports import PROTOCOLS as PORT_PROTOCOLS
from envctl.topology.ports import PortMapping, PortSyntaxError, expand, parse_short
from envctl.topology.readers import Reader, kind_of
from envctl.topology.source import KeyPath

LONG_PORT_KEYS = ("target", "published", "host_ip", "protocol", "mode", "name", "app_protocol")
# Host addresses published as 127.0.0.1 (empty: Compose's default, every address, which envctl narrows).
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def ports(reader: Reader, raw: Any, path: KeyPath, service: dict) -> tuple[PortSpec, ...] | None:
    """The service's ports; `service` is the service as written (its opt-ins)."""
    if not isinstance(raw, list):
        reader.problem(path, f"ports must be a list, not {kind_of(raw)}", 'write ports: ["8000"] or ["8080:8000"]')
        return None
    specs: list[PortSpec] = []
    for i, item in enumerate(raw):
        mappings = port(reader, item, path + (i,), service)
        if mappings is None:
            return None
        for spec in mappings:
            if any(s.container == spec.container and s.protocol == spec.protocol for s in specs):
                reader.problem(path + (i,), f"container port {spec.container} is listed twice", "list each port once")
                return None
            specs.append(spec)
    return tuple(specs)


def port(reader: Reader, item: Any, path: KeyPath, service: dict) -> list[PortSpec] | None:
    """One short- or long-syntax entry: several specs for a range."""
    try:
        if isinstance(item, dict):
            mappings = long_port(reader, item, path)
        elif isinstance(item, (int, str)) and not isinstance(item, bool):
            text = reader.string(item, path)
            mappings = None if text is None else parse_short(text)
        else:
            reader.problem(path, f"a port must be a string or number, not {kind_of(item)}", 'write "8000" or "8080:8000"')
            return None
    except PortSyntaxError as exc:
        reader.problem(path, str(exc), exc.fix)
        return None
    if mappings is None:
        return None
    specs = []
    for mapping in mappings:
        if mapping.protocol == "sctp":
            reader.problem(path, "envctl does not publish sctp ports", "use tcp or udp")
            return None
        host_ip = host_address(reader, mapping.host_ip, path, service)
        if host_ip is None:
            return None
        specs.append(PortSpec(mapping.container, mapping.host, mapping.protocol, host_ip))
    return specs


def host_address(reader: Reader, written: str, path: KeyPath, service: dict) -> str | None:
    """Where a port is published: 127.0.0.1 unless the file names another loopback address, or
    an address beyond loopback and the user opted in (on the service or for the invocation)."""
    if written in _LOOPBACK or not written:
        return LOOPBACK
    try:
        address = ipaddress.ip_address(written.strip("[]"))
    except ValueError:
        reader.problem(path, f"{written!r} is not an IP address", "write an address such as 127.0.0.1, or none")
        return None
    if not address.is_loopback and not compose_keys.allowed(reader, service, path[:2], PUBLISH_BEYOND_LOOPBACK):
        reader.problem(path, f"service '{path[1]}' asks to publish a port on {written}, where other machines "
                       "can reach it; envctl publishes on 127.0.0.1 only unless you opt in",
                       f"remove '{written}:' to publish on 127.0.0.1, or opt in with "
                       f"'{compose_keys.ALLOW_KEY}: [{PUBLISH_BEYOND_LOOPBACK}]' on the service or 'envctl --allow "
                       f"{PUBLISH_BEYOND_LOOPBACK}' ({compose_keys.ALLOW_ENV}={PUBLISH_BEYOND_LOOPBACK})")
        return None
    return str(address)


def long_port(reader: Reader, item: dict, path: KeyPath) -> list[PortMapping] | None:
    body = reader.mapping(item, path, LONG_PORT_KEYS, "a port")
    if body is None:
        return None
    if "target" not in body:
        reader.problem(path, "a long-syntax port needs 'target'", "add 'target: CONTAINER_PORT'")
        return None
    target = reader.integer(body["target"], path + ("target",))
    published = body.get("published", "")
    if isinstance(published, str):
        published = reader.string(published, path + ("published",))
    texts = {k: reader.string(body[k], path + (k,)) for k in ("host_ip", "protocol", "mode", "name", "app_protocol")
             if k in body}
    if target is None or published is None or None in texts.values():
        return None
    if texts.get("mode", "ingress") not in ("ingress", "host"):
        reader.problem(path + ("mode",), f"unknown port mode {texts['mode']!r}", "use ingress or host")
        return None
    for key in ("mode", "name", "app_protocol"):
        if key in texts:
            reader.note(path + (key,), f"'{key}: {texts[key]}' is Compose metadata envctl does not use")
    protocol = texts.get("protocol", "tcp")
    if protocol not in PORT_PROTOCOLS:
        reader.problem(path + ("protocol",), f"unknown protocol {protocol!r}", "use tcp or udp")
        return None
    return expand(str(target), str(published), protocol, texts.get("host_ip", ""))
