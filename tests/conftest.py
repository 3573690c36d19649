"""Shared test helpers."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def write_topology(tmp_path: Path):
    """Write an envctl.yaml (and any build contexts it names) into a temp dir; return its path."""

    def write(text: str, contexts: tuple[str, ...] = ()) -> Path:
        for context in contexts:
            (tmp_path / context).mkdir(parents=True, exist_ok=True)
            (tmp_path / context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
        path = tmp_path / "envctl.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return write
