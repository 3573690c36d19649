"""The pytest plugin: a live stack for tests, shared by pytest-xdist workers.

`envctl_stack` (session scope) brings the topology up once and hands tests a `Stack`.
With xdist, the first worker to arrive starts the stack, the others attach, and the last
one to leave tears it down: a reference count of workers (pid and start time) under a
file lock, where a crashed worker no longer counts. `--envctl-reuse` (or ENVCTL_RUN, as
`envctl ci` sets it) attaches to a stack that is already up and never starts or stops it.

Until a test asks for `envctl_stack` the plugin does nothing: it connects to no engine and
leaves the SIGTERM handler alone. While it holds a stack, SIGTERM unwinds like Ctrl-C so the
stack is torn down; during start-up it ends the session with 143 (130 for Ctrl-C).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from filelock import FileLock

from envctl import bugs, lease, secrets
from envctl import run as run_api
from envctl import state
from envctl.engine import Engine
from envctl.errors import Cancelled, EnvctlError, Terminated
from envctl.mocks.report import describe_unmatched
from envctl.stack import Stack
from envctl.topology import Topology, load_topology

LOG_TAIL = 20
MARKER = "envctl_services"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envctl", "envctl: a live stack for tests")
    options = [
        ("--envctl-file", "envctl_file", "the topology file (default: envctl.yaml in the rootdir)", None),
        ("--envctl-services", "envctl_services", "comma-separated services to start (default: all, "
         "or those the tests name with @pytest.mark.envctl_services)", None),
    ]
    for flag, ini, text, default in options:
        group.addoption(flag, dest=ini, default=default, help=text)
        parser.addini(ini, text, default=default)
    flags = [
        ("--envctl-reuse", "envctl_reuse", "attach to the stack 'envctl up' started; never start or stop it"),
        ("--envctl-keep", "envctl_keep", "leave the stack up after a failed session, for debugging"),
        ("--envctl-stack-per-worker", "envctl_stack_per_worker", "with xdist, give each worker its own stack"),
    ]
    for flag, ini, text in flags:
        group.addoption(flag, dest=ini, action="store_true", default=None, help=text)
        parser.addini(ini, text, type="bool", default=False)


def _setting(config: pytest.Config, name: str):
    value = config.getoption(name)
    return value if value is not None else config.getini(name)


def pytest_configure(config: pytest.Config) -> None:
    # Installed wherever envctl is: nothing here may act (signals, the engine) until a test
    # asks for a stack, so a project that never uses `envctl_stack` does not notice the plugin.
    config.addinivalue_line("markers", f"{MARKER}(*names): the services (and mocks) this test needs started")
    config.stash[_KEY] = StackManager(config)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()  # SIGTERM (an aborted CI job) unwinds like Ctrl-C, so the stack is torn down


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted: set[str] = set()
    for item in items:
        for mark in item.iter_markers(MARKER):
            wanted.update(mark.args)
    config.stash[_KEY].marked_services = wanted


@pytest.fixture(scope="session")
def envctl_stack(request: pytest.FixtureRequest) -> Stack:
    """The live stack: url(), host(), port(), env(), logs(), exec(), mock() per service."""
    manager: StackManager = request.config.stash[_KEY]
    request.addfinalizer(lambda: manager.release(request.session))  # also gives SIGTERM back if acquire fails
    return manager.acquire()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """A service that died fails the next test that uses the stack at once, saying which and why."""
    manager: StackManager = item.config.stash[_KEY]
    if manager.stack is None or "envctl_stack" not in getattr(item, "fixturenames", ()):
        return
    dead = manager.stack.dead()
    if dead:
        lines = []
        for row in dead:
            lines.append(f"service '{row.service}' {row.detail}; its last log lines:")
            lines += ["    " + line for line in manager.stack.logs(row.service, tail=LOG_TAIL).splitlines()]
        masker = secrets.for_topology(manager.stack.topology)
        pytest.fail(masker.mask("the stack is broken: " + "\n".join(lines)), pytrace=False)
    manager.attribute_requests_to(item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    manager: StackManager = item.config.stash[_KEY]
    if report.failed and manager.stack is not None and "envctl_stack" in getattr(item, "fixturenames", ()):
        masker = secrets.for_topology(manager.stack.topology)
        for title, text in manager.failure_sections(item.nodeid):
            report.sections.append((title, masker.mask(text)))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    manager: StackManager = config.stash[_KEY]
    for line in manager.notes:
        terminalreporter.write_line(f"envctl: {line}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    manager: StackManager = session.config.stash[_KEY]
    if (manager.violations or manager.teardown_failed) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@dataclass
class StackManager:
    """Who starts, shares and stops the session's stack."""

    config: pytest.Config
    marked_services: set[str] = field(default_factory=set)
    stack: Stack | None = None
    owned: bool = False  # this process holds a reference it must give back
    shared_dir: Path | None = None  # with xdist: the lock and the workers using the stack
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    teardown_failed: bool = False  # the engine kept part of the stack: the session fails, saying what
    sigterm_before: object = None  # the SIGTERM handler to give back when the stack is released

    # -- what to run ------------------------------------------------------------------------

    def topology(self) -> Topology:
        # ENVCTL_FILE may name several files (`envctl ci` passes them all); the rootdir finds
        # its envctl.yaml, else its Compose file.
        setting = _setting(self.config, "envctl_file") or os.environ.get("ENVCTL_FILE") or \
            str(Path(self.config.rootpath))
        try:
            return load_topology(setting.split(os.pathsep))
        except EnvctlError as exc:
            raise pytest.UsageError(f"envctl: {exc}") from None

    def services(self) -> list[str]:
        listed = _setting(self.config, "envctl_services")
        names = {s.strip() for s in listed.split(",") if s.strip()} if listed else set()
        return sorted(names | self.marked_services)

    # -- sharing --------------------------------------------------------------------------

    def _worker(self) -> tuple[str | None, str | None]:
        workerinput = getattr(self.config, "workerinput", None)
        if workerinput is None:
            return None, None
        return workerinput.get("workerid"), workerinput.get("testrunuid")

    def acquire(self) -> Stack:
        self._handle_sigterm()
        topology = self.topology()
        try:
            engine = Engine.connect()
        except EnvctlError as exc:
            pytest.exit(f"envctl: {exc}", returncode=2)
        attach = os.environ.get("ENVCTL_RUN")
        if _setting(self.config, "envctl_reuse") or attach:
            record = state.read_current(topology) if not attach else state.RunRecord(attach, topology.name, str(topology.file))
            if record is None or not run_api.containers_by_service(engine, topology, record.run):
                raise pytest.UsageError("envctl: --envctl-reuse found no running stack; start one with 'envctl up'")
            self.stack = Stack(topology, engine, record.run)
            return self.stack
        worker, testrunuid = self._worker()
        per_worker = _setting(self.config, "envctl_stack_per_worker")
        if worker is None or per_worker:
            run = state.new_run_id() if worker is None else f"pytest-{(testrunuid or '')[:6]}-{worker}"
            self.stack = self._up(topology, engine, run)
            self.owned = True
            return self.stack
        shared = state.directory(topology) / "pytest" / hashlib.sha256(testrunuid.encode()).hexdigest()[:12]
        shared.mkdir(parents=True, exist_ok=True)
        with FileLock(str(shared / "lock")):
            data = _read_json(shared / "users.json") or {"run": f"pytest-{testrunuid[:8]}", "users": [], "up": False}
            if not data["up"]:
                # Shared by the workers: the xdist controller (their parent) owns it, so the
                # reaper removes it when the whole session is gone, however it ended.
                self._up(topology, engine, data["run"], lease.bound_to(os.getppid()))
                data["up"] = True
            data["users"] = sorted(set(data["users"]) | {lease.Owner.of().label()})
            (shared / "users.json").write_text(json.dumps(data))
        self.stack = Stack(topology, engine, data["run"])
        self.owned = True
        self.shared_dir = shared
        return self.stack

    def _handle_sigterm(self) -> None:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self.sigterm_before = signal.signal(signal.SIGTERM, _terminate)

    def _restore_sigterm(self) -> None:
        if self.sigterm_before is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.sigterm_before)
            self.sigterm_before = None

    def _up(self, topology: Topology, engine: Engine, run: str, owner: lease.Lease | None = None) -> Stack:
        masker = secrets.for_topology(topology)
        try:
            run_api.up(topology, engine, services=self.services(), run_id=run, make_current=False,
                       owner=owner or lease.held_by_me())
        except Cancelled as exc:  # SIGTERM or Ctrl-C during start-up: end the session with 143 / 130
            pytest.exit(masker.mask(f"envctl: {exc}"), returncode=exc.exit_code)
        except EnvctlError as exc:
            pytest.fail(masker.mask(f"envctl could not start the stack:\n{exc}"), pytrace=False)
        except Exception as exc:  # noqa: BLE001 - a bug: say so, keep the traceback for the report
            pytest.fail(f"envctl could not start the stack: {bugs.record_bug(exc, masker.mask).message}", pytrace=False)
        return Stack(topology, engine, run)

    def release(self, session: pytest.Session) -> None:
        try:
            self._release(session)
        finally:
            self._restore_sigterm()

    def _release(self, session: pytest.Session) -> None:
        stack = self.stack
        if stack is None:
            return
        try:
            self.violations = stack.strict_violations()
        except EnvctlError as exc:
            self.violations = [str(exc)]
        for violation in self.violations:
            self.notes.append(f"strict mock: {violation}")
        if not self.owned:
            return
        shared = self.shared_dir
        if shared is not None:
            with FileLock(str(shared / "lock")):
                data = _read_json(shared / "users.json") or {"users": []}
                data["users"] = [u for u in data["users"] if _still_using(u, besides=os.getpid())]
                (shared / "users.json").write_text(json.dumps(data))
                if data["users"]:
                    return  # others still use it; the last one out tears it down
                self._down(stack, session)
                (shared / "users.json").unlink(missing_ok=True)
            return
        self._down(stack, session)

    def _down(self, stack: Stack, session: pytest.Session) -> None:
        if _setting(self.config, "envctl_keep") and session.testsfailed:
            lease.write(state.run_directory(stack.topology, stack.run), lease.released())  # not the reaper's
            self.notes.append(f"the stack is kept for debugging: run {stack.run} "
                              f"('envctl --run {stack.run} status', then '... down')")
            return
        try:
            result = run_api.down(stack.topology, stack.engine, stack.run)
        except EnvctlError as exc:  # after every test ran: said in the summary, and the session fails
            self.teardown_failed = True
            self.notes.append(f"the stack's teardown failed: {exc}")
            return
        if result.logs_dir:
            self.notes.append(f"stack {stack.run} removed; logs in {result.logs_dir[stack.run]}")

    def attribute_requests_to(self, test: str) -> None:
        """Tell every mock which test runs now, so what it is sent (and cannot match) is this test's.

        One stack shared by xdist workers has one "current test" per mock: there the last
        worker to start a test wins, and attribution is a guess.
        """
        if self.stack is None or not self.stack.topology.mocks:
            return  # nothing to tell, and no engine call per test
        try:
            for mock in self.stack.mocks():
                mock.set_test(test)
        except EnvctlError as exc:
            self.notes.append(f"could not tell the mocks which test runs: {exc}")

    def failure_sections(self, test: str) -> list[tuple[str, str]]:
        stack = self.stack
        assert stack is not None
        sections = []
        try:
            tails = run_api.logs(stack.engine, stack.topology, stack.record, tail=LOG_TAIL)
            for service, text in sorted(tails.items()):
                sections.append((f"envctl log: {service} (last {LOG_TAIL} lines)", text.rstrip() or "(empty)"))
            for report in run_api.mock_reports(stack.engine, stack.topology, stack.record):
                mine = [u for u in report.unmatched if u.get("test") == test]
                if mine:
                    sections.append((f"envctl mock: {report.name} requests this test sent that no interaction matches",
                                     "\n".join(describe_unmatched(u) for u in mine)))
        except EnvctlError as exc:
            sections.append(("envctl", f"could not collect logs: {exc}"))
        return sections


_KEY = pytest.StashKey[StackManager]()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _still_using(label: str, besides: int) -> bool:
    """Another worker, alive: a crashed one no longer counts, nor does a process that later got its pid."""
    owner = lease.Owner.parse(label)
    return owner is not None and owner.pid != besides and owner.alive() is not False
