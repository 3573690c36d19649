"""Durations, read one way wherever envctl takes one (topology files, `--ttl`).

Compose's syntax (Go's `time.ParseDuration`: `1m30s`, `500ms`, `1.5h`) plus `d` for days; a
bare number is seconds. Anything else, and any value that is not a finite, non-negative
number of seconds (`nan`, `inf`, `-5s`), is an error rather than a duration that never ends.
"""
from __future__ import annotations

import math
import re

UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001, "µs": 0.000001}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_SECONDS_RE = re.compile(_NUMBER)
_PART_RE = re.compile(rf"({_NUMBER})(ms|us|µs|d|h|m|s)")
EXAMPLES = "seconds (30) or a duration like 1m30s, 500ms, 2h, 1d"


class DurationError(ValueError):
    """Not a duration; the message names the value and what to write instead."""


def parse_duration(value: str | int | float) -> float:
    """The number of seconds `value` stands for; `DurationError` when it is not a duration."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DurationError(f"{value!r} is not a duration; write {EXAMPLES}")
    seconds = _seconds(value.strip()) if isinstance(value, str) else float(value)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"{value!r} is not a duration; write {EXAMPLES}")
    return seconds


def _seconds(text: str) -> float | None:
    if _SECONDS_RE.fullmatch(text):
        return float(text)
    total, pos = 0.0, 0
    for match in _PART_RE.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    return total if text and pos == len(text) else None
