"""The start gate's container spec: what it runs once released, and when it does not hold."""
from __future__ import annotations

import subprocess

import pytest

from envctl.backend.engine import ContainerSpec
from envctl.planning.gate import HELD_LABEL, SCRIPT, SHELL, enabled, held_spec, lacks_shell

IMAGE = {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["serve", "--port", "80"]}


def spec(**changes) -> ContainerSpec:
    return ContainerSpec(name="p-r-web", image="web:1", network="n", alias="web", labels={"a": "b"}, **changes)


@pytest.mark.parametrize("entrypoint, command, image, runs", [
    (None, None, IMAGE, ["/docker-entrypoint.sh", "serve", "--port", "80"]),
    (None, ["worker"], IMAGE, ["/docker-entrypoint.sh", "worker"]),
    (["/bin/app"], None, IMAGE, ["/bin/app"]),  # an entrypoint of one's own drops the image's command
    (["/bin/app"], ["-v"], IMAGE, ["/bin/app", "-v"]),
    ([], None, IMAGE, ["serve", "--port", "80"]),  # an empty one drops only the image's entrypoint
    (None, [], IMAGE, ["/docker-entrypoint.sh", "serve", "--port", "80"]),
    (None, ["python3", "app.py"], {}, ["python3", "app.py"]),
])
def test_the_held_spec_runs_what_the_engine_would_have_run(entrypoint, command, image, runs) -> None:
    held = held_spec(spec(entrypoint=entrypoint, command=command), image)
    assert held is not None
    assert held.entrypoint == [SHELL, "-c", SCRIPT, "envctl-gate"]
    assert held.command == runs
    assert held.open_stdin and held.labels == {"a": "b", HELD_LABEL: "true"}


def test_no_hold_with_a_healthcheck_or_nothing_to_run() -> None:
    assert held_spec(spec(healthcheck={"test": ["CMD", "true"]}), IMAGE) is None
    assert held_spec(spec(), {**IMAGE, "Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"]}}) is None
    assert held_spec(spec(), {**IMAGE, "Healthcheck": {"Test": ["NONE"]}}) is not None
    assert held_spec(spec(), {}) is None


def test_the_engine_and_init_messages_for_a_missing_shell_are_recognised() -> None:
    assert lacks_shell('cannot start \'x\': OCI runtime create failed: exec: "/bin/sh": stat /bin/sh: no such file')
    assert lacks_shell("[FATAL tini (7)] exec /bin/sh failed: No such file or directory")
    assert not lacks_shell("cannot start 'x': port is already allocated")


def run_gate(word: str, tmp_path, argv: list[str]) -> subprocess.CompletedProcess:
    script = SCRIPT.replace("/tmp/.envctl-released", str(tmp_path / "mark"))
    return subprocess.run([SHELL, "-c", script, "envctl-gate", *argv], input=word, capture_output=True,
                          text=True, timeout=10)


def test_the_gate_runs_the_command_on_go_with_its_arguments_intact(tmp_path) -> None:
    done = run_gate("go\n", tmp_path, ["sh", "-c", 'printf "%s|" "$@"; cat', "x", "a b", "$HOME", ""])
    assert done.returncode == 0 and done.stdout == "a b|$HOME||", done  # stdin is /dev/null: cat ends at once
    assert (tmp_path / "mark").exists()
    again = run_gate("", tmp_path, ["echo", "restarted"])  # marked: no word needed any more
    assert again.stdout == "restarted\n"


def test_the_gate_does_not_run_the_command_without_the_word(tmp_path) -> None:
    done = run_gate("", tmp_path, ["echo", "ran"])
    assert done.returncode == 125 and "ran" not in done.stdout and "not released" in done.stderr
    assert not (tmp_path / "mark").exists()


def test_the_gate_is_on_unless_switched_off() -> None:
    assert enabled({}) and enabled({"ENVCTL_START_GATE": "1"})
    assert not any(enabled({"ENVCTL_START_GATE": v}) for v in ("0", "off", "false", "No"))


def test_one_reading_of_an_off_switch() -> None:
    from envctl.switches import switched_on
    assert switched_on("X", {}) and switched_on("X", {"X": "1"}) and switched_on("X", {"X": "yes"})
    assert not any(switched_on("X", {"X": v}) for v in ("0", " off ", "FALSE", "No"))
