"""A mock's admin report, read from the host: played, unplayed and unmatched interactions."""
from __future__ import annotations

from dataclasses import dataclass, field

import requests

from envctl.errors import EnvctlError
from envctl.mockserver import ADMIN_PREFIX


@dataclass(frozen=True)
class MockReport:
    name: str
    mode: str
    played: list[dict] = field(default_factory=list)
    unplayed: list[dict] = field(default_factory=list)
    unmatched: list[dict] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)

    def strict_violations(self) -> list[str]:
        out = [f"mock '{self.name}': unmatched request {u['request']}" for u in self.unmatched]
        out += [f"mock '{self.name}': interaction #{u['index']} of {u['cassette']} was never played: {u['request']}"
                for u in self.unplayed]
        return out

    def describe_unmatched(self, test: str | None = None) -> list[str]:
        """Each unmatched request (or only those `test` sent), with how it differs from the closest interaction."""
        return [describe_unmatched(u) for u in self.unmatched if test is None or u.get("test") == test]


def describe_unmatched(unmatched: dict, closest: int = 1) -> str:
    """An unmatched request and how it differs, field by field, from the closest interactions."""
    lines = [unmatched["request"]]
    for close in unmatched.get("closest", [])[:closest]:
        lines.append(f"    closest: {close['cassette']} #{close['index']} {close['request']}")
        for name, reason in close.get("failed", {}).items():
            if name == "already played":
                lines.append(f"      {reason}")
        lines += [f"      {line}" for line in close.get("diff", [])]
        if not close.get("failed") and not close.get("diff"):
            lines.append("      (no difference in the fields compared)")
    if unmatched.get("ignored"):
        lines.append("    ignored as volatile: " + ", ".join(unmatched["ignored"]))
    return "\n".join(lines)


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only; no proxy
    return session


def fetch_report(name: str, port: int, host: str = "127.0.0.1") -> MockReport:
    try:
        data = _session().get(f"http://{host}:{port}{ADMIN_PREFIX}report", timeout=10).json()
    except (requests.RequestException, ValueError) as exc:
        raise EnvctlError(f"cannot read the report of mock '{name}': {exc}", fix="check 'envctl status' and 'envctl logs " + name + "'") from None
    return MockReport(name=name, mode=data.get("mode", "?"), played=data.get("played", []),
                      unplayed=data.get("unplayed", []), unmatched=data.get("unmatched", []),
                      recorded=data.get("recorded", []))

