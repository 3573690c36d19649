"""The launcher: work in the order given, failures passed on at once, close waits for work under way."""
from __future__ import annotations

import threading
import time

import pytest

from envctl.planning.gate import NoShell
from envctl.graph import DependencyFailed
from envctl.runtime.launch import Launcher


def test_work_runs_first_come_first_served_and_failures_are_passed_on() -> None:
    order, failures = [], []
    launcher = Launcher(on_failure=lambda name, exc: failures.append((name, str(exc))), parallel=1)
    launcher.submit("a", lambda: order.append("a"))
    launcher.submit("b", lambda: (_ for _ in ()).throw(RuntimeError("b broke")))
    launcher.submit("c", lambda: (_ for _ in ()).throw(NoShell("c")))
    launcher.submit("d", lambda: order.append("d"))
    never = threading.Event()
    launcher.wait("a", never)
    with pytest.raises(RuntimeError):
        launcher.wait("b", never)
    with pytest.raises(NoShell):
        launcher.wait("c", never)
    launcher.wait("d", never)
    launcher.close()
    assert order == ["a", "d"]
    assert failures == [("b", "b broke")]  # a missing shell is not a failure
    assert launcher.failure is not None and launcher.failure[0] == "b"


def test_queued_work_is_taken_lowest_rank_first_whatever_order_it_came_in() -> None:
    order: list[str] = []
    busy = threading.Event()
    launcher = Launcher(on_failure=lambda *_: None, parallel=1)
    launcher.submit("first", lambda: busy.wait(5), rank=-1)  # holds the one worker while the rest queue up
    for name, rank in (("l3", 3), ("l1a", 1), ("l2", 2), ("l1b", 1), ("l0", 0)):
        launcher.submit(name, lambda name=name: order.append(name), rank=rank)
    busy.set()
    launcher.wait("l3", threading.Event())
    launcher.close()
    assert order == ["l0", "l1a", "l1b", "l2", "l3"]


def test_close_drops_work_not_begun_and_waits_for_work_under_way() -> None:
    started, finished = threading.Event(), []
    launcher = Launcher(on_failure=lambda *_: None, parallel=1)

    def slow() -> None:
        started.set()
        time.sleep(0.3)
        finished.append("slow")

    launcher.submit("slow", slow)
    launcher.submit("later", lambda: finished.append("later"))
    assert started.wait(5)
    launcher.close()
    assert finished == ["slow"]  # close returned only after it, and the queued work never ran


def test_waiting_stops_when_the_run_is_cancelled() -> None:
    gate, cancel = threading.Event(), threading.Event()
    launcher = Launcher(on_failure=lambda *_: None, parallel=1)
    launcher.submit("blocked", lambda: gate.wait(5))
    cancel.set()
    with pytest.raises(DependencyFailed):
        launcher.wait("blocked", cancel)
    gate.set()
    launcher.close()
