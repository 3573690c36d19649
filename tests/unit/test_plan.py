"""The plan `up` carries out, decided with no engine: selection, change detection, the gate, order."""
import pytest

from envctl.errors import EnvctlError
from envctl.planning.plan import CREATE, KEEP, RECREATE, Running, describe, make_plan
from envctl.planning.selection import parse_except, recording_modes, select_services, selection
from envctl.topology import load_topology

SHOP = """
services:
  db: {image: x, ports: ["5432"]}
  cache: {image: x}
  migrate:
    image: x
    depends_on: {db: {condition: service_healthy}}
  api:
    image: x
    ports: ["8000"]
    environment: {CACHE: "${cache.host}"}
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
  web:
    image: x
    scale: 3
    depends_on: {api: {condition: service_started}}
  report:
    image: x
    profiles: [nightly]
    depends_on: {db: {condition: service_healthy}}
"""


@pytest.fixture
def shop(write_topology):
    return load_topology(write_topology(SHOP), environ={})


def hashes(*names, value="h1"):
    return {n: value for n in names}


ALL = ["db", "cache", "migrate", "api", "web"]


def test_a_fresh_run_creates_everything_dependencies_first(shop) -> None:
    plan = make_plan(shop, "r1", ALL, hashes(*ALL), {}, fresh=True, gating=False)
    assert {s.action for s in plan.services.values()} == {CREATE}
    assert {s.reason for s in plan.services.values()} == {"new"}
    order = plan.creation_order()
    assert order == ["cache", "db", "migrate", "api", "web"]  # by depth, then name
    assert order.index("db") < order.index("migrate") < order.index("api") < order.index("web")


def test_depends_on_conditions_become_what_each_service_waits_for(shop) -> None:
    plan = make_plan(shop, "r1", ALL, hashes(*ALL), {}, fresh=True, gating=False)
    assert plan.services["api"].waits_for == (("db", "ready"), ("migrate", "completed"))
    assert plan.services["web"].waits_for == (("api", "started"),)
    assert plan.services["migrate"].awaited_exit_by == ("api",)
    assert plan.services["db"].awaited_exit_by == ()
    assert plan.requirements()["api"] == [("db", "ready"), ("migrate", "completed")]
    assert plan.services["web"].replicas == 2


def test_an_unchanged_running_service_is_kept(shop) -> None:
    running = {n: Running(True, "h1") for n in ALL}
    plan = make_plan(shop, "r1", ALL, hashes(*ALL), running, fresh=False, gating=True)
    assert all(s.action == KEEP and s.reason == "unchanged" for s in plan.services.values())
    assert plan.creation_order() == [] and plan.changed() == set()
    assert not any(s.held for s in plan.services.values())


def test_a_changed_service_is_recreated_and_takes_its_dependents_along(shop) -> None:
    running = {n: Running(True, "h1") for n in ALL}
    changed = {**hashes(*ALL), "migrate": "h2"}
    plan = make_plan(shop, "r1", ALL, changed, running, fresh=False, gating=False)
    assert plan.services["migrate"].action == RECREATE
    assert plan.services["migrate"].reason == "configuration or image changed"
    assert plan.services["api"].reason == plan.services["web"].reason == "a dependency is recreated"
    assert plan.services["db"].action == plan.services["cache"].action == KEEP
    assert plan.creation_order() == ["migrate", "api", "web"]


def test_a_stopped_container_is_recreated_and_a_missing_one_created(shop) -> None:
    running = {"db": Running(False, "h1"), "cache": Running(True, "h1")}
    plan = make_plan(shop, "r1", ["db", "cache"], hashes("db", "cache"), running, fresh=False, gating=False)
    assert (plan.services["db"].action, plan.services["db"].reason) == (RECREATE, "not running")
    assert plan.services["cache"].action == KEEP
    plan = make_plan(shop, "r1", ["db", "cache"], hashes("db", "cache"), {"db": Running(True, "h1")},
                     fresh=False, gating=False)
    assert (plan.services["cache"].action, plan.services["cache"].reason) == (CREATE, "new")


def test_a_service_whose_image_is_still_to_be_built_is_recreated(shop) -> None:
    running = {n: Running(True, "h1") for n in ALL}
    plan = make_plan(shop, "r1", ALL, {**hashes(*ALL), "cache": None}, running, fresh=False, gating=False)
    assert plan.services["cache"].action == RECREATE
    assert plan.services["cache"].reason == "its image is built first"
    # api references cache's address but does not depend_on it: as before, only depends_on takes dependents along
    assert plan.services["api"].action == plan.services["db"].action == KEEP


def test_only_what_waits_for_a_changed_dependency_is_held_at_the_gate(shop) -> None:
    running = {n: Running(True, "h1") for n in ["db", "cache"]}
    plan = make_plan(shop, "r1", ALL, hashes(*ALL), running, fresh=False, gating=True)
    held = {n for n, s in plan.services.items() if s.held}
    assert held == {"api", "web"}  # migrate waits for db, which is kept: nothing to hold it for
    plan = make_plan(shop, "r1", ALL, hashes(*ALL), {}, fresh=True, gating=True)
    assert {n for n, s in plan.services.items() if s.held} == {"migrate", "api", "web"}
    plan = make_plan(shop, "r1", ALL, hashes(*ALL), {}, fresh=True, gating=False)
    assert not any(s.held for s in plan.services.values())


def test_selection_follows_dependencies_references_profiles_and_except(shop) -> None:
    assert select_services(shop) == ALL
    assert select_services(shop, profiles=["nightly"]) == [*ALL, "report"]
    assert select_services(shop, ["api"]) == ["db", "cache", "migrate", "api"]  # cache: by reference
    assert select_services(shop, ["api"], except_services=["db"]) == ["cache", "migrate", "api"]
    with pytest.raises(EnvctlError, match="unknown service or mock 'nope'"):
        select_services(shop, ["nope"])


def test_except_names_the_host_ports_and_rejects_what_is_not_a_port(shop) -> None:
    assert parse_except(shop, ["api", "db:15432"]) == {"api": {8000: 8000}, "db": {5432: 15432}}
    with pytest.raises(EnvctlError, match="'x' is not a port number"):
        parse_except(shop, ["api:x"])


def test_only_mocks_record(shop) -> None:
    with pytest.raises(EnvctlError, match="'db' is not a mock, so it cannot record"):
        recording_modes(shop, ["db"], [])
    assert selection(shop, [], [], {}, set()) == ALL


def test_the_plan_reads_as_lines(shop) -> None:
    selected = [n for n in ALL if n != "cache"]
    running = {n: Running(True, "h1") for n in selected}
    plan = make_plan(shop, "r1", selected, {**hashes(*selected), "migrate": "h2"}, running, fresh=False,
                     gating=True, networks=("shop-r1",), on_host={"cache": {6379: 6379}})
    text = "\n".join(describe(plan))
    assert "run r1\n" in text + "\n"
    assert "migrate              recreate (configuration or image changed); waits for db ready; " \
           "must exit 0 for api" in text
    assert "api                  recreate (a dependency is recreated); waits for db ready, migrate completed; " \
           "started early, held at the gate" in text
    assert "db                   keep     (unchanged)" in text
    assert "cache                on the host (--except), on port(s) 6379" in text
    names = [line.split()[0] for line in text.splitlines() if line.startswith("  ")]
    assert names == ["migrate", "api", "web", "db", "cache"]  # creation order, then kept, then on the host
