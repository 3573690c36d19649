"""Child process groups: a stop reaches the whole group; Windows gets its own way of asking."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envctl import processes

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX process groups")


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@posix_only
def test_a_stop_reaches_what_the_child_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    child = subprocess.Popen(["sh", "-c", script], **processes.group_options())
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    processes.stop_group(child, terminate=True, grace=5)
    assert child.returncode is not None
    assert _gone(grandchild)


@posix_only
def test_a_child_that_ignores_the_stop_is_killed_after_the_grace() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                              " print('ready', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, **processes.group_options())
    assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
    processes.stop_group(child, terminate=True, grace=0.3)
    assert child.returncode == -signal.SIGKILL


class _RecordingChild:
    """What stop_group asks of a child on Windows, recorded (there is no Windows here to ask)."""

    def __init__(self, stops_in_time: bool) -> None:
        self.calls: list[object] = []
        self.stops_in_time = stops_in_time
        self.pid = 4242

    def send_signal(self, sig: int) -> None:
        self.calls.append(("signal", sig))

    def kill(self) -> None:
        self.calls.append("kill")

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None and not self.stops_in_time:
            raise subprocess.TimeoutExpired("child", timeout)
        return 0


@pytest.mark.parametrize("stops_in_time, expected_kill", [(True, False), (False, True)])
def test_on_windows_a_stop_is_a_ctrl_break_then_terminate_process(stops_in_time: bool, expected_kill: bool) -> None:
    child = _RecordingChild(stops_in_time)
    processes.stop_group(child, terminate=True, grace=1, windows=True)  # type: ignore[arg-type]
    assert child.calls[0] == ("signal", getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM))
    assert ("kill" in child.calls) is expected_kill


def test_windows_children_get_a_console_group_and_ctrl_break_means_terminate() -> None:
    assert "creationflags" in processes.group_options(windows=True)
    assert processes.group_options(windows=False) == {"start_new_session": True}
    assert signal.SIGTERM in processes.terminating_signals(windows=True)
    assert processes.terminating_signals(windows=False) == (signal.SIGTERM,)
