"""Public Compose files, as their projects publish them, load into the model with their meaning kept."""
from pathlib import Path

import pytest

from envctl.runtime.specs import container_spec as _container_spec
from envctl.topology.model import RestartPolicy
from tests.unit.test_topology import load, problems

COMPOSE = Path(__file__).parents[1] / "compose"


def test_flask_redis_loads_as_published() -> None:
    topology = load(COMPOSE / "flask-redis" / "docker-compose.yml")
    assert set(topology.services) == {"redis", "web"}
    assert topology.services["web"].volumes[0].source == str(COMPOSE / "flask-redis")


def test_nginx_flask_mysql_keeps_networks_secrets_and_the_build_target() -> None:
    topology = load(COMPOSE / "nginx-flask-mysql" / "compose.yaml")
    db, backend, proxy = (topology.services[n] for n in ("db", "backend", "proxy"))
    assert backend.build.target == "builder" and db.options.restart == RestartPolicy("unless-stopped")
    assert [a.name for a in backend.networks] == ["backnet", "frontnet"] and proxy.networks[0].name == "frontnet"
    spec = _container_spec(topology, "r1", "db", "img", {})
    assert any(m.target == "/run/secrets/db-password" and m.read_only for m in spec.mounts)
    assert spec.host_options["log_config"]["config"]["max-file"] == "3" and "33060/tcp" in spec.exposed


def test_the_voting_app_reaches_its_databases_by_container_name() -> None:
    topology = load(COMPOSE / "voting-app" / "docker-compose.yml")
    assert topology.services["redis"].container_name == "redis" and topology.services["db"].networks[0].name == "back-tier"
    assert set(topology.networks) == {"front-tier", "back-tier"}


def test_the_sock_shop_needs_an_opt_in_for_the_engine_socket_and_nothing_else() -> None:
    path = COMPOSE / "sock-shop" / "docker-compose.yml"
    text = problems(path)
    assert "queue-master" in text and "--allow docker-socket" in text and text.count("Fix:") == 1
    topology = load(path, ENVCTL_ALLOW="docker-socket")
    assert len(topology.services) == 16
    edge = topology.services["edge-router"].options
    assert edge.read_only and edge.cap_drop == ("ALL",) and ("/var/run", "rw,noexec,nosuid") in edge.tmpfs
    assert topology.services["user-sim"].hostname == "user-simulator"
