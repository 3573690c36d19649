"""Recorded-HTTP mocks: external APIs replayed from vcrpy cassettes, or recorded through a proxy.

Inside the mock container, as the package `envctl_mock` (standard library and vcrpy only):
`server.py` (HTTP and the admin API), `library.py` (cassettes: matching, play counts,
appending), `scrubbing.py`, `volatile.py`, `jsonpath.py`, `journal.py`, `faults.py`,
`fielddiff.py`. On the host: `cassettes.py` (checks before `up`), `runtime.py` (a mock as a
container), `report.py` and `admin.py` (its admin API), `verify.py` (what tests expect).
"""
from pathlib import Path

IMAGE_CONTEXT = Path(__file__).parent  # Dockerfile + server.py, built on the project's base
ADMIN_PREFIX = "/__envctl/"
UNMATCHED_STATUS = 598
