"""Child process groups and stop signals, the same on Linux, macOS and native Windows.

POSIX: a child runs in a session of its own, so a stop reaches everything it started, and an
aborted CI job arrives as SIGTERM. Windows has no process groups in that sense, no `killpg`
and no SIGTERM from outside: a child gets a new console process group (which CTRL_BREAK_EVENT
reaches), and Ctrl-Break (SIGBREAK) is what a console sends to ask a program to stop, so
envctl treats it as SIGTERM.
"""
from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

WINDOWS = os.name == "nt"


def group_options(windows: bool = WINDOWS) -> dict[str, Any]:
    """Popen keyword arguments that start a child in a group of its own."""
    if windows:
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


def terminating_signals(windows: bool = WINDOWS) -> tuple[int, ...]:
    """The signals that mean "the job was aborted: clean up and exit 143"."""
    if windows:
        return tuple(s for s in (getattr(signal, "SIGBREAK", None), signal.SIGTERM) if s is not None)
    return (signal.SIGTERM,)


def stop_group(child: subprocess.Popen, terminate: bool, grace: float, windows: bool = WINDOWS) -> None:
    """Ask `child`'s group to stop (as SIGTERM if `terminate`, else as Ctrl-C), then kill it after `grace` s."""
    try:
        _ask(child, terminate, windows)
        child.wait(grace)
    except subprocess.TimeoutExpired:
        _kill(child, windows)
        child.wait()
    except ProcessLookupError:  # it ended on its own meanwhile
        pass


def _ask(child: subprocess.Popen, terminate: bool, windows: bool) -> None:
    if windows:
        # Both Ctrl-C and Ctrl-Break reach a new group only as CTRL_BREAK_EVENT.
        child.send_signal(getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM))
    else:
        os.killpg(child.pid, signal.SIGTERM if terminate else signal.SIGINT)


def _kill(child: subprocess.Popen, windows: bool) -> None:
    if windows:
        child.kill()  # TerminateProcess; what the child started is orphaned, as on any Windows job
    else:
        os.killpg(child.pid, signal.SIGKILL)
