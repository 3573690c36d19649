"""Compose's runtime keys: parsed into the model, and mapped to the engine's container options."""
from pathlib import Path

import pytest

from envctl.backend import containeropts
from envctl.backend.engine import ContainerSpec
from envctl.runtime.specs import container_spec as _container_spec
from envctl.topology.model import FileGrant, NetworkAttachment, RestartPolicy, Ulimit
from tests.unit.test_topology import load, problems


def spec(topology, name: str, run: str = "r1") -> ContainerSpec:
    """The spec `up` would give the service (grant files land in the topology's .envctl/)."""
    return _container_spec(topology, run, name, "img", {})


FULL = """
services:
  db:
    image: mariadb:10
    container_name: alertmanager
    hostname: db-host
    domainname: example.test
    restart: unless-stopped
    cap_add: [NET_ADMIN, CAP_SYS_TIME]
    cap_drop: [ALL]
    read_only: "true"
    tmpfs: [/run, "/tmp:size=64m"]
    security_opt: ["no-new-privileges:true"]
    logging: {driver: json-file, options: {max-size: 10m, max-file: 3}}
    expose: [3306, "33060-33061/tcp"]
    extra_hosts: ["somehost:162.242.195.82", "other=10.0.0.1"]
    labels: {com.example.role: db}
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
    sysctls: ["net.core.somaxconn=1024"]
    shm_size: 64m
    stdin_open: true
    tty: true
    pull_policy: missing
    networks:
      back: {aliases: [database]}
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 256M, pids: 100}
        reservations: {memory: 64M}
      restart_policy: {condition: on-failure, max_attempts: 3}
    secrets: [db-password, {source: db-password, target: other, mode: 0400, uid: "999"}]
    configs: [{source: my-conf, target: /etc/my.cnf}]
    volumes:
      - data:/var/lib/mysql:nocopy
      - {type: bind, source: ./conf, target: /conf, read_only: "false"}
      - {type: tmpfs, target: /cache, tmpfs: {size: 1m}}
      - ./logs:/logs:z
  web:
    image: web
    networks: [back, front]
    links: ["db:legacy-db"]
    depends_on:
      db: {condition: service_started, required: true, restart: true}
      maybe: {condition: service_started, required: false}
    env_file: [{path: ./missing.env, required: false}]
    scale: 2
    ports: ["8000"]
volumes:
  data: {driver_opts: {type: tmpfs, device: tmpfs}}
  shared: {external: true, name: the-shared-one}
networks:
  back: {internal: true, labels: [tier=back]}
  front:
  outside: {external: true, name: corp-net}
secrets:
  db-password: {file: ./db-password.txt}
configs:
  my-conf: {content: "[mysqld]"}
"""


@pytest.fixture
def full(write_topology, tmp_path: Path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / "db-password.txt").write_text("s3cret\n")
    return load(write_topology(FULL))


def test_every_runtime_key_lands_in_the_model(full) -> None:
    db = full.services["db"]
    o = db.options
    assert (db.container_name, db.hostname, db.pull_policy) == ("alertmanager", "db-host", "missing")
    assert o.restart == RestartPolicy("unless-stopped")  # the service key wins over deploy's
    assert o.cap_add == ("NET_ADMIN", "SYS_TIME") and o.cap_drop == ("ALL",)
    assert o.read_only is True and o.tmpfs == (("/run", ""), ("/tmp", "size=64m"))
    assert o.log_driver == "json-file" and dict(o.log_options) == {"max-size": "10m", "max-file": "3"}
    assert o.expose == ("3306/tcp", "33060/tcp", "33061/tcp")
    assert dict(o.extra_hosts) == {"somehost": "162.242.195.82", "other": "10.0.0.1"}
    assert o.ulimits == (Ulimit("nofile", 1024, 2048), Ulimit("nproc", 512, 512))
    assert dict(o.sysctls) == {"net.core.somaxconn": "1024"} and o.shm_size == 64 << 20
    assert o.stdin_open and o.tty and o.cpus == 0.5 and o.pids_limit == 100 and o.mem_reservation == 64 << 20
    assert db.mem_limit == 256 << 20 and o.domainname == "example.test"
    assert db.networks == (NetworkAttachment("back", ("database",)),)
    assert db.secrets == (FileGrant("db-password", "/run/secrets/db-password"),
                          FileGrant("db-password", "/run/secrets/other", "999", None, 0o400))
    assert db.configs == (FileGrant("my-conf", "/etc/my.cnf"),)
    data, conf, cache, logs = db.volumes
    assert data.nocopy and not conf.read_only  # "false" is false, not a non-empty string
    assert cache.kind == "tmpfs" and cache.tmpfs_size == 1 << 20 and logs.selinux == "z"


