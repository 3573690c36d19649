"""`envctl ci -- CMD`: the CI stage in one command, the same in Jenkins and anywhere else.

Bring the stack up, report start-up as JUnit (one test case per service's readiness), run
CMD against the stack, save logs and the timeline as artifacts, and always tear down: on
success, on failure, and on SIGTERM (an aborted build) or SIGINT. Exits with CMD's status.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from envctl import run as run_api
from envctl import state
from envctl.engine import Engine
from envctl.errors import Cancelled, EnvctlError, StartupFailed, Terminated
from envctl.progress import Event, Progress, silent
from envctl.topology import Topology

STARTUP_REPORT = "envctl-startup.xml"
CHILD_GRACE_SECONDS = 20


def run_ci(
    topology: Topology,
    engine: Engine,
    command: Sequence[str],
    *,
    run_id: str | None = None,
    services: Sequence[str] = (),
    junit_dir: Path | None = None,
    artifacts_dir: Path | None = None,
    progress: Progress = silent,
) -> int:
    """Run `command` against a fresh stack; return its exit status (or the start-up's)."""
    build_tag = os.environ.get("BUILD_TAG")  # Jenkins: unique per build, so builds on one agent never collide
    run = run_id or (state.sanitize_run_id(build_tag) if build_tag else state.new_run_id())
    events: list[Event] = []

    def record(event: Event) -> None:
        events.append(event)
        progress(event)

    names = run_api.select_services(topology, services)
    try:
        try:
            run_api.up(topology, engine, services=services, run_id=run, progress=record)
        except StartupFailed as exc:
            _write_startup_junit(junit_dir, names, events, failed=exc.service, message=str(exc))
            raise
        except Cancelled:
            raise
        except EnvctlError as exc:
            _write_startup_junit(junit_dir, names, events, failed="envctl up", message=str(exc))
            raise
        _write_startup_junit(junit_dir, names, events)
        progress(Event("", "run", " ".join(command)))
        files = os.pathsep.join(str(f) for f in topology.files or (topology.file,))
        return _run_command(command, {**os.environ, "ENVCTL_RUN": run, "ENVCTL_FILE": files})
    finally:
        # Runs on success, failure, and SIGTERM/SIGINT (turned into exceptions by the CLI).
        progress(Event("", "teardown", f"run {run}"))
        run_api.down(topology, engine, run)
        _collect_artifacts(topology, run, artifacts_dir)


def _run_command(command: Sequence[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(list(command), env=env, start_new_session=True)
    except OSError as exc:
        raise EnvctlError(f"cannot run {command[0]}: {exc.strerror}", fix="check the command after '--'") from None
    try:
        return child.wait()
    except KeyboardInterrupt as exc:
        # Pass the stop on to the command's whole process group, give it time to finish its
        # own clean-up, then make sure it is gone before the stack is torn down.
        sig = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        try:
            os.killpg(child.pid, sig)
            child.wait(CHILD_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        except ProcessLookupError:
            pass
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


def _collect_artifacts(topology: Topology, run: str, directory: Path | None) -> None:
    """Copy the run's saved files (logs, timeline, diagnostics) where CI archives them."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    saved = state.run_directory(topology, run)
    for item in saved.iterdir():
        target = directory / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
