"""Merging topology documents with Compose v2's rules, keeping where every key came from.

The later document wins for single values; mappings merge key by key; lists append. Some
keys have Compose's own rules: ``command``, ``entrypoint`` and ``healthcheck.test`` are
replaced whole; ``environment``, ``labels`` and ``build.args`` merge by variable whichever
form (list or mapping) each side uses; ``depends_on`` and ``networks`` merge by name;
``volumes`` merge by target path; list items that repeat are kept once. An empty value in
the later document leaves the earlier one as it was. Compose's YAML tags decide for
themselves: `!reset` removes the key, `!override` replaces the value whole.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from envctl.topology.source import KeyPath


@dataclass(frozen=True)
class Origin:
    file: Path
    line: int | None
    directory: Path  # where relative paths under this key start
    directive: str | None = None  # Compose's YAML tag on the value: "reset" or "override"
    # An included file's own env files (Compose: its project directory's .env), outermost first,
    # which fill in what the project's variables leave unset; () for the project's files.
    env_files: tuple[Path, ...] = ()


_RESET = object()  # a key `!reset` removes


@dataclass
class Tree:
    """A document's data and the origin of each key path in it."""

    data: dict[str, Any]
    origins: dict[KeyPath, Origin]
    _children: dict[KeyPath, list[KeyPath]] | None = field(default=None, repr=False)

    def get(self, path: KeyPath) -> Any:
        value: Any = self.data
        for part in path:
            value = value[part]
        return value

    def origin(self, path: KeyPath) -> Origin:
        while path and path not in self.origins:
            path = path[:-1]
        return self.origins[path] if path in self.origins else next(iter(self.origins.values()))

    def descendants(self, path: KeyPath) -> list[KeyPath]:
        """`path` and every key path under it that has an origin."""
        if self._children is None:
            self._children = {}
            for key in self.origins:
                if key:
                    self._children.setdefault(key[:-1], []).append(key)
        out, stack = [], [path]
        while stack:
            current = stack.pop()
            if current in self.origins:
                out.append(current)
            stack.extend(self._children.get(current, ()))
        return out

    def copy_origins(self, source: KeyPath, out: dict[KeyPath, Origin], target: KeyPath) -> None:
        for key in self.descendants(source):
            out[target + key[len(source):]] = self.origins[key]

    def without(self, path: KeyPath) -> Tree:
        """This tree minus the key at `path`."""
        data = _copy_along(self.data, path[:-1])
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        parent.pop(path[-1], None)
        gone = set(self.descendants(path))
        return Tree(data, {k: v for k, v in self.origins.items() if k not in gone})

    def subtree(self, path: KeyPath, at: KeyPath) -> Tree:
        """The value at `path`, alone, placed at `at`."""
        data: dict[str, Any] = {}
        holder = data
        for part in at[:-1]:
            holder = holder.setdefault(part, {})
        if at:
            holder[at[-1]] = self.get(path)
        else:
            data = dict(self.get(path))
        origins = {(): self.origins[()]} if () in self.origins else {}
        self.copy_origins(path, origins, at)
        return Tree(data, origins)

    def replaced(self, path: KeyPath, other: Tree) -> Tree:
        """This tree with the value at `path` taken from `other` (at the same path)."""
        data = _copy_along(self.data, path[:-1])
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = other.get(path)
        gone = set(self.descendants(path))
        origins = {k: v for k, v in self.origins.items() if k not in gone}
        other.copy_origins(path, origins, path)
        return Tree(data, origins)


def _copy_along(data: dict, path: KeyPath) -> dict:
    """A copy of `data` whose mappings along `path` are new (the rest is shared)."""
    top = dict(data)
    holder = top
    for part in path:
        holder[part] = dict(holder[part])
        holder = holder[part]
    return top


def merge_trees(base: Tree, top: Tree) -> Tree:
    """`top` merged over `base` with Compose's rules."""
    origins: dict[KeyPath, Origin] = {}
    data = _Merge(base, top, origins).value(base.data, top.data, (), ())
    origins.setdefault((), base.origins.get((), top.origin(())))
    return Tree(data, origins)


