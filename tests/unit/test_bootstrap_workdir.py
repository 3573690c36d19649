"""Where mmdebstrap makes a root filesystem on the host: $ENVCTL_BOOTSTRAP_TMPDIR, /dev/shm with room, or its default."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from envctl.errors import BuildFailed, EnvctlError
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


def test_a_chosen_directory_that_is_missing_or_a_file_is_refused_saying_so(tmp_path: Path) -> None:
    for path, problem in ((tmp_path / "missing", "it does not exist"), (tmp_path / "file", "it is not a directory")):
        if path.name == "file":
            path.write_text("")
        with pytest.raises(EnvctlError) as refused:
            bootstrap.work_directory({bootstrap.WORK_ENV: str(path)})
        assert refused.value.message == f"${bootstrap.WORK_ENV} is {path}: {problem}"
        assert refused.value.fix is not None and "a directory under /tmp" in refused.value.fix


def test_a_chosen_directory_apt_s_user_cannot_reach_is_refused_saying_what_to_open(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    work = closed / "work"
    work.mkdir(parents=True)
    closed.chmod(0o700)  # as a home directory: its owner enters, apt's _apt does not
    work.chmod(0o777)
    with pytest.raises(EnvctlError) as refused:
        bootstrap.work_directory({bootstrap.WORK_ENV: str(work)})
    message = refused.value.message
    assert message.startswith(f"${bootstrap.WORK_ENV} is {work}: apt's _apt user")
    named = message[message.index("(") + 1:message.index(" not searchable")].split(", ")
    assert str(closed) in named and str(work) not in named  # (pytest's own parents are closed too)
    assert refused.value.fix is not None and refused.value.fix.startswith(f"chmod o+x {' '.join(named)}, ")


def bootstrap_on_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: list) -> tuple[str, list[str]]:
    """_on_host with mmdebstrap replaced: each run takes the next of `runs` (an exit code and what it logs).

    Returns the log and the warnings; each run's TMPDIR (None: its default) is appended to `runs`' place."""
    import threading

    from envctl.topology import Bootstrap

    monkeypatch.setenv("ENVCTL_PACKAGE_CACHE", "off")
    answers, warned = list(runs), []
    runs.clear()

    def mmdebstrap(command, log, cancel, env=None) -> int:
        runs.append(env["TMPDIR"] if env else None)
        code, said = answers.pop(0)
        log.write(said)
        return code
    monkeypatch.setattr(bootstrap, "run_cancellable", mmdebstrap)
    with open(tmp_path / "base.log", "w") as log:
        try:
            bootstrap._on_host(Bootstrap(distro="debian", suite="bookworm"), "linux/amd64", tmp_path / "rootfs.tar",
                               log, "base 'os'", threading.Event(), warned.append)
        finally:
            log.flush()
            text = (tmp_path / "base.log").read_text()
    return text, warned


FULL = "tar: ./usr/lib/x: Cannot write: No space left on device\n"


def test_a_bootstrap_that_fills_dev_shm_runs_again_on_disk_saying_so(in_memory, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    in_memory()
    monkeypatch.delenv(bootstrap.WORK_ENV, raising=False)
    runs = [(1, FULL), (0, "I: success\n")]
    log, warned = bootstrap_on_host(tmp_path, monkeypatch, runs)
    assert runs == [str(tmp_path), None], "first in memory, then in the default temporary directory"
    assert warned == [f"{tmp_path} ran out of room bootstrapping base 'os': bootstrapping it again on disk"]
    assert f"envctl: {tmp_path} ran out of room; bootstrapping again" in log


def test_a_bootstrap_that_fails_otherwise_in_dev_shm_is_not_run_again(in_memory, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    in_memory()
    monkeypatch.delenv(bootstrap.WORK_ENV, raising=False)
    runs = [(1, "E: unable to locate package nosuch\n")]
    with pytest.raises(BuildFailed) as failed:
        bootstrap_on_host(tmp_path, monkeypatch, runs)
    assert runs == [str(tmp_path)] and "ran out of room" not in failed.value.message


def test_a_chosen_dev_shm_that_fills_says_how_to_work_on_disk(in_memory, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    in_memory()
    monkeypatch.setenv(bootstrap.WORK_ENV, str(tmp_path))  # the user's choice stands: no second run elsewhere
    monkeypatch.setattr(bootstrap, "_checked_work", str)  # pytest's tmp_path is not open to _apt
    runs = [(1, FULL)]
    with pytest.raises(BuildFailed) as failed:
        bootstrap_on_host(tmp_path, monkeypatch, runs)
    assert runs == [str(tmp_path)]
    assert f"set {bootstrap.WORK_ENV}=/var/tmp to bootstrap on disk" in failed.value.message
    assert "No space left on device" in failed.value.message
