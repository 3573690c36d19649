"""The typed topology: what `envctl.yaml` says once loaded, interpolated and validated."""
from __future__ import annotations

import ipaddress
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
    target: str | None = None  # the stage to build, as `docker build --target`
    labels: tuple[tuple[str, str], ...] = ()
    cache_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """A Compose config: a file, an inline text or a host variable, mounted into services that name it."""

    name: str
    file: Path | None = None
    content: str | None = None
    environment: str | None = None


@dataclass(frozen=True)
class Secret:
    """A value a build may read and no image or output may keep: from a file or the host environment."""

    name: str
    file: Path | None = None
    environment: str | None = None  # the host variable's name
    value: str | None = field(default=None, repr=False, compare=False)  # None: the file or variable is missing


LOOPBACK = "127.0.0.1"
EVERY_ADDRESS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class PortSpec:
    container: int
    host: int | None = None  # None: an ephemeral port chosen by the engine
    protocol: str = "tcp"
    host_ip: str = LOOPBACK  # where it is published: 127.0.0.1 unless the file asks (and may) for another

    @property
    def reach(self) -> str:
        """The address the host dials for it: loopback when published on every address."""
        return LOOPBACK if self.host_ip in EVERY_ADDRESS else self.host_ip

    @property
    def beyond_loopback(self) -> bool:
        """Whether other machines may reach it (which needs the user's opt-in)."""
        return not ipaddress.ip_address(self.host_ip).is_loopback


CMD_PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Probe:
    """A readiness check run from the host side: http, tcp, or a command in the container."""

    kind: str  # "http", "tcp" or "cmd"
    port: int | None = None
    path: str = "/"
    command: tuple[str, ...] = ()
    timeout: float = 120.0
    interval: float = 0.5  # the slowest poll interval; polling starts much faster
    # `cmd`: how long one run may take before it counts as failed (and is tried again); as a
    # Docker healthcheck's default timeout, which a command written for one expects.
    cmd_timeout: float = CMD_PROBE_TIMEOUT


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
    required: bool = True  # False: a missing dependency is a warning, as in Compose
    restart: bool = False  # Compose's "restart me when it restarts": envctl recreates dependents anyway


@dataclass(frozen=True)
class Mount:
    kind: str  # "volume", "bind", "anonymous" or "tmpfs"
    target: str
    source: str | None = None  # volume name, or absolute host path for a bind
    read_only: bool = False
    selinux: str | None = None  # "z" (shared) or "Z" (private) relabelling of a bind
    propagation: str | None = None  # a bind's mount propagation, e.g. "rprivate"
    nocopy: bool = False  # a volume is not filled from the image's files
    subpath: str | None = None  # a volume's sub-directory
    tmpfs_size: int | None = None  # bytes, for a tmpfs
    tmpfs_mode: int | None = None


@dataclass(frozen=True)
class FileGrant:
    """A secret or config a service reads: the top-level one's `source`, at `target` in the container."""

    source: str
    target: str
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None


@dataclass(frozen=True)
class NetworkAttachment:
    """A service on one network: the top-level network's name, and the extra names it has there."""

    name: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None


@dataclass(frozen=True)
class Network:
    """A top-level network: created per run, unless `external` (then used as it is, by `external_name`)."""

    name: str
    external: bool = False
    external_name: str | None = None
    driver: str | None = None
    driver_opts: tuple[tuple[str, str], ...] = ()
    internal: bool = False
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Volume:
    """A top-level volume's options: created per run, unless `external` (then used as it is)."""

    name: str
    external: bool = False
    external_name: str | None = None
    driver: str | None = None
    driver_opts: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class RestartPolicy:
    name: str  # "no", "always", "on-failure" or "unless-stopped", as the engine names them
    max_retries: int = 0


@dataclass(frozen=True)
class ContainerOptions:
    """Compose's keys for how one container runs; mapped to the engine in one place (envctl.containeropts)."""

    restart: RestartPolicy | None = None
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    read_only: bool = False
    tmpfs: tuple[tuple[str, str], ...] = ()  # (path, mount options)
    security_opt: tuple[str, ...] = ()
    log_driver: str | None = None
    log_options: tuple[tuple[str, str], ...] = ()
    expose: tuple[str, ...] = ()  # "3306/tcp"
    extra_hosts: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    ulimits: tuple[Ulimit, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    shm_size: int | None = None
    stdin_open: bool = False
    tty: bool = False
    cpus: float | None = None
    mem_reservation: int | None = None
    pids_limit: int | None = None
    domainname: str | None = None
    # deploy.placement and deploy.resources.reservations.cpus: a swarm's scheduler honours them, one engine ignores them
    placement: tuple[str, ...] = ()  # constraints, e.g. "node.labels.zone == eu"
    placement_spread: tuple[str, ...] = ()  # spread preferences, e.g. "node.labels.zone"
    cpu_reservation: float | None = None


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
    platform: str | None = None  # 'linux/arm64': its image made for it; None: the run's platform
    container_name: str | None = None  # a name other services reach it by (the real name stays per run)
    hostname: str | None = None
    networks: tuple[NetworkAttachment, ...] = ()  # (): the run's own network only
    scale: int = 1  # containers of this service, all reachable by its name
    secrets: tuple[FileGrant, ...] = ()
    configs: tuple[FileGrant, ...] = ()
    links: tuple[str, ...] = ()  # "SERVICE" or "SERVICE:ALIAS"
    options: ContainerOptions = ContainerOptions()

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
class Volatile:
    """Request fields that change on every run: left out of matching, kept or replaced when recorded."""

    json_paths: tuple[str, ...] = ()  # $.a.b, $.items[0].id, $.items[*].id
    headers: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    form: tuple[str, ...] = ()
    recorded_as: str = "kept"  # or "placeholder"


@dataclass(frozen=True)
class Fault:
    latency_ms: int = 0
    error_rate: float = 0.0
    seed: int | None = None  # the error rate's dice; None: a new draw every run


@dataclass(frozen=True)
class FaultStep:
    """One rule of a named fault scenario: the next `times` matching requests get `kind`."""

    kind: str = "status"  # status | reset | delay
    method: str | None = None
    path: str | None = None  # a trailing '*' matches a prefix
    status: int = 503
    delay_ms: int = 0
    times: int | None = 1  # None: every matching request until the test resets the mock
    probability: float = 1.0
    seed: int | None = None


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
    volatile: Volatile = Volatile()
    fault: Fault = Fault()
    scenarios: tuple[tuple[str, tuple[FaultStep, ...]], ...] = ()  # named fault scenarios, started by tests
    replay_latency: bool = False  # replayed answers wait as long as the upstream took when recorded
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
    backend: str | None = None  # where runs go: "engine" (the local engine) or "swarm"; None: the default
    networks: dict[str, Network] = field(default_factory=dict)
    volume_options: dict[str, Volume] = field(default_factory=dict)  # volumes declared with options
    configs: dict[str, Config] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """The directory the topology's relative paths start from."""
        return self.file.parent

    def ports_of(self, name: str) -> tuple[PortSpec, ...]:
        if name in self.services:
            return self.services[name].ports
        return self.mocks[name].ports

    def reach(self, name: str, container_port: int | None = None) -> str:
        """The address the host dials for `name`'s port (default: its first): 127.0.0.1 unless the
        file publishes it on another."""
        known = name in self.services or name in self.mocks
        specs = [p for p in (self.ports_of(name) if known else ()) if container_port in (None, p.container)]
        return specs[0].reach if specs else LOOPBACK
