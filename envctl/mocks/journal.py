"""The request journal: every request a mock saw, whole but bounded and scrubbed, for tests to ask about.

Entries carry what the request was (method, path, query, headers, body, its JSON or form
fields), what the mock did with it (played, recorded, unmatched, fault) and the test that
was running when it came (set by the pytest plugin over the admin API).
Runs inside the mock container (standard library only).
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from urllib.parse import parse_qsl, urlsplit

MAX_ENTRIES = 2000  # the oldest are dropped first; `dropped` says how many
MAX_BODY = 64 * 1024  # bytes of a body kept; `body_truncated` says when more came


class Journal:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.entries: deque[dict] = deque(maxlen=max_entries)
        self.lock = threading.Lock()
        self.sequence = 0
        self.dropped = 0
        self.test: str | None = None  # the test running now, as the plugin said

    def add(self, method: str, target: str, headers: dict[str, str], body: bytes | None, content_type: str) -> dict:
        """A new entry for a request (already scrubbed); its outcome is filled in when known."""
        parts = urlsplit(target)
        raw = body or b""
        text = raw[:MAX_BODY].decode("utf-8", errors="replace")
        entry = {"method": method, "path": parts.path, "query": dict(parse_qsl(parts.query, keep_blank_values=True)),
                 "headers": dict(headers), "body": text, "body_truncated": len(raw) > MAX_BODY,
                 "json": _json(raw, content_type), "form": _form(raw, content_type),
                 "outcome": None, "status": None, "interaction": None, "at": time.time()}
        with self.lock:
            self.sequence += 1
            entry["seq"] = self.sequence
            entry["test"] = self.test
            if len(self.entries) == self.entries.maxlen:
                self.dropped += 1
            self.entries.append(entry)
        return entry

    def query(self, method: str | None = None, path: str | None = None, test: str | None = None) -> list[dict]:
        with self.lock:
            return [dict(e) for e in self.entries
                    if (method is None or e["method"] == method.upper()) and (path is None or e["path"] == path)
                    and (test is None or e["test"] == test)]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.dropped = 0


def _json(raw: bytes, content_type: str):
    if "json" not in content_type.lower() or not raw or len(raw) > MAX_BODY:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _form(raw: bytes, content_type: str) -> dict | None:
    if "application/x-www-form-urlencoded" not in content_type.lower() or len(raw) > MAX_BODY:
        return None
    try:
        return dict(parse_qsl(raw.decode(), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return None
