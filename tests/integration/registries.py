"""A real registry for the tests: Debian's docker-registry (the CNCF distribution) on 127.0.0.1.

The engine treats 127.0.0.0/8 registries as insecure (plain HTTP) by default, so nothing on
the daemon changes. Each instance has its own storage directory, removed when it stops.
"""
from __future__ import annotations

import base64
import http.server
import json
import shutil
import socketserver
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REGISTRY_BINARY = "/usr/bin/docker-registry"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Registry:
    """One registry process; `user`/`password` turn on htpasswd auth, `readonly` refuses writes."""

    def __init__(self, directory: Path, *, user: str | None = None, password: str | None = None,
                 readonly: bool = False) -> None:
        if not Path(REGISTRY_BINARY).exists():
            pytest.skip("docker-registry is not installed (.ci/setup installs it)")
        self.directory = directory
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.user, self.password = user, password
        directory.mkdir(parents=True, exist_ok=True)
        self.storage = directory / "storage"
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True},
                        "maintenance": {"readonly": {"enabled": readonly}, "uploadpurging": {"enabled": False}}},
            "http": {"addr": self.host},
        }
        if user is not None:
            htpasswd = directory / "htpasswd"
            hashed = subprocess.run(["htpasswd", "-Bbn", user, password or ""], capture_output=True, text=True,
                                    check=True).stdout
            htpasswd.write_text(hashed)
            config["auth"] = {"htpasswd": {"realm": "envctl-test", "path": str(htpasswd)}}
        (directory / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        self.log = directory / "registry.log"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(self.directory / "config.yml")],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the registry exited: {self.log.read_text()}")
            try:
                self.get("/v2/")
                return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # auth on: it answers
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the registry did not answer on {self.host}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def get(self, path: str) -> dict:
        request = urllib.request.Request(f"http://{self.host}{path}")
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def tags(self, repository: str) -> set[str]:
        try:
            return set(self.get(f"/v2/{repository}/tags/list").get("tags") or [])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return set()
            raise

    def catalog(self) -> set[str]:
        return set(self.get("/v2/_catalog?n=1000").get("repositories") or [])


def docker_config(directory: Path, host: str, user: str, password: str) -> Path:
    """A DOCKER_CONFIG directory as 'docker login HOST' leaves it."""
    directory.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return directory


class FailingRegistry:
    """An HTTP server on 127.0.0.1 that answers every request with 500 (a registry gone wrong)."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def _fail(self) -> None:
                body = b'{"errors":[{"code":"UNKNOWN","message":"internal error"}]}'
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _fail

            def log_message(self, *args: object) -> None:
                pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
