"""Launching a run's resources in the background: its network, then its containers.

`up` hands the launcher the network first (created while images are resolved), then
every container it has to create, as its image resolves. A few workers take the queued
work in dependency order (its rank), whatever order the images resolved in: each creates
a container and, when it is held at the start gate (`envctl.gate`), starts it right
away. So the services with no dependencies are created first and can start while the rest
is still being prepared, and a held service only has to be released once its
dependencies are ready.

A failure is passed on at once (`on_failure`), so `up` stops without first waiting for
the failed service's dependencies. `close` waits for the work under way: a teardown must
never race a worker that is still creating a container.
"""
from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait

from envctl.planning.gate import NoShell
from envctl.graph import DependencyFailed

# Workers at once. The engine spends most of a start on CPU and this machine class has
# two cores: more at once only slows the services already released.
PARALLEL = 2


class Launcher:
    """A few worker threads taking the queued work lowest rank first, then first come, first served.

    Not a ThreadPoolExecutor: it starts a thread inside `submit`, and a signal arriving
    there leaves a running thread it does not know of, which `shutdown` then does not wait
    for. Here the workers start in the constructor (idle ones are harmless if a signal
    cuts it short), and `close` counts the work under way instead of joining threads.
    """

    def __init__(self, on_failure: Callable[[str, BaseException], None], parallel: int = PARALLEL) -> None:
        self._on_failure = on_failure
        self._futures: dict[str, Future] = {}
        self._failure: tuple[str, BaseException] | None = None
        self._pending: list[tuple[int, int, str, Callable[[], None], Future]] = []  # a heap
        self._arrival = itertools.count()
        self._running = 0
        self._closed = False
        self._changed = threading.Condition()
        for index in range(parallel):
            threading.Thread(target=self._work, name=f"envctl-launch-{index}", daemon=True).start()

    def expect(self, name: str) -> None:
        """Say that work under `name` will come (when its image is there): `wait` may begin now."""
        with self._changed:
            self._futures.setdefault(name, Future())

    def submit(self, name: str, work: Callable[[], None], rank: int = 0) -> None:
        """Queue `work` under `name`; the workers take the lowest rank first (a level's containers
        before the next level's when cached images resolve all at once in any order)."""
        with self._changed:
            future = self._futures.get(name)
            if future is None or future.running() or future.done():
                future = Future()
            self._futures[name] = future
            heapq.heappush(self._pending, (rank, next(self._arrival), name, work, future))
            self._changed.notify()

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                _, _, name, work, future = heapq.heappop(self._pending)
                self._running += 1  # taken and counted at once: `close` cannot miss it
            try:
                future.set_running_or_notify_cancel()
                try:
                    work()
                except NoShell as exc:
                    future.set_exception(exc)  # not a failure: `up` starts the service the plain way
                except BaseException as exc:  # noqa: BLE001 - passed on through the future
                    with self._changed:
                        self._failure = self._failure or (name, exc)
                    future.set_exception(exc)
                    self._on_failure(name, exc)
                else:
                    future.set_result(None)
            finally:
                with self._changed:
                    self._running -= 1
                    self._changed.notify_all()

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
        with self._changed:
            return self._failure

    def close(self) -> None:
        """Drop the work not begun; wait for the work under way."""
        with self._changed:
            self._closed = True
            for *_, future in self._pending:
                future.cancel()
            self._pending.clear()
            self._changed.notify_all()
            while self._running:
                self._changed.wait(0.1)
