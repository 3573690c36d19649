"""The one place that talks to the Docker SDK.

Thin and factual: labels, names, networks, volumes, containers and images, with Docker's
errors translated into envctl's. Policy (what to start when, what to remove) lives above.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import docker
import docker.errors
import docker.types
import requests
import urllib3
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential
from docker.utils.build import exclude_paths

from envctl.errors import BuildFailed, Cancelled, EngineUnavailable, EnvctlError, RegistryError

if TYPE_CHECKING:
    from envctl.topology.model import Topology

# Labels on everything envctl creates; the labels, not local state, are the truth.
PROJECT = "envctl.project"
RUN = "envctl.run"
SERVICE = "envctl.service"
CONFIG_HASH = "envctl.config-hash"
IMAGE_KIND = "envctl.kind"
INPUT_HASH = "envctl.input-hash"
GIT_COMMIT = "envctl.git-commit"
MANAGED = "envctl.managed"
REPLICA = "envctl.replica"  # on the 2nd..Nth container of a service with `scale`
PLATFORM = "envctl.platform"  # linux/amd64, linux/arm64: what an image was made for

# A remote engine (DOCKER_HOST=tcp://HOST:PORT or ssh://USER@HOST): the host dials HOST for the
# ports it publishes (or $ENVCTL_HOST_ADDRESS, through a NAT or a tunnel), and the ports must be
# published on an address beyond the remote's loopback: an explicit choice, $ENVCTL_PUBLISH_ADDRESS.
HOST_ADDRESS_ENV = "ENVCTL_HOST_ADDRESS"
PUBLISH_ADDRESS_ENV = "ENVCTL_PUBLISH_ADDRESS"
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1", "localhost")

POOL_EXHAUSTED = "could not find an available, non-overlapping"
EPHEMERAL_PORT_RETRIES = 3  # starts again when a port the engine chose was taken meanwhile
PORT_IN_USE_RE = re.compile(r":(\d+): bind: address already in use")
REMOVAL_PATIENCE = 5.0  # seconds a removal is retried while the engine refuses it for a moment

LayerProgress = Callable[[str, str], None]  # (layer id, status) during a pull or push

# How the engine words a registry's answer, by what the user has to do about it.
REGISTRY_REASONS = (
    (RegistryError.UNAUTHORIZED, ("unauthorized", "authentication required", "no basic auth credentials",
                                  "access denied", "access to the resource is denied")),
    (RegistryError.NOT_FOUND, ("manifest unknown", "not found", "repository does not exist", "name unknown")),
    (RegistryError.REFUSED, ("read-only", "read only", "denied")),
    (RegistryError.SERVER, ("500 internal server error", "502 bad gateway", "503 service unavailable",
                            "unexpected http status", "received unexpected", "internal server error",
                            "unknown blob", "blob upload unknown")),
    (RegistryError.UNREACHABLE, ("connection refused", "no such host", "i/o timeout", "eof", "connection reset",
                                 "tls handshake timeout", "network is unreachable", "dial tcp",
                                 "context deadline exceeded", "timeout")),
)


def container_name(project: str, run: str, service: str) -> str:
    return f"envctl-{project}-{run}-{service}"


def network_name(project: str, run: str) -> str:
    return f"envctl-{project}-{run}"


def volume_name(project: str, run: str, volume: str) -> str:
    return f"envctl-{project}-{run}-{volume}"


def run_labels(project: str, run: str, service: str | None = None) -> dict[str, str]:
    labels = {MANAGED: "true", PROJECT: project, RUN: run}
    if service is not None:
        labels[SERVICE] = service
    return labels


def label_filter(labels: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in labels.items()]


@dataclass(frozen=True)
class Mount:
    """A volume, bind or tmpfs mount of a container, in envctl's terms (the SDK's type stays in here)."""

    target: str
    source: str | None  # a volume's name, a bind's host path; None for an anonymous volume or a tmpfs
    type: str = "volume"  # volume, bind or tmpfs
    read_only: bool = False
    propagation: str | None = None  # a bind's
    no_copy: bool = False  # a volume's
    subpath: str | None = None  # a volume's
    tmpfs_size: int | str | None = None
    tmpfs_mode: int | None = None
    grant: str | None = None  # "secret", "config": a granted file (a cluster carries it itself, not as a bind)

    def as_api(self) -> dict[str, Any]:
        """The engine API's form (the options only where set, so a plain mount's form never changes)."""
        extra = {"subpath": self.subpath} if self.subpath else {}
        return dict(docker.types.Mount(self.target, self.source, type=self.type, read_only=self.read_only,
                                       propagation=self.propagation, no_copy=self.no_copy,
                                       tmpfs_size=self.tmpfs_size, tmpfs_mode=self.tmpfs_mode, **extra))


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one service container."""

    name: str
    image: str
    network: str
    alias: str
    labels: dict[str, str]
    environment: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    ports: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # "8000/tcp" -> (ip, host port)
    mounts: list[Mount] = field(default_factory=list)
    working_dir: str | None = None
    user: str | None = None
    init: bool = True
    healthcheck: dict[str, Any] | None = None
    stop_timeout: int = 2
    stop_signal: str | None = None
    mem_limit: int | None = None  # bytes, swap included (so an overrun is an OOM kill, not swapping)
    open_stdin: bool = False  # stdin kept open until the first attach lets go (the start gate)
    # Compose's runtime keys, as envctl.containeropts maps them:
    aliases: tuple[str, ...] = ()  # more names on `network`, beside `alias`
    other_networks: dict[str, list[str]] = field(default_factory=dict)  # network -> aliases, joined before start
    hostname: str | None = None
    domainname: str | None = None
    host_options: dict[str, Any] = field(default_factory=dict)  # more create_host_config arguments
    extra_hosts: dict[str, str] = field(default_factory=dict)
    exposed: list[str] = field(default_factory=list)  # "3306/tcp": exposed on the networks, not published
    user_labels: dict[str, str] = field(default_factory=dict)  # the file's labels; envctl's own win
    stdin_open: bool = False
    tty: bool = False
    cluster: dict[str, Any] = field(default_factory=dict)  # what only a cluster scheduler honours; one engine ignores it


@dataclass(frozen=True)
class ContainerState:
    """A container as the engine reports it: enough for status, ports and diagnostics."""

    id: str
    name: str
    service: str
    run: str
    status: str  # created, running, exited, dead, ...
    exit_code: int | None
    oom_killed: bool
    health: str | None  # healthy, unhealthy, starting, or None without a healthcheck
    ports: dict[int, int]  # container port -> published host port (tcp)
    image_id: str
    labels: dict[str, str]
    # On a cluster: the node it runs on, the address the host dials for its published ports
    # (None: the port's own, 127.0.0.1 on a local engine), and what the cluster said of it.
    node: str | None = None
    address: str | None = None
    detail: str | None = None
    # Created with a healthcheck (its own or its image's): the engine's State.Health may not show yet.
    has_healthcheck: bool = False

    @property
    def running(self) -> bool:
        return self.status == "running"


