"""The JSON paths volatile fields are named by: a small subset of JSONPath, read on the host and in the mock.

`$.a.b`, `$.items[0].id`, `$.items[*].id`: enough to name a field, without a dependency in
the mock image. Standard library only.
"""
from __future__ import annotations

import re

_STEP = re.compile(r"\.([^.\[\]]+)|\[(\*|\d+)\]")


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """`$.items[*].id` as its steps ('items', '*', 'id'); ValueError when it is not that subset."""
    if not path.startswith("$"):
        raise ValueError(f"JSON path {path!r} does not start with '$'")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        step = _STEP.match(path, position)
        if step is None:
            raise ValueError(f"JSON path {path!r}: cannot read {path[position:]!r} (write $.a.b, $.a[0] or $.a[*])")
        name, index = step.groups()
        steps.append(name if name is not None else ("*" if index == "*" else int(index)))
        position = step.end()
    if not steps:
        raise ValueError(f"JSON path {path!r} names no field")
    return tuple(steps)
