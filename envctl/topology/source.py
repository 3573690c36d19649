"""Reading YAML with the line of every key, so errors can say where they are."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from envctl.errors import Problem
from envctl.topology.bounds import DocumentTooLarge, compose_within_bounds
from envctl.topology.yaml12 import Yaml12Constructor, Yaml12Loader

KeyPath = tuple[str | int, ...]


def format_key_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class Source:
    """A parsed YAML document plus the line of each key path, and the problems found so far."""

    file: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def problem(self, path: KeyPath, message: str, fix: str | None = None) -> None:
        self.problems.append(Problem(self.file, self.line(path), format_key_path(path), message, fix))


def read_yaml(file: Path) -> Source:
    """Parse `file`; a syntax error becomes a located `Problem` rather than an exception."""
    source = Source(file=file, data=None)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        source.problem((), "the file is not UTF-8 text", "save it as UTF-8")
        return source
    try:
        node = compose_within_bounds(text, Yaml12Loader)
    except DocumentTooLarge as exc:
        source.problems.append(Problem(file, exc.line, "", exc.message, exc.fix))
        return source
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        source.problems.append(
            Problem(file, line, "", f"YAML syntax error: {what}", "fix the YAML syntax at that line")
        )
        return source
    except yaml.YAMLError as exc:
        source.problems.append(Problem(file, None, "", f"YAML error: {exc}", "fix the YAML syntax"))
        return source
    if node is None:
        source.data = {}
        return source
    source.lines[()] = node.start_mark.line + 1
    source.data = _convert(node, (), source, set())
    return source


_SCALARS = Yaml12Constructor()


def _convert(node: yaml.Node, path: KeyPath, source: Source, active: set[int]) -> Any:
    if id(node) in active:  # an alias that contains itself
        source.problem(path, "a YAML alias refers to itself", "remove the recursive alias")
        return None
    if isinstance(node, yaml.ScalarNode):
        try:
            return _SCALARS.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            source.problem(path, f"cannot read this value: {exc.problem}", "quote the value")
            return None
    active = active | {id(node)}
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, child in enumerate(node.value):
            source.lines[path + (index,)] = child.start_mark.line + 1
            items.append(_convert(child, path + (index,), source, active))
        return items
    mapping: dict[Any, Any] = {}
    explicit: set[str] = set()
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            _merge(mapping, value_node, path, source, active)
            continue
        key = _convert(key_node, path, source, active)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            source.problem(path, f"a key must be a plain value, not {type(key).__name__}", "write a simple key")
            continue
        key = str(key) if not isinstance(key, str) else key
        child_path = path + (key,)
        source.lines[child_path] = key_node.start_mark.line + 1
        if key in explicit:
            source.problem(child_path, "this key appears twice in the same mapping", "keep only one of them")
        explicit.add(key)
        mapping[key] = _convert(value_node, child_path, source, active)
    return mapping


def _merge(mapping: dict, node: yaml.Node, path: KeyPath, source: Source, active: set[int]) -> None:
    """YAML merge keys (``<<: *defaults``): explicit keys win over merged ones."""
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for merged in nodes:
        value = _convert(merged, path, source, active)
        if not isinstance(value, dict):
            source.problem(path, "'<<' must merge a mapping", "point '<<' at a mapping anchor")
            continue
        for key, item in value.items():
            mapping.setdefault(key, item)
