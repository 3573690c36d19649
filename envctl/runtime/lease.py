"""Who owns a run, and whether it is still wanted.

A run's lease names the process that owns it and, optionally, when it expires. While `up`
works, the `up` process owns the run, so killing it half-way leaves nothing behind. After
that the caller decides: a pytest session or `envctl ci` keeps owning it, a CI shell can
take it (`up --bind-to PID`), and a laptop `envctl up` lets go, so the run lives until
`envctl down` (or until `--ttl` ends it).

The lease is `lease.json` in the run's directory (it changes hands); the labels on every
resource the run created repeat the first owner and the directory, so `envctl gc` can judge
a run from the engine alone.
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from envctl.durations import DurationError, parse_duration

LEASE_FILE = "lease.json"
OWNER_LABEL = "envctl.owner"
EXPIRES_LABEL = "envctl.expires"
STATE_LABEL = "envctl.state"


# A process's start time identifies it (a reused pid starts later). Linux derives it from the
# boot time in whole seconds, which a clock step moves too: allow that much difference.
START_TOLERANCE = 2.0


def _exists(pid: int) -> bool:
    if os.name != "posix":
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)  # signal 0 only asks; unlike psutil on Linux it needs no /proc
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but there is one
    return True


def process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None where that cannot be read.

    Raises `ProcessLookupError` when there is no such process (a zombie counts as none).
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            raise ProcessLookupError(pid)
        return round(process.create_time(), 3)  # to the millisecond, as labels write it
    except psutil.ZombieProcess:
        raise ProcessLookupError(pid) from None
    except psutil.NoSuchProcess:
        if not _exists(pid):
            raise ProcessLookupError(pid) from None
        return None  # it exists, but psutil cannot see it (e.g. /proc is not mounted)
    except psutil.Error:
        return None  # e.g. another user's process on macOS: existence is all we can check


def process_alive(pid: int, started: float | None) -> bool:
    """Whether the process that started at `started` is still `pid` (existence only when unknown)."""
    try:
        now = process_start(pid)
    except ProcessLookupError:
        return False
    return started is None or now is None or abs(now - started) <= START_TOLERANCE


@dataclass(frozen=True)
class Owner:
    pid: int
    started: float | None  # None where the start time could not be read: existence only
    host: str

    @classmethod
    def of(cls, pid: int | None = None) -> "Owner":
        pid = os.getpid() if pid is None else pid
        try:
            started = process_start(pid)
        except ProcessLookupError:
            raise ValueError(f"no process {pid}") from None
        return cls(pid, started, socket.gethostname())

    def alive(self) -> bool | None:
        """True or False on this host; None when the owner lives on another host (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        return process_alive(self.pid, self.started)

    def label(self) -> str:
        return f"{self.host}/{self.pid}/{'-' if self.started is None else f'{self.started:.3f}'}"

    @classmethod
    def parse(cls, text: str) -> "Owner | None":
        parts = text.split("/")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        if parts[2] == "-":
            return cls(int(parts[1]), None, parts[0])
        try:
            started = float(parts[2])
        except ValueError:
            return None
        return cls(int(parts[1]), started, parts[0]) if math.isfinite(started) else None

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


@dataclass(frozen=True)
class Lease:
    owner: Owner | None  # None: nobody; the run lives until 'envctl down' (or its expiry)
    expires_at: float | None = None

    def abandoned(self, now: float | None = None) -> str | None:
        """Why the run is no longer wanted, or None while it is."""
        now = time.time() if now is None else now
        if self.expires_at is not None and now >= self.expires_at:
            return "its time to live ran out at " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.expires_at))
        if self.owner is not None and self.owner.alive() is False:
            return f"its owner ({self.owner}) is gone"
        return None

    @property
    def watched(self) -> bool:
        """Something can end this run without a 'down': an owner or an expiry."""
        return self.owner is not None or self.expires_at is not None

    def labels(self, run_directory: Path) -> dict[str, str]:
        labels = {STATE_LABEL: str(run_directory)}
        if self.owner is not None:
            labels[OWNER_LABEL] = self.owner.label()
        if self.expires_at is not None:
            labels[EXPIRES_LABEL] = f"{self.expires_at:.0f}"
        return labels

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> "Lease | None":
        owner = Owner.parse(labels.get(OWNER_LABEL, ""))
        expires = labels.get(EXPIRES_LABEL, "")
        if owner is None and not expires.isdigit():
            return None
        return cls(owner, float(expires) if expires.isdigit() else None)


def held_by_me(ttl: float | None = None) -> Lease:
    return Lease(Owner.of(), time.time() + ttl if ttl else None)


def bound_to(pid: int, ttl: float | None = None) -> Lease:
    try:
        owner = Owner.of(pid)
    except ValueError:
        raise ValueError(f"--bind-to {pid}: no such process") from None
    return Lease(owner, time.time() + ttl if ttl else None)


def released(ttl: float | None = None) -> Lease:
    return Lease(None, time.time() + ttl if ttl else None)


def write(run_directory: Path, lease: Lease) -> None:
    data = {"owner": lease.owner.label() if lease.owner else None, "expires_at": lease.expires_at}
    target = run_directory / LEASE_FILE
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(target)  # atomic: the reaper never reads half a lease


def read(run_directory: Path) -> Lease | None:
    try:
        data = json.loads((run_directory / LEASE_FILE).read_text())
    except (OSError, ValueError):
        return None
    owner = Owner.parse(data.get("owner") or "")
    expires = data.get("expires_at")
    return Lease(owner, float(expires) if isinstance(expires, (int, float)) else None)


def keep_for_debugging(run_directory: Path) -> None:
    """Let go of a run kept for debugging: no reaper or gc takes it; it lives until 'envctl down'."""
    write(run_directory, released())


def remove(run_directory: Path) -> None:
    (run_directory / LEASE_FILE).unlink(missing_ok=True)


def parse_ttl(text: str) -> float:
    """A run's time to live (`--ttl`): a duration, and longer than nothing."""
    seconds = parse_duration(text)
    if seconds == 0:
        raise DurationError(f"{text!r}: a time to live of zero would remove the run at once; write e.g. 30m or 2h")
    return seconds
