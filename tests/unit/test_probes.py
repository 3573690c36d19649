"""Polling a readiness check, without an engine: when `alive` is asked, how soon polling backs off."""
from __future__ import annotations

from envctl.runtime.probes import EAGER_INTERVAL, ProbeResult, _backoff, wait_until_ready


def test_alive_is_asked_before_the_first_check_unless_the_caller_just_asked() -> None:
    asked: list[str] = []
    passes = lambda: ProbeResult(True, "ok")  # noqa: E731
    assert wait_until_ready(passes, timeout=1, alive=lambda: asked.append("alive")).ok
    assert asked == ["alive"]
    asked.clear()
    assert wait_until_ready(passes, timeout=1, alive=lambda: asked.append("alive"), alive_first=False).ok
    assert asked == []


def test_polling_doubles_from_10_ms_to_the_eager_cap_then_backs_off_to_the_interval() -> None:
    class State:
        def __init__(self, attempt: int, seconds: float) -> None:
            self.attempt_number, self.seconds_since_start = attempt, seconds

    wait = _backoff(max_interval=0.5, eager_interval=EAGER_INTERVAL)
    assert [wait(State(n, 0.1)) for n in (1, 2, 3, 4)] == [0.01, 0.02, EAGER_INTERVAL, EAGER_INTERVAL]
    assert wait(State(20, 6.0)) == 0.5  # past the eager seconds
