"""Readiness checks polled from the host side: http, tcp, or a command's exit code.

Polling starts fast (10 ms) and backs off to the probe's interval, so a service that is
ready quickly is seen as ready quickly, and a slow one is not hammered.
"""
from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    at: float = field(default_factory=time.time)


Check = Callable[[], ProbeResult]

_session = threading.local()


def _http() -> requests.Session:
    if not hasattr(_session, "value"):
        session = requests.Session()
        session.trust_env = False  # a proxy from the environment must never see 127.0.0.1 probes
        _session.value = session
    return _session.value


def http_check(host: str, port: int, path: str, timeout: float = 2.0) -> ProbeResult:
    url = f"http://{host}:{port}{path}"
    try:
        response = _http().get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return ProbeResult(False, f"GET {url}: {_reason(exc)}")
    ok = 200 <= response.status_code < 400
    return ProbeResult(ok, f"GET {url}: HTTP {response.status_code}")


def tcp_check(host: str, port: int, timeout: float = 2.0, settle: float = 0.1) -> ProbeResult:
    """Connect, then make sure the peer does not hang up at once.

    Docker's userland proxy accepts on the published port even when nothing listens in
    the container yet, then closes the connection; a real server keeps it open (or talks).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(settle)
            try:
                data = sock.recv(1)
            except socket.timeout:
                return ProbeResult(True, f"tcp {host}:{port}: accepting connections")
            except OSError as exc:
                return ProbeResult(False, f"tcp {host}:{port}: {exc.strerror or exc}")
            if data:
                return ProbeResult(True, f"tcp {host}:{port}: accepting connections")
            return ProbeResult(False, f"tcp {host}:{port}: connection closed at once (nothing listening yet)")
    except OSError as exc:
        return ProbeResult(False, f"tcp {host}:{port}: {exc.strerror or exc}")


class NotReady(Exception):
    """Raised by an `alive` check when waiting makes no sense any more (e.g. the process died)."""


@dataclass
class ProbeHistory:
    """The last results of a probe, for diagnostics."""

    results: deque[ProbeResult] = field(default_factory=lambda: deque(maxlen=200))
    times: deque[float] = field(default_factory=lambda: deque(maxlen=200))  # wall clock of each result
    attempts: int = 0

    @property
    def last(self) -> ProbeResult | None:
        return self.results[-1] if self.results else None

    def record(self, result: ProbeResult) -> None:
        self.results.append(result)
        self.times.append(time.time())
        self.attempts += 1


def wait_until_ready(
    check: Check,
    *,
    timeout: float,
    max_interval: float = 0.5,
    eager_interval: float | None = None,
    cancel: threading.Event | None = None,
    alive: Callable[[], None] | None = None,
    history: ProbeHistory | None = None,
    alive_first: bool = True,
) -> ProbeResult:
    """Poll `check` until it passes, `timeout` passes, `cancel` is set or `alive` raises.

    `eager_interval` caps the wait during the first EAGER_SECONDS (default EAGER_INTERVAL).
    `alive` is called before the first check (unless `alive_first` is False: the caller just
    did) and then at most every `ALIVE_EVERY` seconds.
    Returns the last result (``ok`` False on timeout or cancel).
    """
    history = history if history is not None else ProbeHistory()
    last_alive = [float("-inf") if alive_first else time.monotonic()]

    def attempt() -> ProbeResult:
        # `alive` asks the engine, which costs it CPU that starting containers need: ask on
        # the first try, then at most every ALIVE_EVERY (a crash is still seen within it).
        if alive is not None and time.monotonic() - last_alive[0] >= ALIVE_EVERY:
            alive()
            last_alive[0] = time.monotonic()
        result = check()
        history.record(result)
        return result

    def cancelled(state: RetryCallState) -> bool:
        return cancel is not None and cancel.is_set()

    retrying = Retrying(
        stop=stop_after_delay(timeout) | cancelled,
        wait=_backoff(max_interval, EAGER_INTERVAL if eager_interval is None else eager_interval),
        retry=retry_if_result(lambda result: not result.ok),
        retry_error_callback=lambda state: state.outcome.result(),
        sleep=_sleeper(cancel),
    )
    return retrying(attempt)


# Most services get ready within a few seconds of starting: poll those seconds closely (a
# ready service waits at most EAGER_INTERVAL to be noticed), then back off to the slowest.
EAGER_SECONDS = 5.0
EAGER_INTERVAL = 0.025  # at most 40 connections a second from the host: cheap next to a container start
ALIVE_EVERY = 0.25
# A command probe is an exec in the container, which costs the engine far more than a
# connection from the host: poll those no faster than this even while eager.
EAGER_EXEC_INTERVAL = 0.25


def _backoff(max_interval: float, eager_interval: float) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        doubling = 0.01 * 2 ** (state.attempt_number - 1)
        eager = (state.seconds_since_start or 0.0) < EAGER_SECONDS
        return min(doubling, min(eager_interval, max_interval) if eager else max_interval)
    return wait


def _sleeper(cancel: threading.Event | None) -> Callable[[float], None]:
    if cancel is None:
        return time.sleep
    return lambda seconds: cancel.wait(seconds) and None


def _reason(exc: requests.RequestException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "Read timed out", "RemoteDisconnected",
                   "Connection aborted", "Max retries exceeded"):
        if marker in text:
            return marker.lower() if marker != "RemoteDisconnected" else "connection closed without a response"
    return type(exc).__name__
