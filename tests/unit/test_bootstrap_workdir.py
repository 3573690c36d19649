"""Where mmdebstrap makes a root filesystem on the host: $ENVCTL_BOOTSTRAP_TMPDIR, /dev/shm with room, or its default."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from envctl.images import bootstrap

GIB = 1 << 30


class Room:
    """What os.statvfs says of the tmpfs: free blocks of 4 KiB, and its mount flags."""

    def __init__(self, free: int, flags: int = 0) -> None:
        self.f_bavail, self.f_frsize, self.f_flag = free // 4096, 4096, flags


@pytest.fixture
def in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """/dev/shm is tmp_path; returns a setter of its room, its flags and the memory available."""
    monkeypatch.setattr(bootstrap, "IN_MEMORY", tmp_path)

    def machine(free: int = 20 * GIB, flags: int = 0, memory: int = 20 * GIB) -> None:
        monkeypatch.setattr(bootstrap.os, "statvfs", lambda path: Room(free, flags))
        monkeypatch.setattr(bootstrap, "_memory_available", lambda: memory)
    return machine


def test_the_chosen_directory_wins(in_memory) -> None:
    in_memory()
    assert bootstrap.work_directory({bootstrap.WORK_ENV: "/var/tmp"}) == "/var/tmp"


def test_dev_shm_with_room_serves(in_memory, tmp_path: Path) -> None:
    in_memory()
    assert bootstrap.work_directory({}) == str(tmp_path)


@pytest.mark.parametrize("flag", ["ST_NOEXEC", "ST_NODEV", "ST_RDONLY"])
def test_dev_shm_where_a_chroot_cannot_work_is_not_used(in_memory, flag: str) -> None:
    in_memory(flags=getattr(os, flag))
    assert bootstrap.work_directory({}) is None


@pytest.mark.parametrize("free, memory", [(bootstrap.ROOM_NEEDED - 1, 20 * GIB), (20 * GIB, bootstrap.ROOM_NEEDED - 1)])
def test_dev_shm_without_room_or_memory_to_spare_is_not_used(in_memory, free: int, memory: int) -> None:
    in_memory(free=free, memory=memory)
    assert bootstrap.work_directory({}) is None


def test_no_dev_shm_no_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "IN_MEMORY", tmp_path / "missing")
    assert bootstrap.work_directory({}) is None


def test_the_memory_available_is_read_from_proc() -> None:
    if not Path("/proc/meminfo").is_file():
        pytest.skip("no /proc/meminfo here")
    assert bootstrap._memory_available() > 0


def test_a_bootstrap_that_fills_dev_shm_says_how_to_work_on_disk(in_memory, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from envctl.errors import BuildFailed
    from envctl.topology import Bootstrap

    in_memory()
    monkeypatch.setenv("ENVCTL_PACKAGE_CACHE", "off")

    def full(command, log, cancel, env=None) -> int:
        assert env is not None and env["TMPDIR"] == str(tmp_path)
        log.write("tar: ./usr/lib/x: Cannot write: No space left on device\n")
        return 1
    monkeypatch.setattr(bootstrap, "run_cancellable", full)
    with open(tmp_path / "base.log", "w") as log, pytest.raises(BuildFailed) as failed:
        bootstrap._on_host(Bootstrap(distro="debian", suite="bookworm"), "linux/amd64", tmp_path / "rootfs.tar",
                           log, "base 'os'", threading.Event(), pytest.fail)
    assert f"set {bootstrap.WORK_ENV}=/var/tmp to bootstrap on disk" in failed.value.message
    assert "No space left on device" in failed.value.message
