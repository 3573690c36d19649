"""The package layout holds: imports point one way, nothing cycles, the SDK stays in the engine.

Read from the source with `ast`, never by importing envctl, so a broken import cannot hide
a broken layout. Every import counts, at module level or inside a function; relative imports
are resolved. An import under `if TYPE_CHECKING:` never runs, so the cycle check skips it;
the layer and SDK checks do not (a type named from a higher layer is still a dependency on it).
"""
from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "envctl"

# Lowest first: a module may import from its own row or the rows above it, never below.
# Every top-level module or package of envctl is in exactly one row.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("base", frozenset({"__init__", "errors", "bugs", "durations", "progress", "graph", "processes", "switches"})),
    ("the mock server", frozenset({"mockserver"})),
    ("the topology", frozenset({"topology"})),
    ("observation and mocks", frozenset({"observation", "mocks"})),
    ("the engine", frozenset({"backend"})),
    ("planning", frozenset({"planning"})),
    ("images", frozenset({"images"})),
    ("the runtime", frozenset({"runtime"})),
    ("the library API", frozenset({"project", "stack", "doctor"})),
    ("shells", frozenset({"shells", "__main__"})),
)

# Cycles that exist today and are being removed; each names who removes it. Empty it.
KNOWN_CYCLES: dict[frozenset[str], str] = {}

LONGEST_FUNCTION = 60  # lines, `def` to last line; longer needs `# long: <reason>` on or above the def

# Functions over LONGEST_FUNCTION lines today, each with who is shrinking it. Empty it.
ALLOWED_LONG: dict[str, str] = {}

SDK_MODULE = "envctl.backend.engine"  # the one importer of the Docker SDK


@dataclass(frozen=True)
class Import:
    source: str      # importing module, dotted
    target: str      # imported module, dotted (an envctl module when it is one)
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`

    def where(self) -> str:
        return f"{module_path(self.source)}:{self.line}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> str:
    path = PACKAGE.parent / Path(*name.split("."))
    return str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(PACKAGE.parent))


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = modules()


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import in the tree, with whether it sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, type_only
        elif isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                yield from import_nodes(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from import_nodes(ast.Module(body=[child], type_ignores=[]), type_only)
        else:
            yield from import_nodes(node, type_only)


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """What a module imports: `from pkg import sub` names the submodule when there is one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node, type_only in import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno, type_only)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        for alias in node.names:
            submodule = f"{origin}.{alias.name}"
            yield Import(name, submodule if submodule in MODULES else origin, node.lineno, type_only)


@functools.cache
def all_imports() -> tuple[Import, ...]:
    return tuple(found for name, path in MODULES.items() for found in imports_of(name, path))


def is_envctl(target: str) -> bool:
    return target == "envctl" or target.startswith("envctl.")


def top_level(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(name: str) -> int | None:
    return next((rank for rank, (_, members) in enumerate(LAYERS) if top_level(name) in members), None)


# a. cycles ---------------------------------------------------------------------------------

def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, for the message."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & component):
                if successor == start:
                    return paths[node] + [start]
                if successor not in paths:
                    paths[successor] = paths[node] + [successor]
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], Import]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    first: dict[tuple[str, str], Import] = {}
    for found in all_imports():
        if found.type_only or found.target not in MODULES:
            continue
        graph[found.source].add(found.target)
        first.setdefault((found.source, found.target), found)
    return graph, first


def test_no_import_cycles() -> None:
    graph, first = import_graph()
    messages = []
    for component in strongly_connected(graph):
        if frozenset(component) in KNOWN_CYCLES:
            continue
        cycle = one_cycle(graph, component)
        steps = [f"  {first[a, b].where()}: {a} imports {b}" for a, b in zip(cycle, cycle[1:])]
        messages.append(" -> ".join(cycle) + (f"  (one of {len(component)} modules in a knot)"
                                              if len(component) > len(cycle) - 1 else "") + "\n" + "\n".join(steps))
    assert not messages, "import cycles (move what both need one layer down, or pass it in):\n" + \
        "\n".join(messages)


def test_known_cycles_still_exist() -> None:
    graph, _ = import_graph()
    current = {frozenset(component) for component in strongly_connected(graph)}
    gone = [sorted(cycle) for cycle in KNOWN_CYCLES if cycle not in current]
    assert not gone, f"KNOWN_CYCLES lists cycles that are gone; remove them from {__file__}: {gone}"


# b. layers ---------------------------------------------------------------------------------

def test_every_top_level_module_has_a_layer() -> None:
    placed = [name for _, members in LAYERS for name in members]
    assert len(placed) == len(set(placed)), "a name sits in two rows of LAYERS"
    unplaced = sorted({top_level(name) for name in MODULES if layer_of(name) is None})
    assert not unplaced, ", ".join(f"envctl/{name}" for name in unplaced) + \
        f" in no layer: add each to a row of LAYERS in {__file__}"


def test_imports_point_down_the_layers() -> None:
    upward = []
    for found in all_imports():
        if not is_envctl(found.target):
            continue
        source, target = layer_of(found.source), layer_of(found.target)
        if source is not None and target is not None and target > source:
            upward.append(f"{found.where()}: {found.source} ({LAYERS[source][0]}) imports "
                          f"{found.target} ({LAYERS[target][0]})")
    assert not upward, "imports against the layers (lowest first: " + \
        " < ".join(label for label, _ in LAYERS) + "):\n" + "\n".join(upward)


# c, d. what may import what ----------------------------------------------------------------

def test_only_the_engine_imports_the_docker_sdk() -> None:
    offenders = [found.where() for found in all_imports()
                 if (found.target == "docker" or found.target.startswith("docker.")) and found.source != SDK_MODULE]
    assert offenders == [], f"the Docker SDK is imported outside {module_path(SDK_MODULE)}: {offenders}"


def test_the_mock_server_imports_nothing_of_envctl() -> None:
    # It runs in the mock container as its own package, where envctl is not installed.
    offenders = [f"{found.where()}: {found.target}" for found in all_imports()
                 if top_level(found.source) == "mockserver" and is_envctl(found.target)
                 and top_level(found.target) != "mockserver"]
    assert offenders == [], "envctl/mockserver imports envctl:\n" + "\n".join(offenders)


def test_the_mock_server_imports_itself_relatively() -> None:
    # `envctl.mockserver.x` would not resolve in the container, where the package is `envctl_mock`.
    offenders = []
    for name, path in MODULES.items():
        if top_level(name) != "mockserver":
            continue
        for node, _ in import_nodes(ast.parse(path.read_text(), str(path))):
            absolute = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if node.level == 0 else []
            offenders += [f"{module_path(name)}:{node.lineno}: {a}" for a in absolute if is_envctl(a)]
    assert offenders == [], "absolute envctl imports in envctl/mockserver:\n" + "\n".join(offenders)


# e. long functions -------------------------------------------------------------------------

@dataclass(frozen=True)
class Function:
    name: str       # dotted: module, classes and enclosing functions
    where: str
    lines: int
    excused: bool   # `# long: <reason>` on the def's line or the line above it (or above its decorators)


