"""A unix-socket relay in front of the real Docker engine, which a test can cut or make refuse.

envctl talks to it through DOCKER_HOST=unix://PATH and cannot tell it from the engine. The
relay reads each request's head (method and path) and, by rule, passes it on, answers it
with an error as the engine would, or cuts every connection and stops listening: the engine
"goes away" mid-command, while the real engine keeps running for everyone else.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

ENGINE_SOCKET = "/var/run/docker.sock"


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    cut: bool = False  # cut everything when such a request arrives
    status: int = 0  # else answer it with this status and message...
    message: str = ""
    times: int | None = None  # ...this many times (None: always)

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and bool(self.path.search(path)) and self.times != 0


class EngineRelay:
    def __init__(self) -> None:
        self._directory = Path(tempfile.mkdtemp(prefix="envctl-relay-", dir="/tmp"))  # short: a socket path has 107 bytes at most
        self.path = self._directory / "docker.sock"
        self.rules: list[Rule] = []
        self.seen: list[str] = []  # "METHOD /path" of every request, in order
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(64)
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def cut_on(self, method: str, path: str) -> None:
        """When a request `method` `path` (a regular expression) arrives, the engine goes away."""
        self.rules.append(Rule(method, re.compile(path), cut=True))

    def refuse(self, method: str, path: str, status: int, message: str, times: int | None = None) -> None:
        """Answer matching requests with `status` and the engine's JSON error `message`, `times` times."""
        self.rules.append(Rule(method, re.compile(path), status=status, message=message, times=times))

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self.cut()
        shutil.rmtree(self._directory, ignore_errors=True)

    # -- relaying ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._cut.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(ENGINE_SOCKET)
            with self._lock:
                if self._cut.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        """Pass requests on one by one, reading each head; a body of unknown length ends the reading."""
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = client.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                self.seen.append(f"{method} {target}")
                rule = next((r for r in self.rules if r.matches(method, target)), None)
                if rule is not None and rule.cut:
                    self.cut()
                    return
                length = int(headers.get("content-length", "0"))
                unknown_length = "chunked" in headers.get("transfer-encoding", "") or "upgrade" in headers
                while len(buffer) < length:
                    data = client.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                if rule is not None:
                    if rule.times is not None:
                        rule.times -= 1
                    client.sendall(_response(rule.status, rule.message))
                    continue
                upstream.sendall(head + b"\r\n\r\n" + body)
                if unknown_length:  # a build's streamed context, an attach: relay the rest as it is
                    upstream.sendall(buffer)
                    self._pipe(client, upstream)
                    return
        except OSError:
            return


def _response(status: int, message: str) -> bytes:
    body = json.dumps({"message": message}).encode()
    return (f"HTTP/1.1 {status} Refused\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "\r\n").encode() + body
