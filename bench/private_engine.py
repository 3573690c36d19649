"""A throw-away Docker engine in a network namespace of its own, for cold measurements.

    with PrivateEngine(Path("/tmp/x")) as engine:
        subprocess.run(engine.inside(["docker", "info"]), env={**os.environ, **engine.env()})

The host's engine is shared (CI and other runs use its images), so "an engine with no envctl
images" cannot be had by deleting images there. This starts a second `dockerd` from scratch:
its own data-root, exec-root, pidfile, socket, containerd namespace and cgroup parent, the
host engine's storage driver (fuse-overlayfs here, for a fair figure), in its own network
namespace (its bridge and iptables rules never touch the host's) and mount namespace (its
container mounts never appear in the host's table). The recipe is
/work/shared/notes/swarm-lab.md's "node-up", with one addition: outbound access, as the
host has it, for bootstraps (the Debian mirror) and pip: a veth pair to the host and
MASQUERADE for that /30 only (and FORWARD rules for that veth), removed at the end. Both ends
of the pair, and the engine's own bridge, take the MTU of the host's uplink: an end left at
the default 1500 behind a 1400 uplink announces a TCP MSS the uplink cannot carry back, and
each connection made from the namespace itself (mmdebstrap's apt, on the host side of the
engine) then waited 6.4 s for its first byte while the host and the containers waited 0.01 s.

Commands that must reach the engine's published ports on 127.0.0.1 run inside the
namespace (`inside`). Everything is stopped by PID (the engine's, then whatever is left in
its cgroup parent and mount namespace), then the namespace, the rules and the data-root go.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SUBNETS = {"cold": "198.18.213", "warm": "198.18.214", "probe": "198.18.215"}  # a /30 each: .1 host, .2 inside
BRIDGE_IP = "198.19.213.1/24"  # the engine's docker0, inside the namespace
POOLS = [{"base": "198.19.216.0/21", "size": 24}]  # networks envctl creates, inside the namespace
COMMENT = "envctl-bench-private-engine"
START_SECONDS = 60


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


def host_uplink() -> str:
    """The interface of the host's default route (how the host reaches the package mirror)."""
    route = _run("ip", "-j", "route", "show", "default").stdout
    return json.loads(route)[0]["dev"]


def link_mtu(interface: str) -> int:
    return int(Path(f"/sys/class/net/{interface}/mtu").read_text())


def _nat_rules(uplink: str, leg: str, subnet: str) -> list[list[str]]:
    """(table, chain, rule...) for one /30 only: forwarded out and back, masqueraded on the uplink."""
    mark = ["-m", "comment", "--comment", COMMENT]
    return [["filter", "FORWARD", "-i", leg, "-o", uplink, *mark, "-j", "ACCEPT"],
            ["filter", "FORWARD", "-i", uplink, "-o", leg, "-m", "conntrack", "--ctstate",
             "RELATED,ESTABLISHED", *mark, "-j", "ACCEPT"],
            ["nat", "POSTROUTING", "-s", f"{subnet}.0/30", "-o", uplink, *mark, "-j", "MASQUERADE"]]


