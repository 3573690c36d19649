"""Paths as laptops have them: a checkout under a folder with spaces, a bind mount whose path has spaces."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from envctl.backend.engine import Engine

from .conftest import envctl, run_resources

pytestmark = pytest.mark.integration

READER = """
  reader:
    base: os
    command: [python3, -c, "import time; time.sleep(600)"]
    volumes: ["./shared files:/shared files:ro"]
"""


def test_a_stack_under_a_path_with_spaces_comes_up_mounts_and_goes(
        engine: Engine, stack_dir: Path, stack_env: dict[str, str], tmp_path: Path) -> None:
    spaced = tmp_path / "My Projects (laptop)" / "the shop"
    shutil.copytree(stack_dir, spaced)
    (spaced / "envctl.yaml").write_text((spaced / "envctl.yaml").read_text() + READER)
    (spaced / "shared files").mkdir()
    (spaced / "shared files" / "hello world.txt").write_text("from a folder with spaces\n")

    envctl(["up"], spaced, stack_env)
    try:
        shown = envctl(["exec", "reader", "--", "cat", "/shared files/hello world.txt"], spaced, stack_env)
        assert shown.stdout.strip() == "from a folder with spaces"
        run = json.loads((spaced / ".envctl" / "current-envctl-test.json").read_text())["run"]
    finally:
        envctl(["down"], spaced, stack_env)
    assert not any(run_resources(engine, run).values())
