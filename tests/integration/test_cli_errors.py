"""Bad input gets a located, one-paragraph error and a non-zero exit, never a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import envctl

pytestmark = pytest.mark.integration


def test_invalid_topology_names_file_line_key_and_fix(tmp_path: Path) -> None:
    (tmp_path / "envctl.yaml").write_text("services:\n  api:\n    image: x\n    depends_on: [dbb]\n  db: {image: y}\n")
    result = envctl(["up"], tmp_path, {}, check=False)
    assert result.returncode == 1
    assert f"{tmp_path / 'envctl.yaml'}:4: services.api.depends_on[0]: unknown service 'dbb'" in result.stderr
    assert "did you mean 'db'?" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_file_and_unknown_service(tmp_path: Path) -> None:
    result = envctl(["config"], tmp_path, {}, check=False)
    assert result.returncode == 1 and "no topology file here" in result.stderr
    (tmp_path / "envctl.yaml").write_text("services:\n  db: {image: y}\n")
    result = envctl(["up", "nope"], tmp_path, {}, check=False)
    assert result.returncode == 1 and "unknown service or mock 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_commands_that_need_a_run_say_how_to_start_one(tmp_path: Path) -> None:
    (tmp_path / "envctl.yaml").write_text("services:\n  db: {image: y, ports: ['5432']}\n")
    result = envctl(["status"], tmp_path, {}, check=False)
    assert result.returncode == 1 and "envctl up" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_engine_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "envctl.yaml").write_text("services:\n  db: {image: y}\n")
    result = envctl(["up"], tmp_path, {"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}, check=False)
    assert result.returncode == 2
    assert "cannot reach the Docker engine" in result.stderr and "Traceback" not in result.stderr


def test_config_prints_the_resolved_topology(tmp_path: Path) -> None:
    (tmp_path / "envctl.yaml").write_text("services:\n  db: {image: 'pg:${TAG:-15}', ports: ['5432']}\n")
    result = envctl(["config"], tmp_path, {})
    assert "pg:15" in result.stdout
