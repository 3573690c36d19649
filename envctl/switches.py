"""Environment switches that turn one of envctl's behaviours off (ENVCTL_START_GATE=0, ...).

One reading for all of them, so `off` means the same everywhere: unset or anything else is on.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

OFF_WORDS = frozenset({"0", "off", "false", "no"})


def switched_on(name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the switch `name` is on: it is unless set to 0, off, false or no (any case, spaces around)."""
    return environ.get(name, "1").strip().lower() not in OFF_WORDS
