"""Faults under test control: "the next N matching requests get a 503 / a reset connection / a delay".

Rules come from the admin API (a test, through its stack handle), from a named scenario of
the topology, or from the mock's `fault:` defaults (a latency and an error rate for every
request). Where a rule is random it draws from its own seeded generator, so a run repeats.
Runs inside the mock container (standard library only).
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

KINDS = ("status", "reset", "delay")


@dataclass
class FaultRule:
    kind: str  # status | reset | delay
    method: str | None = None  # None: any
    path: str | None = None  # None: any; a trailing '*' matches a prefix
    status: int = 503
    body: str = '{"error": "fault injected by envctl mock"}'
    delay_ms: int = 0
    times: int | None = 1  # how many matching requests it applies to; None: all of them
    probability: float = 1.0
    seed: int | None = None
    random: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_config(cls, raw: dict) -> FaultRule:
        kind = raw.get("kind", "status")
        if kind not in KINDS:
            raise ValueError(f"fault kind {kind!r} is not one of {', '.join(KINDS)}")
        rule = cls(kind=kind, method=(raw.get("method") or None), path=raw.get("path") or None,
                   status=int(raw.get("status", 503)), body=str(raw.get("body", cls.body)),
                   delay_ms=int(raw.get("delay_ms", 0)), times=raw.get("times", 1),
                   probability=float(raw.get("probability", 1.0)), seed=raw.get("seed"))
        rule.random = random.Random(rule.seed)
        return rule

    def applies_to(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        if self.path is None:
            return True
        bare = path.split("?", 1)[0]
        return bare.startswith(self.path[:-1]) if self.path.endswith("*") else bare == self.path

    def describe(self) -> dict:
        return {"kind": self.kind, "method": self.method, "path": self.path, "status": self.status,
                "delay_ms": self.delay_ms, "times_left": self.times, "probability": self.probability,
                "seed": self.seed}


class FaultPlan:
    """The rules in force; the first that applies to a request (and whose dice say so) is used up."""

    def __init__(self, defaults: dict | None, scenarios: dict[str, list[dict]] | None) -> None:
        self.lock = threading.Lock()
        self.rules: list[FaultRule] = []
        self.scenarios = scenarios or {}
        defaults = defaults or {}
        self.latency_ms = int(defaults.get("latency_ms") or 0)
        self.error_rate = float(defaults.get("error_rate") or 0.0)
        self.random = random.Random(defaults.get("seed"))

    def add(self, raw: dict) -> FaultRule:
        rule = FaultRule.from_config(raw)
        with self.lock:
            self.rules.append(rule)
        return rule

    def start_scenario(self, name: str) -> list[FaultRule]:
        if name not in self.scenarios:
            raise KeyError(name)
        return [self.add(raw) for raw in self.scenarios[name]]

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The fault for this request, if any; a rule limited to N requests counts this one."""
        with self.lock:
            for rule in self.rules:
                if not rule.applies_to(method, path) or rule.random.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
                return rule
            if self.error_rate and self.random.random() < self.error_rate:
                return FaultRule(kind="status", times=None)
        return None

    def describe(self) -> list[dict]:
        with self.lock:
            return [rule.describe() for rule in self.rules]
