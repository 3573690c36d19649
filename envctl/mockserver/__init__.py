"""The recorded-HTTP mock server: external APIs replayed from vcrpy cassettes, or recorded through a proxy.

Runs inside the mock container as the package `envctl_mock`, so it imports nothing of envctl:
the standard library and vcrpy only. `server.py` (HTTP and the admin API), `library.py`
(cassettes: matching, play counts, appending), `scrubbing.py`, `volatile.py`, `jsonpath.py`,
`journal.py`, `faults.py`, `fielddiff.py`. The host side (a mock as a service, its admin API)
is `envctl.mocks`.
"""
from pathlib import Path

IMAGE_CONTEXT = Path(__file__).parent  # Dockerfile + server.py, built on the project's base
ADMIN_PREFIX = "/__envctl/"
UNMATCHED_STATUS = 598
