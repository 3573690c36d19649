"""envctl runs where /proc does not exist (macOS laptops) and the fast suite needs no Docker engine.

The proof: the unit suite itself, run again in a private mount namespace with /proc covered
by an empty tmpfs and DOCKER_HOST naming a socket that does not exist.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
THIS_TEST = "tests/unit/test_portability.py::test_the_unit_suite_passes_without_proc_and_without_an_engine"
# An empty /proc, checked, then the fast command (less this test, which would start itself again).
HIDE_PROC_AND_RUN = (
    'mount -t tmpfs none /proc && [ -z "$(ls -A /proc)" ] || { echo "/proc is not hidden"; exit 99; }; '
    'exec "$0" -m pytest -m "not integration" -q -p no:cacheprovider --deselect "$1"'
)


def _private_mounts_or_skip() -> None:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        pytest.skip("needs Linux's unshare(1) to hide /proc in a private mount namespace")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here (needs root): {probe.stderr.strip()}")


def test_the_unit_suite_passes_without_proc_and_without_an_engine(tmp_path: Path) -> None:
    _private_mounts_or_skip()
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", HIDE_PROC_AND_RUN, sys.executable, THIS_TEST],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_mock_recordings_belong_to_the_host_user_where_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from envctl.mocks.runtime import recording_user

    assert recording_user() == f"{os.getuid()}:{os.getgid()}"
    monkeypatch.delattr(os, "getuid")  # native Windows: Docker Desktop maps the files to the user
    assert recording_user() is None


@pytest.mark.parametrize("text, parts", [
    ("data:/var/lib/data", ["data", "/var/lib/data"]),
    ("./src:/app:ro", ["./src", "/app", "ro"]),
    ("/tmp", ["/tmp"]),
    (r"C:\Users\me\app:/app", [r"C:\Users\me\app", "/app"]),
    ("C:/Users/me/My App:/app:ro", ["C:/Users/me/My App", "/app", "ro"]),
    (r"d:\data:/data", [r"d:\data", "/data"]),
])
def test_a_short_volume_keeps_a_windows_drive_with_its_path(text: str, parts: list[str]) -> None:
    from envctl.topology.sections.volumes import split_short_syntax

    assert split_short_syntax(text) == parts


def test_a_windows_bind_source_on_a_posix_host_is_one_clear_error(tmp_path: Path) -> None:
    from envctl.errors import EnvctlError
    from envctl.topology import load_topology

    (tmp_path / "envctl.yaml").write_text("name: win\nservices:\n  web:\n    image: busybox\n"
                                          "    volumes: ['C:\\Users\\me\\app:/app']\n")
    with pytest.raises(EnvctlError) as caught:
        load_topology(tmp_path / "envctl.yaml")
    assert "is a Windows path" in str(caught.value) and "envctl.yaml" in str(caught.value)
    assert "/mnt/c/work" in str(caught.value)
