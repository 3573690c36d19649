"""The request journal: every request a mock saw, whole but bounded and scrubbed, for tests to ask about.

Requests are kept as they came and scrubbed when they are read (the admin API is the only way
out), so the cost of scrubbing is not on the replay path. Entries carry what the request was (method, path, query, headers, body, its JSON or form
fields), what the mock did with it (played, recorded, unmatched, fault) and the test that
was running when it came (set by the pytest plugin over the admin API).
Runs inside the mock container (standard library only).
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

MAX_ENTRIES = 2000  # the oldest are dropped first; `dropped` says how many
MAX_BODY = 64 * 1024  # bytes of a body shown; `body_truncated` says when more came
MAX_KEPT = 1024 * 1024  # a larger body is not kept at all: cut, it could not be scrubbed as a whole


Scrub = Callable[[str, str, dict, bytes], tuple[str, dict, bytes]]  # (method, target, headers, body) -> scrubbed


class Journal:
    def __init__(self, scrub: Scrub, max_entries: int = MAX_ENTRIES) -> None:
        self.scrub = scrub
        self.entries: deque[dict] = deque(maxlen=max_entries)
        self.lock = threading.Lock()
        self.sequence = 0
        self.dropped = 0
        self.test: str | None = None  # the test running now, as the plugin said

    def add(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> dict:
        """A new entry for a request as it came; its outcome is filled in when known."""
        entry = {"method": method, "path": urlsplit(target).path, "outcome": None, "status": None,
                 "interaction": None, "at": time.time(), "raw": (target, headers, body or b"")}
        if len(body or b"") > MAX_KEPT:
            entry["raw"] = (target, headers, b"")
            entry["body_not_kept"] = len(body or b"")
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
            found = [dict(e) for e in self.entries
                     if (method is None or e["method"] == method.upper()) and (path is None or e["path"] == path)
                     and (test is None or e["test"] == test)]
        return [self._readable(e) for e in found]

    def _readable(self, entry: dict) -> dict:
        """The entry scrubbed, with its query, body text and JSON or form fields."""
        target, headers, body = entry.pop("raw")
        target, headers, body = self.scrub(entry["method"], target, headers, body)
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        query = urlsplit(target).query
        return {**entry, "query": dict(parse_qsl(query, keep_blank_values=True)), "headers": dict(headers),
                "body": body[:MAX_BODY].decode("utf-8", errors="replace"), "body_truncated": len(body) > MAX_BODY,
                "json": _json(body, content_type), "form": _form(body, content_type)}

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
