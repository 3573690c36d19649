"""A running mock's admin API, from the host: its report, its request journal, verification, faults, reset.

`MockAdmin` is what the stack handle's `mock(NAME)` returns and what the CLI uses. Its
`played`, `unplayed`, `unmatched` and `recorded` read a fresh report each time, as the
report object did before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from envctl.errors import EnvctlError
from envctl.mockserver import ADMIN_PREFIX
from envctl.mocks.report import MockReport, fetch_report
from envctl.mocks.verify import SentRequest, mismatch


class VerificationFailed(AssertionError):
    """What a test expected a mock to have been sent, and what it was sent instead."""


@dataclass(frozen=True)
class MockAdmin:
    name: str
    port: int
    host: str = "127.0.0.1"  # a cluster's mock: its node's address

    def _call(self, method: str, what: str, payload: dict | None = None, params: dict | None = None,
              timeout: float = 10) -> dict:
        session = requests.Session()
        session.trust_env = False  # loopback only; no proxy
        try:
            response = session.request(method, f"http://{self.host}:{self.port}{ADMIN_PREFIX}{what}", json=payload,
                                       params=params, timeout=timeout)
            answer = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise EnvctlError(f"cannot reach the admin API of mock '{self.name}': {exc}",
                              fix=f"check 'envctl status' and 'envctl logs {self.name}'") from None
        if response.status_code >= 400:
            raise EnvctlError(f"mock '{self.name}' refused {method} {what}: {answer.get('error', answer)}")
        return answer

    # -- what it played -------------------------------------------------------------------

    def report(self) -> MockReport:
        return fetch_report(self.name, self.port, self.host)

    @property
    def mode(self) -> str:
        return self.report().mode

    @property
    def played(self) -> list[dict]:
        return self.report().played

    @property
    def unplayed(self) -> list[dict]:
        return self.report().unplayed

    @property
    def unmatched(self) -> list[dict]:
        return self.report().unmatched

    @property
    def recorded(self) -> list[str]:
        return self.report().recorded

    def strict_violations(self) -> list[str]:
        return self.report().strict_violations()

    # -- what it was sent -----------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None, test: str | None = None) -> list[SentRequest]:
        """Every request the mock saw (oldest first), scrubbed, optionally only `method` `path` (or one test's)."""
        params = {k: v for k, v in {"method": method, "path": path, "test": test}.items() if v is not None}
        return [SentRequest.from_entry(e) for e in self._call("GET", "requests", params=params)["requests"]]

    def verify(self, method: str | None = None, path: str | None = None, count: int | None = None,
               json: Any = None, form: dict | None = None, query: dict | None = None,
               headers: dict | None = None) -> list[SentRequest]:
        """The matching requests; `VerificationFailed` with a field-level diff when they are not as expected.

        `json` is a subset of the body's JSON (nested objects too); `count` None means at least one.
        """
        seen = self.requests(method=method, path=path)
        problem = mismatch(self.name, seen, method, path, count, json=json, form=form, query=query, headers=headers)
        if problem:
            raise VerificationFailed(problem)
        return seen

    def drift(self, headers: dict[str, str] | None = None) -> dict:
        """Every recorded request sent to the real upstream again, with how each answer now differs."""
        return self._call("POST", "drift", {"headers": headers or {}}, timeout=600)

    # -- per-test control -----------------------------------------------------------------

    def reset(self) -> None:
        """Play counts, the journal, unmatched requests and injected faults all back to none."""
        self._call("POST", "reset")

    def fault(self, kind: str = "status", method: str | None = None, path: str | None = None, times: int | None = 1,
              status: int = 503, delay_ms: int = 0, probability: float = 1.0, seed: int | None = None) -> dict:
        """The next `times` matching requests (None: all) get `kind`: a `status`, a `reset` connection, a `delay`."""
        return self._call("POST", "faults", {"kind": kind, "method": method, "path": path, "times": times,
                                             "status": status, "delay_ms": delay_ms, "probability": probability,
                                             "seed": seed})["added"]

    def scenario(self, name: str) -> list[dict]:
        """Start the topology's named fault scenario."""
        return self._call("POST", "scenario", {"name": name})["started"]

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_test(self, test: str | None) -> None:
        """Name the test now running: requests from now on are attributed to it."""
        self._call("POST", "context", {"test": test})
