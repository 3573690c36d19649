"""Checks that a running stack exposes nothing beyond 127.0.0.1 and holds no Docker socket."""
from __future__ import annotations

import socket
import subprocess

from envctl.backend import engine as eng
from envctl.backend.engine import Engine

LISTEN = "0A"


def listening_sockets(port: int) -> list[str]:
    """Every local address (IPv4 and IPv6) a socket listens on at `port`, from /proc/net."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                address, port_hex = fields[1].rsplit(":", 1)
                if fields[3] == LISTEN and int(port_hex, 16) == port:
                    found.append(f"{table[-4:]}:{address}")
    return found


def non_loopback_addresses() -> list[str]:
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    addresses = [line.split()[3].split("/")[0] for line in out.splitlines() if " inet" in line]
    return [a for a in addresses if not a.startswith("127.") and a != "::1" and not a.startswith("fe80")]


def assert_loopback_only(engine: Engine, project: str, run: str) -> int:
    """Every published port binds 127.0.0.1 and nothing else; returns how many were checked."""
    checked = 0
    for container in engine.containers({eng.PROJECT: project, eng.RUN: run}):
        bindings = (engine.inspect_container(container.id)["NetworkSettings"].get("Ports") or {})
        for key, entries in bindings.items():
            for entry in entries or []:
                assert entry["HostIp"] == "127.0.0.1", f"{container.name} publishes {key} on {entry}"
                port = int(entry["HostPort"])
                listening = listening_sockets(port)
                # 0100007F is 127.0.0.1 in /proc's byte order; IPv6 (tcp6) entries must not exist at all.
                assert listening and all(s == "/tcp:0100007F" for s in listening), \
                    f"{container.name} port {port} listens on {listening}"
                for address in non_loopback_addresses():
                    family = socket.AF_INET6 if ":" in address else socket.AF_INET
                    with socket.socket(family) as sock:
                        sock.settimeout(1)
                        assert sock.connect_ex((address, port)) != 0, f"{address}:{port} answers"
                with socket.socket(socket.AF_INET6) as sock:
                    sock.settimeout(1)
                    assert sock.connect_ex(("::1", port)) != 0, f"[::1]:{port} answers"
                checked += 1
    return checked


def assert_no_docker_socket(engine: Engine, project: str, run: str) -> int:
    containers = engine.containers({eng.PROJECT: project, eng.RUN: run})
    for container in containers:
        info = engine.inspect_container(container.id)
        mounts = info.get("Mounts") or []
        assert not [m for m in mounts if "docker.sock" in (m.get("Source") or "")], f"{container.name}: {mounts}"
        env = info["Config"].get("Env") or []
        assert not [e for e in env if e.startswith("DOCKER_HOST=")], f"{container.name} is given DOCKER_HOST"
    return len(containers)
