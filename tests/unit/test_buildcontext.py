"""Content hashes: contents count, modification times never do, .dockerignore is honoured."""
import os
import tarfile
import time
from pathlib import Path

import pytest

from envctl.images.buildcontext import GENERATED_DOCKERFILE, BuildContext


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY . /app\n")
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
    (tmp_path / "notes.log").write_text("noise\n")
    (tmp_path / ".dockerignore").write_text("*.log\n")
    return tmp_path


def digest(root: Path) -> str:
    return BuildContext(root).digest()


def test_touching_files_changes_nothing(context: Path) -> None:
    before = digest(context)
    later = time.time() + 3600
    for path in context.rglob("*"):
        os.utime(path, (later, later))
    assert digest(context) == before


def test_one_byte_changes_the_hash(context: Path) -> None:
    before = digest(context)
    (context / "pkg" / "mod.py").write_text("X = 2\n")
    assert digest(context) != before


def test_ignored_files_do_not_count_and_are_not_sent(context: Path) -> None:
    before = digest(context)
    (context / "notes.log").write_text("different noise\n")
    assert digest(context) == before
    archive, name = BuildContext(context).archive()
    names = tarfile.open(fileobj=archive).getnames()
    assert "notes.log" not in names and "app.py" in names and name == GENERATED_DOCKERFILE


def test_dockerfile_and_executable_bit_count(context: Path) -> None:
    before = digest(context)
    (context / "app.py").chmod(0o755)
    after_chmod = digest(context)
    assert after_chmod != before
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    assert digest(context) != after_chmod


def test_renaming_a_file_changes_the_hash(context: Path) -> None:
    before = digest(context)
    (context / "app.py").rename(context / "main.py")
    assert digest(context) != before


def test_archive_appends_lines_to_the_dockerfile(context: Path) -> None:
    archive, name = BuildContext(context).archive(('LABEL "a"="b"',))
    text = tarfile.open(fileobj=archive).extractfile(name).read().decode()
    assert text.endswith('COPY . /app\nLABEL "a"="b"\n')
