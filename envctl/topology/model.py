"""The typed topology: what `envctl.yaml` says once loaded, interpolated and validated."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from envctl.topology.interpolation import Template

# The port every mock container serves on inside the run's network.
MOCK_PORT = 8080

# depends_on conditions, with Compose's names.
STARTED = "service_started"
READY = "service_healthy"
COMPLETED = "service_completed_successfully"
CONDITIONS = (STARTED, READY, COMPLETED)

# Compose's pull_policy values.
PULL_POLICIES = ("always", "missing", "never", "build")


@dataclass(frozen=True)
class Bootstrap:
    """A root filesystem made from a distribution's package mirror (no registry)."""

    distro: str
    suite: str
    packages: tuple[str, ...] = ()
    mirror: str | None = None
    variant: str = "minbase"


@dataclass(frozen=True)
class Base:
    """A shared image every service image can build on."""

    name: str
    bootstrap: Bootstrap | None = None
    image: str | None = None
    parent: str | None = None  # `from:` another base
    dockerfile: Path | None = None
    context: Path | None = None
    args: tuple[tuple[str, str], ...] = ()
    trust_host_ca: bool = True


@dataclass(frozen=True)
class Build:
    context: Path
    dockerfile: str = "Dockerfile"  # relative to the context, as in Compose
    args: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()  # names from the top-level `secrets:`, for RUN --mount=type=secret
    ssh: tuple[str, ...] = ()  # "default" (the host's $SSH_AUTH_SOCK) or "ID=/path/to/agent.sock"


@dataclass(frozen=True)
class Secret:
    """A value a build may read and no image or output may keep: from a file or the host environment."""

    name: str
    file: Path | None = None
    environment: str | None = None  # the host variable's name
    value: str | None = field(default=None, repr=False, compare=False)  # None: the file or variable is missing


@dataclass(frozen=True)
class PortSpec:
    container: int
    host: int | None = None  # None: an ephemeral port chosen by the engine
    protocol: str = "tcp"


@dataclass(frozen=True)
class Probe:
    """A readiness check run from the host side: http, tcp, or a command in the container."""

    kind: str  # "http", "tcp" or "cmd"
    port: int | None = None
    path: str = "/"
    command: tuple[str, ...] = ()
    timeout: float = 120.0
    interval: float = 0.5  # the slowest poll interval; polling starts much faster


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]
    interval: float | None = None
    timeout: float | None = None
    retries: int | None = None
    start_period: float | None = None
    disable: bool = False


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str = READY


@dataclass(frozen=True)
class Mount:
    kind: str  # "volume", "bind" or "anonymous"
    target: str
    source: str | None = None  # volume name, or absolute host path for a bind
    read_only: bool = False


@dataclass(frozen=True)
class Service:
    name: str
    line: int | None = field(default=None, compare=False)  # where it is defined, for messages
    image: str | None = None
    build: Build | None = None
    base: str | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[tuple[str, Template], ...] = ()
    ports: tuple[PortSpec, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    healthcheck: Healthcheck | None = None
    volumes: tuple[Mount, ...] = ()
    working_dir: str | None = None
    user: str | None = None
    init: bool = True
    profiles: tuple[str, ...] = ()
    probe: Probe | None = None
    stop_grace_period: float = 2.0
    stop_signal: str | None = None  # default: the image's, else SIGTERM
    mem_limit: int | None = None  # bytes; the container gets no swap beyond it
    docker_socket: bool = False  # the topology explicitly allows mounting the engine's socket
    pull_policy: str = "missing"  # Compose's: always, missing, never, build

    def port(self, container_port: int | None = None) -> PortSpec | None:
        """The port spec for `container_port`, or the first port when None."""
        for spec in self.ports:
            if container_port is None or spec.container == container_port:
                return spec
        return None


@dataclass(frozen=True)
class Scrub:
    headers: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    body_json_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fault:
    latency_ms: int = 0
    error_rate: float = 0.0


@dataclass(frozen=True)
class Mock:
    """A recorded-HTTP stand-in for an external API."""

    name: str
    cassettes: Path
    line: int | None = field(default=None, compare=False)  # where it is defined, for messages
    upstream: str | None = None
    match_on: tuple[str, ...] = ("method", "scheme", "host", "port", "path", "query")
    allow_repeats: bool = True
    strict: bool = False
    scrub: Scrub = Scrub()
    fault: Fault = Fault()
    base: str | None = None

    @property
    def ports(self) -> tuple[PortSpec, ...]:
        return (PortSpec(MOCK_PORT),)


@dataclass(frozen=True)
class Topology:
    name: str
    file: Path
    bases: dict[str, Base] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    mocks: dict[str, Mock] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    secrets: dict[str, Secret] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # What loading changed or ignored to run the file as envctl does (`envctl config` lists it).
    notes: tuple[str, ...] = field(default=(), compare=False)
    files: tuple[Path, ...] = field(default=(), compare=False)  # every file named or found (`file` is the first)
    registry: str | None = None  # HOST[:PORT]/PREFIX that `envctl push` pushes to
    cache: str | None = None  # HOST[:PORT]/PREFIX of the shared content-hash image cache

    @property
    def root(self) -> Path:
        """The directory the topology's relative paths start from."""
        return self.file.parent

    def ports_of(self, name: str) -> tuple[PortSpec, ...]:
        if name in self.services:
            return self.services[name].ports
        return self.mocks[name].ports
