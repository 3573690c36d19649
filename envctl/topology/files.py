"""Which files make the topology, and how they become one document.

Without ``-f``, a directory's ``envctl.yaml`` is the topology; failing that, its Compose file
(``compose.yaml``, ``compose.yml``, ``docker-compose.yml``, ``docker-compose.yaml``, in
Compose's order) together with its ``*.override.*`` file. Several files merge with Compose's
rules (`envctl.topology.merge`). Within a file, ``include:`` merges other files underneath it,
``extends:`` builds a service on another, and ``x-envctl:`` blocks (at the top and in a
service) hold envctl's own keys in a file ``docker compose`` also reads.

Every key keeps the file and line it came from, for messages, and the directory its
relative paths start from: the project directory for ``-f`` files (as in Compose), the
included or extended file's own directory otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from envctl.errors import Problem
from envctl.topology.merge import Origin, Tree, merge_trees
from envctl.topology.source import KeyPath, Source, format_key_path, read_yaml
from envctl.topology.yaml12 import Yaml12Loader

DEFAULT_FILE = "envctl.yaml"
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = ("compose.override.yml", "compose.override.yaml",
                  "docker-compose.override.yml", "docker-compose.override.yaml")
EXTENSION = "x-envctl"


def discover(directory: Path) -> list[Path]:
    """The topology files of `directory`, or [] when it has none."""
    if (directory / DEFAULT_FILE).is_file():
        return [directory / DEFAULT_FILE]
    for name in COMPOSE_FILES:
        if (directory / name).is_file():
            overrides = [directory / o for o in OVERRIDE_FILES if (directory / o).is_file()]
            return [directory / name] + overrides[:1]
    return []


@dataclass
class Document(Source):
    """A topology made of one or more files: each key remembers where it came from."""

    origins: dict[KeyPath, Origin] = field(default_factory=dict)
    files: tuple[Path, ...] = ()  # as named or found, before includes

    def origin(self, path: KeyPath) -> Origin | None:
        while path:
            if path in self.origins:
                return self.origins[path]
            path = path[:-1]
        return self.origins.get(())

    def directory(self, path: KeyPath) -> Path:
        """Where relative paths under `path` start."""
        origin = self.origin(path)
        return origin.directory if origin else self.file.parent

    def problem(self, path: KeyPath, message: str, fix: str | None = None) -> None:
        origin = self.origin(path)
        file = origin.file if origin else self.file
        self.problems.append(Problem(file, self.line(path), format_key_path(path), message, fix))


def read_documents(files: list[Path]) -> Document:
    """`files` (the first one names the project directory) merged into one document."""
    project = files[0].parent
    reader = _Reader()
    merged = Tree({}, {(): Origin(files[0], 1, project)})
    for file in files:
        tree = reader.read(file, project, chain=())
        if tree is not None:
            merged = merge_trees(merged, tree)
    document = Document(file=files[0], data=merged.data, problems=reader.problems, origins=merged.origins,
                        files=tuple(files))
    document.lines = {path: origin.line for path, origin in merged.origins.items()}
    return document


class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def read(self, file: Path, directory: Path, chain: tuple[Path, ...], named_at: Origin | None = None,
             env_files: tuple[Path, ...] = ()) -> Tree | None:
        """One file with its includes, extends and x-envctl blocks applied; `env_files` are the
        included files' env files its variables come from, beyond the project's."""
        file = file.resolve()
        if not file.is_file():
            where = named_at or Origin(file, None, directory)
            self.problems.append(Problem(where.file, where.line, "", f"no file at {file}",
                                         "fix the path (relative to the file that names it)"))
            return None
        if file in chain:
            loop = " -> ".join(str(f) for f in chain + (file,))
            self.problems.append(Problem(chain[-1], None, "include", f"files include each other in a loop: {loop}",
                                         "remove one of these includes"))
            return None
        source = read_yaml(file)
        if source.problems:
            self.problems.extend(source.problems)
            return None
        if not isinstance(source.data, dict):
            self.problems.append(Problem(file, source.line(()), "", "the file must be a mapping of keys",
                                         "start with 'services:'"))
            return None
        directives = _merge_directives(file)
        tree = Tree(source.data, {path: Origin(file, line, directory, directives.get(path), env_files)
                                  for path, line in source.lines.items()})
        tree.origins.setdefault((), Origin(file, 1, directory, env_files=env_files))
        tree = self.hoist_extension(tree, ())
        for name in list((tree.data.get("services") or {}) if isinstance(tree.data.get("services"), dict) else ()):
            if isinstance(tree.data["services"][name], dict):
                tree = self.hoist_extension(tree, ("services", name))
        tree = self.extend_services(tree, file, chain + (file,), env_files)
        if "include" in tree.data:
            tree = self.include(tree, file, chain + (file,), env_files)
        return tree

    def problem(self, tree: Tree, path: KeyPath, message: str, fix: str) -> None:
        origin = tree.origin(path)
        self.problems.append(Problem(origin.file, origin.line, format_key_path(path), message, fix))

    # -- x-envctl --------------------------------------------------------------------------

    def hoist_extension(self, tree: Tree, path: KeyPath) -> Tree:
        """Merge the `x-envctl` block at `path` into the mapping that holds it."""
        holder = tree.get(path)
        block = holder.get(EXTENSION)
        if block is None:
            return tree
        if not isinstance(block, dict):
            self.problem(tree, path + (EXTENSION,), f"'{EXTENSION}' must be a mapping of envctl keys",
                         f"write '{EXTENSION}:' with keys such as probe, base or docker_socket")
            return tree.without(path + (EXTENSION,))
        return merge_trees(tree.without(path + (EXTENSION,)), tree.subtree(path + (EXTENSION,), at=path))

    # -- include ---------------------------------------------------------------------------

    def include(self, tree: Tree, file: Path, chain: tuple[Path, ...], env_files: tuple[Path, ...]) -> Tree:
        """Included files underneath, this file on top (so it can add envctl's keys).

        As in Compose, an included file is its own project: its relative paths start at its
        project directory, and its variables come from the including file's, then from its
        `env_file`s (default: its project directory's .env) for what those leave unset."""
        entries = tree.data["include"]
        base = Tree({}, {(): tree.origins[()]})
        for name, directory, own_env in self.include_entries(tree, entries):
            directory = directory or (file.parent / name).parent
            if own_env is None:
                own_env = tuple(f for f in [directory / ".env"] if f.is_file())
            included = self.read(file.parent / name, directory, chain, named_at=tree.origin(("include",)),
                                 env_files=env_files + own_env)
            if included is not None:
                base = merge_trees(base, included)
        return merge_trees(base, tree.without(("include",)))

    def include_entries(self, tree: Tree, entries: Any) -> list[tuple[str, Path | None, tuple[Path, ...] | None]]:
        """(path, project directory, env files) of each file included; None: the defaults."""
        if isinstance(entries, (str, dict)):
            entries = [entries]
        if not isinstance(entries, list):
            self.problem(tree, ("include",), "include must be a list of files", "write include: [other/compose.yaml]")
            return []
        out: list[tuple[str, Path | None, tuple[Path, ...] | None]] = []
        for i, entry in enumerate(entries):
            if isinstance(entry, str):
                out.append((entry, None, None))
                continue
            paths = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(paths, str):
                paths = [paths]
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                self.problem(tree, ("include", i), "an include entry needs 'path'", "write - path: other/compose.yaml")
                continue
            here = tree.origin(("include", i)).directory
            project = entry.get("project_directory")
            directory = (here / project) if isinstance(project, str) else None
            env_files = self.include_env_files(tree, ("include", i, "env_file"), entry.get("env_file"), here)
            out.extend((p, directory, env_files) for p in paths)
        return out

    def include_env_files(self, tree: Tree, path: KeyPath, named: Any, here: Path) -> tuple[Path, ...] | None:
        """An include's `env_file` (one or a list, relative to the including file), each required."""
        if named is None:
            return None
        names = [named] if isinstance(named, str) else named
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.problem(tree, path, "env_file must be a file or a list of files", "write env_file: [other/.env]")
            return ()
        files = tuple((here / n).resolve() for n in names)
        for file in files:
            if not file.is_file():
                self.problem(tree, path, f"no env file at {file}", "fix the path (relative to the including file)")
        return files

    # -- extends ---------------------------------------------------------------------------

    def extend_services(self, tree: Tree, file: Path, chain: tuple[Path, ...], env_files: tuple[Path, ...]) -> Tree:
        services = tree.data.get("services")
        if not isinstance(services, dict):
            return tree
        for name in list(services):
            tree = self.extend(tree, name, file, chain, (), env_files)
        return tree

    def extend(self, tree: Tree, name: str, file: Path, chain: tuple[Path, ...], seen: tuple[str, ...],
               env_files: tuple[Path, ...]) -> Tree:
        """Service `name` built on the service it extends (which is resolved first)."""
        path: KeyPath = ("services", name)
        service = tree.data["services"].get(name)
        if not isinstance(service, dict) or "extends" not in service:
            return tree
        spec = service["extends"]
        if isinstance(spec, str):
            spec = {"service": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("service"), str):
            self.problem(tree, path + ("extends",), "extends needs the name of a service",
                         "write extends: {service: NAME} or extends: {service: NAME, file: other.yaml}")
            return tree.without(path + ("extends",))
        parent_name = spec["service"]
        if "file" in spec:
            other = tree.origin(path + ("extends",)).directory / str(spec["file"])
            parent_tree = self.read(other, other.resolve().parent, chain, named_at=tree.origin(path + ("extends",)),
                                    env_files=env_files)
            if parent_tree is None:
                return tree.without(path + ("extends",))
        else:
            if name in seen or parent_name == name:
                self.problem(tree, path + ("extends",), "services extend each other in a loop: "
                             + " -> ".join(seen + (name, parent_name)), "remove one of these extends")
                return tree.without(path + ("extends",))
            tree = self.extend(tree, parent_name, file, chain, seen + (name,), env_files)
            parent_tree = tree
        parent = (parent_tree.data.get("services") or {}).get(parent_name)
        if not isinstance(parent, dict):
            self.problem(tree, path + ("extends",), f"extends names '{parent_name}', which is not a service there",
                         "name a service defined in that file")
            return tree.without(path + ("extends",))
        base = parent_tree.subtree(("services", parent_name), at=path)
        merged = merge_trees(base, tree.subtree(path, at=path).without(path + ("extends",)))
        return tree.replaced(path, merged)


def _merge_directives(file: Path) -> dict[KeyPath, str]:
    """The key paths of values tagged `!reset` or `!override` (Compose's merge directives)."""
    text = file.read_text(encoding="utf-8")
    if "!reset" not in text and "!override" not in text:
        return {}
    found: dict[KeyPath, str] = {}

    def walk(node: yaml.Node, path: KeyPath) -> None:
        if node.tag in ("!reset", "!override"):
            found[path] = node.tag[1:]
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    walk(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for index, value in enumerate(node.value):
                walk(value, path + (index,))

    node = yaml.compose(text, Loader=Yaml12Loader)  # read_yaml has parsed it once already
    if node is not None:
        walk(node, ())
    return found
