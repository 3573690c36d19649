"""Bounded work for hostile YAML: a limit on nesting and on the values a document expands to.

YAML aliases let seven short lines stand for millions of values (an "alias bomb"), and
PyYAML's composer recurses once per level of nesting, so a deep enough document raises
`RecursionError`. Both are checked while the document is composed, before anything walks
the expanded tree: a running count of values, where an alias adds what its anchor stands
for, and each node's expanded height, the maximum of its children's (known when it is
finished: an alias is a finished node). PyYAML's scanner does work per token in proportion
to the open flow levels, so the depth bound also keeps a large nested file quick to refuse.
"""
from __future__ import annotations

from typing import Any

import yaml

# A real topology is a few hundred to a few thousand values, nested fewer than ten deep.
# At these bounds the slowest file to refuse takes under a second (measured on 2 cores).
MAX_VALUES = 25_000
MAX_DEPTH = 32


class DocumentTooLarge(Exception):
    """The document passes a bound; `line` is where it did."""

    def __init__(self, line: int, message: str, fix: str) -> None:
        super().__init__(message)
        self.line, self.message, self.fix = line, message, fix


class _BoundedComposer:
    """Mixed in before a PyYAML loader: counts what each node expands to as it is composed."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)  # type: ignore[call-arg]
        self._depth = 0
        self._values = 0  # in the document so far, each alias counted as what it stands for
        self._expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height)

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        line = self.peek_event().start_mark.line + 1  # type: ignore[attr-defined] # an alias's own, not its anchor's
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise DocumentTooLarge(line, f"the document nests deeper than {MAX_DEPTH} levels",
                                   "flatten it: a topology needs only a few levels")
        alias = self.check_event(yaml.AliasEvent)  # type: ignore[attr-defined]
        try:
            node = super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1
        # An alias stands for its anchor's values again (an alias to an enclosing node, still
        # being composed, counts as one: it is reported later as recursive).
        self._values += self._expanded.get(id(node), (1, 1))[0] if alias else 1
        if not alias:  # an alias's node was measured where its anchor is
            self._measure(node)
        if self._values > MAX_VALUES:
            raise DocumentTooLarge(line, f"the document expands to more than {MAX_VALUES:,} "
                                   "values (YAML aliases counted as often as they are used)",
                                   "check the aliases (*name) here: an alias of an alias multiplies; "
                                   "or split the file")
        return node

    def _measure(self, node: yaml.Node) -> None:
        values, height = 1, 1
        for child in _children(node):
            child_values, child_height = self._expanded.get(id(child), (1, 1))
            values += child_values
            height = max(height, child_height + 1)
        self._expanded[id(node)] = (values, height)
        if height > MAX_DEPTH:
            raise DocumentTooLarge(node.start_mark.line + 1, f"with its aliases expanded, the document nests deeper than {MAX_DEPTH} levels",
                                   "check the aliases (*name) here: an alias inside an alias adds its depth")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def compose_within_bounds(text: str, loader: type = yaml.SafeLoader) -> yaml.Node | None:
    """`yaml.compose(text, Loader=loader)`, raising `DocumentTooLarge` past the bounds."""
    bounded = type(f"Bounded{loader.__name__}", (_BoundedComposer, loader), {})
    return yaml.compose(text, Loader=bounded)
