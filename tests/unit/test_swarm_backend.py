"""The swarm backend: the seam as declared, services as envctl means them, tasks read as containers."""
import inspect

import pytest

from envctl.backend import engine as eng
from envctl.backend.base import Backend
from envctl.backend.engine import ContainerSpec, ServicePort
from envctl.backend.swarm import SwarmBackend, Task, _status, ipvs_missing, node_engines
from envctl.errors import EnvctlError
from envctl.topology.imageref import RegistryLocation

SEAM = [name for name, member in vars(Backend).items() if inspect.isfunction(member) and not name.startswith("_")]


class LocalImages:
    """The local engine, as far as pushing asks: one image of the project, one from a registry."""

    def __init__(self) -> None:
        self.pushed: list[str] = []

    def image_id(self, ref):
        return {"shop/api:abc123": "sha256:1", "postgres:16": "sha256:2"}.get(ref)

    def inspect_image(self, ref):
        return {"Config": {"Labels": {eng.PROJECT: "shop"} if ref == "sha256:1" else {}}}

    def registry_has(self, ref):
        return False

    def tag(self, image, repository, tag):
        pass

    def push(self, repository, tag):
        self.pushed.append(f"{repository}:{tag}")


def backend() -> tuple[SwarmBackend, LocalImages]:
    images = LocalImages()
    return SwarmBackend(None, images, RegistryLocation("127.0.0.1:5001", "lab"),  # type: ignore[arg-type]
                        RegistryLocation("198.18.40.1:5000", "lab")), images


def test_the_swarm_backend_implements_every_method_of_the_seam_as_declared() -> None:
    for name in SEAM:
        declared, implemented = inspect.signature(getattr(Backend, name)), inspect.signature(getattr(SwarmBackend, name))
        assert list(declared.parameters) == list(implemented.parameters), name
    assert SwarmBackend.holds_at_gate is False


def test_a_service_is_created_stopped_on_dnsrr_with_host_ports_and_its_image_from_the_registry() -> None:
    swarm, images = backend()
    spec = ContainerSpec(name="envctl-shop-r1-api", image="shop/api:abc123", network="envctl-shop-r1", alias="api",
                         labels=eng.run_labels("shop", "r1", "api"), ports={"8000/tcp": ("127.0.0.1", None)},
                         host_options={"restart_policy": {"Name": "on-failure"}})
    service = swarm.service_spec(spec)
    assert (service.replicas, service.endpoint_mode, service.publish_mode, service.restart) == (0, "dnsrr", "host",
                                                                                                "on-failure")
    plain = swarm.service_spec(ContainerSpec(name="w", image="postgres:16", network="n", alias="w", labels={}))
    assert plain.restart == "on-failure"  # restart: no would leave a lost node's task unreplaced
    assert service.ports == (ServicePort(8000, None, "tcp"),) and service.max_per_node == 1
    assert service.container.image == "198.18.40.1:5000/lab/shop/api:abc123"
    assert images.pushed == ["127.0.0.1:5001/lab/shop/api:abc123"]
    assert service.container.hostname == "{{.Node.Hostname}}-api"
    assert eng.SERVICE not in service.volume_labels and service.volume_labels[eng.RUN] == "r1"
    assert eng.RUN not in service.task_labels  # each node's engine must not see the run's containers as its own
    swarm.service_spec(spec)
    assert len(images.pushed) == 1  # once per image


def test_a_registry_image_is_left_for_the_nodes_to_pull() -> None:
    swarm, images = backend()
    spec = ContainerSpec(name="db", image="postgres:16", network="n", alias="db", labels={})
    assert swarm.service_spec(spec).container.image == "postgres:16" and images.pushed == []


@pytest.mark.parametrize(("state", "healthcheck", "expected"), [
    ("running", False, ("running", None)), ("running", True, ("running", "healthy")),
    ("starting", True, ("running", "starting")), ("starting", False, ("created", None)),
    ("pending", False, ("created", None)), ("complete", False, ("exited", None)),
    ("rejected", False, ("exited", None)), ("failed", True, ("exited", None)),
])
def test_a_task_reads_as_a_container(state: str, healthcheck: bool, expected: tuple) -> None:
    assert _status(Task(state, None, None, False, None, None, "", {}), healthcheck) == expected


def test_a_task_no_node_can_take_is_dead_with_the_swarm_s_reason() -> None:
    reason = "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    assert _status(Task("pending", None, None, False, None, None, reason, {}), False) == ("dead", None)


def test_a_task_on_a_lost_node_is_lost() -> None:
    assert _status(Task("running", "n3", "10.0.0.3", True, None, None, "", {}), False) == ("lost", None)


