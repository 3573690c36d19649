"""envctl's exception hierarchy: every error carries a message written for people."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class EnvctlError(Exception):
    """Base of every error envctl raises on purpose.

    The CLI prints ``str(error)`` and exits with ``exit_code``; a traceback means a bug.
    """

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message}\n  Fix: {self.fix}" if self.fix else self.message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a topology file, located precisely."""

    file: Path
    line: int | None
    key_path: str
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else f"{self.file}"
        text = f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"
        return f"{text}\n  Fix: {self.fix}" if self.fix else text


class TopologyError(EnvctlError):
    """The topology file (or something it names) is invalid; nothing was started."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        head = "the topology has a problem" if count == 1 else f"the topology has {count} problems"
        super().__init__(head + ":\n" + "\n".join(str(p) for p in problems))

    def __str__(self) -> str:
        return self.message


class EngineUnavailable(EnvctlError):
    """The Docker engine does not answer."""

    exit_code = 2


class TeardownIncomplete(EnvctlError):
    """Teardown tried everything, and the engine kept some of it: `left` names what, by id."""

    def __init__(self, run: str, left: list[str], *, strict_violations: list[str] | None = None) -> None:
        self.run = run
        self.left = left
        self.strict_violations = strict_violations or []
        super().__init__(
            f"run {run} was not removed completely; the engine kept:\n" + "\n".join("  " + item for item in left),
            fix=f"run 'envctl --run {run} down' again once the engine lets go of them, "
            "or remove them by id ('docker rm -f ID', 'docker network rm ID', 'docker volume rm NAME')",
        )


class BootstrapToolMissing(EnvctlError):
    exit_code = 2


class BuildFailed(EnvctlError):
    """An image build failed; the message shows the failing step and the log's tail."""


class RegistryError(EnvctlError):
    """A registry refused or failed a pull or push; `reason` says which way, for retries and the cache."""

    NOT_FOUND, UNAUTHORIZED, UNREACHABLE, SERVER, REFUSED = "not found", "unauthorized", "unreachable", "server", "refused"
    TRANSIENT = (UNREACHABLE, SERVER)

    def __init__(self, message: str, *, reason: str, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.reason = reason

    @property
    def transient(self) -> bool:
        return self.reason in self.TRANSIENT


class PortTaken(EnvctlError):
    """A fixed host port the topology needs is already in use."""


class StartupFailed(EnvctlError):
    """A service did not become ready; the run was torn down unless asked to keep it."""

    def __init__(self, message: str, *, service: str, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.service = service


class NoRun(EnvctlError):
    """A command needs a running stack and there is none."""


class Cancelled(EnvctlError):
    """The user (or CI) interrupted the work; what was created has been removed."""

    def __init__(self, message: str, *, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(KeyboardInterrupt):
    """SIGTERM (an aborted CI job), raised in the main thread so the same clean-up as Ctrl-C runs."""
