"""The recorded-HTTP mock server: runs inside a mock container, on vcrpy.

Replay: a request that matches a recorded interaction gets the recorded status, headers and
body byte for byte. Record: every request is proxied to the upstream and appended, scrubbed,
to the cassette. Record-missing: what matches is replayed, only the misses are proxied and
appended. Recording only ever appends: earlier interactions are never lost.

This package runs on its own inside the container (as `envctl_mock`): it imports only the
standard library, vcrpy, PyYAML and requests. Its configuration is the JSON in
$ENVCTL_MOCK_CONFIG.
"""
from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from vcr.request import Request

from .library import CassetteAppender, Interaction, Library, cassette_files
from .scrubbing import Scrubber, _header
from .volatile import VolatileFields

ADMIN = "/__envctl/"
UNMATCHED_STATUS = 598  # documented: "no recorded interaction matches this request"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "host"}


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


class MockBehaviour:
    """What one mock does with a request: replay it, record it, or replay and record the misses."""

    def __init__(self, config: dict) -> None:
        scrub = config.get("scrub") or {}
        self.config = config
        self.mode = config["mode"]  # replay | record | record_missing
        self.scrubber = Scrubber(scrub.get("headers", []), scrub.get("query", []), scrub.get("body_json_keys", []))
        self.volatile = VolatileFields.from_config(config.get("volatile"))
        self.upstream = (config.get("upstream") or "").rstrip("/")
        files = cassette_files(Path(config["cassettes"]))
        self.library = Library(files, config["match_on"], config["allow_repeats"], self.volatile,
                               self.upstream or "http://upstream.invalid")
        self.record_file = Path(config["record_file"])
        self.appender = CassetteAppender(self.record_file)
        self.session = requests.Session()
        self.lock = threading.Lock()
        self.unmatched: list[dict] = []
        self.recorded: list[str] = []

    @property
    def recording(self) -> bool:
        return self.mode in ("record", "record_missing")

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> dict:
        started = time.monotonic()
        response = self.session.request(method, self.upstream + path, headers=headers, data=body or None,
                                        stream=True, allow_redirects=False, timeout=60)
        raw = response.raw.read(decode_content=False)
        recorded_headers: dict[str, list[str]] = {}
        for name, value in response.raw.headers.items():
            recorded_headers.setdefault(name, []).append(value)
        return {"status": {"code": response.status_code, "message": response.reason or ""},
                "headers": recorded_headers, "body": {"string": raw},
                "envctl": {"latency_ms": round((time.monotonic() - started) * 1000, 1)}}

    def record(self, request: Request, response: dict) -> str:
        """Append the interaction, scrubbed, to the record file; what was recorded, without its secrets."""
        stored_request = self.volatile.for_recording(self.scrubber.request(request))
        stored_response = self.scrubber.response(response)
        self.appender.append(stored_request, stored_response)  # after every interaction: nothing lost if killed
        self.library.add_recorded(self.record_file.name, stored_request, stored_response)
        described = describe(stored_request)
        with self.lock:
            self.recorded.append(described)
        return described

    def miss(self, at: dict[str, Request]) -> dict:
        request = at.get(self.library.origin) or next(iter(at.values()))
        entry = {"request": describe(self.scrubber.request(request)),
                 "closest": [_closest_entry(i, reasons) for i, reasons in self.library.closest(at)]}
        with self.lock:
            self.unmatched.append(entry)
        return entry

    def report(self) -> dict:
        played, unplayed = [], []
        with self.library.lock:
            for i in self.library.interactions:
                entry = {"cassette": i.cassette, "index": i.index, "request": describe(i.request), "count": i.plays}
                (played if i.plays else unplayed).append(entry)
        with self.lock:
            return {"mode": self.mode, "played": played, "unplayed": unplayed, "unmatched": list(self.unmatched),
                    "recorded": list(self.recorded)}

    def reset(self) -> None:
        self.library.reset()
        with self.lock:
            self.unmatched.clear()


def _closest_entry(interaction: Interaction, reasons: dict[str, str]) -> dict:
    return {"cassette": interaction.cassette, "index": interaction.index, "request": describe(interaction.request),
            "failed": reasons}


def describe(request: Request) -> str:
    """`METHOD URI`, and the start of a text body, so similar requests can be told apart."""
    text = f"{request.method} {request.uri}"
    body = request.body
    if body:
        try:
            snippet = (body.decode() if isinstance(body, bytes) else str(body)).replace("\n", " ")
        except UnicodeDecodeError:
            return f"{text} ({len(body)} bytes)"
        text += " " + (snippet[:80] + "..." if len(snippet) > 80 else snippet)
    return text


