"""A bug in envctl says it is one: the traceback saved to a file, and where to report it.

Errors envctl raises on purpose (`EnvctlError`) are for people and carry no traceback.
Anything else that reaches a shell (the CLI, `envctl ci`, the pytest plugin) is a bug:
it is not dressed as a user error, and its traceback is kept where a report can attach it.
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# EX_SOFTWARE in sysexits.h: an internal software error, distinct from envctl's own codes.
BUG_EXIT_CODE = 70
REPORT_AT = "envctl's issue tracker (the envctl repository's issues)"


@dataclass(frozen=True)
class BugReport:
    summary: str  # the exception's type and first line
    path: Path | None  # where the full traceback was written (None if it could not be)

    @property
    def message(self) -> str:
        where = f"The full traceback is in {self.path}" if self.path else "The traceback could not be saved"
        return (f"this is a bug in envctl, not a problem with your topology or setup: {self.summary}. "
                f"{where}; please report it at {REPORT_AT} with that file, the command you ran and "
                f"'envctl --version'.")


def record_bug(error: BaseException, mask: Callable[[str], str] = lambda text: text) -> BugReport:
    """Write `error`'s traceback (secrets masked by `mask`) to a file in the temp directory."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    summary = mask(f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__)
    text = "".join([
        f"envctl {_version()} on Python {platform.python_version()} ({platform.platform()})\n",
        f"command: {' '.join(sys.argv)}\n\n",
        *traceback.format_exception(error),
    ])
    name = f"envctl-bug-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    path = Path(tempfile.gettempdir()) / name
    try:
        path.write_text(mask(text))
    except OSError:
        return BugReport(summary, None)
    return BugReport(summary, path)


def _version() -> str:
    from importlib import metadata  # only when a bug is reported: its import costs every command ~15 ms

    try:
        return metadata.version("envctl")
    except metadata.PackageNotFoundError:
        return "(version unknown)"
