"""Compose v2's merge rules, one per test, and the origin each merged key keeps."""
from pathlib import Path

from envctl.topology.merge import Origin, Tree, merge_trees

A, B = Path("/p/a.yaml"), Path("/p/b.yaml")


def tree(file: Path, data: dict, lines: dict | None = None) -> Tree:
    origins = {(): Origin(file, 1, file.parent)}
    for path, line in (lines or {}).items():
        origins[path] = Origin(file, line, file.parent)
    return Tree(data, origins)


def service(merged: Tree) -> dict:
    return merged.data["services"]["s"]


def merge(old: dict, new: dict) -> dict:
    return service(merge_trees(tree(A, {"services": {"s": old}}), tree(B, {"services": {"s": new}})))


def test_single_values_take_the_later_file() -> None:
    assert merge({"image": "a", "user": "x"}, {"image": "b"}) == {"image": "b", "user": "x"}


def test_command_entrypoint_and_healthcheck_test_are_replaced_whole() -> None:
    merged = merge({"command": ["a", "b"], "entrypoint": ["sh"], "healthcheck": {"test": ["CMD", "a"], "retries": 3}},
                   {"command": ["c"], "entrypoint": "bash", "healthcheck": {"test": ["CMD", "b"]}})
    assert merged == {"command": ["c"], "entrypoint": "bash", "healthcheck": {"test": ["CMD", "b"], "retries": 3}}


def test_environment_labels_and_build_args_merge_by_name_in_either_form() -> None:
    merged = merge({"environment": ["A=1", "B=2", "C"], "labels": {"x": "1"}, "build": {"context": ".", "args": ["V=1"]}},
                   {"environment": {"B": "3"}, "labels": ["y=2"], "build": {"args": {"W": "2"}}})
    assert merged["environment"] == {"A": "1", "B": "3", "C": None}
    assert merged["labels"] == {"x": "1", "y": "2"}
    assert merged["build"] == {"context": ".", "args": {"V": "1", "W": "2"}}


def test_a_build_string_merges_as_its_context() -> None:
    assert merge({"build": "./app"}, {"build": {"dockerfile": "Dev.Dockerfile"}})["build"] == {
        "context": "./app", "dockerfile": "Dev.Dockerfile"}


def test_depends_on_and_networks_merge_by_name() -> None:
    merged = merge({"depends_on": ["db"], "networks": ["front"]},
                   {"depends_on": {"cache": {"condition": "service_started"}}, "networks": {"back": {"aliases": ["b"]}}})
    assert merged["depends_on"] == {"db": None, "cache": {"condition": "service_started"}}
    assert merged["networks"] == {"front": None, "back": {"aliases": ["b"]}}


def test_volumes_merge_by_target() -> None:
    merged = merge({"volumes": ["data:/data", "./a:/conf"]}, {"volumes": [{"type": "bind", "source": "./b", "target": "/conf"}, "/tmp"]})
    assert merged["volumes"] == ["data:/data", {"type": "bind", "source": "./b", "target": "/conf"}, "/tmp"]


def test_other_lists_join_with_each_item_once() -> None:
    assert merge({"ports": ["80", "443"], "env_file": ["a.env"]}, {"ports": ["443", "8080:80"], "env_file": ["a.env", "b.env"]}) == {
        "ports": ["80", "443", "8080:80"], "env_file": ["a.env", "b.env"]}


def test_an_empty_value_in_the_later_file_keeps_the_earlier() -> None:
    assert merge({"environment": {"A": "1"}}, {"environment": None}) == {"environment": {"A": "1"}}


def test_merged_keys_keep_the_file_and_line_they_came_from() -> None:
    old = tree(A, {"services": {"s": {"image": "a", "ports": ["80"], "environment": {"Y": "2"}}}},
               {("services", "s", "image"): 3, ("services", "s", "ports", 0): 4})
    new = tree(B, {"services": {"s": {"ports": ["90"], "environment": ["X=1"]}}},
               {("services", "s", "ports", 0): 7, ("services", "s", "environment", 0): 8})
    merged = merge_trees(old, new)
    assert merged.origins[("services", "s", "image")].file == A
    assert merged.origins[("services", "s", "ports", 1)] == Origin(B, 7, B.parent)
    assert merged.origins[("services", "s", "environment", "X")] == Origin(B, 8, B.parent)
