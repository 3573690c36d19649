"""Dependency ordering and the executor that starts each node once what it waits for is reached."""
import threading
import time

from envctl.graph import DependencyFailed, closure, dependents, depths, find_cycle, run_dag, topological_order


def test_find_cycle_returns_the_path() -> None:
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None


def test_closure_and_dependents() -> None:
    edges = {"api": ["db", "cache"], "web": ["api"], "db": [], "cache": [], "job": ["db"]}
    assert closure(["web"], edges) == {"web", "api", "db", "cache"}
    assert dependents(["db"], edges) == {"db", "api", "web", "job"}


def test_topological_order_puts_dependencies_first() -> None:
    order = topological_order({"web": ["api"], "api": ["db"], "db": []})
    assert order == ["db", "api", "web"]


def test_depths_count_the_longest_chain_below_each_node() -> None:
    edges = {"db": [], "cache": [], "api": ["db"], "web": ["api", "cache"], "job": ["db", "web"]}
    assert depths(edges) == {"db": 0, "cache": 0, "api": 1, "web": 2, "job": 3}


def test_a_node_starts_when_its_own_dependencies_are_done_not_its_level() -> None:
    # slow -> after_slow; fast -> after_fast. after_fast must not wait for slow.
    finished: dict[str, float] = {}
    started: dict[str, float] = {}
    delays = {"slow": 0.4, "fast": 0.0, "after_slow": 0.0, "after_fast": 0.0}

    def task(name, reach):
        started[name] = time.monotonic()
        time.sleep(delays[name])
        finished[name] = time.monotonic()

    requires = {"slow": [], "fast": [], "after_slow": [("slow", "done")], "after_fast": [("fast", "done")]}
    outcome = run_dag(requires, task)
    assert not outcome.errors
    assert started["after_fast"] < finished["slow"]
    assert started["after_slow"] >= finished["slow"]


def test_milestones_release_dependents_early() -> None:
    order = []

    def task(name, reach):
        if name == "db":
            reach("started")
            time.sleep(0.2)
            order.append("db-ready")
        else:
            order.append(name)

    run_dag({"db": [], "api": [("db", "started")]}, task)
    assert order == ["api", "db-ready"]


def test_failure_skips_dependents_and_cancels_the_rest() -> None:
    cancel = threading.Event()

    def task(name, reach):
        if name == "db":
            raise RuntimeError("boom")
        if name == "slow":
            cancel.wait(5)

    outcome = run_dag({"db": [], "api": [("db", "done")], "slow": []}, task, cancel=cancel)
    assert isinstance(outcome.errors["db"], RuntimeError)
    assert isinstance(outcome.errors["api"], DependencyFailed)
    assert cancel.is_set()


def test_max_parallel_bounds_running_tasks() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def task(name, reach):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    run_dag({str(i): [] for i in range(6)}, task, max_parallel=2)
    assert peak == 2


def test_a_freed_place_goes_to_the_node_most_others_depend_on() -> None:
    # One place: whoever takes it first holds it while the rest queue; then the base that
    # three images build on goes before the two leaves that asked before it.
    order: list[str] = []

    def task(name: str, reach) -> None:
        order.append(name)
        time.sleep(0.2 if len(order) == 1 else 0.01)

    requires = {"x": [], "y": [], "base": [], **{f"app{i}": [("base", "done")] for i in range(3)}}
    outcome = run_dag(requires, task, max_parallel=1)
    assert sorted(outcome.completed) == sorted(requires)
    assert "base" in order[:2]
    assert order.index("base") < min(order.index(n) for n in ("x", "y") if n != order[0])


def test_when_a_base_is_done_its_most_depended_on_child_goes_first_whichever_thread_wakes_first() -> None:
    # Two places; when "os" is done four images become ready at once. "python", which three
    # apps build on, must get a place, whichever threads wake first.
    for _ in range(5):
        order: list[str] = []
        requires = {"os": [], "redis": [("os", "done")], "mock": [("os", "done")], "pg": [("os", "done")],
                    "python": [("os", "done")], **{f"app{i}": [("python", "done")] for i in range(3)}}
        run_dag(requires, lambda name, reach: (order.append(name), time.sleep(0.05)), max_parallel=2)
        assert order[0] == "os"
        assert "python" in order[1:3]
        # then the images on the OS base (packages to install) before the apps (code to add)
        assert max(order.index(n) for n in ("redis", "mock", "pg")) < min(order.index(f"app{i}") for i in range(3))


def test_light_nodes_neither_wait_for_a_place_nor_take_one() -> None:
    # One place, held by a long build; the code-only images on the base run beside it, at once,
    # and the other long build still gets the place only when the first gives it back.
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    released = threading.Event()

    def task(name: str, reach) -> None:
        with lock:
            events.append(("start", name))
        if name == "pg":
            assert released.wait(5)
        with lock:
            events.append(("end", name))

    light = [f"app{i}" for i in range(3)]

    def release_when_apps_are_done() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sum(e == ("end", a) for e in events for a in light) < 3:
            time.sleep(0.01)
        released.set()

    # pg and mock rank alike but for the order given: pg holds the place first
    requires = {"os": [], "pg": [("os", "done")], **{f"app{i}": [("os", "done")] for i in range(3)},
                "mock": [("os", "done")]}
    helper = threading.Thread(target=release_when_apps_are_done)
    helper.start()
    outcome = run_dag(requires, task, max_parallel=1, light=light)
    helper.join()
    assert sorted(outcome.completed) == sorted(requires)
    apps_done = max(events.index(("end", a)) for a in light)
    assert apps_done < events.index(("end", "pg"))  # ran while pg held the only place
    assert events.index(("end", "pg")) < events.index(("start", "mock"))  # the place was still one