def test_networks_volumes_and_dependencies_at_the_top(full) -> None:
    web = full.services["web"]
    assert web.scale == 2 and [d.service for d in web.depends_on] == ["db", "maybe"]
    assert web.depends_on[0].restart and not web.depends_on[1].required
    assert full.networks["back"].internal and full.networks["outside"].external_name == "corp-net"
    assert full.volume_options["shared"].external_name == "the-shared-one"
    assert dict(full.volume_options["data"].driver_opts) == {"type": "tmpfs", "device": "tmpfs"}


def test_the_spec_carries_every_key_to_the_engine(full) -> None:
    s = spec(full, "db")
    host = s.host_options
    assert s.name == "envctl-" + full.name + "-r1-db"  # the real name stays per run
    assert s.network == "envctl-" + full.name + "-r1-back"
    assert s.alias == "db" and s.aliases == ("alertmanager", "db-host", "legacy-db", "database")
    assert s.hostname == "db-host" and s.domainname == "example.test" and s.tty and s.stdin_open
    assert host["restart_policy"] == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    assert host["cap_add"] == ["NET_ADMIN", "SYS_TIME"] and host["read_only"] is True
    assert host["tmpfs"] == {"/run": "", "/tmp": "size=64m"} and host["security_opt"] == ["no-new-privileges:true"]
    assert host["log_config"]["type"] == "json-file" and host["nano_cpus"] == 500_000_000
    assert host["ulimits"][0]["name"] == "nofile" and host["sysctls"] == {"net.core.somaxconn": "1024"}
    assert host["shm_size"] == 64 << 20 and host["pids_limit"] == 100 and host["mem_reservation"] == 64 << 20
    assert host["binds"] == [str(full.root / "logs") + ":/logs:rw,z"]
    assert s.extra_hosts["somehost"] == "162.242.195.82" and "3306/tcp" in s.exposed
    assert s.user_labels == {"com.example.role": "db"} and s.mem_limit == 256 << 20
    targets = {m.target: m.as_api() for m in s.mounts}
    assert targets["/var/lib/mysql"]["VolumeOptions"]["NoCopy"] is True
    assert targets["/conf"]["ReadOnly"] is False and targets["/cache"]["Type"] == "tmpfs"
    assert targets["/run/secrets/db-password"]["ReadOnly"] is True  # a file secret is bound, as in Compose
    other = Path(targets["/run/secrets/other"]["Source"])  # with an owner: a copy, owned and moded so
    assert other.read_bytes() == b"s3cret\n" and other.stat().st_mode & 0o777 == 0o400
    assert Path(targets["/etc/my.cnf"]["Source"]).read_bytes() == b"[mysqld]" and targets["/etc/my.cnf"]["ReadOnly"]


def test_a_service_on_two_networks_joins_the_second_before_it_starts(full) -> None:
    s = spec(full, "web")
    prefix = "envctl-" + full.name + "-r1"
    assert s.network == f"{prefix}-back" and list(s.other_networks) == [f"{prefix}-front"]
    assert s.other_networks[f"{prefix}-front"] == ["web"]


