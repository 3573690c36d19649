"""`envctl ci -- CMD`: the CI stage in one command, the same in Jenkins and anywhere else.

Bring the stack up, report start-up as JUnit (one test case per service's readiness), run
CMD against the stack, save logs and the timeline as artifacts, and always tear down: on
success, on failure, and on SIGTERM (an aborted build) or SIGINT. Exits with CMD's status.

What the teardown finds never hides what came before it: CMD's status, the artifacts and
the strict mocks' verdict survive a teardown that fails, and a failed start-up stays the error.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from envctl import processes
from envctl.errors import Cancelled, EnvctlError, StartupFailed, Terminated
from envctl.progress import Event, Progress, silent
from envctl.project import Project, Teardown

STARTUP_REPORT = "envctl-startup.xml"
CHILD_GRACE_SECONDS = 20


@dataclass
class CiOutcome:
    """How `envctl ci` ended: the command's status, and what the teardown found."""

    command_status: int
    strict_violations: list[str] = field(default_factory=list)
    teardown_error: EnvctlError | None = None
    errors: list[EnvctlError] = field(default_factory=list)  # what to tell, in order (`Teardown.errors`)

    @property
    def exit_code(self) -> int:
        """The command's status when it failed; else non-zero if the teardown or a strict mock did."""
        if self.command_status != 0:
            return self.command_status
        if self.teardown_error is not None:
            return self.teardown_error.exit_code
        return 1 if self.strict_violations else 0


def ci_run_id(project: Project) -> str:
    """The run `envctl ci` starts: the one named, else Jenkins' BUILD_TAG (unique per build, so builds
    on one agent never collide), else a new one."""
    build_tag = os.environ.get("BUILD_TAG")
    return project.run or (Project.run_id(build_tag) if build_tag else Project.new_run_id())


def run_ci(
    project: Project,
    command: Sequence[str],
    *,
    services: Sequence[str] = (),
    junit_dir: Path | None = None,
    artifacts_dir: Path | None = None,
    progress: Progress = silent,
) -> CiOutcome:
    """Run `command` against a fresh stack of `project`, then tear it down and collect the artifacts.

    A failed start-up (or an interrupt) is raised, after the same teardown.
    """
    project = project.for_run(ci_run_id(project))
    names = project.select_services(services)
    try:
        _start(project, services, names, junit_dir, progress)
        progress(Event("", "run", " ".join(command)))
        topology = project.topology
        files = os.pathsep.join(str(f) for f in topology.files or (topology.file,))
        status = _run_command(command, {**os.environ, "ENVCTL_RUN": project.run, "ENVCTL_FILE": files})
    except BaseException as exc:  # also SIGTERM/SIGINT, turned into exceptions by the CLI
        outcome = _tear_down(project, artifacts_dir, progress, command_status=1)
        if isinstance(exc, EnvctlError) and outcome.teardown_error is not None:
            exc.message += f"\nand the teardown failed too: {outcome.teardown_error}"
        raise
    return _tear_down(project, artifacts_dir, progress, command_status=status)


def _start(project: Project, services: Sequence[str], names: list[str], junit_dir: Path | None,
           progress: Progress) -> None:
    """Bring the stack up, and report its start-up as JUnit whether it came up or not."""
    events: list[Event] = []

    def record(event: Event) -> None:
        events.append(event)
        progress(event)

    try:
        project.up(services, progress=record)
    except StartupFailed as exc:
        _write_startup_junit(junit_dir, names, events, failed=exc.service, message=str(exc))
        raise
    except Cancelled:
        raise
    except EnvctlError as exc:
        _write_startup_junit(junit_dir, names, events, failed="envctl up", message=str(exc))
        raise
    _write_startup_junit(junit_dir, names, events)


def _tear_down(project: Project, artifacts_dir: Path | None, progress: Progress, command_status: int) -> CiOutcome:
    """Remove the run and copy its artifacts, whatever the removal meets; its failure is returned, not raised."""
    progress(Event("", "teardown", f"run {project.run}"))
    outcome = CiOutcome(command_status)
    try:
        teardown = project.down()
    except EnvctlError as exc:
        teardown = Teardown([project.run], [exc])
    finally:
        _collect_artifacts(project, artifacts_dir)
    outcome.teardown_error = teardown.failed[-1] if teardown.failed else None
    outcome.strict_violations, outcome.errors = teardown.strict_violations, teardown.errors()
    return outcome


def _run_command(command: Sequence[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(list(command), env=env, **processes.group_options())
    except OSError as exc:
        raise EnvctlError(f"cannot run {command[0]}: {exc.strerror}", fix="check the command after '--'") from None
    try:
        return child.wait()
    except KeyboardInterrupt as exc:
        # Pass the stop on to the command's whole process group, give it time to finish its
        # own clean-up, then make sure it is gone before the stack is torn down.
        processes.stop_group(child, isinstance(exc, Terminated), CHILD_GRACE_SECONDS)
        raise


def _write_startup_junit(directory: Path | None, names: list[str], events: list[Event],
                         failed: str | None = None, message: str = "") -> None:
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    began: dict[str, float] = {}
    ready: dict[str, float] = {}
    for event in events:
        if event.phase in ("create", "recreate", "wait") and event.subject not in began:
            began[event.subject] = event.at
        if event.phase == "ready":
            ready[event.subject] = event.at
    suite = ET.Element("testsuite", name="envctl.startup")
    cases = list(names) + ([failed] if failed and failed not in names else [])
    counts = {"failures": 0, "skipped": 0}
    for name in cases:
        seconds = ready.get(name, began.get(name, 0.0)) - began.get(name, ready.get(name, 0.0))
        case = ET.SubElement(suite, "testcase", classname="envctl.startup", name=f"{name} is ready",
                             time=f"{max(seconds, 0.0):.3f}")
        if name == failed:
            first = message.splitlines()[0] if message else "failed"
            ET.SubElement(case, "failure", message=first).text = message
            counts["failures"] += 1
        elif name not in ready:
            ET.SubElement(case, "skipped", message="not started: start-up stopped before it")
            counts["skipped"] += 1
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(counts["failures"]))
    suite.set("skipped", str(counts["skipped"]))
    suite.set("errors", "0")
    ET.ElementTree(suite).write(directory / STARTUP_REPORT, encoding="utf-8", xml_declaration=True)


def _collect_artifacts(project: Project, directory: Path | None) -> None:
    """Copy the run's saved files (logs, timeline, diagnostics) where CI archives them."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    saved = project.run_directory()
    for item in saved.iterdir():
        target = directory / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