def test_node_engines_are_named_pairs() -> None:
    assert node_engines("a=unix:///a.sock, b=tcp://10.0.0.2:2376") == {"a": "unix:///a.sock",
                                                                       "b": "tcp://10.0.0.2:2376"}
    assert node_engines("") == {}
    with pytest.raises(EnvctlError, match="HOSTNAME=DOCKER_HOST"):
        node_engines("just-a-host")


def test_ipvs_is_missing_where_the_kernel_has_no_table(tmp_path) -> None:
    assert ipvs_missing(tmp_path / "vs")
    (tmp_path / "vs").mkdir()
    assert not ipvs_missing(tmp_path / "vs")


def test_pushing_without_a_registry_says_which_to_name() -> None:
    swarm = SwarmBackend(None, LocalImages(), None)  # type: ignore[arg-type]
    with pytest.raises(EnvctlError, match="none is named") as raised:
        swarm.pushed("shop/api:abc123")
    assert "ENVCTL_REGISTRY" in (raised.value.fix or "")


def write_topology(tmp_path, backend_line: str):
    from envctl.topology import load_topology

    (tmp_path / "envctl.yaml").write_text(f"name: shop\n{backend_line}services:\n  api: {{image: 'nginx:1'}}\n")
    return load_topology(tmp_path / "envctl.yaml", environ={})


def test_the_backend_is_the_flag_else_the_environment_else_the_file_else_the_engine(tmp_path, monkeypatch) -> None:
    from envctl.runtime.backends import BACKEND_ENV, choice

    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert choice(write_topology(tmp_path, "")) == "engine"
    topology = write_topology(tmp_path, "backend: swarm\n")
    assert choice(topology) == "swarm"
    monkeypatch.setenv(BACKEND_ENV, "engine")
    assert choice(topology) == "engine" and choice(topology, "swarm") == "swarm"
    monkeypatch.setenv(BACKEND_ENV, "k8s")
    with pytest.raises(EnvctlError, match=r"\$ENVCTL_BACKEND: unknown backend 'k8s'"):
        choice(topology)


def test_an_unknown_backend_in_the_file_is_a_topology_error(tmp_path) -> None:
    from envctl.errors import TopologyError

    with pytest.raises(TopologyError, match="unknown backend 'nomad'"):
        write_topology(tmp_path, "backend: nomad\n")


@pytest.mark.parametrize(("url", "host"), [
    ("tcp://10.1.2.3:2375", "10.1.2.3"), ("ssh://ci@build1", "build1"), ("ssh://ci@build1:2222", "build1"),
    ("tcp://[fd00::1]:2376", "fd00::1"), ("unix:///var/run/docker.sock", None), ("tcp://127.0.0.1:2375", None),
    ("npipe:////./pipe/docker_engine", None),
])
def test_a_remote_engine_is_known_by_its_address(url: str, host: str | None) -> None:
    assert eng.remote_host(url) == host


def remote_engine(monkeypatch, **env):
    for key in (eng.HOST_ADDRESS_ENV, eng.PUBLISH_ADDRESS_ENV):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    class Client:
        api = None
    return eng.Engine(Client(), "tcp://10.1.2.3:2375")  # type: ignore[arg-type]


def test_a_remote_engine_publishes_beyond_its_loopback_only_when_told(monkeypatch) -> None:
    engine = remote_engine(monkeypatch)
    assert engine.address == "10.1.2.3"
    with pytest.raises(EnvctlError, match="on another host") as raised:
        engine._published_on("api", "127.0.0.1", None)
    assert eng.PUBLISH_ADDRESS_ENV in (raised.value.fix or "")
    engine = remote_engine(monkeypatch, ENVCTL_PUBLISH_ADDRESS="10.1.2.3", ENVCTL_HOST_ADDRESS="203.0.113.7")
    assert engine._published_on("api", "127.0.0.1", 8080) == ("10.1.2.3", 8080)
    assert engine.address == "203.0.113.7"  # through a NAT: where the host dials


