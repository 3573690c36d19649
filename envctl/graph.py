"""Dependency ordering: cycle detection, closure, and a small dependency-aware executor.

The executor runs one task per node in its own thread as soon as the milestones it waits
for are reached (a DAG, not level by level); builds and `up` both use it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

DONE = "done"


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle as a path that returns to its start (``a -> b -> a``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def closure(roots: Iterable[str], edges: Mapping[str, Iterable[str]]) -> set[str]:
    """`roots` and everything they depend on, transitively."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return seen


def dependents(roots: Iterable[str], edges: Mapping[str, Iterable[str]]) -> set[str]:
    """`roots` and everything that depends on them, transitively."""
    reverse: dict[str, set[str]] = {}
    for node, deps in edges.items():
        for dep in deps:
            reverse.setdefault(dep, set()).add(node)
    return closure(roots, reverse)


def topological_order(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Dependencies first; ties broken by name so the order is stable."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for dep in sorted(edges.get(node, ())):
            visit(dep)
        order.append(node)

    for node in sorted(edges):
        visit(node)
    return order


def depths(edges: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """How many dependencies deep each node sits: 0 for none, else one more than its deepest."""
    depth: dict[str, int] = {}
    for node in topological_order(edges):
        depth[node] = 1 + max((depth[d] for d in edges.get(node, ()) if d in depth), default=-1)
    return depth


class DependencyFailed(Exception):
    """A task was skipped because something it waits for failed or was cancelled."""

    def __init__(self, node: str, dependency: str) -> None:
        super().__init__(f"{node} was not started because {dependency} failed")
        self.node = node
        self.dependency = dependency


@dataclass
class _Node:
    milestones: dict[str, threading.Event] = field(default_factory=dict)
    failed: bool = False

    def event(self, milestone: str) -> threading.Event:
        return self.milestones.setdefault(milestone, threading.Event())


@dataclass
class Outcome:
    """What the executor did: nodes that completed, and the error of each that did not."""

    completed: list[str] = field(default_factory=list)
    errors: dict[str, BaseException] = field(default_factory=dict)


Task = Callable[[str, Callable[[str], None]], None]


def run_dag(
    requires: Mapping[str, Iterable[tuple[str, str]]],
    task: Task,
    *,
    max_parallel: int | None = None,
    cancel: threading.Event | None = None,
    fail_fast: bool = True,
    light: Iterable[str] = (),
) -> Outcome:
    """Run `task(node, reach)` for every node once the milestones it requires are reached.

    `requires[node]` lists ``(dependency, milestone)`` pairs. A task calls ``reach(m)`` to
    announce milestone ``m`` (e.g. "started"); returning reaches every milestone. A task
    that raises fails its dependents with `DependencyFailed`; with `fail_fast` it also sets
    `cancel`, which tasks should watch while they wait. `max_parallel` bounds how many
    tasks run at once (waiting for dependencies does not count); a freed place goes to the
    waiting node with the most nodes depending on it, so a base that fourteen images build on
    is not left behind two leaves that happened to ask first. Nodes in `light` (work of a
    second, e.g. a code-only image assembled without the builder) never wait for a place and
    take none: they must not queue behind the long builds the bound is for.
    """
    requires = {node: list(deps) for node, deps in requires.items()}  # read twice: ranked, then waited on
    execution = _Execution(requires, task, cancel or threading.Event(), fail_fast, None)
    if max_parallel:
        light = set(light)
        bounded = {n: rank for n, rank in _rank_by_dependents(requires).items() if n not in light}
        execution.slots = _Slots(max_parallel, bounded, execution.ready)
    return execution.run()


def _rank_by_dependents(requires: Mapping[str, Iterable[tuple[str, str]]]) -> dict[str, tuple[int, int, int]]:
    """Each node's turn for a place: more (transitive) dependents first, then nearer the roots
    (an image on the OS base installs packages; one on the Python base mostly adds code: the
    long ones first, so none is left alone at the end), then the order given."""
    edges = {n: [d for d, _ in deps] for n, deps in requires.items()}
    depth = depths(edges)
    return {n: (-len(dependents([n], edges) - {n}), depth[n], i) for i, n in enumerate(edges)}


class _Slots:
    """At most `limit` tasks at once; a place goes to the node that ranks first among those
    whose dependencies are done, whether or not its thread has asked yet (several become
    ready at once when their base is built, and the first thread to wake must not win)."""

    def __init__(self, limit: int, rank: Mapping[str, tuple[int, ...]], ready: Callable[[str], bool]) -> None:
        self.free, self.rank, self.ready = limit, rank, ready
        self.pending = set(rank)  # nodes that have neither had a place nor finished
        self.changed = threading.Condition()

    def take(self, name: str, check: Callable[[], None]) -> None:
        """Block until it is `name`'s turn; `check` (called every 50 ms) may raise to give up."""
        with self.changed:
            while not (self.free and self._first_ready() == name):
                check()
                self.changed.wait(0.05)
            self.free -= 1
            self.pending.discard(name)
            self.changed.notify_all()

    def _first_ready(self) -> str | None:
        ready = [n for n in self.pending if self.ready(n)]
        return min(ready, key=self.rank.__getitem__) if ready else None

    def release(self) -> None:
        with self.changed:
            self.free += 1
            self.changed.notify_all()

    def finished(self, name: str) -> None:
        """`name` will not ask (done, failed or cancelled): the next in line need not wait for it."""
        with self.changed:
            self.pending.discard(name)
            self.changed.notify_all()


@dataclass
class _Execution:
    """One call of `run_dag`: a thread per node, the milestones they reach, what came of each."""

    requires: Mapping[str, Iterable[tuple[str, str]]]
    task: Task
    cancel: threading.Event
    fail_fast: bool
    slots: _Slots | None
    nodes: dict[str, _Node] = field(init=False)
    outcome: Outcome = field(default_factory=Outcome)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Our own bookkeeping, not Thread.join: a join interrupted by a signal can later return
    # while the thread still runs (CPython), and we must not tear down under a worker.
    progress: threading.Condition = field(default_factory=threading.Condition)
    running: int = 0
    finished: int = 0

    def __post_init__(self) -> None:
        self.nodes = {name: _Node() for name in self.requires}

    def run(self) -> Outcome:
        threads = [threading.Thread(target=self.run_worker, args=(n,), name=f"envctl-{n}", daemon=True)
                   for n in self.requires]
        try:
            for thread in threads:
                thread.start()  # inside the try: a signal can arrive while a thread starts
            self.wait_while(lambda: self.finished < len(threads))
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): stop the workers and let those at work finish, so the
            # caller tears down everything they created. A worker that begins after this sees
            # `cancel` and does nothing.
            self.cancel.set()
            self.wait_while(lambda: self.running > 0)
            raise
        return self.outcome

    def wait_while(self, condition: Callable[[], bool]) -> None:
        with self.progress:
            while condition():
                self.progress.wait(0.1)  # short waits keep the main thread responsive to signals

    def run_worker(self, name: str) -> None:
        with self.progress:
            self.running += 1
        try:
            self.work(name)
        finally:
            with self.progress:
                self.running -= 1
                self.finished += 1
                self.progress.notify_all()

    def work(self, name: str) -> None:
        try:
            self.wait_for(name)
            placed = self.take_slot(name)
            try:
                self.stop_if_cancelled(name)
                self.task(name, lambda milestone: self.nodes[name].event(milestone).set())
            finally:
                if placed and self.slots:
                    self.slots.release()
        except BaseException as exc:  # noqa: BLE001 - reported through the outcome
            with self.lock:
                self.outcome.errors[name] = exc
            if self.fail_fast and not isinstance(exc, DependencyFailed):
                self.cancel.set()
            self.finish(name, failed=True)
            return
        with self.lock:
            self.outcome.completed.append(name)
        self.finish(name, failed=False)

    def wait_for(self, name: str) -> None:
        for dep, milestone in self.requires[name]:
            event = self.nodes[dep].event(milestone)
            while not event.wait(0.05):
                self.stop_if_cancelled(name)
            if self.nodes[dep].failed:
                raise DependencyFailed(name, dep)

    def ready(self, name: str) -> bool:
        """Whether every milestone `name` requires is reached."""
        return all(self.nodes[dep].event(milestone).is_set() for dep, milestone in self.requires[name])

    def take_slot(self, name: str) -> bool:
        """Wait for a place if `name` needs one; whether it took one (to give back)."""
        if self.slots is None or name not in self.slots.rank:
            return False
        self.slots.take(name, lambda: self.stop_if_cancelled(name))
        return True

    def stop_if_cancelled(self, name: str) -> None:
        if self.cancel.is_set():
            raise DependencyFailed(name, "the run was cancelled")

    def finish(self, name: str, failed: bool) -> None:
        if self.slots:
            self.slots.finished(name)
        node = self.nodes[name]
        node.failed = failed
        node.event(DONE).set()
        for event in list(node.milestones.values()):
            event.set()
