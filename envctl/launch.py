"""Launching a run's resources in the background: its network, then its containers.

`up` hands the launcher the network first (created while images are resolved), then
every container it has to create, in dependency order. A few workers take the work in
that order: each creates a container and, when it is held at the start gate
(`envctl.gate`), starts it right away. So the services with no dependencies are created
first and can start while the rest is still being prepared, and a held service only has
to be released once its dependencies are ready.

A failure is passed on at once (`on_failure`), so `up` stops without first waiting for
the failed service's dependencies. `close` waits for the work under way: a teardown must
never race a worker that is still creating a container.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from envctl.gate import NoShell
from envctl.graph import DependencyFailed

# Workers at once. The engine spends most of a start on CPU and this machine class has
# two cores: more at once only slows the services already released.
PARALLEL = 2


class Launcher:
    def __init__(self, on_failure: Callable[[str, BaseException], None], parallel: int = PARALLEL) -> None:
        self._on_failure = on_failure
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="envctl-launch")
        self._futures: dict[str, Future] = {}
        self._failure: tuple[str, BaseException] | None = None
        self._lock = threading.Lock()

    def submit(self, name: str, work: Callable[[], None]) -> None:
        """Queue `work` under `name`; the workers take it first come, first served."""
        self._futures[name] = self._pool.submit(self._launch, name, work)

    def _launch(self, name: str, work: Callable[[], None]) -> None:
        try:
            work()
        except NoShell:
            raise  # not a failure: `up` starts the service the plain way
        except BaseException as exc:
            with self._lock:
                self._failure = self._failure or (name, exc)
            self._on_failure(name, exc)
            raise

    def wait(self, name: str, cancel: threading.Event) -> None:
        """Block until `name`'s work is done; raise what it raised."""
        future = self._futures[name]
        while not future.done():
            if cancel.is_set():
                raise DependencyFailed(name, "the run was cancelled")
            wait([future], timeout=0.05)
        future.result()

    @property
    def failure(self) -> tuple[str, BaseException] | None:
        """The first work that failed (its name), and why."""
        with self._lock:
            return self._failure

    def close(self) -> None:
        """Drop the launches not begun; wait for those under way."""
        self._pool.shutdown(wait=True, cancel_futures=True)
