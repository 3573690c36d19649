"""Field-level differences between two HTTP messages: what a 598, `envctl mocks` and drift reports show.

"$.amount: recorded 1200, sent 999" says more than "body failed". JSON bodies are compared
path by path, form bodies and queries field by field, headers by name.
Runs inside the mock container and on the host (standard library only).
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

MAX_LINES = 12
_MISSING = object()


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def json_diff(expected: Any, actual: Any, where: str = "$", labels: tuple[str, str] = ("recorded", "sent")) -> list[str]:
    """Every path where `actual` differs from `expected`, both ways."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in [*expected, *(k for k in actual if k not in expected)]:
            out += json_diff(expected.get(key, _MISSING), actual.get(key, _MISSING), f"{where}.{key}", labels)
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in json_diff(e, a, f"{where}[{i}]", labels)]
    if expected == actual:
        return []
    return [f"{where}: {labels[0]} {_show(expected)}, {labels[1]} {_show(actual)}"]


def _parsed(body: bytes | str | None) -> tuple[str, Any]:
    """A body as ('json', value), ('form', dict) or ('raw', bytes)."""
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if not raw:
        return "raw", b""
    try:
        return "json", json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        text = raw.decode()
        fields = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
        return "form", dict(fields)
    except (UnicodeDecodeError, ValueError):
        return "raw", raw


def body_diff(expected: bytes | str | None, actual: bytes | str | None,
              labels: tuple[str, str] = ("recorded", "sent")) -> list[str]:
    (kind_e, value_e), (kind_a, value_a) = _parsed(expected), _parsed(actual)
    if kind_e == kind_a == "json":
        return json_diff(value_e, value_a, "$", labels)
    if kind_e == kind_a == "form":
        return [d.replace("$.", "form ", 1) for d in json_diff(value_e, value_a, "$", labels)]
    if value_e == value_a:
        return []
    return [f"body: {labels[0]} {len(value_e) if isinstance(value_e, bytes) else '?'} bytes "
            f"{_show(_text(expected))}, {labels[1]} {_show(_text(actual))}"]


def _text(body: bytes | str | None) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return body or ""


def mapping_diff(kind: str, expected: dict, actual: dict, labels: tuple[str, str] = ("recorded", "sent")) -> list[str]:
    lower_e = {k.lower(): v for k, v in expected.items()} if kind == "header" else dict(expected)
    lower_a = {k.lower(): v for k, v in actual.items()} if kind == "header" else dict(actual)
    out = []
    for key in sorted(set(lower_e) | set(lower_a)):
        e, a = lower_e.get(key, _MISSING), lower_a.get(key, _MISSING)
        if e != a:
            out.append(f"{kind} {key}: {labels[0]} {_show(e)}, {labels[1]} {_show(a)}")
    return out


def limited(lines: list[str]) -> list[str]:
    return lines if len(lines) <= MAX_LINES else [*lines[:MAX_LINES], f"... and {len(lines) - MAX_LINES} more"]
