"""Loading and validating envctl.yaml: a typed model, or errors that say where and how to fix."""
from pathlib import Path

import pytest

from envctl.errors import TopologyError
from envctl.topology import READY, STARTED, Reference, load_topology


def load(path: Path, **env: str):
    return load_topology(path, environ=env)


def problems(path: Path, **env: str) -> str:
    with pytest.raises(TopologyError) as caught:
        load(path, **env)
    return str(caught.value)


def test_full_topology_loads_into_the_model(write_topology) -> None:
    path = write_topology(
        """
        name: shop
        bases:
          os:
            bootstrap: {distro: debian, suite: bookworm, packages: [python3]}
        services:
          db:
            base: os
            command: postgres -D /data
            ports: ["5432"]
            probe: {tcp: 5432, timeout: 30s}
            volumes: ["pgdata:/data", "./init:/init:ro"]
          api:
            build: {context: api, args: {MODE: dev}}
            base: os
            depends_on:
              db: {condition: service_started}
            ports: ["8080:8000", "9000"]
            probe: {http: healthz}
            environment:
              DATABASE_URL: postgresql://${db.host}:${db.port}/app
              LEVEL: ${LOG_LEVEL:-info}
              FROM_HOST:
            healthcheck:
              test: curl -f localhost:8000
              interval: 500ms
          worker:
            image: busybox
            environment: ["API=${api.url.9000}", "PLAIN=1"]
            depends_on: [api]
            profiles: [jobs]
        """,
        contexts=("api",),
    )
    topo = load(path, FROM_HOST="hi")
    assert topo.name == "shop"
    assert topo.bases["os"].bootstrap.packages == ("python3",)
    db, api, worker = topo.services["db"], topo.services["api"], topo.services["worker"]
    assert db.command == ("postgres", "-D", "/data")
    assert db.probe.kind == "tcp" and db.probe.port == 5432 and db.probe.timeout == 30
    assert [m.kind for m in db.volumes] == ["volume", "bind"]
    assert db.volumes[1].read_only and db.volumes[1].source == str(path.parent / "init")
    assert api.build.context == path.parent / "api" and dict(api.build.args) == {"MODE": "dev"}
    assert api.depends_on[0].condition == STARTED
    assert api.ports[0].host == 8080 and api.ports[1].host is None
    assert api.probe.port == 8000 and api.probe.path == "/healthz"
    env = dict(api.environment)
    assert env["DATABASE_URL"][1] == Reference("db", "host")
    assert env["LEVEL"] == ("info",) and env["FROM_HOST"] == ("hi",)
    assert api.healthcheck.test == ("CMD-SHELL", "curl -f localhost:8000") and api.healthcheck.interval == 0.5
    assert worker.depends_on[0].condition == READY and worker.profiles == ("jobs",)
    assert dict(worker.environment)["API"] == (Reference("api", "url", 9000),)
    assert all(s.init for s in topo.services.values())


def test_unknown_key_suggests_the_right_one_with_file_and_line(write_topology) -> None:
    path = write_topology(
        """
        services:
          api:
            image: x
            depends_onn: [db]
        """
    )
    text = problems(path)
    assert f"{path}:5: services.api.depends_onn: unknown key 'depends_onn'" in text
    assert "did you mean 'depends_on'?" in text


def test_unknown_dependency_is_located_by_index(write_topology) -> None:
    path = write_topology(
        """
        services:
          db: {image: postgres}
          api:
            image: x
            depends_on:
              - db
              - dbb
        """
    )
    text = problems(path)
    assert f"{path}:8: services.api.depends_on[1]: unknown service 'dbb'" in text
    assert "did you mean 'db'?" in text


def test_cycle_is_named_in_order(write_topology) -> None:
    path = write_topology(
        """
        services:
          a: {image: x, depends_on: [b]}
          b: {image: x, depends_on: [c]}
          c: {image: x, depends_on: [a]}
        """
    )
    assert "services depend on each other in a cycle: a -> b -> c -> a" in problems(path)


def test_duplicate_host_port_names_both_services(write_topology) -> None:
    path = write_topology(
        """
        services:
          a: {image: x, ports: ["8080:80"]}
          b: {image: x, ports: ["8080:81"]}
        """
    )
    assert "services.b.ports[0]: host port 8080 is also published by service 'a'" in problems(path)


def test_bad_types_and_values(write_topology) -> None:
    path = write_topology(
        """
        services:
          a:
            image: x
            ports: "8000"
            init: maybe
          b:
            image: x
            ports: ["127.0.0.1:80:80", "99999"]
          c:
            image: x
            probe: {http: /, port: 1234}
            ports: ["80"]
        """
    )
    text = problems(path)
    assert "services.a.ports: ports must be a list, not a string" in text
    assert "services.a.init: expected true or false, not 'maybe'" in text
    assert "services.b.ports[1]: '99999' is not a container port" in text
    assert "services.c.probe: the probe checks port 1234, which the service does not publish" in text


def test_unknown_reference_and_missing_port(write_topology) -> None:
    path = write_topology(
        """
        services:
          db: {image: x, ports: ["5432"]}
          worker: {image: x}
          api:
            image: x
            environment:
              A: ${dbb.host}
              B: ${db.port.5433}
              C: ${worker.url}
        """
    )
    text = problems(path)
    assert "services.api.environment.A: ${dbb.host} names 'dbb', which is neither a service nor a mock" in text
    assert "'db' has no port 5433 (it has 5432)" in text
    assert "${worker.url} needs a port, and 'worker' publishes none" in text


