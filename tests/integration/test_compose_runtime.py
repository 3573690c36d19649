"""Compose files on the real engine: public ones run as published, and the runtime keys reach the containers.

No registry can be pulled from, so the images the files name are stand-ins built from the
session's bootstrapped Debian base (tests/compose/standins) and tagged with those names.
"""
from __future__ import annotations

import shutil
import socket
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from envctl.backend import engine as eng
from envctl.runtime import run as run_api
from envctl.runtime import specs, teardown
from envctl.backend.engine import Engine
from envctl.images.builder import ImageBuilder
from envctl.topology import load_topology
from tests.integration.conftest import PROJECT, STACK, envctl, remove_images_since

pytestmark = pytest.mark.integration

COMPOSE = Path(__file__).parents[1] / "compose"
PYTHON = "envctl-test/compose-python:standin"
STANDINS = {  # stand-in directory -> the names Compose files give the image
    "python": [PYTHON, "python:3.10-alpine"],
    "redis": ["envctl-test/compose-redis:standin", "redislabs/redismod:latest"],
    "mariadb": ["envctl-test/compose-mariadb:standin", "mariadb:10-focal"],
    "nginx": ["envctl-test/compose-nginx:standin", "nginx:1.13-alpine"],
}


@pytest.fixture(scope="session")
def standins(engine: Engine, session_images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Build the stand-ins on the session's base; tag them with the names the files use (unless taken).

    At the end, what this fixture built or tagged is removed again."""
    root = tmp_path_factory.mktemp("standin-base")
    shutil.copytree(STACK, root, dirs_exist_ok=True)
    base = ImageBuilder(load_topology(root / "envctl.yaml", environ={}), engine).ensure(["store"])["base:os"].ref
    labels = {eng.MANAGED: "true", eng.PROJECT: PROJECT}
    missing = {directory: own for directory, (own, *_) in STANDINS.items() if engine.image_id(own) is None}
    made: list[str] = list(missing.values())

    def build(directory: str) -> None:
        for chunk in engine.api.build(path=str(COMPOSE / "standins" / directory), tag=missing[directory], rm=True,
                                      pull=False, buildargs={"BASE_IMAGE": base}, labels=labels, decode=True):
            assert "error" not in chunk, chunk["error"]

    # Side by side: each is mostly apt downloading and unpacking (one after another: about twice as long).
    with ThreadPoolExecutor(max_workers=len(STANDINS)) as pool:
        for done in [pool.submit(build, directory) for directory in missing]:
            done.result()
    for own, *names in STANDINS.values():
        for name in names:
            if engine.image_id(name) is None:  # a real image of that name stays as it is
                repository, _, tag = name.rpartition(":")
                engine.tag(own, repository, tag)
                made.append(name)
    yield
    for ref in reversed(made):
        engine.remove_image(ref)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT holds nothing
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def left_of(engine: Engine, project: str, run: str) -> dict[str, list[str]]:
    labels = {eng.PROJECT: project, eng.RUN: run}
    return {"containers": [c.name for c in engine.containers(labels)],
            "networks": [n["Name"] for n in engine.networks(labels)],
            "volumes": [v["Name"] for v in engine.volumes(labels)]}


def get_eventually(url: str, tries: int = 120) -> requests.Response:
    """The first answer from a server that is still starting (its process came up after the container)."""
    for _ in range(tries):
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            time.sleep(0.5)
    raise AssertionError(f"nothing answered at {url}")


@contextmanager
def published_stack(engine: Engine, tmp_path: Path, name: str, file: str, ports: tuple[int, ...]) -> Iterator[str]:
    """`envctl up` in a copy of tests/compose/NAME, as a user would (the file found, no -f); `down` after;
    nothing left.

    Yields the output of `up` (its notes on stderr)."""
    if not all(port_free(p) for p in ports):
        pytest.skip(f"the file publishes host ports {ports}, and one is taken on this machine")
    project = tmp_path / name
    shutil.copytree(COMPOSE / name, project)
    env: dict[str, str] = {}
    up = envctl(["up"], project, env)
    run = run_api.current_run(load_topology(project / file, environ={})).run
    try:
        yield up.stderr
    finally:
        envctl(["down"], project, env)
        remove_images_since(engine, name, set())  # the file's built images: this test's alone
    assert left_of(engine, name, run) == {"containers": [], "networks": [], "volumes": []}


def test_awesome_compose_flask_redis_runs_as_published(standins: None, tmp_path: Path, engine: Engine) -> None:
    with published_stack(engine, tmp_path, "flask-redis", "docker-compose.yml", (5000, 6379)) as notes:
        assert "ports are published on 127.0.0.1 only" in notes  # the difference is said, not silent
        first = get_eventually("http://127.0.0.1:5000/")
        second = requests.get("http://127.0.0.1:5000/", timeout=10)
        # web reached redis by its service name, on the run's own network
        assert first.text == "This webpage has been viewed 1 time(s)"
        assert second.text == "This webpage has been viewed 2 time(s)"


def test_awesome_compose_nginx_flask_mysql_runs_as_published(standins: None, tmp_path: Path, engine: Engine) -> None:
    """Three services on two networks, a secret, healthchecks in a chain, a build target."""
    with published_stack(engine, tmp_path, "nginx-flask-mysql", "compose.yaml", (80, 8000)):
        # `up` returned ready: proxy healthy, after backend, after db. proxy reached backend on
        # frontnet; backend reached db on backnet, with the secret's password.
        page = requests.get("http://127.0.0.1:80/", timeout=30)
        assert page.status_code == 200 and "Blog post #1" in page.text


KEYS = f"""
name: compose-keys
services:
  alerts:
    image: {PYTHON}
    container_name: alertmanager
    hostname: alerts-host
    command: [python3, -m, http.server, "9093", --directory, /srv]
    networks:
      back: {{aliases: [am]}}
    cap_drop: [ALL]
    read_only: true
    tmpfs: ["/tmp:size=8m"]
    restart: on-failure:2
    labels: {{com.example.role: alerts}}
    ulimits: {{nofile: {{soft: 1024, hard: 2048}}}}
    sysctls: {{net.core.somaxconn: "512"}}
    shm_size: 32m
    extra_hosts: ["upstream.test:10.1.2.3"]
    logging: {{driver: json-file, options: {{max-size: 1m}}}}
    deploy: {{resources: {{limits: {{cpus: "0.5", memory: 128M}}}}}}
    secrets: [token]
    configs: [{{source: settings, target: /srv/settings.conf}}]
    healthcheck:
      test: [CMD, python3, -c, "import urllib.request; urllib.request.urlopen('http://localhost:9093/')"]
      interval: 1s
  echo:
    image: {PYTHON}
    command: [python3, -m, http.server, "8000"]
    networks: [back]
    deploy: {{replicas: 3}}
  client:
    image: {PYTHON}
    command: [python3, -c, "import time; time.sleep(100000)"]
    networks: [back]
    depends_on: {{alerts: {{condition: service_healthy}}, echo: {{condition: service_started}}}}
networks:
  back: {{}}
secrets:
  token: {{file: ./token.txt}}
configs:
  settings: {{content: "level=debug"}}
"""


@pytest.fixture
def keys_run(standins: None, tmp_path: Path, engine: Engine) -> Iterator[tuple[object, str]]:
    (tmp_path / "token.txt").write_text("t0ken")
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(KEYS))
    topology = load_topology(tmp_path / "compose.yaml", environ={})
    result = run_api.up(topology, engine, make_current=False)
    yield topology, result.run
    teardown.down(topology, engine, result.run)
    assert left_of(engine, topology.name, result.run) == {"containers": [], "networks": [], "volumes": []}
    assert not (tmp_path / ".envctl" / "runs" / result.run / specs.GRANTS).exists()  # no secret copy stays


def test_the_runtime_keys_reach_the_container(keys_run, engine: Engine) -> None:
    topology, run = keys_run
    found = run_api.containers_by_service(engine, topology, run)
    info = engine.inspect_container(found["alerts"].id)
    host, config = info["HostConfig"], info["Config"]
    assert info["Name"] == f"/envctl-compose-keys-{run}-alerts"  # the real name stays per run
    assert config["Hostname"] == "alerts-host" and config["Labels"]["com.example.role"] == "alerts"
    assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True and host["Tmpfs"] == {"/tmp": "size=8m"}
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert host["Sysctls"] == {"net.core.somaxconn": "512"} and host["ShmSize"] == 32 << 20
    assert "upstream.test:10.1.2.3" in host["ExtraHosts"] and host["LogConfig"]["Config"]["max-size"] == "1m"
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 128 << 20
    networks = info["NetworkSettings"]["Networks"]
    assert list(networks) == [f"envctl-compose-keys-{run}-back"]  # the declared network, made for this run
    assert {"alerts", "alertmanager", "alerts-host", "am"} <= set(networks[f"envctl-compose-keys-{run}-back"]["Aliases"])
    code, output = engine.exec(found["alerts"].id, ["cat", "/run/secrets/token", "/srv/settings.conf"])
    assert (code, output) == (0, b"t0kenlevel=debug")


def test_a_service_reaches_another_by_its_container_name_hostname_and_alias(keys_run, engine: Engine) -> None:
    topology, run = keys_run
    client = run_api.containers_by_service(engine, topology, run)["client"]
    for name in ("alertmanager", "alerts-host", "am", "alerts"):
        script = f"import urllib.request; print(urllib.request.urlopen('http://{name}:9093/settings.conf').read().decode())"
        code, output = engine.exec(client.id, ["python3", "-c", script])
        assert (code, output.strip()) == (0, b"level=debug"), name


def test_replicas_are_containers_of_their_own_reached_by_the_service_name(keys_run, engine: Engine) -> None:
    topology, run = keys_run
    echoes = engine.containers({eng.PROJECT: topology.name, eng.RUN: run, eng.SERVICE: "echo"})
    assert sorted(c.name for c in echoes) == [f"envctl-compose-keys-{run}-echo{suffix}" for suffix in ("", "-2", "-3")]
    assert all(c.running for c in echoes)
    client = run_api.containers_by_service(engine, topology, run)["client"]
    script = "import socket; print(len({a[4][0] for a in socket.getaddrinfo('echo', 8000)}))"
    assert engine.exec(client.id, ["python3", "-c", script]) == (0, b"3\n")


WHERE_ASKED = f"""
name: bind-where-asked
services:
  everywhere:  # beyond loopback: only with the opt-in; the host still dials 127.0.0.1
    image: {PYTHON}
    command: [sh, -c, "mkdir -p /empty && exec python3 -m http.server 8000 --directory /empty"]
    ports: ["0.0.0.0::8000"]
    probe: {{http: /, port: 8000}}
  second-loopback:  # another loopback address: bound as written, no opt-in needed
    image: {PYTHON}
    command: [sh, -c, "mkdir -p /empty && exec python3 -m http.server 8000 --directory /empty"]
    ports: ["127.0.0.2::8000"]
    probe: {{http: /, port: 8000}}
"""


def test_a_port_is_published_where_the_file_asks_only_with_the_opt_in(standins: None, tmp_path: Path,
                                                                       engine: Engine) -> None:
    (tmp_path / "envctl.yaml").write_text(textwrap.dedent(WHERE_ASKED))
    refused = envctl(["up"], tmp_path, {}, check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "envctl.yaml:7: services.everywhere.ports[0]: service 'everywhere' asks to publish a port on 0.0.0.0" \
        in refused.stderr and "--allow publish-beyond-loopback" in refused.stderr
    assert engine.containers({eng.PROJECT: "bind-where-asked"}) == []  # nothing started

    up = envctl(["--allow", "publish-beyond-loopback", "up"], tmp_path, {})  # ready: both probes answered
    assert "published beyond loopback" in up.stderr  # the difference is said
    topology = load_topology(tmp_path / "envctl.yaml", environ={"ENVCTL_ALLOW": "publish-beyond-loopback"})
    run = run_api.current_run(topology).run
    try:
        found = run_api.containers_by_service(engine, topology, run)
        for service, address in (("everywhere", "0.0.0.0"), ("second-loopback", "127.0.0.2")):
            bindings = engine.inspect_container(found[service].id)["NetworkSettings"]["Ports"]["8000/tcp"]
            assert {b["HostIp"] for b in bindings} == {address}, service
        where = envctl(["port", "second-loopback"], tmp_path, {}).stdout.strip()
        assert where.startswith("127.0.0.2:") and requests.get(f"http://{where}/", timeout=10).status_code == 200
        assert envctl(["port", "everywhere"], tmp_path, {}).stdout.startswith("127.0.0.1:")
    finally:
        envctl(["down"], tmp_path, {})
    assert left_of(engine, topology.name, run) == {"containers": [], "networks": [], "volumes": []}
