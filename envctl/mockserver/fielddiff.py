"""Field-level differences between two HTTP messages: what a 598, `envctl mocks` and drift reports show.

"$.amount: recorded 1200, sent 999" says more than "body failed". JSON bodies are compared
path by path, form bodies and queries field by field, headers by name.
Runs inside the mock container and on the host (standard library only).
"""
from __future__ import annotations

import gzip
import json
import zlib
from typing import Any
from urllib.parse import parse_qsl

MAX_LINES = 12
_MISSING = object()


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, default=str)
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


# Response headers that differ on every call, or with the transport: never drift.
UNSTABLE_RESPONSE_HEADERS = {"date", "server", "content-length", "transfer-encoding", "connection", "keep-alive",
                             "age", "expires", "last-modified", "etag", "set-cookie", "x-envctl-mock"}
LABELS_DRIFT = ("recorded", "now")


def response_diff(recorded: dict, now: dict) -> list[str]:
    """How the upstream's answer now differs from the recorded one: status, headers, body fields."""
    out = []
    code_r, code_n = recorded["status"]["code"], now["status"]["code"]
    if code_r != code_n:
        out.append(f"status: recorded {code_r}, now {code_n}")
    headers_r, headers_n = (_stable_headers(r.get("headers") or {}) for r in (recorded, now))
    out += mapping_diff("header", headers_r, headers_n, LABELS_DRIFT)
    out += body_diff(_plain_body(recorded), _plain_body(now), LABELS_DRIFT)
    return limited(out)


def _stable_headers(headers: dict) -> dict[str, str]:
    return {k: ", ".join(v) if isinstance(v, list) else str(v) for k, v in headers.items()
            if k.lower() not in UNSTABLE_RESPONSE_HEADERS}


def _plain_body(response: dict) -> bytes:
    """The body as the upstream meant it: gzip and deflate undone."""
    body = (response.get("body") or {}).get("string") or b""
    body = body.encode() if isinstance(body, str) else body
    encoding = " ".join(v for k, vs in (response.get("headers") or {}).items() if k.lower() == "content-encoding"
                        for v in (vs if isinstance(vs, list) else [vs])).lower()
    try:
        if "gzip" in encoding:
            return gzip.decompress(body)
        if "deflate" in encoding:
            return zlib.decompress(body)
    except (OSError, zlib.error):
        pass
    return body
