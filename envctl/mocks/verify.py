"""Verification: did the system under test send what it should have? Answered from a mock's journal.

`SentRequest` is one journal entry as tests see it; `mismatch` compares the requests seen with
what a test expects and says, field by field, what differs (or None when all is well).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SentRequest:
    """A request a mock saw, scrubbed; `json` and `form` are its body's fields when it has them."""

    seq: int
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    json: Any = None
    form: dict[str, str] | None = None
    outcome: str | None = None  # played, recorded, unmatched, fault: ..., upstream failed
    status: int | None = None
    interaction: str | None = None  # cassette#index it was answered from
    test: str | None = None  # the test that was running when it came

    @classmethod
    def from_entry(cls, entry: dict) -> SentRequest:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in entry.items() if k in names})

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


def differences(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """Where `actual` departs from `expected`; a dict expected is a subset (extra keys are fine)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        out: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{where}.{key}: missing (expected {value!r})")
            else:
                out += differences(value, actual[key], f"{where}.{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in differences(e, a, f"{where}[{i}]")]
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def request_differences(request: SentRequest, json: Any = None, form: dict | None = None,
                        query: dict | None = None, headers: dict | None = None) -> list[str]:
    out: list[str] = []
    if json is not None:
        out += differences(json, request.json) if request.json is not None else ["body: not JSON: " + request.body[:80]]
    if form is not None:
        out += [d.replace("$", "form", 1) for d in differences(form, request.form or {})]
    if query is not None:
        out += [d.replace("$", "query", 1) for d in differences(query, request.query)]
    for name, value in (headers or {}).items():
        if request.header(name) != value:
            out.append(f"header {name}: expected {value!r}, got {request.header(name)!r}")
    return out


def mismatch(mock: str, seen: list[SentRequest], method: str | None, path: str | None, count: int | None,
             **fields: Any) -> str | None:
    """Why `seen` does not hold what is expected, for people; None when it does.

    Expected: `count` requests (default: at least one) to `method path` whose fields match.
    """
    wanted = f"{method or 'any method'} {path or 'any path'}"
    fields = {k: v for k, v in fields.items() if v is not None}
    checked = [(r, request_differences(r, **fields)) for r in seen]
    matching = [r for r, diff in checked if not diff]
    if (count is None and matching) or (count is not None and len(matching) == count):
        return None
    expected = "at least 1" if count is None else str(count)
    lines = [f"mock '{mock}': expected {expected} request(s) {wanted}"
             + (f" with {', '.join(sorted(fields))} as given" if fields else "") + f", saw {len(matching)}"]
    if not seen:
        lines.append(f"  no request {wanted} at all")
    for request, diff in checked[:10]:
        state = "matches" if not diff else "differs: " + "; ".join(diff[:6])
        lines.append(f"  #{request.seq} {request.method} {request.path} ({request.outcome}, test {request.test}): {state}")
    if len(checked) > 10:
        lines.append(f"  ... and {len(checked) - 10} more")
    return "\n".join(lines)