def functions_in(module: str, path: Path) -> Iterator[Function]:
    source = path.read_text()
    lines = source.splitlines()

    def excused(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        candidates = [node.lineno, node.lineno - 1]
        if node.decorator_list:
            candidates.append(min(d.lineno for d in node.decorator_list) - 1)
        return any(0 < n <= len(lines) and "# long:" in lines[n - 1]
                   and lines[n - 1].split("# long:", 1)[1].strip() for n in candidates)

    def walk(node: ast.AST, prefix: str) -> Iterator[Function]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}.{child.name}"
                yield Function(name, f"{module_path(module)}:{child.lineno}",
                               child.end_lineno - child.lineno + 1, excused(child))
                yield from walk(child, name)
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}.{child.name}")
            else:
                yield from walk(child, prefix)

    yield from walk(ast.parse(source, str(path)), module)


def long_functions() -> list[Function]:
    return [function for module, path in MODULES.items() for function in functions_in(module, path)
            if function.lines > LONGEST_FUNCTION and not function.excused]


def test_no_function_is_longer_than_60_lines_without_a_reason() -> None:
    offenders = [f"{f.where}: {f.name} ({f.lines} lines)" for f in long_functions() if f.name not in ALLOWED_LONG]
    assert not offenders, f"functions over {LONGEST_FUNCTION} lines: split them, or say why on the def " \
        "line or the line above it (`# long: <reason>`):\n" + "\n".join(offenders)


def test_allowed_long_names_only_functions_still_long() -> None:
    still_long = {f.name for f in long_functions()}
    gone = sorted(name for name in ALLOWED_LONG if name not in still_long)
    assert not gone, f"ALLOWED_LONG lists functions now short (or excused, or gone); remove them from {__file__}: {gone}"