def created_with_healthcheck(config: dict[str, Any]) -> bool:
    """Whether a container's inspected `Config` (the image's HEALTHCHECK merged in at creation) has a
    healthcheck the engine runs: a CMD or CMD-SHELL test, not NONE. Known from the first instant, unlike
    State.Health, which the engine adds once it starts monitoring."""
    test = (config.get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] in ("CMD", "CMD-SHELL")


class Engine:
    """A connected Docker engine.

    Every SDK call goes through `_translated` (directly, or through `_call`): the engine's
    refusals become `EnvctlError`, a lost connection `EngineUnavailable`, and anything else
    is a bug in envctl and propagates as it is.
    """

    address: str | None = None  # where the host dials published ports; None: where they are published
    publish_on: str | None = None

    def __init__(self, client: docker.DockerClient, url: str | None = None) -> None:
        self.client = client
        self.api = client.api
        remote = remote_host(url or "")
        self.address = (os.environ.get(HOST_ADDRESS_ENV) or remote) if remote else None  # None: a local engine
        self.publish_on = os.environ.get(PUBLISH_ADDRESS_ENV) if remote else None

    @property
    def builder(self) -> "Engine":
        """Images are built here, on the engine that runs them."""
        return self

    @property
    def holds_at_gate(self) -> bool:
        return True

    @property
    def notes(self) -> tuple[str, ...]:
        return ()  # services run as the topology says

    def check(self, topology: Topology, services: list[str]) -> None:
        """Nothing to refuse: the local engine honours every key a topology loads with."""

    def granted_files(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return []  # granted files are binds of the run's directory here

    def remove_granted_file(self, kind: str, file_id: str) -> None:
        """Nothing to remove: the local engine keeps no secrets or configs of its own."""

    @property
    def execs_healthchecks(self) -> bool:
        return True

    # -- connection ----------------------------------------------------------------------

    @classmethod
    def connect(cls, timeout: int = 120) -> "Engine":
        try:
            url, _ = engine_location()
            # $DOCKER_HOST (with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) is the SDK's own; a context's or
            # Docker Desktop's socket is handed over here, as the docker CLI would use it.
            client = docker.from_env(timeout=timeout) if os.environ.get("DOCKER_HOST") else \
                docker.DockerClient(base_url=url, timeout=timeout)
            if client.api.base_url.startswith("http+docker://"):
                # A local socket: no proxy applies, and looking for one in the environment
                # on every request costs CPU that the engine needs to start containers.
                client.api.trust_env = False
            client.ping()
        except (docker.errors.DockerException, *CONNECTION_ERRORS) as exc:
            raise EngineUnavailable(
                f"cannot reach the Docker engine: {_short(exc)}",
                fix="start it (e.g. 'sudo systemctl start docker', or 'dockerd &' as root), "
                "or point DOCKER_HOST at a running engine; 'envctl doctor' checks the setup",
            ) from None
        return cls(client, url)

    @classmethod
    def at(cls, url: str, timeout: int = 60) -> "Engine":
        """The engine answering at `url` (another engine than $DOCKER_HOST's: a cluster node, a lab's)."""
        try:
            client = docker.DockerClient(base_url=url, timeout=timeout)
            if client.api.base_url.startswith("http+docker://"):
                client.api.trust_env = False
            client.ping()
        except (docker.errors.DockerException, *CONNECTION_ERRORS) as exc:
            raise EngineUnavailable(f"cannot reach the Docker engine at {url}: {_short(exc)}",
                                    fix="check that the engine runs and that the address is right") from None
        return cls(client)

    def version(self) -> dict[str, Any]:
        return self._call(self.api.version)

    def info(self) -> dict[str, Any]:
        return self._call(self.api.info)

    # -- images --------------------------------------------------------------------------

    def image_id(self, ref: str) -> str | None:
        with _translated():
            try:
                return self.api.inspect_image(ref)["Id"]
            except docker.errors.ImageNotFound:
                return None

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return self._call(self.api.inspect_image, ref)

    def images(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return self._call(self.api.images, filters={"label": label_filter(labels)})

    def images_named(self, repository: str) -> list[dict[str, Any]]:
        """The engine's images whose name matches `repository` (a reference pattern, e.g. 'debian')."""
        return self._call(self.api.images, name=repository)

    def remove_image(self, ref: str) -> None:
        with _translated():
            try:
                self.api.remove_image(ref, noprune=False)
            except docker.errors.ImageNotFound:
                pass

    def tag(self, image: str, repository: str, tag: str) -> None:
        self._call(self.api.tag, image, repository, tag)

    def pull(self, repository: str, pin: str, on_layer: LayerProgress | None = None,
             platform: str | None = None) -> str:
        """Pull `repository` at `pin` (a tag or a digest), for `platform` if given; returns the image id.

        Credentials come from the Docker config (what `docker login` wrote, credential
        helpers included): the SDK sends them. `on_layer(layer, status)` hears each layer's
        change of status.
        """
        ref = f"{repository}@{pin}" if pin.startswith("sha256:") else f"{repository}:{pin}"

        def pull() -> None:
            _follow_registry_stream(self.api.pull, "pull", ref, on_layer, repository, tag=pin, stream=True, decode=True,
                                    **({"platform": platform} if platform else {}))

        self._call(pull)
        return self.image_id(ref) or ref

    def push(self, repository: str, tag: str, on_layer: LayerProgress | None = None) -> str:
        """Push `repository:tag` (tagged locally already); returns the pushed manifest's digest."""
        ref = f"{repository}:{tag}"

        def push() -> str:
            return _follow_registry_stream(self.api.push, "push", ref, on_layer, repository, tag=tag, stream=True,
                                           decode=True)

        return self._call(push)

    def registry_has(self, ref: str) -> bool:
        """Whether the registry holds `ref`; the engine asks it with its own credentials."""
        with _translated():
            try:
                self.api.inspect_distribution(ref)
            except docker.errors.APIError:
                return False
        return True

    def import_rootfs(self, tarball: Path, repository: str, tag: str, changes: list[str]) -> str:
        result = self._call(self.api.import_image, src=str(tarball), repository=repository, tag=tag, changes=changes)
        image_id = self.image_id(f"{repository}:{tag}")
        if image_id is None:
            raise EnvctlError(f"docker import of {tarball} did not produce an image: {result}")
        return image_id

    def load_rootfs(self, tarball: Path, repository: str, tag: str, config: dict[str, Any], platform: str) -> str:
        """A one-layer image of a root filesystem tar, with `config` (Env, Cmd, Labels) and `platform` in its metadata.

        `docker import` records the engine's own architecture whatever the files are (20.10
        ignores its platform parameter), so the image is loaded as `docker save` writes one.
        """
        os_name, _, arch = platform.partition("/")
        arch, _, variant = arch.partition("/")
        with open(tarball, "rb") as layer:
            diff_id = "sha256:" + hashlib.file_digest(layer, "sha256").hexdigest()
        image_config = {"architecture": arch, "os": os_name, "config": config,
                        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                        "history": [{"created_by": "envctl: bootstrapped root filesystem"}]}
        if variant:
            image_config["variant"] = variant
        image_id = self.load_image(image_config, f"{repository}:{tag}", [tarball])
        if image_id is None:
            raise EnvctlError(f"loading the root filesystem {tarball} did not produce {repository}:{tag}")
        return image_id

    def load_image(self, image_config: dict[str, Any], ref: str, layers: list[Path | None],
                   parent: bytes | None = None) -> str | None:
        """Load an image as `docker save` writes one: its config, tagged `ref`; returns its id.

        `layers` pairs with the config's diff_ids; None for a layer the engine has already
        (a base's): the engine looks a layer up by its chain id before reading the file.
        `parent` is the exact config of the image this one is made on (one the engine has): the
        engine records a parent only when it comes in the same archive.
        """
        manifest = [{"Config": "config.json", "RepoTags": [ref],
                     "Layers": [f"{index}/layer.tar" for index in range(len(layers))]}]
        files = {"config.json": json.dumps(image_config).encode()}  # the config's bytes are the image id: keep them stable
        if parent is not None:
            parent_layers = len(json.loads(parent)["rootfs"]["diff_ids"])
            manifest = [{"Config": "parent.json", "RepoTags": [], "Layers": manifest[0]["Layers"][:parent_layers]},
                        {**manifest[0], "Parent": "sha256:" + hashlib.sha256(parent).hexdigest()}]
            files["parent.json"] = parent
        files["manifest.json"] = json.dumps(manifest).encode()
        with tempfile.TemporaryFile() as archive:
            with tarfile.open(fileobj=archive, mode="w") as tar:
                for index, layer in enumerate(layers):
                    if layer is not None:
                        tar.add(str(layer), arcname=f"{index}/layer.tar")
                for name, data in files.items():
                    entry = tarfile.TarInfo(name)
                    entry.size = len(data)
                    tar.addfile(entry, io.BytesIO(data))
            archive.seek(0)
            said = self._call(lambda: list(self.api.load_image(archive)))
        refused = [str(line.get("error")) for line in said if isinstance(line, dict) and line.get("error")]
        if refused:
            raise EnvctlError(f"the engine refused to load {ref}: {refused[0]}")
        return self.image_id(ref)

    def image_history(self, ref: str) -> list[dict[str, Any]]:
        """An image's history, oldest step first (Created, CreatedBy, Comment, Size)."""
        return list(reversed(self._call(self.api.history, ref)))

    def path_kinds(self, image: str) -> "PathKinds":
        """What absolute paths are in `image`, through one container (created now, never started).

        Use it as a context manager: the container is removed at the end."""
        return PathKinds(self, self._call(self.api.create_container, image, command=["true"])["Id"], image)

    def path_kind(self, container_id: str, path: str, what: str = "the container") -> str | None:
        """"dir", "file", "link" or None (missing) at `path` in a container, created or running:
        the engine looks, nothing runs inside."""
        response = self._path_archive("head", container_id, path, what)
        if response is None:
            return None
        mode = json.loads(base64.b64decode(response.headers["X-Docker-Container-Path-Stat"]))["mode"]
        return "link" if mode & (1 << 27) else "dir" if mode & (1 << 31) else "file"  # Go's os.FileMode bits

    def path_header(self, container_id: str, path: str, what: str = "the container") -> tarfile.TarInfo | None:
        """`path`'s tar header in a container (mode, owner, modification time; None: missing): the first
        entry of the engine's archive of it, the rest left unread."""
        response = self._path_archive("get", container_id, path, what, stream=True)
        if response is None:
            return None
        try:
            head = b""
            with _translated():
                for chunk in response.iter_content(8192):
                    head += chunk
                    if len(head) >= 16384:  # the first entry's headers, extended ones too
                        break
        finally:
            response.close()
        try:
            with tarfile.open(fileobj=io.BytesIO(head), mode="r|") as tar:
                return tar.next()
        except (tarfile.TarError, EOFError) as exc:
            raise EnvctlError(f"the engine's archive of {path} in {what} could not be read ({exc})",
                              fix="check that the engine answers ('docker info') and try again") from None

    def _path_archive(self, method: str, container_id: str, path: str, what: str,
                      **kwargs: Any) -> requests.Response | None:
        """The engine's answer to a HEAD or GET of `path`'s archive in a container; None: no such path."""
        api = self.api
        with _translated():
            response = getattr(api, method)(api._url("/containers/{0}/archive", container_id),
                                            params={"path": path}, **kwargs)
        if response.status_code == 404:
            response.close()
            return None
        if response.status_code >= 400:
            response.close()
            raise EnvctlError(f"the engine could not look at {path} in {what}: HTTP {response.status_code}")
        return response

    def build(
        self,
        context: IO[bytes],
        *,
        dockerfile: str,
        tag: str,
        buildargs: dict[str, str],
        log: IO[str],
        what: str,
        cancel: threading.Event | None = None,
        options: dict[str, Any] | None = None,
    ) -> str:
        """Build from a prepared context tar, streaming the output to `log`; return the image id.

        Setting `cancel` aborts the build: the connection is shut down, and the engine then
        stops the step and removes its container (the classic builder does on disconnect).
        """
        params = {"t": tag or None, "dockerfile": dockerfile, "buildargs": json.dumps(buildargs), "rm": "1",
                  "forcerm": "1", "pull": "0"}
        for key, value in (options or {}).items():  # target, labels, cachefrom: as Compose's build keys
            params[key] = value if isinstance(value, str) else json.dumps(value)
        url = f"{self.api.base_url}/v{self.api.api_version}/build"
        with _translated():
            response = self.api.post(url, data=context, params=params, stream=True, timeout=None,
                                     headers={"Content-Type": "application/tar"})
        if response.status_code >= 400:
            raise _build_failed(what, "", [response.text.strip()[:500]], log)
        stop_watching = _abort_when(cancel, response)
        try:
            with _translated():
                image_id = _follow_build(response, log, what)
        except Exception as exc:
            # Shutting the stream down is how a build is cancelled: whatever that broke is the cancel.
            cancelled = cancel is not None and cancel.is_set()
            if cancelled and (isinstance(exc, EngineUnavailable) or not isinstance(exc, EnvctlError)):
                raise Cancelled(f"building {what} was cancelled") from None
            raise
        finally:
            stop_watching.set()
            response.close()
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"building {what} was cancelled")
        log.flush()
        return image_id or (self.image_id(tag) if tag else None) or tag

    def run_step(self, image: str, command: list[str], *, mounts: list[Mount], changes: list[str],
                 log: IO[str], what: str, cancel: threading.Event | None = None,
                 repository: str | None = None, tag: str | None = None) -> str:
        """Run one build step in a throw-away container, then commit it; returns the new image's id.

        The image's own command and entrypoint are restored in the commit, so the step leaves
        only its files behind (and nothing that was mounted).
        """
        config = self.inspect_image(image).get("Config") or {}
        original_entrypoint, original_cmd = config.get("Entrypoint"), config.get("Cmd")
        restore = [f"CMD {json.dumps(original_cmd or [])}"]
        entrypoint = None
        if original_entrypoint:  # run the step itself, not through the image's entrypoint
            entrypoint, command = command[:1], command[1:]
            restore.append(f"ENTRYPOINT {json.dumps(original_entrypoint)}")
        with _translated():
            host_config = self.api.create_host_config(mounts=[_api_mount(m) for m in mounts] or None)
        container = self._call(self.api.create_container, image, command=command, entrypoint=entrypoint,
                               host_config=host_config, detach=True)["Id"]
        try:
            self._run_to_end(container, log, what, cancel)
            committed = self._call(self.api.commit, container, repository=repository, tag=tag,
                                   changes=[*restore, *changes])
        finally:
            self._discard_container(container)
        log.flush()
        return committed["Id"]

    def run_for_file(self, image: str, command: list[str], path: str, destination: Path, *, log: IO[str],
                     what: str, cancel: threading.Event | None = None, platform: str | None = None) -> None:
        """Run `command` in a throw-away container, then copy the file `path` it made to `destination`.

        The file comes back through the engine's API, not a bind mount: that works the same with
        a remote engine, Docker Desktop's VM, and host paths with drive letters or spaces.
        """
        container = self._call(lambda: self.api.create_container_from_config(
            self.api.create_container_config(image, command=command, detach=True), platform=platform))["Id"]
        try:
            self._run_to_end(container, log, what, cancel)
            chunks, _ = self._call(self.api.get_archive, container, path)
            with tempfile.TemporaryFile() as outer:
                for chunk in _translated_stream(chunks):
                    outer.write(chunk)
                outer.seek(0)
                with tarfile.open(fileobj=outer, mode="r|") as tar:
                    member = next(iter(tar))
                    source = tar.extractfile(member)
                    assert source is not None, f"{path} in the container is not a file"
                    with open(destination, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
        finally:
            self._discard_container(container)
        log.flush()

    def _run_to_end(self, container: str, log: IO[str], what: str, cancel: threading.Event | None) -> None:
        """Start a created container, stream its output to `log`, and wait; a non-zero exit is BuildFailed."""
        stop_watching = threading.Event()

        def kill_on_cancel() -> None:
            while cancel is not None and not stop_watching.wait(0.1):
                if cancel.is_set():
                    with contextlib.suppress(EnvctlError):  # gone already, or the engine is
                        self._call(self.api.kill, container)
                    return

        try:
            self._call(self.api.start, container)
            threading.Thread(target=kill_on_cancel, name="envctl-step-cancel", daemon=True).start()
            tail: deque[str] = deque(maxlen=25)
            for chunk in _translated_stream(self._call(self.api.logs, container, stream=True, follow=True)):
                text = chunk.decode(errors="replace")
                log.write(text)
                tail.extend(line.rstrip() for line in text.splitlines() if line.strip())
            code = self._call(self.api.wait, container)["StatusCode"]
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"building {what} was cancelled")
            if code != 0:
                raise _build_failed(what, "", [*tail, f"the step exited with code {code}"], log)
        finally:
            stop_watching.set()

    def _discard_container(self, container_id: str) -> None:
        """Remove a build's helper container; a failure here must not hide the build's own outcome."""
        with contextlib.suppress(EnvctlError):
            self._call(self.api.remove_container, container_id, force=True, v=True)

    # -- networks and volumes ------------------------------------------------------------

    def create_network(self, name: str, labels: dict[str, str], *, driver: str | None = None,
                       options: dict[str, str] | None = None, internal: bool = False,
                       attachable: bool | None = None) -> str:
        existing = self._call(self.api.networks, names=[name])
        for net in existing:
            if net["Name"] == name:
                return net["Id"]

        def pool_exhausted(exc: docker.errors.APIError) -> EnvctlError | None:
            if POOL_EXHAUSTED not in str(exc):
                return None
            return EnvctlError(
                "Docker has no free address range for another network (its default address pool is used up)",
                fix="remove stale runs ('envctl gc', 'docker network prune'), or give dockerd more room "
                "with 'default-address-pools' in /etc/docker/daemon.json",
            )

        with _translated(explain=pool_exhausted):
            return self.api.create_network(name, driver=driver or "bridge", labels=labels, options=options or None,
                                           internal=internal, check_duplicate=True, attachable=attachable)["Id"]

    def networks(self, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The networks with all of `labels` (every network without)."""
        filters = {"label": label_filter(labels)} if labels else None
        return self._call(self.api.networks, filters=filters)

    def remove_network(self, network_id: str) -> None:
        with _translated(f"cannot remove network {network_id[:12]}"):
            _removed_after_momentary_refusals(self.api.remove_network, network_id)

    def create_volume(self, name: str, labels: dict[str, str], *, driver: str | None = None,
                      options: dict[str, str] | None = None) -> None:
        self._call(self.api.create_volume, name=name, labels=labels, driver=driver, driver_opts=options or None)

    def volumes(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return self._call(self.api.volumes, filters={"label": label_filter(labels)}).get("Volumes") or []

    def remove_volume(self, name: str) -> None:
        with _translated(f"cannot remove volume {name}"):
            _removed_after_momentary_refusals(self.api.remove_volume, name, force=True)

    # -- containers ----------------------------------------------------------------------

    def create_container(self, spec: ContainerSpec) -> str:
        """Create the container, joined to all its networks (not started)."""
        what = f"cannot create the container for '{spec.alias}'"
        bindings = {k: self._published_on(spec.alias, *v) for k, v in spec.ports.items()}
        with _translated(what):
            host_config = self.api.create_host_config(
                port_bindings={k: [v] if v[1] is not None else [(v[0],)] for k, v in bindings.items()},
                mounts=[_api_mount(m) for m in spec.mounts] or None,
                init=spec.init,
                network_mode=spec.network,
                extra_hosts={"host.docker.internal": "host-gateway", **spec.extra_hosts},
                mem_limit=spec.mem_limit, memswap_limit=spec.mem_limit,
                **spec.host_options,
            )
            networking = self.api.create_networking_config(
                {spec.network: self.api.create_endpoint_config(aliases=[spec.alias, *spec.aliases])}
            )
            exposed = [_port_key(p) for p in dict.fromkeys([*spec.ports, *spec.exposed])]
            config = self.api.create_container_config(
                spec.image, command=spec.command, entrypoint=spec.entrypoint,
                environment=spec.environment, labels={**spec.user_labels, **spec.labels}, ports=exposed,
                working_dir=spec.working_dir, user=spec.user, healthcheck=spec.healthcheck,
                host_config=host_config, networking_config=networking, stop_timeout=spec.stop_timeout,
                stop_signal=spec.stop_signal, stdin_open=spec.open_stdin or spec.stdin_open, tty=spec.tty,
                hostname=spec.hostname, domainname=spec.domainname, detach=True,
            )
            config["StdinOnce"] = spec.open_stdin  # the SDK only sets it for attached runs
            created = self.api.create_container_from_config(config, name=spec.name)["Id"]
        try:  # the engine (API < 1.44) joins one network at creation; the others before the start
            with _translated(what):
                for network, aliases in spec.other_networks.items():
                    self.api.connect_container_to_network(created, network, aliases=aliases)
        except EnvctlError:
            self._discard_container(created)
            raise
        return created

    def _published_on(self, service: str, address: str, port: int | None) -> tuple[str, int | None]:
        """Where a port is published: as the file says, except loopback on a remote engine (nobody here reaches it)."""
        if self.address is None or address not in LOOPBACK_ADDRESSES:
            return address, port
        if not self.publish_on:
            raise EnvctlError(f"the engine is on another host ({self.address}): service '{service}'s ports on its "
                              "127.0.0.1 could not be reached from here",
                              fix=f"publish them on an address this machine reaches, knowing who else then can: "
                              f"${PUBLISH_ADDRESS_ENV}=ADDRESS (the engine host's own, or 0.0.0.0); through a NAT "
                              f"or a tunnel, ${HOST_ADDRESS_ENV} is the address to dial")
        return self.publish_on, port

    def start(self, container_id: str, what: str) -> None:
        """Start a created container; a port the engine chose itself, found taken meanwhile, is chosen again."""
        for attempt in range(EPHEMERAL_PORT_RETRIES + 1):
            try:
                return self._start_once(container_id, what)
            except PortTaken as exc:
                # Between the engine's choice and its proxy's bind, any process may take the port.
                bindings = self._call(self.api.inspect_container, container_id)["HostConfig"].get("PortBindings")
                if attempt == EPHEMERAL_PORT_RETRIES or not engine_chose(exc.port, bindings):
                    raise

    def _start_once(self, container_id: str, what: str) -> None:
        def port_taken(exc: docker.errors.APIError) -> EnvctlError | None:
            text = _short(exc)
            if "port is already allocated" in text or "address already in use" in text:
                found = PORT_IN_USE_RE.search(text)
                return PortTaken(f"cannot start '{what}': {text}", fix="free that host port or change it in envctl.yaml",
                                 port=int(found.group(1)) if found else None)
            return None

        with _translated(f"cannot start '{what}'", explain=port_taken):
            self.api.start(container_id)

    def release(self, container_id: str, word: bytes = b"go\n") -> None:
        """Write `word` to a container's stdin and let go of it (which closes a StdinOnce stdin)."""
        with _translated("cannot attach to the container"):
            response = self.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})
            sock = getattr(response, "_sock", response)  # the SDK wraps the raw socket
            try:
                sock.sendall(word)
                sock.shutdown(socket.SHUT_WR)
            finally:
                response.close()
                sock.close()

    def containers(self, labels: dict[str, str]) -> list[ContainerState]:
        listed = self._call(self.api.containers, all=True, filters={"label": label_filter(labels)})
        ids = [item["Id"] for item in listed]
        if len(ids) > 1:  # one round trip each: in parallel, as `down` and `status` wait on them
            with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
                found = list(pool.map(self.container_state, ids))
        else:
            found = [self.container_state(i) for i in ids]
        return [state for state in found if state is not None]

    def exited_containers(self, labels: dict[str, str]) -> list[ContainerState]:
        """Containers of `labels` that have stopped: one cheap call when none has."""
        listed = self._call(self.api.containers, all=True,
                            filters={"label": label_filter(labels), "status": ["exited", "dead"]})
        return [s for s in (self.container_state(c["Id"]) for c in listed) if s is not None]

    def container_state(self, container_id: str) -> ContainerState | None:
        with _translated():
            try:
                info = self.api.inspect_container(container_id)
            except docker.errors.NotFound:
                return None
        state = info["State"]
        labels = info["Config"].get("Labels") or {}
        ports: dict[int, int] = {}
        for key, bindings in (info["NetworkSettings"].get("Ports") or {}).items():
            number, _, proto = key.partition("/")
            if bindings and proto == "tcp":
                ports[int(number)] = int(bindings[0]["HostPort"])
        return ContainerState(
            id=info["Id"], name=info["Name"].lstrip("/"), service=labels.get(SERVICE, ""),
            run=labels.get(RUN, ""), status=state["Status"],
            exit_code=state.get("ExitCode") if state["Status"] in ("exited", "dead") else None,
            oom_killed=bool(state.get("OOMKilled")), health=(state.get("Health") or {}).get("Status"),
            ports=ports, image_id=info["Image"], labels=labels, address=self.address,
            has_healthcheck=created_with_healthcheck(info["Config"]),
        )

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return self._call(self.api.inspect_container, container_id)

    def remove_container(self, container_id: str, grace: int = 2) -> None:
        """Stop (SIGTERM, then SIGKILL after `grace` seconds) and remove with anonymous volumes.

        A removal already in progress counts as done; one the engine refuses for a moment is retried.
        """
        with _translated():
            try:
                self.api.stop(container_id, timeout=grace)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError:
                pass  # removing with force below still takes it away
        with _translated(f"cannot remove container {container_id[:12]}"):
            try:
                _removed_after_momentary_refusals(self.api.remove_container, container_id, v=True, force=True)
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise

    def logs(self, container_id: str, *, tail: int | str = "all", follow: bool = False,
             timestamps: bool = False) -> bytes | Iterator[bytes]:
        with _translated():
            try:
                output = self.api.logs(container_id, stdout=True, stderr=True, tail=tail, follow=follow,
                                       stream=follow, timestamps=timestamps)
            except docker.errors.NotFound:
                return b"" if not follow else iter(())
        return _translated_stream(output) if follow else output

    def exec(self, container_id: str, command: list[str], *, stream: bool = False) -> tuple[int | None, Any]:
        """Run `command` in the container; returns (exit code, output). Streams when asked."""
        with _translated("cannot run the command in the container"):
            exec_id = self.api.exec_create(container_id, command, stdout=True, stderr=True)["Id"]
            output = self.api.exec_start(exec_id, stream=stream)
            if stream:
                return None, (exec_id, _translated_stream(output))
            return self.api.exec_inspect(exec_id)["ExitCode"], output

    def exec_exit_code(self, exec_id: str) -> int | None:
        return self._call(self.api.exec_inspect, exec_id)["ExitCode"]

    # -- swarm: the cluster, its nodes, services and their tasks ---------------------------

    def swarm_init(self, advertise: str, listen: str, heartbeat: float = 5.0) -> str:
        """Make this engine a swarm's first manager; returns the workers' join token."""
        with _translated("cannot make the engine a swarm manager"):
            spec = self.api.create_swarm_spec(dispatcher_heartbeat_period=int(heartbeat * 1e9))
            self.api.init_swarm(advertise_addr=advertise, listen_addr=listen, swarm_spec=spec)
            return self.api.inspect_swarm()["JoinTokens"]["Worker"]

    def swarm_join(self, manager: str, token: str, advertise: str, listen: str) -> None:
        self._call(self.api.join_swarm, [manager], token, listen_addr=listen, advertise_addr=advertise)

    def swarm_state(self) -> dict[str, Any]:
        """The engine's swarm membership: LocalNodeState ('active', 'inactive'), ControlAvailable (a manager)."""
        return self.info().get("Swarm") or {}

    def nodes(self) -> list[dict[str, Any]]:
        return self._call(self.api.nodes)

    def create_service(self, spec: ServiceSpec) -> str:
        """Create a swarm service from `spec`; its id."""
        with _translated(f"cannot create the service for '{spec.alias}'"):
            return self.api.create_service(_task_template(spec), name=spec.name, labels=spec.labels,
                                           mode=docker.types.ServiceMode("replicated", replicas=spec.replicas),
                                           endpoint_spec=_endpoint_spec(spec))["ID"]

    def scale_service(self, service_id: str, replicas: int) -> None:
        """Set the service's replicas; the swarm may have moved its version on meanwhile, so that is retried."""
        def out_of_sequence(exc: BaseException) -> bool:
            return isinstance(exc, docker.errors.APIError) and "out of sequence" in str(exc)

        def scale() -> None:
            version = self.api.inspect_service(service_id)["Version"]["Index"]
            self.api.update_service(service_id, version, mode=docker.types.ServiceMode("replicated", replicas=replicas),
                                    fetch_current_spec=True)

        with _translated(f"cannot scale service {service_id[:12]}"):
            for attempt in Retrying(retry=retry_if_exception(out_of_sequence), stop=stop_after_delay(REMOVAL_PATIENCE),
                                    wait=wait_exponential(multiplier=0.05, max=0.5), reraise=True):
                with attempt:
                    scale()

    def services(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        return self._call(self.api.services, filters={"label": label_filter(labels)})

    def inspect_service(self, service_id: str) -> dict[str, Any] | None:
        with _translated():
            try:
                return self.api.inspect_service(service_id)
            except docker.errors.NotFound:
                return None

    def service_tasks(self, service_id: str) -> list[dict[str, Any]]:
        return self._call(self.api.tasks, filters={"service": service_id})

    def remove_service(self, service_id: str) -> None:
        with _translated(f"cannot remove service {service_id[:12]}"):
            try:
                self.api.remove_service(service_id)
            except docker.errors.NotFound:
                pass

    def service_logs(self, service_id: str, *, tail: int | str = "all", follow: bool = False,
                     timestamps: bool = False) -> bytes | Iterator[bytes]:
        with _translated():
            try:
                output = self.api.service_logs(service_id, stdout=True, stderr=True, tail=tail, follow=follow,
                                               timestamps=timestamps)
            except docker.errors.NotFound:
                return b"" if not follow else iter(())
        return _translated_stream(output) if follow else b"".join(_translated_stream(output))

    def create_swarm_file(self, kind: str, name: str, data: bytes, labels: dict[str, str]) -> str:
        """A swarm secret or config (`kind`): its id; the one of that name when it exists (its name says its content)."""
        create, listing = ((self.api.create_secret, self.api.secrets) if kind == "secret" else
                           (self.api.create_config, self.api.configs))
        with _translated(f"cannot create the swarm {kind} {name}"):
            found = [f for f in listing(filters={"name": name}) if f["Spec"]["Name"] == name]
            return found[0]["ID"] if found else create(name, data, labels=labels)["ID"]

    def swarm_files(self, kind: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        """The swarm secrets or configs (`kind`) carrying all of `labels`."""
        return self._call(self.api.secrets if kind == "secret" else self.api.configs,
                          filters={"label": label_filter(labels)})

    def remove_swarm_file(self, kind: str, file_id: str) -> None:
        with _translated(f"cannot remove swarm {kind} {file_id[:12]}"):
            try:
                (self.api.remove_secret if kind == "secret" else self.api.remove_config)(file_id)
            except docker.errors.NotFound:
                pass

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with _translated():
            return fn(*args, **kwargs)


@dataclass(frozen=True)
class SwarmFile:
    """A secret or config on the swarm, granted to a service's tasks as a file."""

    kind: str  # secret, config
    id: str
    name: str
    target: str  # the path in the task's container
    uid: int = 0
    gid: int = 0
    mode: int = 0o444


@dataclass(frozen=True)
class ServicePort:
    target: int
    published: int | None  # None: the node picks one (host mode)
    protocol: str = "tcp"


@dataclass(frozen=True)
class ServiceSpec:
    """One swarm service, in envctl's terms: a container's spec plus how the swarm runs it."""

    container: ContainerSpec
    replicas: int = 0  # created at 0; `start` scales it up (Swarm itself has no order)
    restart: str = "none"  # none, on-failure, any
    endpoint_mode: str = "dnsrr"  # vip needs IPVS in the nodes' kernels
    publish_mode: str = "host"  # ingress needs IPVS too
    ports: tuple[ServicePort, ...] = ()
    max_per_node: int = 0
    volume_labels: dict[str, str] = field(default_factory=dict)  # on the volumes the nodes create for it
    task_labels: dict[str, str] = field(default_factory=dict)  # on its tasks' containers (not the run's own:
    # those would make each node's engine see the run's containers, and a local `down` remove them)
    constraints: tuple[str, ...] = ()  # placement constraints, e.g. "node.labels.zone == eu"
    spread: tuple[str, ...] = ()  # spread preferences' descriptors, e.g. "node.labels.zone"
    resources: dict[str, int] = field(default_factory=dict)  # cpu_limit, cpu_reservation (nano CPUs),
    # mem_limit, mem_reservation (bytes), pids_limit
    runtime: dict[str, Any] = field(default_factory=dict)  # the task container's: cap_add, cap_drop, sysctls,
    # read_only, tty, open_stdin (docker.types.ContainerSpec's argument names)
    ulimits: tuple[tuple[str, int, int], ...] = ()  # name, soft, hard
    log_driver: tuple[str, dict[str, str]] | None = None  # name, options
    files: tuple[SwarmFile, ...] = ()  # secrets and configs, at their targets

    @property
    def name(self) -> str:
        return self.container.name

    @property
    def alias(self) -> str:
        return self.container.alias

    @property
    def labels(self) -> dict[str, str]:
        return self.container.labels


def _task_template(spec: ServiceSpec) -> docker.types.TaskTemplate:
    c = spec.container
    mounts = [_service_mount(m, spec.volume_labels) for m in c.mounts]
    container = docker.types.ContainerSpec(
        c.image, command=c.entrypoint, args=c.command, hostname=c.hostname, env=c.environment or None,
        workdir=c.working_dir, user=c.user, labels={**c.user_labels, **spec.task_labels}, mounts=mounts or None,
        stop_grace_period=int(c.stop_timeout * 1e9), stop_signal=c.stop_signal, init=c.init,
        healthcheck=docker.types.Healthcheck(**c.healthcheck) if c.healthcheck else None,
        hosts=c.extra_hosts or None, secrets=_file_references(spec.files, "secret"),
        configs=_file_references(spec.files, "config"), **spec.runtime)
    if spec.ulimits:  # API 1.41; the SDK has no argument for it
        container["Ulimits"] = [{"Name": name, "Soft": soft, "Hard": hard} for name, soft, hard in spec.ulimits]
    networks = [docker.types.NetworkAttachmentConfig(c.network, aliases=[c.alias, *c.aliases])]
    networks += [docker.types.NetworkAttachmentConfig(n, aliases=a) for n, a in c.other_networks.items()]
    return docker.types.TaskTemplate(
        container, networks=networks,
        restart_policy=docker.types.RestartPolicy(condition=spec.restart, delay=0),
        resources=_service_resources(spec.resources),
        log_driver=docker.types.DriverConfig(*spec.log_driver) if spec.log_driver else None,
        placement=docker.types.Placement(constraints=list(spec.constraints) or None,
                                         preferences=[("spread", s) for s in spec.spread] or None,
                                         maxreplicas=spec.max_per_node or None))


def _file_references(files: tuple[SwarmFile, ...], kind: str) -> list[Any] | None:
    reference = docker.types.SecretReference if kind == "secret" else docker.types.ConfigReference
    return [reference(f.id, f.name, filename=f.target, uid=str(f.uid), gid=str(f.gid), mode=f.mode)
            for f in files if f.kind == kind] or None


def _service_resources(wanted: dict[str, int]) -> docker.types.Resources | None:
    pids = wanted.get("pids_limit")
    resources = docker.types.Resources(**{k: v for k, v in wanted.items() if k != "pids_limit"})
    if pids:  # API 1.41; the SDK has no argument for it
        resources.setdefault("Limits", {})["Pids"] = pids
    return resources or None


def _service_mount(mount: Mount, volume_labels: dict[str, str]) -> dict[str, Any]:
    api = mount.as_api()
    if mount.type == "volume":
        options = api.setdefault("VolumeOptions", {})
        options["Labels"] = {**(options.get("Labels") or {}), **volume_labels}
    return api


def _endpoint_spec(spec: ServiceSpec) -> dict[str, Any]:
    ports = [{"Protocol": p.protocol, "TargetPort": p.target, "PublishMode": spec.publish_mode,
              **({"PublishedPort": p.published} if p.published else {})} for p in spec.ports]
    return {"Mode": spec.endpoint_mode, "Ports": ports}


# What the SDK raises when the engine goes away: requests' and urllib3's connection and
# protocol errors, and the socket's own. Anything else from a call is a bug in envctl.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError, ConnectionError, TimeoutError,
)


class PathKinds:
    """`kind(path)` (or calling it): "dir", "file", "link" or None (missing) in an image, and `header(path)`,
    asked of a created container."""

    def __init__(self, engine: Engine, container: str, image: str) -> None:
        self.engine, self.container, self.image = engine, container, image

    def kind(self, path: str) -> str | None:
        return self.engine.path_kind(self.container, path, self.image)

    __call__ = kind

    def header(self, path: str) -> tarfile.TarInfo | None:
        return self.engine.path_header(self.container, path, self.image)

    def __enter__(self) -> "PathKinds":
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine._discard_container(self.container)


@contextlib.contextmanager
def _translated(context: str = "the Docker engine refused a request",
                explain: Callable[[docker.errors.APIError], EnvctlError | None] | None = None) -> Iterator[None]:
    """The one translation of the SDK's errors: a refusal becomes an `EnvctlError` (which `explain`
    may word better), a lost engine `EngineUnavailable`."""
    try:
        yield
    except docker.errors.APIError as exc:
        explained = explain(exc) if explain is not None else None
        raise (explained or _translate(exc, context)) from None
    except docker.errors.InvalidVersion as exc:  # the SDK's own check of the engine's API version
        raise EnvctlError(f"{context}: {exc}", fix="upgrade the engine to API 1.41 (Docker 20.10) or newer") from None
    except CONNECTION_ERRORS as exc:
        raise _unavailable(exc) from None


class PortTaken(EnvctlError):
    """A host port was in use when the engine went to publish it."""

    def __init__(self, message: str, *, fix: str, port: int | None) -> None:
        super().__init__(message, fix=fix)
        self.port = port


def engine_chose(port: int | None, bindings: dict[str, Any] | None) -> bool:
    """Whether host `port` was the engine's own choice (a binding without a port, or a range), not one named."""
    if port is None:
        return False
    host_ports = [str(b.get("HostPort") or "") for binds in (bindings or {}).values() for b in binds or []]
    return str(port) not in host_ports and any(not p or "-" in p for p in host_ports)


def _api_mount(mount: Mount) -> dict[str, Any]:
    return mount.as_api()


def _refused_for_a_moment(exc: BaseException) -> bool:
    """A refusal a retry may get past: a conflict (409: another removal or a state change under
    way) or the engine's own failure (500: e.g. a mount still busy on fuse-overlayfs)."""
    return (isinstance(exc, docker.errors.APIError) and exc.status_code in (409, 500)
            and "already in progress" not in str(exc))


def _removed_after_momentary_refusals(remove: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """`remove`, retried for a few seconds while the engine refuses it for a moment; absent counts as removed."""
    for attempt in Retrying(retry=retry_if_exception(_refused_for_a_moment), stop=stop_after_delay(REMOVAL_PATIENCE),
                            wait=wait_exponential(multiplier=0.1, max=1), reraise=True):
        with attempt:
            try:
                remove(*args, **kwargs)
            except docker.errors.NotFound:
                return


def _translated_stream(chunks: Iterable[Any]) -> Iterator[Any]:
    """A streamed answer (logs, exec output), read under the same translation as the call."""
    with _translated():
        yield from chunks


def engine_location() -> tuple[str, str]:
    """Where the engine answers, and what said so: $DOCKER_HOST, the docker CLI's context, or the platform's default.

    Docker Desktop sets a context ('desktop-linux') whose socket is under ~/.docker/run on
    macOS and Linux; Windows engines listen on a named pipe.
    """
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"], "$DOCKER_HOST"
    return local_engine_location()


def remote_host(url: str) -> str | None:
    """The host of a tcp://, http(s):// or ssh:// engine address; None for a local socket or pipe."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("tcp", "http", "https", "ssh"):
        return None
    host = rest.split("/")[0].rpartition("@")[2]
    host = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    return None if host in LOOPBACK_ADDRESSES else host


def local_engine_location() -> tuple[str, str]:
    """Where this machine's own engine answers (the docker CLI's context, or the platform's default)."""
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
        if context is not None and context.name != "default" and context.Host:
            return context.Host, f"docker context '{context.name}'"
    except Exception:  # noqa: BLE001 - a broken context store: fall back to the default, as the SDK does
        pass
    if sys.platform == "win32":
        return "npipe:////./pipe/docker_engine", "the Windows default"
    desktop = Path.home() / ".docker" / "run" / "docker.sock"
    if not Path("/var/run/docker.sock").exists() and desktop.exists():
        return f"unix://{desktop}", "Docker Desktop's socket"
    return "unix:///var/run/docker.sock", "the default socket"


def _follow_registry_stream(call: Callable, verb: str, ref: str, on_layer: LayerProgress | None,
                            *args: Any, **kwargs: Any) -> str:
    """Run a streaming pull or push; report layers; raise RegistryError on the stream's error."""
    digest = ""
    try:
        for chunk in call(*args, **kwargs):
            if "error" in chunk:
                raise _registry_error(verb, ref, chunk.get("error") or str(chunk.get("errorDetail")))
            digest = (chunk.get("aux") or {}).get("Digest") or digest
            if on_layer is not None and chunk.get("id") and chunk.get("status"):
                on_layer(chunk["id"], chunk["status"])
    except docker.errors.APIError as exc:  # the engine relays the registry's refusal as its own error
        raise _registry_error(verb, ref, _short(exc)) from None
    return digest


def _registry_reason(text: str) -> str | None:
    lowered = text.lower()
    for reason, phrases in REGISTRY_REASONS:
        if any(phrase in lowered for phrase in phrases):
            return reason
    return None


def _registry_error(verb: str, ref: str, text: str) -> RegistryError:
    reason = _registry_reason(text) or RegistryError.SERVER
    host = ref.split("/")[0] if "/" in ref and any(c in ref.split("/")[0] for c in ".:") else "Docker Hub"
    fixes = {
        RegistryError.NOT_FOUND: f"check the name and tag of {ref} (the registry {host} has no such image)",
        RegistryError.UNAUTHORIZED: f"log in with 'docker login {host}' (envctl uses the credentials it saves, "
                                    "credential helpers included; DOCKER_CONFIG points at another config)",
        RegistryError.UNREACHABLE: f"check that the registry {host} is running and reachable from the Docker engine",
        RegistryError.SERVER: f"the registry {host} failed; try again, or ask whoever runs it",
        RegistryError.REFUSED: f"the registry {host} does not accept this; check that it is writable and "
                               "that your login may push there",
    }
    what = {RegistryError.NOT_FOUND: "not found", RegistryError.UNAUTHORIZED: "not authorized",
            RegistryError.UNREACHABLE: "registry unreachable", RegistryError.SERVER: "registry error",
            RegistryError.REFUSED: "refused"}[reason]
    return RegistryError(f"cannot {verb} {ref}: {what} ({text.strip().splitlines()[0][:300] if text.strip() else '-'})",
                         reason=reason, fix=fixes[reason])


def _json_lines(response) -> Iterator[dict[str, Any]]:
    """The engine's progress stream: one JSON object per line."""
    for line in response.iter_lines():
        line = line.strip()
        if line:
            try:
                yield json.loads(line)
            except ValueError:
                yield {"stream": line.decode(errors="replace") + "\n"}


def _follow_build(response, log: IO[str], what: str) -> str | None:
    """Copy a build's output to `log`; the image id it ends with, or BuildFailed with its last lines."""
    tail: deque[str] = deque(maxlen=25)
    step = ""
    image_id = None
    for chunk in _json_lines(response):
        text = chunk.get("stream") or chunk.get("status") or ""
        if text:
            log.write(text)
            for line in text.splitlines():
                if line.strip():
                    tail.append(line.rstrip())
                if re.match(r"^Step \d+/\d+ :", line):
                    step = line.strip()
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        if "error" in chunk:
            log.write(chunk["error"] + "\n")
            raise _build_failed(what, step, list(tail) + [chunk["error"].strip()], log)
    return image_id


def _abort_when(cancel: threading.Event | None, response) -> threading.Event:
    """Shut the response's connection down once `cancel` is set; returns the event that ends the watch.

    Closing is not enough: a thread blocked reading a socket only wakes on shutdown.
    """
    done = threading.Event()
    if cancel is None:
        return done

    def watch() -> None:
        while not done.wait(0.1):
            if cancel.is_set():
                connection = getattr(response.raw, "connection", None) or getattr(response.raw, "_connection", None)
                sock = getattr(connection, "sock", None)
                try:
                    if sock is not None:
                        sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return

    threading.Thread(target=watch, name="envctl-build-cancel", daemon=True).start()
    return done


def context_paths(root: str, patterns: list[str], dockerfile: str | None) -> set[str]:
    """The paths under `root` a build context keeps after `.dockerignore`'s patterns, by the SDK's rules."""
    return exclude_paths(root, patterns, dockerfile=dockerfile)


def _port_key(key: str) -> tuple[int, str] | int:
    number, _, proto = key.partition("/")
    return (int(number), proto) if proto and proto != "tcp" else int(number)


def _short(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = explanation if isinstance(explanation, str) and explanation else str(exc)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _translate(exc: docker.errors.APIError, context: str = "the Docker engine refused a request") -> EnvctlError:
    return EnvctlError(f"{context}: {_short(exc)}")


def _unavailable(exc: BaseException) -> EngineUnavailable:
    return EngineUnavailable(
        f"lost the Docker engine: {_short(exc)}",
        fix="check that dockerd is running ('docker info'); 'envctl status' and 'envctl down' work again once it is back",
    )


def _build_failed(what: str, step: str, tail: Iterable[str], log: IO[str]) -> BuildFailed:
    log.flush()
    where = getattr(log, "name", "the build log")
    lines = "\n".join("    " + line for line in tail)
    return BuildFailed(
        f"building {what} failed" + (f" at {step}" if step else "") + f"; the last lines:\n{lines}",
        fix=f"fix the Dockerfile or the build context; the full log is {where}",
    )