class _Merge:
    def __init__(self, base: Tree, top: Tree, origins: dict[KeyPath, Origin]) -> None:
        self.base, self.top, self.origins = base, top, origins

    def take(self, tree: Tree, source: KeyPath, target: KeyPath, value: Any) -> Any:
        tree.copy_origins(source, self.origins, target)
        return value

    def value(self, old: Any, new: Any, path: KeyPath, new_path: KeyPath) -> Any:
        """`new` (at `new_path` in the top tree) over `old` (at `path` in the base tree)."""
        directive = self.directive(new_path)
        if directive == "reset":
            return _RESET
        if directive == "override":
            return self.take(self.top, new_path, path, new)
        if new is None:
            return self.take(self.base, path, path, old)
        rule = _rule(path)
        if rule is not None and old is not None:
            return rule(self, old, new, path, new_path)
        if isinstance(old, dict) and isinstance(new, dict):
            return self.mapping(old, new, path, new_path)
        if isinstance(old, list) and isinstance(new, list):
            return self.unique(old, new, path, new_path)
        if path in self.base.origins and path not in self.top.origins:
            self.origins[path] = self.base.origins[path]
        return self.take(self.top, new_path, path, new)

    def mapping(self, old: dict, new: dict, path: KeyPath, new_path: KeyPath) -> dict:
        out = {}
        if path in self.base.origins:
            self.origins[path] = self.base.origins[path]
        for key, value in old.items():
            if key in new:
                merged = self.value(value, new[key], path + (key,), new_path + (key,))
                if merged is not _RESET:
                    out[key] = merged
            else:
                out[key] = self.take(self.base, path + (key,), path + (key,), value)
        for key, value in new.items():
            if key not in old and self.directive(new_path + (key,)) != "reset":
                out[key] = self.take(self.top, new_path + (key,), path + (key,), value)
        return out

    def directive(self, new_path: KeyPath) -> str | None:
        origin = self.top.origins.get(new_path)
        return origin.directive if origin else None

    def unique(self, old: list, new: list, path: KeyPath, new_path: KeyPath) -> list:
        """Both lists, each item once (Compose keeps ports, env_file, dns... unique)."""
        out: list = []
        for tree, items, source in ((self.base, old, path), (self.top, new, new_path)):
            for i, item in enumerate(items):
                if item not in out:
                    self.take(tree, source + (i,), path + (len(out),), None)
                    out.append(item)
        return out

    def replace(self, old: Any, new: Any, path: KeyPath, new_path: KeyPath) -> Any:
        return self.take(self.top, new_path, path, new)

    def by_name(self, old: Any, new: Any, path: KeyPath, new_path: KeyPath,
                as_mapping: Callable[[Any], dict] | None = None) -> dict:
        """Both sides as mappings (a list becomes one), merged key by key."""
        convert = as_mapping or _names_to_mapping
        old_tree = _as_mapping_tree(self.base, old, path, path, convert)
        new_tree = _as_mapping_tree(self.top, new, new_path, path, convert)
        saved = self.base, self.top
        self.base, self.top = old_tree, new_tree
        try:
            return self.mapping(old_tree.data, new_tree.data, path, path)
        finally:
            self.base, self.top = saved

    def variables(self, old: Any, new: Any, path: KeyPath, new_path: KeyPath) -> dict:
        return self.by_name(old, new, path, new_path, _variables_to_mapping)

    def build(self, old: Any, new: Any, path: KeyPath, new_path: KeyPath) -> Any:
        old = {"context": old} if isinstance(old, str) else old
        new = {"context": new} if isinstance(new, str) else new
        if isinstance(old, dict) and isinstance(new, dict):
            return self.mapping(old, new, path, new_path)
        return self.take(self.top, new_path, path, new)

    def volumes(self, old: Any, new: Any, path: KeyPath, new_path: KeyPath) -> Any:
        """Volumes merge by their target path: a later mount of the same target replaces it."""
        if not isinstance(old, list) or not isinstance(new, list):
            return self.take(self.top, new_path, path, new)
        out: list = []
        targets: list[Any] = []
        for tree, items, source in ((self.base, old, path), (self.top, new, new_path)):
            for i, item in enumerate(items):
                target = _volume_target(item)
                index = targets.index(target) if target is not None and target in targets else len(out)
                if index == len(out):
                    out.append(item)
                    targets.append(target)
                else:
                    out[index] = item
                self.take(tree, source + (i,), path + (index,), None)
        return out


def _as_mapping_tree(tree: Tree, value: Any, source: KeyPath, target: KeyPath,
                     convert: Callable[[Any], dict]) -> Tree:
    """`value` (at `source` in `tree`) as a mapping at `target`, list items' origins keyed by name."""
    mapping = convert(value)
    origins: dict[KeyPath, Origin] = {}
    if isinstance(value, list):
        if source in tree.origins:
            origins[target] = tree.origins[source]
        for i, item in enumerate(value):
            key = next(iter(convert([item])), None)
            tree.copy_origins(source + (i,), origins, target + (key,))
    else:
        tree.copy_origins(source, origins, target)
    return Tree(mapping, origins)


def _names_to_mapping(value: Any) -> dict:
    if isinstance(value, list):
        return {str(item): None for item in value}
    return dict(value) if isinstance(value, dict) else {}


def _variables_to_mapping(value: Any) -> dict:
    if isinstance(value, list):
        out: dict = {}
        for item in value:
            key, sep, rest = str(item).partition("=")
            out[key] = rest if sep else None
        return out
    return dict(value) if isinstance(value, dict) else {}


def _volume_target(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("target")
    if isinstance(item, str):
        parts = item.split(":")
        return parts[1] if len(parts) >= 2 else parts[0]
    return None


_SERVICE_RULES: dict[tuple[str, ...], Callable] = {
    ("command",): _Merge.replace,
    ("entrypoint",): _Merge.replace,
    ("healthcheck", "test"): _Merge.replace,
    ("environment",): _Merge.variables,
    ("labels",): _Merge.variables,
    ("annotations",): _Merge.variables,
    ("sysctls",): _Merge.variables,
    ("build", "args"): _Merge.variables,
    ("build", "labels"): _Merge.variables,
    ("depends_on",): _Merge.by_name,
    ("networks",): _Merge.by_name,
    ("build",): _Merge.build,
    ("volumes",): _Merge.volumes,
}


def _rule(path: KeyPath) -> Callable | None:
    if len(path) >= 3 and path[0] == "services":
        return _SERVICE_RULES.get(tuple(str(p) for p in path[2:]))
    return None