def test_runtime_keys_placement_and_resources_become_the_service_s() -> None:
    swarm, _ = backend()
    spec = ContainerSpec(
        name="w", image="postgres:16", network="n", alias="w", labels={}, mem_limit=256 << 20, tty=True,
        host_options={"cap_add": ["SYS_TIME"], "cap_drop": ["NET_RAW"], "sysctls": {"net.core.somaxconn": "1024"},
                      "ulimits": [{"name": "nofile", "soft": 10, "hard": 20}], "read_only": True, "nano_cpus": 5 * 10**8,
                      "mem_reservation": 64 << 20, "pids_limit": 100, "tmpfs": {"/run": "size=1m,mode=1777"},
                      "shm_size": 128 << 20, "log_config": {"type": "json-file", "config": {"max-size": "1m"}},
                      "restart_policy": {"Name": "always"}},
        cluster={"constraints": ["node.labels.zone == eu"], "spread": ["node.labels.rack"], "cpu_reservation": 0.25})
    service = swarm.service_spec(spec)
    assert service.restart == "any"
    assert service.runtime == {"cap_add": ["SYS_TIME"], "cap_drop": ["NET_RAW"], "sysctls": {"net.core.somaxconn": "1024"},
                               "read_only": True, "tty": True}
    assert service.ulimits == (("nofile", 10, 20),) and service.log_driver == ("json-file", {"max-size": "1m"})
    assert service.resources == {"cpu_limit": 5 * 10**8, "cpu_reservation": 25 * 10**7, "mem_limit": 256 << 20,
                                 "mem_reservation": 64 << 20, "pids_limit": 100}
    assert (service.constraints, service.spread) == (("node.labels.zone == eu",), ("node.labels.rack",))
    tmpfs = {m.target: m for m in service.container.mounts if m.type == "tmpfs"}
    assert (tmpfs["/run"].tmpfs_size, tmpfs["/run"].tmpfs_mode) == ("1m", 0o1777)
    assert tmpfs["/dev/shm"].tmpfs_size == 128 << 20


def test_what_a_swarm_service_cannot_do_is_named_with_its_file_line_and_key(tmp_path) -> None:
    from envctl.backend import swarmopts
    from envctl.errors import TopologyError
    from envctl.topology import load_topology

    (tmp_path / "envctl.yaml").write_text("name: shop\nservices:\n  api: {image: 'nginx:1'}\n"
                                          "  root:\n    image: 'nginx:1'\n    privileged: true\n"
                                          "    x-envctl-allow: [privileged]\n    security_opt: [no-new-privileges]\n")
    topology = load_topology(tmp_path / "envctl.yaml", environ={})
    swarm, _ = backend()
    swarm.check(topology, ["api"])  # nothing it cannot do
    with pytest.raises(TopologyError) as raised:
        swarm.check(topology, ["api", "root"])
    text = str(raised.value)
    assert f"{tmp_path / 'envctl.yaml'}:4: services.root.privileged: cannot be honoured on a swarm" in text, text
    assert "services.root.security_opt" in text and "cap_add" in text
    assert len(swarmopts.refused(topology, ["root"])) == 2


class Tasks:
    """A manager that knows one service's tasks (and no nodes)."""

    def __init__(self, tasks) -> None:
        self.tasks = tasks

    def service_tasks(self, service_id):
        return self.tasks

    def nodes(self):
        return []


def task(index: int, state: str, desired: str = "running", code: int | None = None, err: str = "") -> dict:
    return {"Version": {"Index": index}, "DesiredState": desired,
            "Status": {"State": state, "Err": err, "ContainerStatus": {"ExitCode": code}}}


def test_a_crashed_task_shows_until_its_replacement_runs() -> None:
    swarm, _ = backend()
    crashed = task(1, "failed", "shutdown", 3, "task: non-zero exit (3)")
    swarm.manager = Tasks([crashed, task(2, "pending")])  # type: ignore[assignment]
    seen = swarm._task("s")
    assert (seen.state, seen.exit_code, seen.error) == ("failed", 3, "task: non-zero exit (3)")
    assert _status(seen, False) == ("exited", None)
    swarm.manager = Tasks([crashed, task(2, "running")])  # type: ignore[assignment]
    assert swarm._task("s").state == "running"
    swarm.manager = Tasks([task(1, "orphaned", "shutdown"), task(2, "pending")])  # a lost node's: not a crash
    assert swarm._task("s").state == "pending"
    swarm.manager = Tasks([crashed, task(2, "complete", code=0)])  # a job that made it on its second attempt
    assert swarm._task("s").state == "complete"


class Files:
    """A manager that keeps the secrets and configs asked of it."""

    def __init__(self) -> None:
        self.created: dict[str, tuple[str, bytes, dict]] = {}

    def create_swarm_file(self, kind, name, data, labels):
        self.created[name] = (kind, data, labels)
        return f"id-{name}"