def test_what_a_run_creates_and_what_it_uses_as_it_is(full) -> None:
    prefix = "envctl-" + full.name + "-r1"
    assert set(containeropts.networks_to_create(full, "r1", ["db", "web"])) == {f"{prefix}-back", f"{prefix}-front"}
    assert containeropts.network_name(full, "r1", "outside") == "corp-net"
    assert containeropts.volume_name(full, "r1", "shared") == "the-shared-one"
    assert set(containeropts.volumes_to_create(full, "r1", ["db"])) == {f"{prefix}-data"}


def test_a_plain_service_keeps_its_old_spec(write_topology) -> None:
    topology = load(write_topology("services:\n  a: {image: x}\n"))
    s = spec(topology, "a")
    assert s.network == "envctl-" + topology.name + "-r1" and s.aliases == () and s.host_options == {}


def test_the_config_hash_follows_the_runtime_keys(write_topology, tmp_path: Path) -> None:
    one = spec(load(write_topology("services:\n  a: {image: x, cap_add: [NET_ADMIN]}\n")), "a")
    two = spec(load(write_topology("services:\n  a: {image: x, cap_add: [SYS_TIME]}\n")), "a")
    assert one.labels["envctl.config-hash"] != two.labels["envctl.config-hash"]


@pytest.mark.parametrize("value, expected", [
    ('"no"', RestartPolicy("no")), ("no", RestartPolicy("no")), ("always", RestartPolicy("always")),
    ("on-failure:5", RestartPolicy("on-failure", 5)),
])
def test_restart_policies(write_topology, value: str, expected: RestartPolicy) -> None:
    topology = load(write_topology(f"services:\n  a: {{image: x, restart: {value}}}\n"))
    assert topology.services["a"].options.restart == expected


def test_deploy_restart_policy_and_replicas(write_topology) -> None:
    topology = load(write_topology(
        "services:\n  a:\n    image: x\n    deploy: {replicas: 3, restart_policy: {condition: any}}\n"))
    assert topology.services["a"].scale == 3 and topology.services["a"].options.restart == RestartPolicy("always")


def test_swarm_only_keys_are_one_warning_per_key(write_topology) -> None:
    topology = load(write_topology(
        "services:\n  a: {image: x, deploy: {placement: {constraints: []}}}\n"
        "  b: {image: x, deploy: {placement: {constraints: []}, update_config: {parallelism: 2}}}\n"))
    assert topology.warnings == (
        "'deploy.placement' (in 'a', 'b') is honoured on a swarm (--backend swarm); on one engine envctl, like "
        "docker compose, ignores it",
        "'deploy.update_config' (in 'b') is for Swarm; envctl, like docker compose on one engine, ignores it")


def test_placement_and_cpu_reservations_are_kept_for_a_swarm(write_topology) -> None:
    topology = load(write_topology(
        "services:\n  a:\n    image: x\n    deploy:\n"
        "      placement: {constraints: [node.labels.zone == eu], preferences: [{spread: node.labels.rack}]}\n"
        "      resources: {reservations: {cpus: '0.25', memory: 64M}}\n"))
    options = topology.services["a"].options
    assert options.placement == ("node.labels.zone == eu",) and options.placement_spread == ("node.labels.rack",)
    assert options.cpu_reservation == 0.25 and options.mem_reservation == 64 << 20
    fields = containeropts.options_fields(options)
    assert fields["cluster"] == {"constraints": ["node.labels.zone == eu"], "spread": ["node.labels.rack"],
                                 "cpu_reservation": 0.25}
    assert "cluster" not in containeropts.options_fields(topology.services["a"].options.__class__())


def test_a_placement_preference_is_a_spread(write_topology) -> None:
    text = problems(write_topology("services:\n  a: {image: x, deploy: {placement: {preferences: [{pack: x}]}}}\n"))
    assert "deploy.placement.preferences" in text and "spread" in text, text


