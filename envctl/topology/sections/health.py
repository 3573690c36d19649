"""A service's readiness: Compose's `healthcheck:` (run by the engine) and envctl's `probe:` (run from the host)."""
from __future__ import annotations

from typing import Any

from envctl.topology.model import Healthcheck, PortSpec, Probe
from envctl.topology.readers import Reader
from envctl.topology.source import KeyPath

HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period", "disable")
PROBE_KEYS = ("http", "tcp", "cmd", "port", "timeout", "interval", "cmd_timeout")


def healthcheck(reader: Reader, raw: Any, path: KeyPath) -> Healthcheck | None:
    body = reader.mapping(raw, path, HEALTHCHECK_KEYS, "healthcheck")
    if body is None:
        return None
    disable = reader.boolean(body["disable"], path + ("disable",)) if "disable" in body else False
    if disable is None:
        return None
    if disable:
        return Healthcheck(test=("NONE",), disable=True)
    test = body.get("test")
    if isinstance(test, str):
        text = reader.string(test, path + ("test",))
        tokens = ("CMD-SHELL", text) if text is not None else None
    elif isinstance(test, list) and test:
        tokens = reader.string_list(test, path + ("test",), "test")
        if tokens and tokens[0] not in ("CMD", "CMD-SHELL", "NONE"):
            reader.problem(path + ("test",), f"a test list must start with CMD, CMD-SHELL or NONE, not {tokens[0]!r}",
                           'write test: ["CMD", "prog", "arg"] or a shell string')
            return None
    else:
        reader.problem(path + ("test",), "healthcheck needs a 'test'", 'add test: ["CMD", "prog", "arg"] or a shell string')
        return None
    values = {k: reader.duration(body[k], path + (k,)) for k in ("interval", "timeout", "start_period") if k in body}
    retries = reader.integer(body["retries"], path + ("retries",)) if "retries" in body else None
    if "retries" in body and retries is None:
        return None
    if retries is not None and retries < 1:
        reader.problem(path + ("retries",), f"{retries!r} is not a positive number", "write a whole number, e.g. 3")
        return None
    if tokens is None or any(v is None for v in values.values()):
        return None
    return Healthcheck(test=tokens, retries=retries, **values)


def probe(reader: Reader, raw: Any, path: KeyPath, ports: tuple[PortSpec, ...]) -> Probe | None:
    body = reader.mapping(raw, path, PROBE_KEYS, "probe")
    if body is None:
        return None
    kinds = [k for k in ("http", "tcp", "cmd") if k in body]
    if len(kinds) != 1:
        reader.problem(path, "a probe needs exactly one of http, tcp or cmd",
                       "write probe: {http: /healthz, port: 8000}, {tcp: 5432} or {cmd: [pg_isready]}")
        return None
    kind = kinds[0]
    fields: dict[str, Any] = {"kind": kind}
    if "cmd_timeout" in body and kind != "cmd":
        reader.problem(path + ("cmd_timeout",), f"cmd_timeout bounds one run of a cmd probe; this probe is {kind}",
                       "remove cmd_timeout (timeout is how long up waits for the service)")
        return None
    for key in ("timeout", "interval", "cmd_timeout"):
        if key in body:
            fields[key] = reader.duration(body[key], path + (key,))
            if fields[key] is None:
                return None
            if key == "cmd_timeout" and fields[key] <= 0:
                reader.problem(path + (key,), f"cmd_timeout must be more than 0, not {body[key]!r}",
                               "write how long one run of the command may take, e.g. 10s")
                return None
    if kind == "cmd":
        command = reader.command(body["cmd"], path + ("cmd",))
        if command is None:
            return None
        return Probe(command=command, **fields)
    if kind == "tcp":
        port = reader.port_number(body["tcp"], path + ("tcp",))
    else:
        probe_path = reader.string(body["http"], path + ("http",))
        if probe_path is None:
            return None
        fields["path"] = probe_path if probe_path.startswith("/") else "/" + probe_path
        port = reader.port_number(body["port"], path + ("port",)) if "port" in body else (
            ports[0].container if ports else None)
    if port is None:
        if kind == "http" and "port" not in body:
            reader.problem(path, "an http probe needs a port and the service lists none", "add 'port: N' and list it under 'ports'")
        return None
    if not any(p.container == port and p.protocol == "tcp" for p in ports):
        reader.problem(path, f"the probe checks port {port}, which the service does not publish",
                       f'add "{port}" to the service\'s ports (probes run from the host)')
        return None
    return Probe(port=port, **fields)