def test_missing_build_context_and_dockerfile(write_topology, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    path = write_topology(
        """
        services:
          a: {build: nowhere}
          b: {build: empty}
        """
    )
    text = problems(path)
    assert "build context" in text and "nowhere is not a directory" in text
    assert "no Dockerfile at" in text and "FROM ${BASE_IMAGE}" in text


def test_a_nul_character_in_a_path_is_a_located_problem(write_topology) -> None:
    path = write_topology(
        """
        services:
          a: {build: "ctx\\0"}
          b: {image: x, volumes: ["./d\\0:/data"], env_file: ["e\\0"]}
        """
    )
    text = problems(path)
    assert text.count("contains a NUL character") == 3, text
    assert "services.a.build" in text and "services.b.volumes[0]" in text and "services.b.env_file[0]" in text


def test_yaml_syntax_error_is_located(write_topology) -> None:
    path = write_topology("services:\n  a: {image: x\n  b: [\n")
    text = problems(path)
    assert f"{path}:" in text and "YAML syntax error" in text


def test_duplicate_keys_are_reported(write_topology) -> None:
    path = write_topology("services:\n  a: {image: x}\n  a: {image: y}\n")
    assert "services.a: this key appears twice" in problems(path)


def test_required_variable_missing_is_a_located_problem(write_topology) -> None:
    path = write_topology("services:\n  a:\n    image: ${IMAGE?set IMAGE to the image to run}\n")
    text = problems(path)
    assert f"{path}:3: services.a.image: required variable IMAGE is not set: set IMAGE" in text


def test_dotenv_beside_the_file_and_host_environment_wins(write_topology, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TAG=from-dotenv\nOTHER=dotenv\n")
    path = write_topology("services:\n  a: {image: 'x:${TAG}', environment: {O: '${OTHER}'}}\n")
    topo = load(path, TAG="from-host")
    assert topo.services["a"].image == "x:from-host"
    assert dict(topo.services["a"].environment)["O"] == ("dotenv",)


def test_merge_keys_and_extension_fields(write_topology) -> None:
    path = write_topology(
        """
        x-defaults: &defaults
          image: x
          environment: {A: "1"}
        services:
          a:
            <<: *defaults
            environment: {B: "2"}
        """
    )
    service = load(path).services["a"]
    assert service.image == "x" and dict(service.environment) == {"B": ("2",)}


def test_compose_keys_envctl_does_not_take_say_why_once_per_key(write_topology) -> None:
    path = write_topology("services:\n  a: {image: x, network_mode: host}\n  b: {image: x, network_mode: host}\n")
    text = problems(path)
    assert text.count("cannot honour") == 1 and "'a', 'b'" in text and "runs never collide" in text


def test_base_cycle_and_unknown_base(write_topology, tmp_path: Path) -> None:
    (tmp_path / "b.Dockerfile").write_text("FROM x\n")
    path = write_topology(
        """
        bases:
          one: {from: two, dockerfile: b.Dockerfile}
          two: {from: one, dockerfile: b.Dockerfile}
        services:
          a: {base: three}
        """
    )
    text = problems(path)
    assert "bases build on each other in a cycle" in text
    assert "services.a.base: unknown base 'three'" in text


def test_no_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="no topology file here"):
        load_topology(tmp_path / "envctl.yaml")


def test_every_problem_is_reported_at_once(write_topology) -> None:
    path = write_topology("services:\n  a: {imag: x}\n  b: {image: x, depends_on: [zz]}\n")
    with pytest.raises(TopologyError) as caught:
        load(path)
    assert len(caught.value.problems) >= 2


def test_config_output_loads_again_as_the_same_topology(write_topology, tmp_path: Path) -> None:
    import yaml

    from envctl.topology.document import to_document

    path = write_topology(
        """
        name: shop
        bases:
          os: {bootstrap: {distro: debian, suite: bookworm, packages: [python3]}}
        services:
          db: {base: os, ports: ["5432"], probe: {tcp: 5432}, volumes: ["data:/data"], command: "echo $$HOME"}
          api:
            build: api
            base: os
            depends_on: {db: {condition: service_started}}
            ports: ["8080:8000"]
            probe: {http: /healthz, timeout: 1m}
            healthcheck: {test: [CMD, "true"], interval: 500ms}
            environment: {DB: "${db.host}:${db.port}", COST: "$$5", LEVEL: "${LEVEL:-info}"}
        """,
        contexts=("api",),
    )
    first = load_topology(path, environ={})
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(to_document(first), sort_keys=False))
    second = load_topology(again, environ={})
    assert second.services == first.services and second.bases == first.bases


def test_a_cmd_probe_s_run_timeout_is_cmd_timeout_and_only_a_cmd_probe_takes_one(write_topology) -> None:
    path = write_topology(
        """
        services:
          db:
            image: postgres
            ports: ["5432"]
            probe: {cmd: [pg_isready], cmd_timeout: 5s}
        """
    )
    assert load(path).services["db"].probe.cmd_timeout == 5
    path.write_text(path.read_text().replace("{cmd: [pg_isready], cmd_timeout: 5s}", "{tcp: 5432, cmd_timeout: 5s}"))
    assert "cmd_timeout bounds one run of a cmd probe; this probe is tcp" in problems(path)
    path.write_text(path.read_text().replace("{tcp: 5432, cmd_timeout: 5s}", "{cmd: [pg_isready], cmd_timeout: 0}"))
    assert "cmd_timeout must be more than 0" in problems(path)
