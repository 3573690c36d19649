"""How many of envctl's Compose `.env` cases python-dotenv gets right (the measured figure
behind envctl's own parser). Run: .venv/bin/python bench/dotenv_conformance.py
Needs python-dotenv installed (`pip install python-dotenv`); envctl does not depend on it.
"""
from __future__ import annotations

import io
import os
import sys
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "unit"))
from test_dotenv import CASES, ERROR, HOST  # noqa: E402

from dotenv import dotenv_values  # noqa: E402


def python_dotenv(text: str):
    with mock.patch.dict(os.environ, HOST, clear=True):
        values = dotenv_values(stream=io.StringIO(text), interpolate=True)
    # python-dotenv gives None for a bare KEY and never raises: its parse errors are warnings
    return {k: v for k, v in values.items() if v is not None}


def main() -> None:
    passed = 0
    for text, expected in CASES:
        try:
            with mock.patch("dotenv.main.logger"):
                got = python_dotenv(text)
        except Exception:  # noqa: BLE001 - any exception counts as refusing the input
            got = ERROR
        if got == expected or (expected is ERROR and got is ERROR):
            passed += 1
        else:
            print(f"differs: {text!r}: expected {expected!r}, got {got!r}")
    print(f"python-dotenv: {passed}/{len(CASES)} cases")


if __name__ == "__main__":
    main()
