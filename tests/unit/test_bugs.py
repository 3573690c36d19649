"""A bug in envctl says it is one: never dressed as a user error, its traceback kept for the report."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from envctl import bugs
from envctl.runtime import run as run_api
from envctl.images.builder import ImageBuilder
from envctl.project import Project
from envctl.shells.pytest_plugin import StackManager
from envctl.topology import load_topology

INJECT = textwrap.dedent("""
    import sys
    import envctl.project as project
    import envctl.shells.cli as cli

    def load_topology(*args, **kwargs):
        return {}["services"]  # the injected bug: a KeyError

    project.load_topology = load_topology
    sys.argv = ["envctl", "config"]
    cli.run()
""")


def test_the_cli_says_a_bug_is_a_bug_with_the_traceback_in_a_file(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", INJECT], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)}, timeout=60)
    assert result.returncode == bugs.BUG_EXIT_CODE, result.stderr
    assert "this is a bug in envctl" in result.stderr and "KeyError: 'services'" in result.stderr
    assert "Traceback" not in result.stderr
    assert bugs.REPORT_AT in result.stderr
    path = Path(re.search(r"The full traceback is in (\S+);", result.stderr).group(1))
    assert path.parent == tmp_path
    saved = path.read_text()
    assert "Traceback (most recent call last)" in saved and "in load_topology" in saved
    assert "command: envctl config" in saved


def test_the_traceback_file_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    try:
        raise ValueError("cannot parse hunter2-password")
    except ValueError as exc:
        bug = bugs.record_bug(exc, lambda text: text.replace("hunter2-password", "******"))
    assert bug.summary == "ValueError: cannot parse ******"
    assert "hunter2" not in bug.path.read_text() and "******" in bug.path.read_text()


def test_a_start_up_bug_stays_itself() -> None:
    bug = ZeroDivisionError("division by zero")
    assert run_api._first_failure({"b": bug}) is bug


def test_a_build_bug_stays_itself(write_topology, monkeypatch: pytest.MonkeyPatch) -> None:
    topology = load_topology(write_topology("""
        name: demo
        services:
          app:
            build: app
            base: os
        bases:
          os: {image: debian:bookworm}
    """, contexts=("app",)), environ={})
    bug = AttributeError("'NoneType' object has no attribute 'id'")

    def resolve(self, target):
        raise bug

    monkeypatch.setattr(ImageBuilder, "_resolve", resolve)
    with pytest.raises(AttributeError) as raised:
        ImageBuilder(topology, engine=None).ensure(["app"])
    assert raised.value is bug


def test_the_pytest_plugin_says_a_bug_is_a_bug(write_topology, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    topology = load_topology(write_topology("""
        name: demo
        services:
          app: {image: debian:bookworm}
    """), environ={})
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(Project, "up", lambda *args, **kwargs: {}["services"])
    manager = StackManager(config=None)
    monkeypatch.setattr(manager, "services", lambda: [])
    with pytest.raises(pytest.fail.Exception, match="this is a bug in envctl.*KeyError: 'services'"):
        manager._up(topology, engine=None, run="r1")


def test_the_reaper_logs_a_bug_as_one(tmp_path: Path) -> None:
    # Only envctl starts a reaper: arguments it cannot read are envctl's bug.
    result = subprocess.run([sys.executable, "-m", "envctl.runtime.reaper", "too", "few"], capture_output=True, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)}, timeout=60)
    assert result.returncode == bugs.BUG_EXIT_CODE, result.stdout + result.stderr
    assert "this is a bug in envctl" in result.stdout and "ValueError" in result.stdout
    assert "Traceback" in next(tmp_path.glob("envctl-bug-*.txt")).read_text()
