"""A container's Docker healthcheck, run by envctl as the engine would run it.

The engine runs a healthcheck's first test only after its `interval` (30 s by default; Docker
20.10 has no `start_interval`), so waiting for its "healthy" costs that long however soon the
service is up. Healthy means one test passed (`retries` counts failures only), so readiness runs
the test itself meanwhile: an exec, which takes the container's user, environment and working
directory as the engine's own check does; CMD as an argv, CMD-SHELL through the image's SHELL
or /bin/sh -c; each run bounded by the check's timeout. Not where the backend's verdict is what
makes a service reachable (Swarm), and not with ENVCTL_EAGER_HEALTHCHECKS=0.
"""
from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from envctl.backend.base import Backend
from envctl.errors import EngineUnavailable, EnvctlError
from envctl.switches import switched_on
from envctl.runtime.probes import ProbeResult

EAGER_HEALTHCHECKS = "ENVCTL_EAGER_HEALTHCHECKS"  # "0": wait for the engine's own "healthy", as before
# The engine's defaults for a healthcheck that does not say.
ENGINE_HEALTHCHECK_INTERVAL = 30.0
ENGINE_HEALTHCHECK_TIMEOUT = 30.0
ENGINE_SHELL = ("/bin/sh", "-c")  # CMD-SHELL's, unless the image sets a SHELL
CANCEL_SEEN_WITHIN = 0.1  # seconds: a healthcheck run under way does not hold up a cancelled run longer

T = TypeVar("T")


@dataclass(frozen=True)
class HealthTest:
    """A container's healthcheck test as the engine runs it."""

    argv: tuple[str, ...]
    timeout: float  # seconds one run may take; longer is a failure
    interval: float  # the engine's own schedule, for the report
    shown: str  # the test as the file wrote it


def health_test(config: Mapping[str, Any]) -> HealthTest | None:
    """The healthcheck in a container's inspected `Config` (where the engine merged in the image's
    HEALTHCHECK), as the engine would run it; None without one (or with `NONE`).

    CMD runs as an argv, CMD-SHELL through the image's SHELL or /bin/sh -c. User, environment and
    working directory need nothing here: the engine's exec takes the container's, as its checks do."""
    check = config.get("Healthcheck") or {}
    test = list(check.get("Test") or [])
    if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL"):
        return None  # none, NONE (disabled), or nothing to run: the engine's verdict stands
    argv = test[1:] if test[0] == "CMD" else [*(config.get("Shell") or ENGINE_SHELL), *test[1:]]
    return HealthTest(tuple(argv), _seconds(check.get("Timeout")) or ENGINE_HEALTHCHECK_TIMEOUT,
                      _seconds(check.get("Interval")) or ENGINE_HEALTHCHECK_INTERVAL, " ".join(test[1:]))


def _seconds(nanoseconds: int | None) -> float:
    return (nanoseconds or 0) / 1e9


def eager_healthchecks(engine: Backend, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether envctl runs healthchecks itself here (see module docstring)."""
    return engine.execs_healthchecks and switched_on(EAGER_HEALTHCHECKS, environ)


class OwnHealthcheck:
    """A container's healthcheck, run by envctl: looked up (one inspect) when first needed."""

    def __init__(self, engine: Backend, container_id: str, cancel: threading.Event | None = None) -> None:
        self.engine = engine
        self.container_id = container_id
        self.cancel = cancel or threading.Event()  # set: a run under way is not waited for

    @functools.cached_property
    def test(self) -> HealthTest | None:
        if not eager_healthchecks(self.engine):
            return None
        try:
            info = self.engine.inspect_container(self.container_id)
        except EngineUnavailable:
            raise
        except EnvctlError:
            return None  # gone: `alive` says so
        return health_test(info.get("Config") or {})

    def __call__(self) -> ProbeResult:
        test = self.test
        assert test is not None
        result = run_exec(self.engine, self.container_id, test.argv, f"healthcheck {test.shown}", test.timeout,
                          self.cancel)
        if result.ok:
            return ProbeResult(True, f"healthcheck passed, run by envctl (docker's own: every {test.interval:g}s)")
        return result


def run_exec(engine: Backend, container_id: str, argv: tuple[str, ...], label: str, timeout: float,
             cancel: threading.Event) -> ProbeResult:
    """One run of a command in the container as a readiness check (a healthcheck's test, a `cmd` probe):
    exit 0 passes; a run longer than `timeout` seconds, a cancelled one, or an exec the engine refuses
    (e.g. the container stopped meanwhile: the caller's `alive` says how) fails. A lost engine is raised."""
    try:
        ran = _bounded(lambda: engine.exec(container_id, list(argv)), timeout, cancel)
    except EngineUnavailable:
        raise
    except EnvctlError as exc:
        return ProbeResult(False, f"{label}: {exc}")
    if ran is None:
        return ProbeResult(False, f"{label}: " + ("cancelled" if cancel.is_set() else f"timed out after {timeout:g}s"))
    code, output = ran
    return exec_result(label, code, output)


def _bounded(call: Callable[[], T], timeout: float, cancel: threading.Event) -> T | None:
    """`call()`'s result, or None if it takes longer than `timeout` seconds or `cancel` is set; what
    it raises is raised.

    A call that overruns is left to finish on its own, as the engine leaves an overrunning check."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    finished = threading.Event()

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)
        finished.set()

    threading.Thread(target=run, name="healthcheck", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not finished.wait(min(CANCEL_SEEN_WITHIN, max(0.0, deadline - time.monotonic()))):
        if cancel.is_set() or time.monotonic() >= deadline:
            return None
    if failure:
        raise failure[0]
    return outcome[0] if outcome else None


def exec_result(label: str, code: int | None, output: bytes | None) -> ProbeResult:
    """A command's exit code (0 passes) and the last line it printed, as a readiness result."""
    text = output.decode(errors="replace").strip().splitlines()[-1:] if output else []
    return ProbeResult(code == 0, f"{label}: exit {code}" + (f": {text[0]}" if text else ""))
