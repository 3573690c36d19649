"""Progress events: the library reports what it is doing; the CLI and plugin present it."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    subject: str  # a service, base or mock name, or "" for the run itself
    phase: str  # e.g. "bootstrap", "build", "cached", "create", "start", "ready", "failed"
    detail: str = ""
    at: float = field(default_factory=time.monotonic)


Progress = Callable[[Event], None]


def silent(event: Event) -> None:
    """A progress sink that drops everything."""
