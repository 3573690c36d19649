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
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from envctl.durations import DurationError, parse_duration

LEASE_FILE = "lease.json"
OWNER_LABEL = "envctl.owner"
EXPIRES_LABEL = "envctl.expires"
STATE_LABEL = "envctl.state"


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot): a reused pid has another value."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    return int(stat.rpartition(")")[2].split()[19])


@dataclass(frozen=True)
class Owner:
    pid: int
    started: int
    boot: str
    host: str

    @classmethod
    def of(cls, pid: int | None = None) -> "Owner":
        pid = os.getpid() if pid is None else pid
        started = _start_ticks(pid)
        if started is None:
            raise ValueError(f"no process {pid}")
        return cls(pid, started, boot_id(), socket.gethostname())

    def alive(self) -> bool | None:
        """True or False on this host; None when the owner lives on another host (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        if self.boot != boot_id():
            return False  # the machine rebooted since: every process of that boot is gone
        return _start_ticks(self.pid) == self.started

    def label(self) -> str:
        return f"{self.host}/{self.boot}/{self.pid}/{self.started}"

    @classmethod
    def parse(cls, text: str) -> "Owner | None":
        parts = text.split("/")
        if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
            return None
        return cls(int(parts[2]), int(parts[3]), parts[1], parts[0])

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


def remove(run_directory: Path) -> None:
    (run_directory / LEASE_FILE).unlink(missing_ok=True)


def parse_ttl(text: str) -> float:
    """A run's time to live (`--ttl`): a duration, and longer than nothing."""
    seconds = parse_duration(text)
    if seconds == 0:
        raise DurationError(f"{text!r}: a time to live of zero would remove the run at once; write e.g. 30m or 2h")
    return seconds
