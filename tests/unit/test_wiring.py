"""References resolve per consumer: alias and container port in a container, loopback on the host."""
import pytest

from envctl.topology import load_topology
from envctl.planning.wiring import HOST_GATEWAY, Unreachable, container_side, host_side, resolve_environment


@pytest.fixture
def topology(write_topology):
    path = write_topology(
        """
        services:
          db: {image: x, ports: ["5432"]}
          api:
            image: x
            ports: ["8000", "9000"]
            environment:
              DB: postgresql://${db.host}:${db.port}/app
              SELF: ${api.url.9000}
          web:
            image: x
            environment: {API: "${api.url}", LIT: "$${db.host}"}
        """
    )
    return load_topology(path, environ={})


def test_container_consumers_get_alias_and_container_port(topology) -> None:
    book = container_side(topology)
    assert resolve_environment("api", book, topology) == {"DB": "postgresql://db:5432/app", "SELF": "http://api:9000"}
    assert resolve_environment("web", book, topology) == {"API": "http://api:8000", "LIT": "${db.host}"}


def test_host_consumers_get_loopback_and_published_port(topology) -> None:
    book = host_side(topology, {"db": {5432: 49001}, "api": {8000: 49002, 9000: 49003}})
    assert resolve_environment("api", book, topology)["DB"] == "postgresql://127.0.0.1:49001/app"
    assert resolve_environment("web", book, topology)["API"] == "http://127.0.0.1:49002"


def test_a_service_on_the_host_is_reached_through_the_gateway(topology) -> None:
    book = container_side(topology, on_host={"api": {8000: 8000, 9000: 9000}})
    assert resolve_environment("web", book, topology)["API"] == f"http://{HOST_GATEWAY}:8000"


def test_a_target_not_in_the_run_is_a_clear_error(topology) -> None:
    with pytest.raises(Unreachable, match="'db' is not part of this run"):
        resolve_environment("api", host_side(topology, {}), topology)


def test_host_consumers_dial_the_loopback_address_the_file_publishes_on(write_topology) -> None:
    topology = load_topology(write_topology(
        """
        services:
          db: {image: x, ports: ["127.0.0.2::5432"]}
          api: {image: x, environment: {DB: "${db.url}", HOST: "${db.host}"}}
        """
    ), environ={})
    book = host_side(topology, {"db": {5432: 49001}})
    assert resolve_environment("api", book, topology) == {"DB": "http://127.0.0.2:49001", "HOST": "127.0.0.2"}
