"""The reaper: a small process per watched run that removes it once its owner is gone.

`up` starts one beside itself (`watch`). It runs in its own session, so a signal to the
owner's process group (an aborted CI job, Ctrl-C in a terminal) does not reach it, and it
needs nothing privileged: it talks to the engine as its owner did. It re-reads the lease
every quarter second and:

- stands down when the lease file is gone (`down` removed the run) or nothing watches
  the run any more (a laptop `envctl up` let go of it);
- removes the run (logs saved first) when the owner process has died or the lease expired.

Run as `python -m envctl.runtime.reaper PROJECT RUN RUN_DIRECTORY TOPOLOGY_FILE`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from envctl.runtime import lease as leases
from envctl.bugs import BUG_EXIT_CODE, record_bug
from envctl.errors import EnvctlError

POLL_SECONDS = 0.25
# Jenkins kills every process that carries its build's cookie when a job is aborted; the
# reaper must outlive exactly that, so it does not carry the cookie.
_CI_PROCESS_MARKERS = ("JENKINS_NODE_COOKIE", "JENKINS_SERVER_COOKIE")
LOG_FILE = "reaper.log"
PID_FILE = "reaper.pid"


def watch(project: str, run: str, run_directory: Path, topology_file: Path) -> int:
    """Start the reaper for a run whose lease is already written; returns its pid."""
    env = {k: v for k, v in os.environ.items() if k not in _CI_PROCESS_MARKERS}
    env["BUILD_ID"] = "dontKillMe"  # Jenkins' documented way to leave a process alone
    with open(run_directory / LOG_FILE, "ab") as log:
        # At a lower priority: it mostly sleeps, and its start-up must not take CPU from the
        # containers `up` is starting (`nice` execs it, so the pid is the reaper's).
        nice = [found, "-n", "10"] if (found := shutil.which("nice")) else []
        process = subprocess.Popen(
            [*nice, sys.executable, "-m", "envctl.runtime.reaper", project, run, str(run_directory), str(topology_file)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env, cwd="/",
        )
    (run_directory / PID_FILE).write_text(str(process.pid))
    return process.pid


def wait_and_reap(project: str, run: str, run_directory: Path, topology_file: Path | None = None) -> str:
    """Block until the run is removed by someone, let go, or abandoned (then remove it)."""
    while True:
        lease = leases.read(run_directory)
        if lease is None:
            return "the run was taken down"
        if not lease.watched:
            return "the run was let go (it lives until 'envctl down')"
        reason = lease.abandoned()
        if reason is not None:
            # The owner may have handed the run on just before it exited: judge the newest lease.
            lease = leases.read(run_directory)
            reason = lease.abandoned() if lease is not None and lease.watched else None
            if reason is not None:
                return reap(project, run, run_directory, reason, topology_file=topology_file)
            continue
        time.sleep(POLL_SECONDS)


def reap(project: str, run: str, run_directory: Path, reason: str, engine=None,
         topology_file: Path | None = None) -> str:
    from envctl.backend.engine import Engine  # imported only when needed: most reapers never reap
    from envctl.runtime.teardown import purge
    from envctl.runtime.state import forget_current

    engine = engine or _backend(topology_file) or Engine.connect()
    count = purge(engine, project, run, log_dir=run_directory / "logs", masker=_masker(topology_file))
    leases.remove(run_directory)
    forget_current(run_directory.parent.parent, project, run)  # .envctl/runs/RUN -> .envctl
    return f"removed run {run} ({count} containers) because {reason}"


def _backend(topology_file: Path | None):
    """Where the run went (a swarm's services, or the local engine), as its topology and environment say."""
    from envctl.runtime import backends
    from envctl.topology import load_topology

    try:
        return backends.connect(load_topology(topology_file)) if topology_file else None
    except (EnvctlError, OSError):
        return None


def _masker(topology_file: Path | None):
    """The topology's secrets, to mask the logs saved on the way out (none if it no longer loads)."""
    from envctl.topology import secrets
    from envctl.topology import load_topology

    try:
        return secrets.for_topology(load_topology(topology_file)) if topology_file else secrets.Masker()
    except (EnvctlError, OSError):
        return secrets.Masker()


def main(argv: list[str]) -> int:
    project, run, directory, topology_file = argv
    started = time.strftime("%H:%M:%S")
    outcome = wait_and_reap(project, run, Path(directory), Path(topology_file))
    print(f"{started}..{time.strftime('%H:%M:%S')} reaper {os.getpid()}: {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except EnvctlError as exc:  # the log is the only place anyone will look
        print(f"reaper {os.getpid()}: failed: {exc}", flush=True)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - a bug: said as one, its traceback kept for the report
        print(f"reaper {os.getpid()}: {record_bug(exc).message}", flush=True)
        sys.exit(BUG_EXIT_CODE)
