"""A real 3-node Docker Swarm on this machine, for the swarm backend's tests.

Three `dockerd` processes, each in its own network, mount and UTS namespace, joined by a
bridge in a "switch" namespace of its own, with Debian's `docker-registry` on the host's end
of the lab network (the recipe and its pitfalls: ../shared/notes/swarm-lab.md). The subnet
is in the benchmarking range 198.18.0.0/15: outside Docker's pools and the private ranges.

One lab at a time on a machine (a lock file); everything it makes is recorded in its
directory, and teardown goes by those PIDs, cgroups and namespaces, never by process name.
A lab left by a crashed session is taken down the same way by the next one (under the lock).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from envctl.backend.engine import PROJECT, Engine
from envctl.errors import EnvctlError

ROOT = Path(os.environ.get("ENVCTL_SWARMLAB_DIR", "/tmp/envctl-swarmlab"))
LOCK = Path("/tmp/envctl-swarmlab.lock")
SUBNET = "198.18.40"  # /24: .1 the host's leg (and the registry), .11-.13 the nodes
SWITCH = "envsw-br"  # namespace of the bridge
HOST_LEG = "envsw-h"
NODES = 3
REGISTRY_PORT = 5000
ENGINE_PORT = 2375  # a node's engine over TCP on its own address (the remote-engine tests): `Lab.serve_tcp`

# A forwarder from TCP to an engine's socket, run in a node's namespace. dockerd itself would
# listen on TCP too, but sleeps 15 s at start to warn that the port has no TLS.
_FORWARDER = """
import socket, socketserver, sys, threading
address, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def pump(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
class Relay(socketserver.BaseRequestHandler):
    def handle(self):
        engine = socket.socket(socket.AF_UNIX); engine.connect(path)
        threading.Thread(target=pump, args=(engine, self.request), daemon=True).start()
        pump(self.request, engine)
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True; daemon_threads = True
Server((address, port), Relay).serve_forever()
"""
TOOLS = ("ip", "nsenter", "unshare", "dockerd", "docker-registry")


def node_name(index: int) -> str:
    return f"envsw-n{index}"


def node_address(index: int) -> str:
    return f"{SUBNET}.1{index}"


def unavailable() -> str | None:
    """Why the lab cannot run here (None when it can): it needs root and a few tools."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the swarm lab needs root (network namespaces and dockerd processes of its own)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the swarm lab needs {', '.join(missing)} on PATH ('.ci/setup' installs them)"
    if not Path("/sys/fs/cgroup").is_dir():
        return "the swarm lab needs /sys/fs/cgroup"
    return None


def sh(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
    return result


@dataclass
class Lab:
    """A running lab: its nodes' engines, the registry, and what teardown needs."""

    root: Path
    engines: dict[int, Engine] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    local_registry_port: int = 0

    @property
    def registry(self) -> str:
        """HOST:PORT of the lab's registry as the nodes reach it."""
        return f"{SUBNET}.1:{REGISTRY_PORT}"

    @property
    def local_registry(self) -> str:
        """HOST:PORT of the same registry as the host's engine pushes to it."""
        return f"127.0.0.1:{self.local_registry_port}"

    def socket(self, index: int) -> str:
        return f"unix://{self.root / f'n{index}' / 'docker.sock'}"

    @property
    def manager(self) -> str:
        """DOCKER_HOST for the manager (node 1)."""
        return self.socket(1)

    def node_hosts(self) -> dict[str, str]:
        """Each node's hostname -> its engine's address (for exec and per-node volumes)."""
        return {node_name(i): self.socket(i) for i in range(1, NODES + 1)}

    def envctl_environment(self) -> dict[str, str]:
        """envctl's variables for a run on the lab: its manager, its registry (as this engine and nodes reach it)."""
        return {"DOCKER_HOST": self.manager, "ENVCTL_BACKEND": "swarm",
                "ENVCTL_REGISTRY": f"{self.local_registry}/lab", "ENVCTL_SWARM_REGISTRY": f"{self.registry}/lab",
                "ENVCTL_SWARM_NODES": ",".join(f"{k}={v}" for k, v in self.node_hosts().items())}

    def untag_pushed(self, local: Engine, project: str) -> None:
        """Remove the lab registry's names envctl gave `project`'s images on the local engine when pushing.

        A second name only: each image keeps its own."""
        for image in local.images({PROJECT: project}):
            for tag in image.get("RepoTags") or []:
                if tag.startswith(self.local_registry + "/"):
                    local.remove_image(tag)

    def serve_tcp(self, index: int) -> str:
        """Node `index`'s engine at tcp://ADDRESS:2375 (an engine on another host, as the host sees it)."""
        node = self.root / f"n{index}"
        command = ["nsenter", f"--net=/run/netns/{node_name(index)}", sys.executable, "-c", _FORWARDER,
                   node_address(index), str(ENGINE_PORT), str(node / "docker.sock")]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        _record(self.root, "forwarders", process.pid)
        url = f"tcp://{node_address(index)}:{ENGINE_PORT}"
        _poll(lambda: _engine_at(url), 10, f"the engine of {node_name(index)} over TCP", node / "dockerd.log")
        return url

    def kill_engine(self, index: int) -> None:
        """SIGKILL one node's dockerd (a lost node)."""
        os.kill(_read_pid(self.root / f"n{index}" / "docker.pid"), signal.SIGKILL)

    def restart_engine(self, index: int) -> None:
        """Start a killed node's engine again on its data root: it rejoins the swarm and stops its orphans."""
        self.engines[index] = _engine_up(self.root, index)

    def containers_on_nodes(self, label: str) -> dict[int, list[str]]:
        """Containers (any state) carrying `label` (KEY=VALUE) on each node's engine."""
        found = {}
        for index, engine in self.engines.items():
            key, _, value = label.partition("=")
            found[index] = [c.name for c in engine.containers({key: value})]
        return found


class LabLock:
    """One lab per machine: held for the lab's whole life."""

    def __init__(self, timeout: float = 600) -> None:
        self.timeout = timeout
        self.handle = None

    def __enter__(self) -> "LabLock":
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(LOCK, "w")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another swarm lab held {LOCK} for {self.timeout:g}s") from None
                time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        assert self.handle is not None
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# -- up -------------------------------------------------------------------------------------

def up(root: Path = ROOT) -> Lab:
    """Network, registry, engines, swarm: a lab ready for services. Call under `LabLock`."""
    down(root)  # a lab a crashed session left behind (recorded in `root`)
    root.mkdir(parents=True, exist_ok=True)
    lab = Lab(root)
    began = time.monotonic()
    try:
        _network_up(root)
        lab.local_registry_port = _free_port()
        _registry_up(root, lab.local_registry_port)
        with ThreadPoolExecutor(NODES) as pool:
            engines = list(pool.map(lambda i: _engine_up(root, i), range(1, NODES + 1)))
        lab.engines = dict(zip(range(1, NODES + 1), engines))
        lab.timings["engines"] = time.monotonic() - began
        _swarm_up(lab)
    except BaseException:
        down(root)
        raise
    lab.timings["up"] = time.monotonic() - began
    return lab


_recording = threading.Lock()  # the engines start in parallel


def _record(root: Path, key: str, value: object) -> None:
    """What teardown must find again, written before it exists (a crash in between still leaves a trail)."""
    path = root / "lab.json"
    with _recording:
        record = json.loads(path.read_text()) if path.exists() else {}
        record.setdefault(key, [])
        record[key].append(value)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(record))
        partial.replace(path)


def _network_up(root: Path) -> None:
    _record(root, "netns", SWITCH)
    sh("ip", "netns", "add", SWITCH)
    sh("ip", "-n", SWITCH, "link", "set", "lo", "up")
    sh("ip", "-n", SWITCH, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", SWITCH, "link", "set", "br0", "up")
    _record(root, "links", HOST_LEG)
    sh("ip", "link", "add", HOST_LEG, "type", "veth", "peer", "name", "hleg", "netns", SWITCH)
    sh("ip", "-n", SWITCH, "link", "set", "hleg", "master", "br0", "up")
    sh("ip", "addr", "add", f"{SUBNET}.1/24", "dev", HOST_LEG)
    sh("ip", "link", "set", HOST_LEG, "up")
    for index in range(1, NODES + 1):
        name = node_name(index)
        _record(root, "netns", name)
        sh("ip", "netns", "add", name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        # The node's end is eth0 inside it; the other end moves into the switch.
        sh("ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "link", "set", name, "netns", SWITCH)
        sh("ip", "-n", SWITCH, "link", "set", name, "master", "br0", "up")
        sh("ip", "-n", name, "addr", "add", f"{node_address(index)}/24", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        sh("ip", "-n", name, "route", "add", "default", "via", f"{SUBNET}.1")  # no NAT: nothing leaves


def _registry_up(root: Path, local_port: int) -> None:
    """One store, two listeners: the nodes' address, and 127.0.0.1 for the host's engine.

    The host's engine pushes over plain HTTP only to loopback (its insecure-registries are
    not ours to change); the nodes' engines are told the lab subnet is insecure."""
    data = root / "registry"
    data.mkdir(parents=True, exist_ok=True)
    for name, address in (("nodes", f"{SUBNET}.1:{REGISTRY_PORT}"), ("host", f"127.0.0.1:{local_port}")):
        config = data / f"{name}.yml"
        config.write_text(f"version: 0.1\nlog: {{level: warn}}\n"
                          f"storage: {{filesystem: {{rootdirectory: {data / 'data'}}}, delete: {{enabled: true}}}}\n"
                          f"http: {{addr: '{address}'}}\n")
        with open(data / f"{name}.log", "w") as log:
            process = subprocess.Popen([shutil.which("docker-registry") or "docker-registry", "serve", str(config)],
                                       stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        _record(root, "registry", process.pid)
        _poll(lambda: _answers(f"http://{address}/v2/"), 15, f"the lab's registry on {address}",
              data / f"{name}.log")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _engine_up(root: Path, index: int) -> Engine:
    node = root / f"n{index}"
    for sub in ("root", "exec"):
        (node / sub).mkdir(parents=True, exist_ok=True)
    name = node_name(index)
    config = {
        "data-root": str(node / "root"), "exec-root": str(node / "exec"), "pidfile": str(node / "docker.pid"),
        "hosts": [f"unix://{node / 'docker.sock'}"], "storage-driver": "overlay2",
        "cgroup-parent": f"{name}-cg",  # its containers' processes, found by cgroup at teardown
        "containerd-namespace": name, "containerd-plugins-namespace": f"{name}-plugins",
        "insecure-registries": [f"{SUBNET}.0/24"], "labels": ["envctl.swarmlab=1", f"node={name}"],
        "log-driver": "json-file", "log-opts": {"max-size": "1m", "max-file": "1"}, "mtu": 1500,
    }
    (node / "daemon.json").write_text(json.dumps(config))
    _record(root, "cgroups", f"{name}-cg")
    # `ip netns exec` remounts /sys and hides cgroup v1; nsenter does not. Its own mount
    # namespace keeps the containers' mounts out of the host's table; its own UTS, its hostname.
    command = ["nsenter", f"--net=/run/netns/{name}", "unshare", "--mount", "--uts", "--propagation", "slave",
               "--", "sh", "-c", f"hostname {name} && exec dockerd --config-file {node / 'daemon.json'}"]
    with open(node / "dockerd.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    _record(root, "engines", process.pid)  # nsenter and unshare exec: the pid is dockerd's
    engine = _poll(lambda: _engine_at(f"unix://{node / 'docker.sock'}"), 30, f"the engine of {name}",
                   node / "dockerd.log")
    _record(root, "mntns", os.readlink(f"/proc/{process.pid}/ns/mnt"))
    return engine


def _swarm_up(lab: Lab) -> None:
    began = time.monotonic()
    manager = f"{node_address(1)}:2377"
    token = lab.engines[1].swarm_init(node_address(1), manager, heartbeat=1.0)
    with ThreadPoolExecutor(NODES - 1) as pool:
        list(pool.map(lambda i: lab.engines[i].swarm_join(manager, token, node_address(i), f"{node_address(i)}:2377"),
                      range(2, NODES + 1)))

    def all_ready() -> bool:
        nodes = lab.engines[1].nodes()
        return len(nodes) == NODES and all(n["Status"]["State"] == "ready" for n in nodes)

    _poll(all_ready, 30, "the swarm's nodes", lab.root / "n1" / "dockerd.log")
    lab.timings["swarm"] = time.monotonic() - began


def _engine_at(url: str) -> Engine | None:
    try:
        return Engine.at(url, timeout=10)
    except EnvctlError:
        return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _poll(check, limit: float, what: str, log: Path):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    raise RuntimeError(f"{what} did not answer within {limit:g}s; {log}:\n" + "\n".join(tail))


# -- down -----------------------------------------------------------------------------------

def down(root: Path = ROOT) -> float:
    """Take down what `root`'s record names: processes by PID, cgroup and mount namespace, then namespaces."""
    began = time.monotonic()
    path = root / "lab.json"
    if not path.exists():
        return 0.0
    record = json.loads(path.read_text())
    for cgroup in record.get("cgroups", []):
        _kill_cgroup(cgroup)
    for pid in record.get("engines", []):
        _kill(pid, "dockerd")
    _wait_gone(record.get("engines", []), 15)
    _kill_in_namespaces(set(record.get("mntns", [])))
    for pid in record.get("forwarders", []):
        _kill(pid, "python")
    for pid in record.get("registry", []):
        _kill(pid, "docker-registry")
    _wait_gone(record.get("registry", []), 5)
    for cgroup in record.get("cgroups", []):
        _remove_cgroup(cgroup)
    for name in record.get("netns", []):
        sh("ip", "netns", "del", name, check=False)  # its veths and the bridge go with it
    for link in record.get("links", []):
        sh("ip", "link", "del", link, check=False)  # gone with the switch already, normally
    path.unlink()
    shutil.rmtree(root, ignore_errors=True)
    return time.monotonic() - began


def _read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def _kill(pid: int, expected: str) -> None:
    """SIGKILL `pid` if it still is the program we started (a PID may be reused after a crash)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return
    if Path(exe).name.startswith(expected):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead; PID 1 reaps it in its own time


def _wait_gone(pids: list[int], limit: float) -> None:
    deadline = time.monotonic() + limit
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        for pid in pids:  # our own children: reap them
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.05)


def _kill_cgroup(name: str) -> None:
    for procs in Path("/sys/fs/cgroup").glob(f"*/{name}/*/cgroup.procs"):
        try:
            pids = [int(p) for p in procs.read_text().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _kill_in_namespaces(namespaces: set[str]) -> None:
    """Leftovers of a killed engine (shims, docker-proxy): every process in its mount namespace."""
    namespaces.discard(os.readlink("/proc/self/ns/mnt"))  # never the host's own
    if not namespaces:
        return
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "mnt") in namespaces:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue


def _remove_cgroup(name: str) -> None:
    deadline = time.monotonic() + 5
    for top in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        for directory in [*sorted(top.glob("*/"), reverse=True), top]:
            while directory.exists():
                try:
                    directory.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