class PrivateEngine:
    """One fresh engine; `with` it so that it is always torn down."""

    def __init__(self, directory: Path, role: str = "cold", storage_driver: str = "fuse-overlayfs",
                 mtu: int | None = None) -> None:
        self.directory = directory
        self.namespace, self.leg, self.subnet = f"envbench-{role}", f"envbench-{role}-h"[:15], SUBNETS[role]
        self.storage_driver = storage_driver
        self.uplink = host_uplink()
        self.mtu = mtu or link_mtu(self.uplink)  # as the host's own traffic sees the network
        self.socket = directory / "docker.sock"
        self.cgroup_parent = f"{self.namespace}-{os.getpid()}"
        self.process: subprocess.Popen | None = None
        self.mount_namespace = ""
        self.start_seconds = 0.0

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": f"unix://{self.socket}"}

    def inside(self, argv: list[str]) -> list[str]:
        """`argv` run in the engine's network namespace (the host's mounts, so /sys stays as it is)."""
        return ["nsenter", f"--net=/run/netns/{self.namespace}", *argv]

    def __enter__(self) -> "PrivateEngine":
        started = time.perf_counter()
        try:
            self._network_up()
            self._engine_up()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.perf_counter() - started
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- up ---------------------------------------------------------------------------------

    def _network_up(self) -> None:
        if Path(f"/run/netns/{self.namespace}").exists():
            raise SystemExit(f"network namespace {self.namespace} exists: another benchmark runs, or one was "
                             f"killed (remove it with 'ip netns del {self.namespace}' once nothing uses it)")
        _run("ip", "netns", "add", self.namespace)
        _run("ip", "-n", self.namespace, "link", "set", "lo", "up")
        _run("ip", "link", "add", self.leg, "mtu", str(self.mtu), "type", "veth", "peer", "name", "eth0",
             "mtu", str(self.mtu), "netns", self.namespace)
        _run("ip", "addr", "add", f"{self.subnet}.1/30", "dev", self.leg)
        _run("ip", "link", "set", self.leg, "up")
        _run("ip", "-n", self.namespace, "addr", "add", f"{self.subnet}.2/30", "dev", "eth0")
        _run("ip", "-n", self.namespace, "link", "set", "eth0", "up")
        _run("ip", "-n", self.namespace, "route", "add", "default", "via", f"{self.subnet}.1")
        for table, chain, *rule in _nat_rules(self.uplink, self.leg, self.subnet):
            _run("iptables", "-t", table, "-I", chain, "1", *rule)

    def _engine_up(self) -> None:
        for part in ("root", "exec"):
            (self.directory / part).mkdir(parents=True, exist_ok=True)
        config = self.directory / "daemon.json"
        config.write_text(json.dumps({
            "data-root": str(self.directory / "root"), "exec-root": str(self.directory / "exec"),
            "pidfile": str(self.directory / "docker.pid"), "hosts": [f"unix://{self.socket}"],
            "storage-driver": self.storage_driver, "cgroup-parent": self.cgroup_parent,
            "containerd-namespace": self.cgroup_parent, "containerd-plugins-namespace": f"{self.cgroup_parent}-p",
            "bip": BRIDGE_IP, "default-address-pools": POOLS, "mtu": self.mtu,
            "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"},
        }, indent=1))
        # not `ip netns exec`: it remounts /sys and hides cgroup v1 (swarm-lab.md, pitfall 1)
        command = ["nsenter", f"--net=/run/netns/{self.namespace}", "unshare", "--mount", "--propagation", "slave",
                   "--", "dockerd", "--config-file", str(config)]
        log = open(self.directory / "dockerd.log", "w")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the private dockerd exited; see {self.directory / 'dockerd.log'}")
            if _run("docker", "-H", f"unix://{self.socket}", "version", check=False).returncode == 0:
                self.mount_namespace = os.readlink(f"/proc/{self.process.pid}/ns/mnt")
                return
            time.sleep(0.25)
        raise SystemExit(f"the private dockerd did not answer in {START_SECONDS} s; see {self.directory}/dockerd.log")

    def info(self) -> dict:
        out = _run("docker", "-H", f"unix://{self.socket}", "info", "--format", "{{json .}}").stdout
        return json.loads(out)

    # -- down -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Everything this engine started, by PID; then its namespace, rules and data-root."""
        self._kill_cgroup()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._kill_mount_namespace()
        self._remove_cgroup()
        for table, chain, *rule in _nat_rules(self.uplink, self.leg, self.subnet):
            _run("iptables", "-t", table, "-D", chain, *rule, check=False)
        _run("ip", "link", "del", self.leg, check=False)
        _run("ip", "netns", "del", self.namespace, check=False)
        if not any(str(self.directory) in line for line in Path("/proc/mounts").read_text().splitlines()):
            shutil.rmtree(self.directory, ignore_errors=True)

    def _cgroup_directories(self) -> list[Path]:
        return [d for d in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}") if d.is_dir()]

    def _kill_cgroup(self) -> None:
        """The containers' processes, found by the engine's cgroup parent."""
        for directory in self._cgroup_directories():
            for procs in directory.rglob("cgroup.procs"):
                for pid in procs.read_text().split():
                    _kill(int(pid))

    def _kill_mount_namespace(self) -> None:
        """What outlived dockerd in its mount namespace: containerd, shims, fuse-overlayfs, docker-proxy."""
        own = os.readlink("/proc/self/ns/mnt")
        if not self.mount_namespace or self.mount_namespace == own:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            left = [pid for pid in _pids() if _mount_namespace(pid) == self.mount_namespace and not _zombie(pid)]
            if not left:
                return
            for pid in left:
                _kill(pid)
            time.sleep(0.25)

    def _remove_cgroup(self) -> None:
        deadline = time.monotonic() + 10
        while self._cgroup_directories() and time.monotonic() < deadline:
            for directory in self._cgroup_directories():
                for child in sorted(directory.rglob("*"), key=lambda p: -len(p.parts)):
                    if child.is_dir():
                        _rmdir(child)
                _rmdir(directory)
            time.sleep(0.25)


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _mount_namespace(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return ""


def _zombie(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
