"""Where mmdebstrap works on the host changes no file: a root filesystem made in memory (/dev/shm)
is the one made on disk, and $ENVCTL_BOOTSTRAP_TMPDIR is where mmdebstrap works."""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from envctl.images import bootstrap, package_cache

from .rootfs_content import differences
from .test_package_cache import HOST_PLATFORM, TINY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("mmdebstrap") is None,
                       reason="mmdebstrap runs on the host only on a Linux host that has it"),
]


def bootstrapped_in(tmp_path: Path, name: str) -> tuple[Path, str]:
    tarball, log_path = tmp_path / f"{name}.tar", tmp_path / f"{name}.log"
    with open(log_path, "w") as log:
        bootstrap.bootstrap(None, TINY, HOST_PLATFORM, tarball, log, name, threading.Event(),  # type: ignore[arg-type]
                            warn=pytest.fail)
    return tarball, log_path.read_text()


def tempdir_used(log: str) -> str:
    found = re.search(r"^I: using (\S+)/mmdebstrap\.\w+ as tempdir", log, re.MULTILINE)
    assert found, "mmdebstrap says where it works"
    return found.group(1)


def test_a_root_filesystem_made_in_memory_is_the_one_made_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv(package_cache.ENV, "off")  # both download: where they work is the one difference
    monkeypatch.delenv(bootstrap.WORK_ENV, raising=False)
    in_memory = bootstrap.work_directory()
    if in_memory is None:
        pytest.skip(f"{bootstrap.IN_MEMORY} has no room for a bootstrap on this machine")
    memory, memory_log = bootstrapped_in(tmp_path, "memory")
    assert tempdir_used(memory_log) == in_memory
    assert f"envctl: making the root filesystem under {in_memory}" in memory_log

    # On disk, and as open as /tmp and /dev/shm: apt downloads as its _apt user, and where that
    # user cannot reach the chroot (pytest's tmp_path is 0700) apt downloads as root and leaves
    # var/cache/apt/archives/partial owned by root instead of _apt.
    disk_dir = Path(tempfile.mkdtemp(prefix="envctl-test-bootstrap-", dir="/var/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(disk_dir, ignore_errors=True))
    disk_dir.chmod(0o755)
    monkeypatch.setenv(bootstrap.WORK_ENV, str(disk_dir))
    disk, disk_log = bootstrapped_in(tmp_path, "disk")
    assert tempdir_used(disk_log) == str(disk_dir)
    assert list(disk_dir.iterdir()) == [], "mmdebstrap removed its work directory"

    assert differences(memory, disk) == [], "the same files, modes, owners and contents"
