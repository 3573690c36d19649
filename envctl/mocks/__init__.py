"""Recorded-HTTP mocks: external APIs replayed from vcrpy cassettes, or recorded through a proxy.

`server.py` runs inside the mock container; the rest runs on the host: the cassette checks
done before `up` starts anything, how a mock becomes a container, and its admin report.
"""
from pathlib import Path

IMAGE_CONTEXT = Path(__file__).parent  # Dockerfile + server.py, built on the project's base
ADMIN_PREFIX = "/__envctl/"
UNMATCHED_STATUS = 598
