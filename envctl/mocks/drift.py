"""Drift: each mock's recorded requests sent to the real upstream again, and what now answers differently.

The mock server does the sending and the field-level comparison (`POST /__envctl/drift`);
this module asks every mock, reads the answers and gives the verdict: any interaction that
drifted fails the check. Cassettes hold no credentials, so the caller passes the headers the
upstream needs (`parse_headers` reads them as `NAME: VALUE`, as `--header` takes them).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from envctl.mocks.admin import MockAdmin


class HeaderSyntaxError(ValueError):
    """A header given for drift is not `NAME: VALUE`."""


def parse_headers(headers: Iterable[str]) -> dict[str, str]:
    """`NAME: VALUE` strings as a mapping; `HeaderSyntaxError` names the first that is not one."""
    parsed = {}
    for header in headers:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise HeaderSyntaxError(f"{header!r} is not 'NAME: VALUE'")
        parsed[name.strip()] = value.strip()
    return parsed


@dataclass(frozen=True)
class InteractionDrift:
    """One recorded interaction, asked again: `diff` lists the fields whose values now differ."""

    cassette: str
    index: int
    request: str
    diff: list[str]
    error: str | None = None  # the upstream did not answer (then `diff` says so too)


@dataclass(frozen=True)
class MockDrift:
    """One mock's drift check, and the server's answer as it gave it (`answer`, for JSON output)."""

    mock: str
    upstream: str
    interactions: list[InteractionDrift]
    drifted: int  # how many interactions now answer differently
    answer: dict

    @classmethod
    def from_answer(cls, answer: dict) -> MockDrift:
        """Read the mock server's answer to `POST /__envctl/drift`."""
        interactions = [InteractionDrift(i["cassette"], i["index"], i["request"], list(i["diff"]), i.get("error"))
                        for i in answer["interactions"]]
        return cls(answer["mock"], answer["upstream"], interactions, answer["drifted"], answer)


@dataclass(frozen=True)
class DriftReport:
    """Every mock's drift check; the check fails when any interaction drifted."""

    mocks: list[MockDrift]

    @property
    def drifted(self) -> bool:
        """Whether any interaction of any mock now answers differently."""
        return any(m.drifted for m in self.mocks)

    def answers(self) -> list[dict]:
        """The servers' answers, as they gave them."""
        return [m.answer for m in self.mocks]


def check_drift(admins: Sequence[MockAdmin], headers: dict[str, str] | None = None) -> DriftReport:
    """Ask each mock to send its recorded requests to its upstream again (with `headers` added to each)."""
    return DriftReport([MockDrift.from_answer(admin.drift(headers or {})) for admin in admins])