def test_image_with_build_is_the_tag_of_the_built_image(write_topology) -> None:
    topology = load(write_topology(
        "services:\n  a: {image: me/app:1, build: {context: a, target: builder, labels: {x: y}, cache_from: [c]}}\n",
        contexts=("a",)))
    a = topology.services["a"]
    assert a.image == "me/app:1" and a.build.target == "builder" and a.build.cache_from == ("c",)


def test_privileged_needs_an_opt_in_and_says_why(write_topology) -> None:
    path = write_topology("services:\n  a: {image: x, privileged: true}\n")
    text = problems(path)
    assert "services.a.privileged" in text and "whole host" in text and "--allow privileged" in text
    assert load(path, ENVCTL_ALLOW="privileged").services["a"].options.privileged
    opted = write_topology("services:\n  a: {image: x, privileged: true, x-envctl-allow: [privileged]}\n")
    assert spec(load(opted), "a").host_options["privileged"] is True


def test_the_docker_socket_opt_in_from_the_command_line(write_topology) -> None:
    path = write_topology("services:\n  a: {image: x, volumes: [/var/run/docker.sock:/var/run/docker.sock]}\n")
    assert "--allow docker-socket" in problems(path)
    assert load(path, ENVCTL_ALLOW="docker-socket").services["a"].docker_socket


@pytest.mark.parametrize("text, message", [
    ("services:\n  a: {image: x, networks: [nowhere]}\n", "joins network 'nowhere'"),
    ("services:\n  a: {image: x, secrets: [nope]}\n", "unknown secret 'nope'"),
    ("services:\n  a: {image: x, container_name: b}\n  b: {image: x}\n", "also the name of service"),
    ("services:\n  a: {image: x, scale: 2, container_name: c}\n", "Compose refuses this too"),
    ("services:\n  a: {image: x, scale: 2, ports: ['80:80']}\n", "fixed host port"),
    ("services:\n  a: {image: x, restart: sometimes}\n", "not a restart policy"),
    ("services:\n  a: {image: x, networks: {n: {ipv4_address: 10.0.0.2}}}\nnetworks: {n: {}}\n",
     "cannot honour 'ipv4_address'"),
    ("services:\n  a: {image: x, deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}}\n"
     "  b: {image: x, deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}}\n",
     "(used by 'a', 'b')"),
    ("services:\n  a: {image: x, depends_on: {z: {condition: service_started}}}\n", "unknown service 'z'"),
])
def test_mistakes_are_located_and_explained(write_topology, text: str, message: str) -> None:
    assert message in problems(write_topology(text))


def test_an_optional_dependency_that_is_missing_is_not_an_error(write_topology) -> None:
    path = write_topology("services:\n  a: {image: x, depends_on: {z: {condition: service_started, required: false}}}\n")
    assert load(path).services["a"].depends_on[0].required is False


def test_config_output_keeps_every_runtime_key(full, tmp_path: Path) -> None:
    import yaml

    from envctl.topology.document import to_document

    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(to_document(full), sort_keys=False))
    second = load(again)
    assert second.services == full.services
    assert (second.networks, second.volume_options, second.configs) == (full.networks, full.volume_options, full.configs)


def test_the_deliberate_differences_are_said(full) -> None:
    from envctl.topology.compose_keys import differences

    text = "\n".join(differences(full))
    assert "127.0.0.1 only" in text and "its own networks" in text and "under an init" in text


def test_replicas_are_named_apart_and_labelled(write_topology) -> None:
    topology = load(write_topology("services:\n  a: {image: x, scale: 3}\n"))
    first = spec(topology, "a")
    others = containeropts.replica_specs(first, topology.services["a"].scale)
    assert [o.name for o in others] == [first.name + "-2", first.name + "-3"]
    assert [o.labels["envctl.replica"] for o in others] == ["2", "3"] and {o.alias for o in others} == {"a"}


def test_image_beside_build_is_built_and_tagged_never_pulled(write_topology) -> None:
    from envctl.images.builder import image_targets

    topology = load(write_topology("services:\n  a: {image: me/app:1, build: a}\n", contexts=("a",)))
    assert set(image_targets(topology)) == {"service:a"}
