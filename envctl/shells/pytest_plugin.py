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

import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from envctl import bugs
from envctl.errors import Cancelled, EnvctlError, Terminated
from envctl.project import Project, SharedRun
from envctl.stack import Stack

if TYPE_CHECKING:  # types only
    from envctl.backend.engine import Engine
    from envctl.project import Lease
    from envctl.topology import Topology

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
        pytest.fail(manager.stack.project.masker().mask("the stack is broken: " + "\n".join(lines)), pytrace=False)
    manager.attribute_requests_to(item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    manager: StackManager = item.config.stash[_KEY]
    if report.failed and manager.stack is not None and "envctl_stack" in getattr(item, "fixturenames", ()):
        masker = manager.stack.project.masker()
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
    shared: SharedRun | None = None  # with xdist: the run the workers share, and who uses it
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    teardown_failed: bool = False  # the engine kept part of the stack: the session fails, saying what
    sigterm_before: object = None  # the SIGTERM handler to give back when the stack is released

    # -- what to run ------------------------------------------------------------------------

    def project(self) -> Project:
        # ENVCTL_FILE may name several files (`envctl ci` passes them all); the rootdir finds
        # its envctl.yaml, else its Compose file.
        setting = _setting(self.config, "envctl_file") or os.environ.get("ENVCTL_FILE") or \
            str(Path(self.config.rootpath))
        try:
            return Project.load(setting.split(os.pathsep))
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
        project = self.project()
        try:
            project.connect()
        except EnvctlError as exc:
            pytest.exit(f"envctl: {exc}", returncode=2)
        attach = os.environ.get("ENVCTL_RUN")
        if _setting(self.config, "envctl_reuse") or attach:
            run = project.for_run(attach or None).running()
            if run is None:
                raise pytest.UsageError("envctl: --envctl-reuse found no running stack; start one with 'envctl up'")
            self.stack = Stack.of(project.for_run(run))
            return self.stack
        worker, testrunuid = self._worker()
        if worker is None or _setting(self.config, "envctl_stack_per_worker"):
            run = Project.new_run_id() if worker is None else f"pytest-{(testrunuid or '')[:6]}-{worker}"
            self.stack = self._up(project.topology, project.engine, run)
            self.owned = True
            return self.stack
        # Shared by the workers: the xdist controller (their parent) owns it, so the reaper
        # removes it when the whole session is gone, however it ended.
        self.shared = project.shared(testrunuid, f"pytest-{testrunuid[:8]}")
        owner = Project.lease_for(bind_to=os.getppid())
        joined = self.shared.join(lambda shared: self._up(shared.topology, shared.engine, shared.run, owner))
        self.stack = Stack.of(joined)
        self.owned = True
        return self.stack

    def _handle_sigterm(self) -> None:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self.sigterm_before = signal.signal(signal.SIGTERM, _terminate)

    def _restore_sigterm(self) -> None:
        if self.sigterm_before is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.sigterm_before)
            self.sigterm_before = None

    def _up(self, topology: Topology, engine: Engine, run: str, owner: Lease | None = None) -> Stack:
        stack = Stack(topology, engine, run)
        masker = stack.project.masker()
        try:
            stack.project.up(self.services(), make_current=False, owner=owner)
        except Cancelled as exc:  # SIGTERM or Ctrl-C during start-up: end the session with 143 / 130
            pytest.exit(masker.mask(f"envctl: {exc}"), returncode=exc.exit_code)
        except EnvctlError as exc:
            pytest.fail(masker.mask(f"envctl could not start the stack:\n{exc}"), pytrace=False)
        except Exception as exc:  # noqa: BLE001 - a bug: say so, keep the traceback for the report
            pytest.fail(f"envctl could not start the stack: {bugs.record_bug(exc, masker.mask).message}", pytrace=False)
        return stack

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
        if self.shared is not None:
            self.shared.leave(lambda: self._down(stack, session))  # the last one out tears it down
            return
        self._down(stack, session)

    def _down(self, stack: Stack, session: pytest.Session) -> None:
        if _setting(self.config, "envctl_keep") and session.testsfailed:
            stack.project.keep_for_debugging()
            self.notes.append(f"the stack is kept for debugging: run {stack.run} "
                              f"('envctl --run {stack.run} status', then '... down')")
            return
        try:
            teardown = stack.project.down()
            failed = teardown.failed[-1] if teardown.failed else None
        except EnvctlError as exc:
            failed = exc
        if failed is not None:  # after every test ran: said in the summary, and the session fails
            self.teardown_failed = True
            self.notes.append(f"the stack's teardown failed: {failed}")
            return
        if teardown.removed and teardown.removed[0].logs_dir:
            self.notes.append(f"stack {stack.run} removed; logs in {teardown.removed[0].logs_dir}")

    def attribute_requests_to(self, test: str) -> None:
        """Tell every mock which test runs now, so what it is sent (and cannot match) is this test's.

        One stack shared by xdist workers has one "current test" per mock: there the last
        worker to start a test wins, and attribution is a guess.
        """
        if self.stack is None:
            return
        try:
            self.stack.project.tell_mocks(test)
        except EnvctlError as exc:
            self.notes.append(f"could not tell the mocks which test runs: {exc}")

    def failure_sections(self, test: str) -> list[tuple[str, str]]:
        stack = self.stack
        assert stack is not None
        sections = []
        try:
            tails = stack.project.logs(tail=LOG_TAIL)
            for service, text in sorted(tails.items()):
                sections.append((f"envctl log: {service} (last {LOG_TAIL} lines)", text.rstrip() or "(empty)"))
            for report in stack.project.mock_reports():
                mine = report.describe_unmatched(test=test)
                if mine:
                    sections.append((f"envctl mock: {report.name} requests this test sent that no interaction matches",
                                     "\n".join(mine)))
        except EnvctlError as exc:
            sections.append(("envctl", f"could not collect logs: {exc}"))
        return sections


_KEY = pytest.StashKey[StackManager]()
