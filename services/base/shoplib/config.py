"""Configuration comes from environment variables only (envctl wires them)."""
import os
import sys


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        print(f"missing configuration: set {name}", file=sys.stderr, flush=True)
        sys.exit(78)  # EX_CONFIG: envctl reports the exit code and this line
    return value