# -- HTTP --------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "envctl-mock"
    mock: MockBehaviour
    config: dict

    def log_message(self, fmt: str, *args) -> None:  # the access log is the report's job
        pass

    def handle_one(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith(ADMIN):
            return self.admin()
        fault = self.config.get("fault") or {}
        if fault.get("latency_ms"):
            time.sleep(fault["latency_ms"] / 1000)
        if fault.get("error_rate") and random.random() < fault["error_rate"]:
            return self.send_bytes(503, "Service Unavailable", {"Content-Type": ["application/json"]},
                                   b'{"error": "fault injected by envctl mock"}')
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        mock = self.mock
        if mock.mode != "record":
            at = mock.library.incoming(self.command, self.path, body or None, headers)
            played = mock.library.play(at)
            if played is not None:
                return self.send_recorded(played.response)
            if mock.mode == "replay":
                return self.unmatched(mock.miss(at))
        self.proxy_and_record(headers, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_one

    def proxy_and_record(self, headers: dict[str, str], body: bytes) -> None:
        mock = self.mock
        request = Request(self.command, mock.upstream + self.path, body or None, headers)
        try:
            response = mock.forward(self.command, self.path, headers, body)
        except requests.RequestException as exc:
            log(f"record: upstream failed for {describe(mock.scrubber.request(request))}: {exc}")
            return self.send_json(502, {"error": f"envctl mock: upstream failed: {exc}"})
        recorded = mock.record(request, response)
        log(f"recorded {recorded} -> {response['status']['code']}")
        self.send_recorded(response)

    def unmatched(self, miss: dict) -> None:
        hint = "; ".join(f"#{c['index']} {c['request']} failed {', '.join(c['failed']) or 'nothing'}"
                         for c in miss["closest"])
        log(f"UNMATCHED {miss['request']}" + (f" (closest: {hint})" if hint else " (no recorded interactions)"))
        self.send_json(UNMATCHED_STATUS, {
            "error": "envctl mock: no recorded interaction matches this request",
            "mock": self.config["name"], "request": miss["request"],
            "match_on": self.config["match_on"], "closest": miss["closest"],
        }, extra={"X-Envctl-Mock": ["unmatched"]})

    def admin(self) -> None:
        what = self.path[len(ADMIN):].split("?")[0]
        if what == "health":
            return self.send_json(200, {"ok": True, "mock": self.config["name"], "mode": self.config["mode"]})
        if what == "report":
            return self.send_json(200, {"mock": self.config["name"], **self.mock.report()})
        if what == "reset" and self.command == "POST":
            self.mock.reset()
            return self.send_json(200, {"reset": True})
        self.send_json(404, {"error": f"unknown admin path {self.path}", "paths": ["health", "report", "reset (POST)"]})

    def send_recorded(self, response: dict) -> None:
        status = response["status"]
        self.send_bytes(status["code"], status.get("message") or "", response.get("headers") or {},
                        response.get("body", {}).get("string") or b"")

    def send_bytes(self, code: int, message: str, headers: dict, body: bytes | str) -> None:
        if isinstance(body, str):
            body = body.encode()
        chunked = any("chunked" in v.lower() for v in _header(headers, "Transfer-Encoding"))
        self.log_request(code)
        self.send_response_only(code, message or None)  # no Server/Date of our own: replay as recorded
        if not _header(headers, "Date"):
            self.send_header("Date", self.date_time_string())
        for name, values in headers.items():
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            for value in values if isinstance(values, list) else [values]:
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                if body:
                    self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, code: int, payload: dict, extra: dict | None = None) -> None:
        self.send_bytes(code, "", {"Content-Type": ["application/json"], **(extra or {})},
                        json.dumps(payload, indent=1).encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main() -> None:
    config = json.loads(os.environ["ENVCTL_MOCK_CONFIG"])
    Handler.mock = mock = MockBehaviour(config)
    Handler.config = config
    count = len(mock.library.interactions)
    if mock.mode == "replay":
        log(f"mock {config['name']} replaying {count} interactions as {mock.library.origin}")
    else:
        log(f"mock {config['name']} in mode {mock.mode}: {count} interactions recorded before; "
            f"recording {config['upstream']} into {config['record_file']}")
    Server(("0.0.0.0", int(config.get("port", 8080))), Handler).serve_forever()


if __name__ == "__main__":
    sys.exit(main())
