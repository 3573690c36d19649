"""The backend seam: the local engine implements it, with the same signatures, and the runtime asks nothing else."""
import ast
import inspect
from pathlib import Path

from envctl.backend.base import Backend
from envctl.backend.engine import Engine

SEAM = [name for name, member in vars(Backend).items() if inspect.isfunction(member) and not name.startswith("_")]
PROPERTIES = [name for name, member in vars(Backend).items() if isinstance(member, property)]


def test_the_local_engine_implements_every_method_of_the_seam_as_declared() -> None:
    assert len(SEAM) >= 15
    for name in SEAM:
        declared, implemented = inspect.signature(getattr(Backend, name)), inspect.signature(getattr(Engine, name))
        assert list(declared.parameters) == list(implemented.parameters), name
        assert [p.kind for p in declared.parameters.values()] == [p.kind for p in implemented.parameters.values()], name


def test_starting_waiting_and_inspecting_a_run_ask_the_backend_only_for_the_seam() -> None:
    """Calls on an `engine` in the runtime's container code are the seam's: a second backend needs no more."""
    runtime = Path(__file__).parents[2] / "envctl" / "runtime"
    used: dict[str, set[str]] = {}
    for module in ("readiness.py", "healthchecks.py", "run.py", "launch.py", "diagnostics.py"):
        for node in ast.walk(ast.parse((runtime / module).read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "engine":
                used.setdefault(node.attr, set()).add(module)
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "engine" and isinstance(node.value.value, ast.Name)):
                used.setdefault(node.attr, set()).add(module)
    beyond = {name: sorted(where) for name, where in used.items() if name not in SEAM + PROPERTIES}
    assert beyond == {}, "runtime code calls engine methods outside envctl.backend.base.Backend"


def test_the_local_engine_refuses_nothing_and_runs_services_as_the_topology_says(write_topology) -> None:
    from envctl.topology import load_topology

    topology = load_topology(write_topology("name: demo\nservices:\n  api: {image: 'nginx:1'}\n"))
    engine = Engine.__new__(Engine)  # no connection: neither answer asks the engine
    assert engine.check(topology, ["api"]) is None and list(engine.notes) == []


def test_nothing_above_the_backends_asks_which_backend_it_has() -> None:
    """Only the module that chooses the backend names the swarm's; the rest ask the seam."""
    package = Path(__file__).parents[2] / "envctl"
    naming = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                    if path.parent.name != "backend" and "SwarmBackend" in path.read_text())
    assert naming == ["runtime/backends.py"]
