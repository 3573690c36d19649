"""Compose files as they are: found by name, merged with Compose's rules, include, extends, x-envctl."""
import textwrap
from pathlib import Path

import pytest

from envctl.errors import TopologyError
from envctl.topology import PortSpec, load_topology
from envctl.topology.files import COMPOSE_FILES


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_each_compose_file_name_is_found(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "services: {web: {image: nginx}}\n")
    topology = load_topology(tmp_path, environ={})
    assert topology.file == tmp_path / name
    assert list(topology.services) == ["web"]


def test_compose_order_decides_between_names(tmp_path: Path) -> None:
    write(tmp_path, "docker-compose.yml", "services: {old: {image: nginx}}\n")
    write(tmp_path, "compose.yaml", "services: {new: {image: nginx}}\n")
    assert list(load_topology(tmp_path, environ={}).services) == ["new"]


def test_envctl_yaml_wins_over_a_compose_file(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services: {web: {image: nginx}}\n")
    write(tmp_path, "envctl.yaml", "services: {api: {image: nginx}}\n")
    assert list(load_topology(tmp_path, environ={}).services) == ["api"]


def test_the_override_file_merges_over_the_compose_file(tmp_path: Path) -> None:
    write(tmp_path, "docker-compose.yml", """\
        services:
          web:
            image: nginx
            command: [nginx, -g, daemon off;]
            environment: [A=1, B=2]
            ports: ["8080:80"]
        """)
    write(tmp_path, "docker-compose.override.yml", """\
        services:
          web:
            command: nginx-debug
            environment: {B: three, C: "4"}
            ports: ["8080:80", "9443:443"]
          extra: {image: busybox}
        """)
    topology = load_topology(tmp_path, environ={})
    web = topology.services["web"]
    assert web.command == ("nginx-debug",)
    assert dict(web.environment) == {"A": ("1",), "B": ("three",), "C": ("4",)}
    assert web.ports == (PortSpec(80, 8080), PortSpec(443, 9443))
    assert set(topology.services) == {"web", "extra"}


def test_several_files_merge_in_order_with_compose_rules(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", """\
        services:
          db:
            image: postgres
            volumes: ["data:/var/lib/postgresql/data", "./init:/docker-entrypoint-initdb.d"]
            depends_on: [cache]
            healthcheck: {test: [CMD, pg_isready], retries: 3}
          cache: {image: redis}
        """)
    second = write(tmp_path, "b.yaml", """\
        services:
          db:
            volumes: ["./seed:/docker-entrypoint-initdb.d:ro"]
            depends_on: {migrate: {condition: service_completed_successfully}}
            healthcheck: {test: [CMD, pg_isready, -U, app]}
          migrate: {image: busybox}
        """)
    db = load_topology([first, second], environ={}).services["db"]
    assert [(m.target, m.source, m.read_only) for m in db.volumes] == [
        ("/var/lib/postgresql/data", "data", False),
        ("/docker-entrypoint-initdb.d", str(tmp_path / "seed"), True),
    ]
    assert [d.service for d in db.depends_on] == ["cache", "migrate"]
    assert db.healthcheck.test == ("CMD", "pg_isready", "-U", "app")
    assert db.healthcheck.retries == 3


def test_a_problem_in_a_later_file_names_that_file_and_line(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "services:\n  web:\n    image: nginx\n")
    second = write(tmp_path, "b.yaml", "services:\n  web:\n    ports: [\"99999\"]\n")
    with pytest.raises(TopologyError) as caught:
        load_topology([first, second], environ={})
    assert f"{second}:3: services.web.ports[0]" in str(caught.value)


def test_relative_paths_of_later_files_start_in_the_project_directory(tmp_path: Path) -> None:
    first = write(tmp_path, "compose.yaml", "services: {web: {image: nginx}}\n")
    second = write(tmp_path, "overrides/dev.yaml", "services: {web: {volumes: ['./src:/src']}}\n")
    web = load_topology([first, second], environ={}).services["web"]
    assert web.volumes[0].source == str(tmp_path / "src")  # as in Compose: not overrides/src


def test_envctl_yaml_includes_a_compose_file_and_adds_envctl_keys(tmp_path: Path) -> None:
    write(tmp_path, "app/docker-compose.yml", """\
        services:
          api:
            image: nginx
            ports: ["8000"]
            volumes: ["./conf:/etc/nginx/conf.d:ro"]
        """)
    write(tmp_path, "envctl.yaml", """\
        include: [app/docker-compose.yml]
        services:
          api:
            probe: {http: /healthz}
        """)
    api = load_topology(tmp_path, environ={}).services["api"]
    assert api.image == "nginx"
    assert api.probe.kind == "http" and api.probe.port == 8000
    assert api.volumes[0].source == str(tmp_path / "app" / "conf")  # relative to the included file


def test_include_loops_are_named(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "include: [b.yaml]\nservices: {a: {image: x}}\n")
    write(tmp_path, "b.yaml", "include: [a.yaml]\nservices: {b: {image: x}}\n")
    with pytest.raises(TopologyError, match="include each other in a loop"):
        load_topology(tmp_path / "a.yaml", environ={})


def test_an_included_file_reads_its_own_env_for_what_the_project_leaves_unset(tmp_path: Path) -> None:
    """As compose-go's include: the including project's variables win, the included project
    directory's .env fills in the rest (and expands with the project's variables)."""
    write(tmp_path, ".env", "TAG=project\n")
    write(tmp_path, "sub/.env", "TAG=sub\nONLY_SUB=yes\nDB_IMAGE=postgres:${TAG}\n")
    write(tmp_path, "sub/compose.yaml", """\
        services:
          db: {image: "${DB_IMAGE}", environment: {A: "${ONLY_SUB:-no}", T: "${TAG}", HOST: null}}
        """)
    write(tmp_path, "compose.yaml", """\
        include: [sub/compose.yaml]
        services:
          web: {image: "nginx:${TAG}", environment: {A: "${ONLY_SUB:-no}"}}
        """)
    topology = load_topology(tmp_path, environ={"HOST": "from-host"})
    db, web = topology.services["db"], topology.services["web"]
    assert db.image == "postgres:project"
    assert dict(db.environment) == {"A": ("yes",), "T": ("project",), "HOST": ("from-host",)}
    assert web.image == "nginx:project" and dict(web.environment) == {"A": ("no",)}  # the project never sees it


def test_an_include_names_its_env_files_and_project_directory(tmp_path: Path) -> None:
    write(tmp_path, "envs/sub.env", "IMAGE=redis\n")
    write(tmp_path, "sub/.env", "IMAGE=ignored-when-env_file-is-named\n")
    write(tmp_path, "elsewhere/.env", "IMAGE=ignored-too\n")
    write(tmp_path, "sub/compose.yaml", "services: {cache: {image: '${IMAGE}', volumes: ['./data:/data']}}\n")
    write(tmp_path, "compose.yaml", """\
        include:
          - {path: sub/compose.yaml, env_file: envs/sub.env, project_directory: elsewhere}
        """)
    cache = load_topology(tmp_path, environ={}).services["cache"]
    assert cache.image == "redis"
    assert cache.volumes[0].source == str(tmp_path / "elsewhere" / "data")


def test_an_include_env_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "sub/compose.yaml", "services: {cache: {image: redis}}\n")
    write(tmp_path, "compose.yaml", "include: [{path: sub/compose.yaml, env_file: nowhere.env}]\n")
    with pytest.raises(TopologyError, match="compose.yaml:1: include\\[0\\].env_file: no env file at .*nowhere.env"):
        load_topology(tmp_path, environ={})


def test_x_envctl_blocks_hold_envctl_keys_in_a_compose_file(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", """\
        x-envctl:
          name: shop
        services:
          api:
            image: nginx
            ports: ["8000"]
            x-envctl:
              probe: {http: /ready}
              stop_grace_period: 5s
        """)
    topology = load_topology(tmp_path, environ={})
    assert topology.name == "shop"
    api = topology.services["api"]
    assert api.probe.path == "/ready"
    assert api.stop_grace_period == 5


def test_a_problem_inside_x_envctl_points_at_its_line(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services:\n  api:\n    image: nginx\n    x-envctl:\n      probe: {tcp: 9}\n")
    with pytest.raises(TopologyError) as caught:
        load_topology(tmp_path, environ={})
    assert "compose.yaml:5: services.api.probe" in str(caught.value)


def test_extends_builds_on_a_service_of_the_same_or_another_file(tmp_path: Path) -> None:
    write(tmp_path, "common/base.yaml", """\
        services:
          base:
            image: python
            environment: {LEVEL: info, MODE: base}
            volumes: ["./shared:/shared"]
        """)
    write(tmp_path, "compose.yaml", """\
        services:
          worker:
            extends: {service: base, file: common/base.yaml}
            environment: {MODE: worker}
          second:
            extends: worker
            command: [python, -m, second]
        """)
    services = load_topology(tmp_path, environ={}).services
    assert dict(services["worker"].environment) == {"LEVEL": ("info",), "MODE": ("worker",)}
    assert services["worker"].volumes[0].source == str(tmp_path / "common" / "shared")
    assert services["second"].image == "python"
    assert services["second"].command == ("python", "-m", "second")


def test_extends_loops_are_named(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n")
    with pytest.raises(TopologyError, match="extend each other in a loop"):
        load_topology(tmp_path, environ={})


def test_yaml_scalars_are_read_as_compose_reads_them(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", """\
        services:
          ssh:
            image: sshd
            ports:
              - 22:22
            environment:
              FOO: off
              BAR: yes
              OCTAL: 0o17
            init: yes
            healthcheck:
              test: [CMD, "true"]
              retries: ${RETRIES}
        """)
    ssh = load_topology(tmp_path, environ={"RETRIES": "5"}).services["ssh"]
    assert ssh.ports == (PortSpec(22, 22),)
    assert dict(ssh.environment) == {"FOO": ("off",), "BAR": ("yes",), "OCTAL": ("15",)}
    assert ssh.init is True
    assert ssh.healthcheck.retries == 5


def test_dotenv_problems_name_the_line(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services: {web: {image: 'nginx:${TAG}'}}\n")
    write(tmp_path, ".env", "TAG=1.2\nBAD KEY=1\n")
    with pytest.raises(TopologyError) as caught:
        load_topology(tmp_path, environ={})
    assert f"{tmp_path / '.env'}:2:" in str(caught.value)


def test_a_quoted_dotenv_value_with_a_comment_keeps_no_quotes(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services: {web: {image: 'nginx:${TAG}'}}\n")
    write(tmp_path, ".env", '\ufeffTAG="1.2" # pinned\n')
    assert load_topology(tmp_path, environ={}).services["web"].image == "nginx:1.2"


# Compose v1's typed-conversion cases (interpolation_test.py), for the typed fields envctl has.
TYPED_ENV = {"TRUE": "True", "FALSE": "OFF", "POSINT": "50", "FLOAT": "0.145"}


@pytest.mark.parametrize("key, text, expected", [
    ("init", "${TRUE}", True),
    ("init", "${DEFAULT:-N}", False),
    ("init", "${DEFAULT-on}", True),
    ("init", "${FALSE}", False),
    ("retries", "${POSINT:-3}", 50),
    ("retries", "${DEFAULT:-4}", 4),
    ("disable", "${FALSE}", False),
    ("read_only", "${DEFAULT:-no}", False),
    ("read_only", "${TRUE}", True),
])
def test_typed_fields_are_cast_after_interpolation(tmp_path: Path, key: str, text: str, expected) -> None:
    values = {"init": "false", "retries": "1", "disable": "false", "read_only": "false", key: text}
    write(tmp_path, "compose.yaml", f"""\
        services:
          web:
            image: nginx
            init: "{values['init']}"
            healthcheck:
              test: [CMD, "true"]
              retries: "{values['retries']}"
              disable: "{values['disable']}"
            volumes:
              - type: volume
                source: data
                target: /data
                read_only: "{values['read_only']}"
        """)
    web = load_topology(tmp_path, environ=TYPED_ENV).services["web"]
    value = {"init": web.init, "retries": web.healthcheck.retries, "disable": web.healthcheck.disable,
             "read_only": web.volumes[0].read_only}[key]
    assert value == expected


@pytest.mark.parametrize("field, message", [
    ("init: ${POSINT}", "expected true or false, not '50'"),
    ("healthcheck: {test: [CMD, 'true'], retries: '${FLOAT}'}", "'0.145' is not a whole number"),
])
def test_a_value_that_does_not_cast_is_a_located_problem(tmp_path: Path, field: str, message: str) -> None:
    write(tmp_path, "compose.yaml", f"services:\n  web:\n    image: nginx\n    {field}\n")
    with pytest.raises(TopologyError, match="compose.yaml:4: services.web.") as caught:
        load_topology(tmp_path, environ=TYPED_ENV)
    assert message in str(caught.value)


def test_the_project_name_is_interpolated(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "name: ${PROJECT:-shop}\nservices: {web: {image: nginx}}\n")
    assert load_topology(tmp_path, environ={"PROJECT": "checkout"}).name == "checkout"
    assert load_topology(tmp_path, environ={}).name == "shop"


def test_reset_and_override_tags_decide_the_merge(tmp_path: Path) -> None:
    first = write(tmp_path, "compose.yaml", """\
        services:
          web:
            image: nginx
            ports: ["8080:80"]
            environment: {A: "1", B: "2"}
            user: www
        """)
    second = write(tmp_path, "compose.override.yaml", """\
        services:
          web:
            ports: !reset []
            environment: !override {C: "3"}
            user: !reset null
        """)
    web = load_topology([first, second], environ={}).services["web"]
    assert web.ports == ()
    assert dict(web.environment) == {"C": ("3",)}
    assert web.user is None
