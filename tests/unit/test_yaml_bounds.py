"""Hostile topology files are refused with a located problem instead of minutes of work or a RecursionError."""
from __future__ import annotations

from pathlib import Path

import pytest

from envctl.errors import TopologyError
from envctl.topology import load_topology
from envctl.topology.bounds import MAX_DEPTH, MAX_VALUES

# Seven lines that expand to 9**7 (4.8 million) strings: PyYAML alone takes tens of seconds.
ALIAS_BOMB = """\
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def problems(path: Path) -> str:
    with pytest.raises(TopologyError) as caught:
        load_topology(path, environ={})
    return str(caught.value)


def test_an_alias_bomb_is_refused_where_it_expands_past_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "envctl.yaml"
    path.write_text(ALIAS_BOMB)
    text = problems(path)
    assert f"{path}:5: the document expands to more than {MAX_VALUES:,} values" in text
    assert "alias" in text


def test_many_small_values_count_towards_the_bound_as_they_are_read(tmp_path: Path) -> None:
    path = tmp_path / "envctl.yaml"
    rows = MAX_VALUES // 9 + 10  # each row is a key, a list and eight strings
    path.write_text("x-big:\n" + "".join(f"  k{i}: [a, b, c, d, e, f, g, h]\n" for i in range(rows)))
    text = problems(path)
    assert f"the document expands to more than {MAX_VALUES:,} values" in text
    assert f"{path}:1:" not in text  # where the bound was passed, not where the document began


def test_flow_nesting_a_thousand_deep_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "envctl.yaml"
    path.write_text("name: x\nservices: " + "[" * 1000 + "]" * 1000 + "\n")
    assert f"{path}:2: the document nests deeper than {MAX_DEPTH} levels" in problems(path)


def test_block_nesting_a_thousand_deep_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "envctl.yaml"
    path.write_text("services:\n" + "".join("  " * level + "k:\n" for level in range(1, 1000)))
    assert f"nests deeper than {MAX_DEPTH} levels" in problems(path)


def test_aliases_that_nest_each_other_past_the_depth_bound_are_refused(tmp_path: Path) -> None:
    # Each anchor is 20 levels deep; expanded, the last one is 3 * 20.
    lines = [f"n{i}: &n{i} " + "[" * 20 + (f"*n{i - 1}" if i else "x") + "]" * 20 for i in range(3)]
    path = tmp_path / "envctl.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert "with its aliases expanded, the document nests deeper" in problems(path)


def test_ordinary_aliases_and_merges_still_load(write_topology) -> None:
    path = write_topology(
        """
        name: shop
        x-env: &env {MODE: test}
        services:
          a: {image: "busybox:1", environment: *env}
          b: {image: "busybox:1", environment: {<<: *env, EXTRA: "1"}}
        """
    )
    topology = load_topology(path, environ={})
    assert dict(topology.services["b"].environment) == {"MODE": ("test",), "EXTRA": ("1",)}
