"""The `mocks:` section: recorded HTTP services replayed from vcrpy cassettes (scrub, volatile, faults).

The mock server that runs them is `envctl.mockserver`; the host side is `envctl.mocks`.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from envctl.mockserver.jsonpath import parse_json_path
from envctl.topology.model import Fault, FaultStep, Mock, Scrub, Volatile
from envctl.topology.readers import Reader, key_fix
from envctl.topology.source import KeyPath

MOCK_KEYS = ("cassettes", "upstream", "match_on", "allow_repeats", "strict", "scrub", "volatile", "fault",
             "scenarios", "replay_latency", "base")
FAULT_STEP_KEYS = ("kind", "method", "path", "status", "delay_ms", "times", "probability", "seed")
FAULT_KINDS = ("status", "reset", "delay")
VOLATILE_KEYS = ("json", "headers", "query", "form", "recorded_as")
VOLATILE_RECORDED_AS = ("kept", "placeholder")
SCRUB_KEYS = ("headers", "query", "body_json_keys")
FAULT_KEYS = ("latency_ms", "error_rate", "seed")
VCR_MATCHERS = ("method", "scheme", "host", "port", "path", "query", "uri", "body", "raw_body", "headers")

# An option parser's answer when its problem ends the mock's parsing (later keys are not read).
_STOP = object()


def mock(reader: Reader, name: str, raw: Any, path: KeyPath) -> Mock | None:
    body = reader.mapping(raw, path, MOCK_KEYS, f"mock '{name}'")
    if body is None:
        return None
    if "cassettes" not in body:
        reader.problem(path, f"mock '{name}' needs 'cassettes'", "add 'cassettes: DIR' (a directory of vcrpy cassettes, or one file)")
        return None
    cassettes = reader.relative_path(body["cassettes"], path + ("cassettes",))
    if cassettes is None:
        return None
    fields: dict[str, Any] = {"name": name, "cassettes": cassettes, "line": reader.source.line(path)}
    for key, value in _options(reader, body, path):
        if value is _STOP:
            return None
        fields[key] = value
    if any(v is None for v in fields.values()):
        return None
    if not cassettes.exists():
        reader.problem(path + ("cassettes",), f"no cassette directory or file at {cassettes}",
                       "create the directory (it may be empty when recording) or fix the path")
        return None
    return Mock(**fields)


def _options(reader: Reader, body: dict, path: KeyPath) -> Iterator[tuple[str, Any]]:
    """Each optional key the mock has, read in turn: its value, None (wrong, the next keys are still
    read) or _STOP (wrong, and the mock's parsing ends there)."""
    parsers: dict[str, Callable[[Reader, Any, KeyPath], Any]] = {
        "upstream": _upstream, "match_on": _match_on,
        "allow_repeats": Reader.boolean, "strict": Reader.boolean, "replay_latency": Reader.boolean,
        "base": Reader.string, "scrub": _scrub, "volatile": mock_volatile, "fault": _fault,
        "scenarios": fault_scenarios,
    }
    for key, parse in parsers.items():
        if key in body:
            yield key, parse(reader, body[key], path + (key,))


def _upstream(reader: Reader, raw: Any, path: KeyPath) -> Any:
    upstream = reader.string(raw, path)
    if upstream is not None and not re.match(r"^https?://", upstream):
        reader.problem(path, f"{upstream!r} is not an http(s) URL", "write https://api.example.com")
        return _STOP
    return upstream


def _match_on(reader: Reader, raw: Any, path: KeyPath) -> Any:
    match_on = reader.string_list(raw, path, "match_on")
    for i, matcher in enumerate(match_on or ()):
        if matcher not in VCR_MATCHERS:
            reader.problem(path + (i,), f"unknown vcrpy matcher {matcher!r}",
                           key_fix(matcher, VCR_MATCHERS, noun="matcher"))
            return _STOP
    return match_on


def _scrub(reader: Reader, raw: Any, path: KeyPath) -> Any:
    scrub = reader.mapping(raw, path, SCRUB_KEYS, "scrub")
    if scrub is None:
        return _STOP
    lists = {k: reader.string_list(v, path + (k,), k) for k, v in scrub.items()}
    if any(v is None for v in lists.values()):
        return _STOP
    return Scrub(**lists)


def _fault(reader: Reader, raw: Any, path: KeyPath) -> Any:
    fault = reader.mapping(raw, path, FAULT_KEYS, "fault")
    if fault is None:
        return _STOP
    latency, rate = fault.get("latency_ms", 0), fault.get("error_rate", 0.0)
    if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
        reader.problem(path + ("latency_ms",), f"{latency!r} is not a number of milliseconds", "write e.g. 50")
        return _STOP
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        reader.problem(path + ("error_rate",), f"{rate!r} is not a share from 0 to 1", "write e.g. 0.05")
        return _STOP
    seed = fault.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        reader.problem(path + ("seed",), f"{seed!r} is not a whole number", "write e.g. 7")
        return _STOP
    return Fault(latency_ms=latency, error_rate=float(rate), seed=seed)


def fault_scenarios(reader: Reader, raw: Any, path: KeyPath) -> tuple | None:
    if not isinstance(raw, Mapping):
        reader.problem(path, "scenarios must be a mapping of names to lists of fault rules",
                       "write e.g. provider-down: [{kind: status, status: 503, times: 3}]")
        return None
    scenarios = []
    for name, steps in raw.items():
        if not isinstance(steps, list) or not steps:
            reader.problem(path + (name,), f"scenario '{name}' must be a non-empty list of fault rules",
                           "write e.g. [{kind: reset, path: /v1/charges, times: 1}]")
            return None
        parsed = [fault_step(reader, step, path + (name, i)) for i, step in enumerate(steps)]
        if any(p is None for p in parsed):
            return None
        scenarios.append((str(name), tuple(parsed)))
    return tuple(scenarios)


def fault_step(reader: Reader, raw: Any, path: KeyPath) -> FaultStep | None:
    body = reader.mapping(raw, path, FAULT_STEP_KEYS, "fault rule")
    if body is None:
        return None
    kind = body.get("kind", "status")
    if kind not in FAULT_KINDS:
        reader.problem(path + ("kind",), f"{kind!r} is not a fault kind", key_fix(str(kind), FAULT_KINDS, noun="kind"))
        return None
    whole = {k: body[k] for k in ("status", "delay_ms", "times", "seed") if body.get(k) is not None}
    for key, value in whole.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            reader.problem(path + (key,), f"{value!r} is not a whole number", "write e.g. 3")
            return None
    probability = body.get("probability", 1.0)
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
        reader.problem(path + ("probability",), f"{probability!r} is not a share from 0 to 1", "write e.g. 0.5")
        return None
    return FaultStep(kind=kind, method=body.get("method"), path=body.get("path"), status=whole.get("status", 503),
                     delay_ms=whole.get("delay_ms", 0), times=body.get("times", 1),
                     probability=float(probability), seed=whole.get("seed"))


def mock_volatile(reader: Reader, raw: Any, path: KeyPath) -> Volatile | None:
    body = reader.mapping(raw, path, VOLATILE_KEYS, "volatile")
    if body is None:
        return None
    lists = {k: reader.string_list(v, path + (k,), k) for k, v in body.items() if k != "recorded_as"}
    if any(v is None for v in lists.values()):
        return None
    for i, json_path in enumerate(lists.get("json", ())):
        try:
            parse_json_path(json_path)
        except ValueError as exc:
            reader.problem(path + ("json", i), str(exc), "write a path such as $.idempotency_key or $.items[*].sent_at")
            return None
    recorded_as = body.get("recorded_as", "kept")
    if recorded_as not in VOLATILE_RECORDED_AS:
        reader.problem(path + ("recorded_as",), f"{recorded_as!r} is not one of {', '.join(VOLATILE_RECORDED_AS)}",
                       "write 'kept' (the value as sent) or 'placeholder' (written as <volatile>)")
        return None
    return Volatile(json_paths=tuple(lists.get("json", ())), headers=tuple(lists.get("headers", ())),
                    query=tuple(lists.get("query", ())), form=tuple(lists.get("form", ())), recorded_as=recorded_as)
