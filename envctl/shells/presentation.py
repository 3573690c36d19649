"""How the CLI shows progress and tables: live on a terminal, plain lines elsewhere (CI logs)."""
from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from envctl.progress import Event

DONE_PHASES = {"ready", "cached", "built", "pulled", "pushed", "remove", "failed", "warning"}


class PlainProgress:
    """Timestamped lines, one per event: fit for Jenkins and other non-terminals."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        subject = event.subject or "run"
        line = f"{stamp} {subject:<20} {event.phase}" + (f"  {event.detail}" if event.detail else "")
        with self._lock:
            print(line, file=self.stream, flush=True)

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class LiveProgress:
    """A table on the terminal with one row per service, updated in place."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rows: dict[str, tuple[str, str, float]] = {}
        self.started = time.monotonic()
        self._lock = threading.Lock()
        # get_renderable: redrawn on every refresh, so running phases show their time ticking
        self._live = Live(console=console, refresh_per_second=8, transient=False, get_renderable=self._render)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.rows[event.subject or "run"] = (event.phase, event.detail, event.at)
        self._live.refresh()

    def _render(self) -> Table:
        table = Table(box=None, show_header=False, pad_edge=False)
        now = time.monotonic()
        with self._lock:
            items = list(self.rows.items())
        for subject, (phase, detail, at) in items:
            done = phase in DONE_PHASES
            mark = "[red]✘[/]" if phase == "failed" else ("[green]✔[/]" if done else "[yellow]…[/]")
            # finished rows: when they finished; running rows: how long this phase has taken so far
            clock = f"at {at - self.started:5.1f}s" if done else f"{now - at:5.1f}s"
            table.add_row(mark, subject, phase, f"[dim]{detail[:70]}[/]", f"[dim]{clock}[/]")
        table.caption = f"{now - self.started:.1f}s"
        return table

    def __enter__(self) -> "LiveProgress":
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.refresh()
        self._live.__exit__(None, None, None)


def progress_for(console: Console):
    return LiveProgress(console) if console.is_terminal else PlainProgress(console.file)


def table(headers: list[str], rows: list[list[str]]) -> Table:
    out = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        out.add_row(*row)
    return out