def test_granted_files_become_swarm_secrets_and_configs_of_the_run(tmp_path) -> None:
    swarm, _ = backend()
    swarm.manager = Files()  # type: ignore[assignment]
    (tmp_path / "token").write_text("s3cret")
    (tmp_path / "token").chmod(0o440)
    (tmp_path / "app.conf").write_text("x=1")
    lease_labels = {"envctl.state": str(tmp_path / ".envctl/runs/r1"), "envctl.owner": "123@1700000000.0@ci"}
    spec = ContainerSpec(name="envctl-shop-r1-api", image="postgres:16", network="n", alias="api",
                         labels={**eng.run_labels("shop", "r1", "api"), **lease_labels, eng.CONFIG_HASH: "c0ffee",
                                 "com.example.team": "payments", "envctl.held": "true"}, mounts=[
                             eng.Mount("/run/secrets/token", str(tmp_path / "token"), "bind", True, grant="secret"),
                             eng.Mount("/etc/app.conf", str(tmp_path / "app.conf"), "bind", True, grant="config"),
                             eng.Mount("/data", str(tmp_path), "bind")])
    service = swarm.service_spec(spec)
    assert [m.target for m in service.container.mounts] == ["/data"]  # the grants are no binds on a swarm
    secret, config = service.files
    assert (secret.kind, secret.target, secret.mode) == ("secret", "/run/secrets/token", 0o440)
    assert (config.kind, config.target, config.id) == ("config", "/etc/app.conf", f"id-{config.name}")
    kind, data, labels = swarm.manager.created[secret.name]
    assert (kind, data, labels[eng.RUN], labels["envctl.swarm-service"]) == ("secret", b"s3cret", "r1", spec.name)
    # the run's labels and lease, so `gc` finds and judges a run of which only this is left; not the service's own
    assert {k: v for k, v in labels.items() if k != "envctl.swarm-service"} == {**eng.run_labels("shop", "r1"),
                                                                                 **lease_labels}
    assert service.volume_labels == {**eng.run_labels("shop", "r1"), **lease_labels}
    assert swarm.service_spec(spec).files == service.files  # the same content, the same names


def test_the_lease_labels_a_swarm_puts_on_a_run_s_files_are_the_lease_s_own() -> None:
    from envctl.backend.swarm import LEASE_LABELS
    from envctl.runtime import lease
    assert set(LEASE_LABELS) == {lease.STATE_LABEL, lease.OWNER_LABEL, lease.EXPIRES_LABEL}


class Networks:
    """A manager whose one network goes at the first removal; counts what it is asked."""

    def __init__(self) -> None:
        self.listed, self.removed, self.files_removed = 0, [], []
        self.files = {"secret": [{"ID": "s1", "Spec": {"Name": "envctl-aa", "Labels": {eng.RUN: "r1"}}},
                                 {"ID": "s2", "Spec": {"Name": "envctl-cc", "Labels": {eng.RUN: "r2"}}}],
                      "config": [{"ID": "c1", "Spec": {"Name": "envctl-bb", "Labels": {eng.RUN: "r1"}}}]}
        self.asked_labels: list[dict] = []

    def networks(self, labels=None):
        self.listed += 1
        return [] if self.removed else [{"Id": "net1", "Labels": {eng.RUN: "r1"}}]

    def remove_network(self, network_id):
        self.removed.append(network_id)

    def swarm_files(self, kind, labels):  # as the engine filters: every label given, on the file
        self.asked_labels.append(labels)
        return [f for f in self.files[kind] if labels.items() <= f["Spec"].get("Labels", {}).items()]

    def remove_swarm_file(self, kind, file_id):
        self.files_removed.append((kind, file_id))


def test_removing_a_network_asks_once_whether_it_went_and_leaves_the_run_s_files_to_the_teardown() -> None:
    swarm, _ = backend()
    swarm.manager = Networks()  # type: ignore[assignment]
    swarm.remove_network("net1")
    assert (swarm.manager.removed, swarm.manager.listed, swarm.manager.files_removed) == (["net1"], 1, [])


def test_granted_files_are_the_run_s_secrets_and_configs_by_kind() -> None:
    swarm, _ = backend()
    swarm.manager = Networks()  # type: ignore[assignment]
    found = swarm.granted_files({eng.RUN: "r1"})
    assert found == [{"Kind": "secret", "ID": "s1", "Name": "envctl-aa", "Labels": {eng.RUN: "r1"}},
                     {"Kind": "config", "ID": "c1", "Name": "envctl-bb", "Labels": {eng.RUN: "r1"}}]
    assert swarm.manager.asked_labels == [{eng.RUN: "r1"}] * 2  # the filter goes to the manager: no other run's
    swarm.remove_granted_file("config", "c1")
    assert swarm.manager.files_removed == [("config", "c1")]
