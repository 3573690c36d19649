"""The Docker Swarm backend: the seam's containers as swarm services, one task each.

A service's "container" is a swarm service of the run, created at 0 replicas and started by
scaling it to 1 (Swarm has no order: envctl's DAG still decides when each starts). Its state
is its current task's: the node it runs on, that node's address for host-side consumers, the
ports published there. Each run is its own namespace on the cluster: services, an attachable
overlay network and the volumes nodes create carry the run's labels, so runs never collide.

Images envctl built on the local engine are pushed to the registry (by the content hash they
are tagged with) before a service names them; nodes pull from there.

Without IPVS in the nodes' kernels, Swarm's virtual IPs and its ingress routing mesh do not
carry traffic though tasks run. envctl detects it (`ipvs_missing`) and deploys every service
with `endpoint_mode: dnsrr` and host-mode ports, saying so; those work on every cluster, so
they are also the default where IPVS exists (a published port then holds its node).

The Docker SDK stays in `engine.py`: everything here is envctl's own data.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envctl.backend import engine as eng, swarmopts
from envctl.backend.engine import ContainerSpec, ContainerState, Engine, Mount, ServicePort, ServiceSpec, SwarmFile
from envctl.errors import EnvctlError, TopologyError
from envctl.topology.imageref import RegistryLocation
from envctl.topology.model import Topology

NODES_ENV = "ENVCTL_SWARM_NODES"  # hostname=DOCKER_HOST,...: nodes' engines, for exec and per-node volumes
PULL_REGISTRY_ENV = "ENVCTL_SWARM_REGISTRY"  # the registry as the nodes reach it, when not as envctl does
IPVS_PROC = Path("/proc/sys/net/ipv4/vs")
REMOVAL_PATIENCE = 30.0  # seconds for a removed service's tasks (and then its network) to go
SWARM_SERVICE_ID = "com.docker.swarm.service.id"  # on each task's container
TASK_OF = "envctl.swarm-service"  # on each task's container: its service's name
LEASE_LABELS = ("envctl.state", "envctl.owner", "envctl.expires")  # runtime/lease.py's, which sit above this seam

# Task states, as Swarm names them, to the container states envctl speaks of.
_WAITING = {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready"}
_STARTING = {"assigned", "accepted", "preparing", "ready", "starting"}  # on a node, its container on the way
_ENDED = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
UNPLACEABLE = "no suitable node"  # how the scheduler says a task cannot be placed (and why, after it)
NODES_FRESH = 1.0  # seconds the nodes' list (and their states) is trusted


def ipvs_missing(proc: Path = IPVS_PROC) -> bool:
    """Whether this kernel lacks IPVS (Swarm's VIPs and routing mesh need it).

    Asked of the machine envctl runs on; for a remote cluster the nodes' kernels decide, so
    envctl deploys as if it were missing unless told otherwise (see module docstring)."""
    return not proc.exists()


@dataclasses.dataclass(frozen=True)
class Task:
    """A service's current task, in envctl's terms."""

    state: str
    node: str | None  # hostname
    address: str | None  # the node's address
    node_down: bool
    container: str | None  # the container's id on its node
    exit_code: int | None
    error: str
    ports: dict[int, int]


class SwarmBackend:
    """A run's services on a swarm, reached through a manager's engine."""

    holds_at_gate = False  # a task's stdin cannot be held and released: services start plainly
    # Swarm puts a task in its service's DNS only once it saw it healthy: a dependent let go at
    # envctl's own first pass could not reach it yet (and a node's engine may be out of reach).
    execs_healthchecks = False

    def __init__(self, manager: Engine, images: Engine, registry: RegistryLocation | None,
                 pull_registry: RegistryLocation | None = None, node_engines: dict[str, str] | None = None) -> None:
        self.manager = manager
        self.builder = images  # the local engine, where envctl builds
        self.registry = registry
        self.pull_registry = pull_registry or registry or RegistryLocation("")
        self.node_urls = dict(node_engines or {})
        self._nodes: dict[str, Engine] = {}
        self._addresses: dict[str, tuple[str, str, bool]] = {}  # node id -> (hostname, address, down)
        self._nodes_seen = 0.0
        self._pushed: dict[str, str] = {}
        self._push_lock = threading.Lock()
        self._execs: dict[str, Engine] = {}
        self.notes = ["this cluster has no IPVS (or envctl cannot tell): services use endpoint_mode dnsrr and "
                      "host-mode published ports" if ipvs_missing() else
                      "services use endpoint_mode dnsrr and host-mode published ports (they work on any cluster)"]

    # -- what exists ------------------------------------------------------------------

    def containers(self, labels: dict[str, str]) -> list[ContainerState]:
        return [self._state(s) for s in self.manager.services(labels)]

    def exited_containers(self, labels: dict[str, str]) -> list[ContainerState]:
        return [c for c in self.containers(labels) if c.status in ("exited", "dead")]

    def container_state(self, container_id: str) -> ContainerState | None:
        service = self.manager.inspect_service(container_id)
        return self._state(service) if service is not None else None

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return {"Service": self.manager.inspect_service(container_id),
                "Tasks": self.manager.service_tasks(container_id)}

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return self.builder.inspect_image(ref)

    def networks(self, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return self.manager.networks(labels)

    def volumes(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """The run's volumes on every node envctl can reach (nodes create them as tasks land)."""
        found = {v["Name"]: v for v in self.manager.volumes(labels)}
        for engine in self._node_engines():
            found.update({v["Name"]: v for v in engine.volumes(labels)})
        return list(found.values())

    def granted_files(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """The secrets and configs `_granted` made, carrying all of `labels`."""
        return [{"Kind": kind, "ID": found["ID"], "Name": found["Spec"]["Name"],
                 "Labels": found["Spec"].get("Labels") or {}}
                for kind in ("secret", "config") for found in self.manager.swarm_files(kind, labels)]

    # -- making and starting ---------------------------------------------------------

    def create_network(self, name: str, labels: dict[str, str], *, driver: str | None = None,
                       options: dict[str, str] | None = None, internal: bool = False,
                       attachable: bool | None = None) -> str:
        # Every network of a run spans the nodes; attachable, so a debugging container may join it.
        return self.manager.create_network(name, labels, driver="overlay", options=options, internal=internal,
                                           attachable=True)

    def create_volume(self, name: str, labels: dict[str, str], *, driver: str | None = None,
                      options: dict[str, str] | None = None) -> None:
        """Nothing yet: each node creates the volume when a task mounts it, labelled as the service says."""

    def create_container(self, spec: ContainerSpec) -> str:
        return self.manager.create_service(self.service_spec(spec))

    def service_spec(self, spec: ContainerSpec) -> ServiceSpec:
        """`spec` as a swarm service: its image in the registry, dnsrr, host-mode ports, at 0 replicas."""
        ports = tuple(ServicePort(int(key.partition("/")[0]), host, key.partition("/")[2] or "tcp")
                      for key, (_, host) in spec.ports.items())
        container = dataclasses.replace(
            spec, image=self.pushed(spec.image),
            mounts=[*(m for m in spec.mounts if not m.grant), *swarmopts.extra_mounts(spec)],
            hostname=spec.hostname or "{{.Node.Hostname}}-" + spec.alias,  # logs and replies say where
            open_stdin=False)
        run_labels = _run_labels(spec.labels)
        return ServiceSpec(container, replicas=0, restart=swarmopts.restart_condition(spec), ports=ports,
                           max_per_node=1 if ports else 0, volume_labels=run_labels, task_labels={TASK_OF: spec.name},
                           files=tuple(self._granted(spec, m, run_labels) for m in spec.mounts if m.grant),
                           **swarmopts.service_options(spec))

    def _granted(self, spec: ContainerSpec, mount: Mount, run_labels: dict[str, str]) -> SwarmFile:
        """A granted file (secret, config) as a swarm one of the run: the nodes need nothing of this machine's.

        Its name says its service, target and content, so an unchanged one is used again; the run's
        teardown removes it by its labels (`granted_files`), after the services that use it."""
        path = Path(mount.source or "")
        data, stat = path.read_bytes(), path.stat()
        digest = hashlib.sha256(b"\0".join([spec.name.encode(), mount.target.encode(), data])).hexdigest()
        name = f"envctl-{digest[:24]}"
        file_id = self.manager.create_swarm_file(mount.grant or "secret", name, data, {**run_labels, TASK_OF: spec.name})
        return SwarmFile(mount.grant or "secret", file_id, name, mount.target, stat.st_uid, stat.st_gid,
                         stat.st_mode & 0o7777)

    def check(self, topology: Topology, services: list[str]) -> None:
        """Stop before anything is created if a service asks what a swarm service cannot do."""
        problems = swarmopts.refused(topology, services)
        if problems:
            raise TopologyError(problems)

    def start(self, container_id: str, what: str) -> None:
        self.manager.scale_service(container_id, 1)

    def release(self, container_id: str, word: bytes = b"go\n") -> None:
        raise EnvctlError("a swarm service cannot be held at the start gate", fix="this is a bug in envctl")

    def path_kind(self, container_id: str, path: str, what: str = "the container") -> str | None:
        raise EnvctlError("a swarm service cannot be held at the start gate", fix="this is a bug in envctl")

    # -- images ----------------------------------------------------------------------------

    def pushed(self, ref: str) -> str:
        """The name nodes pull `ref` by: an image envctl built is pushed to the registry (once)."""
        with self._push_lock:
            if ref not in self._pushed:
                self._pushed[ref] = self._push(ref)
            return self._pushed[ref]

    def _push(self, ref: str) -> str:
        image = self.builder.image_id(ref)
        labels = (self.builder.inspect_image(image).get("Config") or {}).get("Labels") or {} if image else {}
        if eng.PROJECT not in labels:
            return ref  # a registry's image: the nodes pull it themselves
        if self.registry is None:
            raise EnvctlError(f"the swarm's nodes pull {ref} from a registry, and none is named",
                              fix="name the registry envctl pushes to: 'registry: HOST[:PORT]/PREFIX' in the "
                              "topology, or $ENVCTL_REGISTRY")
        repository, _, tag = ref.rpartition(":")
        if "/" in tag or not repository:
            repository, tag = ref, "latest"
        target = self.registry.repository(repository)
        if not self.builder.registry_has(f"{target}:{tag}"):
            self.builder.tag(image, target, tag)
            self.builder.push(target, tag)
        return f"{self.pull_registry.repository(repository)}:{tag}"

    # -- using ---------------------------------------------------------------------------

    def exec(self, container_id: str, command: list[str], *, stream: bool = False) -> tuple[int | None, Any]:
        engine, container = self._task_container(container_id)
        code, output = engine.exec(container, command, stream=stream)
        if stream:
            self._execs[output[0]] = engine
        return code, output

    def exec_exit_code(self, exec_id: str) -> int | None:
        return self._execs[exec_id].exec_exit_code(exec_id)

    def logs(self, container_id: str, *, tail: int | str = "all", follow: bool = False,
             timestamps: bool = False) -> bytes | Iterator[bytes]:
        return self.manager.service_logs(container_id, tail=tail, follow=follow, timestamps=timestamps)

    # -- removing ----------------------------------------------------------------------

    def remove_container(self, container_id: str, grace: int = 2) -> None:
        """Remove the service, then its tasks' containers from the nodes envctl reaches.

        A node's agent removes a removed service's containers only seconds later (about 8 s in
        the lab); envctl stops and removes them itself, on the nodes it can reach, and waits."""
        self._stop_starting(container_id, grace)
        self.manager.remove_service(container_id)
        engines = [self.manager, *self._node_engines()]
        for engine in engines:
            for container in engine.containers({SWARM_SERVICE_ID: container_id}):
                with contextlib.suppress(EnvctlError):  # the agent got there first
                    engine.remove_container(container.id, grace=grace)
        deadline = time.monotonic() + grace + REMOVAL_PATIENCE
        while any(e.containers({SWARM_SERVICE_ID: container_id}) for e in engines):
            if time.monotonic() > deadline:
                raise EnvctlError(f"the tasks of service {container_id[:12]} were still on their nodes after "
                                  f"{grace + REMOVAL_PATIENCE:g}s", fix="look at 'docker service ps' on the manager")
            time.sleep(0.2)

    def _stop_starting(self, service_id: str, grace: int) -> None:
        """Scale to 0, and wait until no task is being started: one a node starts as its service goes
        (a crash-looping task's replacement) would leave its container behind, unseen by the removal."""
        with contextlib.suppress(EnvctlError):  # gone already
            self.manager.scale_service(service_id, 0)
            deadline = time.monotonic() + grace + REMOVAL_PATIENCE
            while time.monotonic() < deadline and any(
                    (t.get("Status") or {}).get("State") in _STARTING and not self._node(t.get("NodeID"))[2]
                    for t in self.manager.service_tasks(service_id)):
                time.sleep(0.1)

    def remove_network(self, network_id: str) -> None:
        """Remove the overlay, and wait until the swarm lets go of it.

        The manager may refuse while a node still holds an endpoint, or accept and keep the
        network until the removed tasks are accounted for: either way, ask again until it is gone."""
        deadline = time.monotonic() + REMOVAL_PATIENCE
        while True:
            try:
                self.manager.remove_network(network_id)
            except EnvctlError as exc:
                if "active endpoints" not in str(exc) and "not found" not in str(exc).lower():
                    raise
            if not any(n["Id"] == network_id for n in self.manager.networks()):
                return
            if time.monotonic() > deadline:
                raise EnvctlError(f"the swarm kept network {network_id[:12]} for {REMOVAL_PATIENCE:g}s",
                                  fix="look at 'docker network inspect' on the manager; 'envctl down' again removes it")
            time.sleep(0.2)

    def remove_granted_file(self, kind: str, file_id: str) -> None:
        self.manager.remove_swarm_file(kind, file_id)

    def remove_volume(self, name: str) -> None:
        for engine in [self.manager, *self._node_engines()]:
            if any(v["Name"] == name for v in engine.volumes({})):
                engine.remove_volume(name)

    # -- tasks and nodes -------------------------------------------------------------------

    def _state(self, service: dict[str, Any]) -> ContainerState:
        spec = service["Spec"]
        labels = spec.get("Labels") or {}
        container = spec["TaskTemplate"]["ContainerSpec"]
        task = self._task(service["ID"])
        status, health = _status(task, bool(container.get("Healthcheck")))
        detail = task.error or (f"its node {task.node} is down" if status == "lost" else None)
        return ContainerState(
            id=service["ID"], name=spec["Name"], service=labels.get(eng.SERVICE, ""), run=labels.get(eng.RUN, ""),
            status=status, exit_code=task.exit_code if status == "exited" else None, oom_killed=False,
            health=health, ports=task.ports if status == "running" else {}, image_id=container.get("Image", ""),
            labels=labels, node=task.node, address=task.address, detail=detail)

    def _task(self, service_id: str) -> Task:
        tasks = self.manager.service_tasks(service_id)
        if not tasks:
            return Task("created", None, None, False, None, None, "", {})
        # The newest task the swarm wants running, else the newest of all (a finished job's); but while
        # that one is still on its way, one that failed says why (its replacement would hide a crash until it too
        # fails). A job that completed on a later attempt is complete.
        wanted = [t for t in tasks if t.get("DesiredState") == "running"] or tasks
        task = _newest(wanted)
        failed = [t for t in tasks if (t.get("Status") or {}).get("State") == "failed"]
        if failed and (task.get("Status") or {}).get("State") in _WAITING | {"starting"}:
            task = _newest(failed)
        status = task.get("Status") or {}
        node, address, down = self._node(task.get("NodeID"))
        container = status.get("ContainerStatus") or {}
        ports = {p["TargetPort"]: p["PublishedPort"] for p in (status.get("PortStatus") or {}).get("Ports") or []
                 if p.get("Protocol", "tcp") == "tcp" and p.get("PublishedPort")}
        return Task(status.get("State", "new"), node, address, down, container.get("ContainerID"),
                    container.get("ExitCode"), status.get("Err") or "", ports)

    def _node(self, node_id: str | None) -> tuple[str | None, str | None, bool]:
        """The node's hostname, address, and whether the swarm has seen it go down."""
        if not node_id:
            return None, None, False  # a pending task has no node yet
        if node_id not in self._addresses or time.monotonic() - self._nodes_seen > NODES_FRESH:
            self._nodes_seen = time.monotonic()
            for node in self.manager.nodes():
                status = node.get("Status") or {}
                self._addresses[node["ID"]] = (node["Description"]["Hostname"], status.get("Addr"),
                                               status.get("State") == "down")
        return self._addresses.get(node_id, (None, None, False))

    def _node_engines(self) -> list[Engine]:
        return [self._node_engine(name) for name in self.node_urls]

    def _node_engine(self, hostname: str) -> Engine:
        if hostname not in self._nodes:
            self._nodes[hostname] = Engine.at(self.node_urls[hostname])
        return self._nodes[hostname]

    def _task_container(self, service_id: str) -> tuple[Engine, str]:
        task = self._task(service_id)
        if task.state != "running" or task.container is None or task.node is None:
            raise EnvctlError(f"service {service_id[:12]} has no running task", fix="check 'envctl status'")
        if task.node not in self.node_urls:
            raise EnvctlError(f"its task runs on node '{task.node}', whose engine envctl cannot reach",
                              fix=f"name the nodes' engines in ${NODES_ENV} (HOSTNAME=DOCKER_HOST,...)")
        return self._node_engine(task.node), task.container


def _run_labels(labels: dict[str, str]) -> dict[str, str]:
    """What a container's labels say of its run: project and run, and its lease (where the run's directory
    is, who owns it, when it expires). The run's volumes, secrets and configs carry them too, so that `gc`
    finds and judges a run by any of them, whatever else of it is gone."""
    # An allowlist: these labels cannot be changed later, and gc judges runs by them.
    return {k: v for k, v in labels.items() if k in (eng.MANAGED, eng.PROJECT, eng.RUN, *LEASE_LABELS)}


def _newest(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return max(tasks, key=lambda t: (t.get("Version") or {}).get("Index", 0))


def _status(task: Task, healthcheck: bool) -> tuple[str, str | None]:
    """The container status and health a task amounts to (a task with a healthcheck is 'starting' until healthy)."""
    if task.state == "pending" and UNPLACEABLE in task.error:
        return "dead", None  # `up` fails with the swarm's reason rather than wait for its patience to run out
    if task.node_down and task.state not in _ENDED:
        return "lost", None  # its node is down: the swarm replaces it (restart policy permitting)
    if task.state == "running":
        return "running", "healthy" if healthcheck else None
    if task.state == "starting":
        return ("running", "starting") if healthcheck else ("created", None)
    if task.state in _ENDED:
        return "exited", None
    return "created", None


def node_engines(text: str) -> dict[str, str]:
    """$ENVCTL_SWARM_NODES: HOSTNAME=DOCKER_HOST pairs, comma-separated."""
    pairs = [item.partition("=") for item in text.split(",") if item.strip()]
    if any(not sep or not name.strip() or not url.strip() for name, sep, url in pairs):
        raise EnvctlError(f"${NODES_ENV}: {text!r} is not HOSTNAME=DOCKER_HOST,...",
                          fix="e.g. node1=ssh://ci@node1,node2=tcp://10.0.0.2:2376")
    return {name.strip(): url.strip() for name, _, url in pairs}
