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

import copy
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests
from vcr.request import Request

from .faults import FaultPlan, FaultRule
from .journal import Journal
from .fielddiff import response_diff
from .library import CassetteAppender, Interaction, Library, cassette_files, request_diff
from .requests_in import LeanParsing
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
                               self.upstream or "http://upstream.invalid", self.scrubber.request)
        self.record_file = Path(config["record_file"])
        self.appender = CassetteAppender(self.record_file)
        self.session = requests.Session()
        self.lock = threading.Lock()
        self.unmatched: list[dict] = []
        self.recorded: list[str] = []
        self.journal = Journal(self.scrubbed_parts)
        self.faults = FaultPlan(config.get("fault"), config.get("scenarios"))
        self.replay_latency = bool(config.get("replay_latency"))

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
        stored_response = self.scrubber.response(copy.deepcopy(response))  # the caller still gets the real answer
        self.appender.append(stored_request, stored_response)  # after every interaction: nothing lost if killed
        self.library.add_recorded(self.record_file.name, stored_request, stored_response)
        described = describe(stored_request)
        with self.lock:
            self.recorded.append(described)
        return described

    def scrubbed_parts(self, method: str, target: str, headers: dict, body: bytes) -> tuple[str, dict, bytes]:
        """A request's target, headers and body as the journal shows them: scrubbed like a cassette."""
        scrubbed = self.scrubber.request(Request(method, self.library.origin + target, body or None, headers))
        parts = urlsplit(scrubbed.uri)
        body = scrubbed.body or b""
        return (parts.path + ("?" + parts.query if parts.query else ""), dict(scrubbed.headers),
                body.encode() if isinstance(body, str) else body)

    def miss(self, at: dict[str, Request], test: str | None = None) -> dict:
        request = at.get(self.library.origin) or next(iter(at.values()))
        closest = []
        for interaction, reasons in self.library.closest(at):  # both sides already scrubbed
            closest.append({**_closest_entry(interaction, reasons),
                            "diff": request_diff(at[interaction.origin], interaction.key, self.config["match_on"])})
        entry = {"request": describe(request), "test": test, "closest": closest,
                 "ignored": self.volatile.names()}
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

    def drift(self, extra_headers: dict[str, str]) -> dict:
        """Each recorded request sent again to the upstream; how each answer differs from the recording.

        Cassettes hold scrubbed requests, so the caller passes the credentials the upstream
        needs (`extra_headers`); answers are scrubbed alike before they are compared.
        """
        results = []
        for interaction in list(self.library.interactions):
            request = interaction.request
            path = request.uri[len(interaction.origin):] or "/"
            headers = {**{k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}, **extra_headers}
            item = {"cassette": interaction.cassette, "index": interaction.index, "request": describe(request)}
            try:
                now = self.scrubber.response(self.forward(request.method, path, headers, request.body or b""))
            except requests.RequestException as exc:
                results.append({**item, "error": str(exc), "diff": [f"upstream failed: {exc}"]})
                continue
            results.append({**item, "diff": response_diff(interaction.response, now)})
        return {"mock": self.config["name"], "upstream": self.upstream, "interactions": results,
                "drifted": sum(1 for r in results if r["diff"])}

    def reset(self) -> None:
        """Back to how `up` left it: nothing played, seen or injected."""
        self.library.reset()
        self.journal.clear()
        self.faults.clear()
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

class Handler(LeanParsing, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "envctl-mock"
    # Replay speed: headers read without the email parser (LeanParsing), an answer leaves in one
    # write (buffered, flushed after each request) and without Nagle's algorithm, which
    # otherwise holds a small write back behind a delayed ACK.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    mock: MockBehaviour
    config: dict

    def log_message(self, fmt: str, *args) -> None:  # the access log is the report's job
        pass

    def handle_one(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith(ADMIN):
            return self.admin(body)
        mock = self.mock
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        entry = mock.journal.add(self.command, self.path, headers, body)
        if mock.faults.latency_ms:
            time.sleep(mock.faults.latency_ms / 1000)
        fault = mock.faults.take(self.command, self.path)
        if fault is not None and fault.kind != "delay":
            return self.inject(fault, entry)
        if fault is not None:
            time.sleep(fault.delay_ms / 1000)
        if mock.mode != "record":
            at = mock.library.incoming(self.command, self.path, body or None, headers)
            played = mock.library.play(at)
            if played is not None:
                entry.update(outcome="played", interaction=f"{played.cassette}#{played.index}",
                             status=played.response["status"]["code"])
                if mock.replay_latency and played.latency_ms:
                    time.sleep(played.latency_ms / 1000)
                return self.send_recorded(played.response)
            if mock.mode == "replay":
                entry.update(outcome="unmatched", status=UNMATCHED_STATUS)
                whole = mock.library.incoming(self.command, self.path, body or None, headers, whole=True)
                return self.unmatched(mock.miss(whole, entry["test"]))
        self.proxy_and_record(headers, body, entry)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_one

    def inject(self, fault: FaultRule, entry: dict) -> None:
        entry.update(outcome=f"fault: {fault.kind}", status=fault.status if fault.kind == "status" else None)
        if fault.kind == "reset":  # an RST, as a crashed upstream or a load balancer gives
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.send_bytes(fault.status, "", {"Content-Type": ["application/json"], "X-Envctl-Mock": ["fault"]},
                        fault.body.encode())

    def proxy_and_record(self, headers: dict[str, str], body: bytes, entry: dict) -> None:
        mock = self.mock
        request = Request(self.command, mock.upstream + self.path, body or None, headers)
        try:
            response = mock.forward(self.command, self.path, headers, body)
        except requests.RequestException as exc:
            log(f"record: upstream failed for {describe(mock.scrubber.request(request))}: {exc}")
            entry.update(outcome="upstream failed", status=502)
            return self.send_json(502, {"error": f"envctl mock: upstream failed: {exc}"})
        entry.update(outcome="recorded", status=response["status"]["code"])
        recorded = mock.record(request, response)
        log(f"recorded {recorded} -> {response['status']['code']}")
        self.send_recorded(response)

    def unmatched(self, miss: dict) -> None:
        hint = "; ".join(f"#{c['index']} {c['request']} failed {', '.join(c['failed']) or 'nothing'}"
                         + (f" ({'; '.join(c['diff'][:3])})" if c["diff"] else "") for c in miss["closest"])
        log(f"UNMATCHED {miss['request']}" + (f" (closest: {hint})" if hint else " (no recorded interactions)"))
        self.send_json(UNMATCHED_STATUS, {
            "error": "envctl mock: no recorded interaction matches this request",
            "mock": self.config["name"], "request": miss["request"],
            "match_on": self.config["match_on"], "closest": miss["closest"], "ignored": miss["ignored"],
        }, extra={"X-Envctl-Mock": ["unmatched"]})

    def admin(self, body: bytes) -> None:
        what, _, query = self.path[len(ADMIN):].partition("?")
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return self.send_json(400, {"error": "the admin API takes a JSON body"})
        handler = ADMIN_PATHS.get((self.command, what))
        if handler is None:
            return self.send_json(404, {"error": f"unknown admin path {self.command} {self.path}",
                                        "paths": [f"{m} {p}" for m, p in ADMIN_PATHS]})
        try:
            code, answer = handler(self.mock, payload, dict(parse_qsl(query)))
        except (KeyError, ValueError, TypeError) as exc:
            return self.send_json(400, {"error": f"bad admin request: {exc}"})
        self.send_json(code, answer)

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


# -- the admin API: (method, path) -> handler(mock, JSON body, query) -> (status, answer) ---------

def _health(mock: MockBehaviour, _: dict, __: dict) -> tuple[int, dict]:
    return 200, {"ok": True, "mock": mock.config["name"], "mode": mock.mode}


def _report(mock: MockBehaviour, _: dict, __: dict) -> tuple[int, dict]:
    return 200, {"mock": mock.config["name"], **mock.report(), "faults": mock.faults.describe()}


def _reset(mock: MockBehaviour, _: dict, __: dict) -> tuple[int, dict]:
    mock.reset()
    return 200, {"reset": True}


def _requests(mock: MockBehaviour, _: dict, query: dict) -> tuple[int, dict]:
    found = mock.journal.query(query.get("method"), query.get("path"), query.get("test"))
    return 200, {"requests": found, "dropped": mock.journal.dropped}


def _context(mock: MockBehaviour, payload: dict, _: dict) -> tuple[int, dict]:
    mock.journal.test = payload.get("test")
    return 200, {"test": mock.journal.test}


def _add_fault(mock: MockBehaviour, payload: dict, _: dict) -> tuple[int, dict]:
    return 200, {"added": mock.faults.add(payload).describe()}


def _clear_faults(mock: MockBehaviour, _: dict, __: dict) -> tuple[int, dict]:
    mock.faults.clear()
    return 200, {"cleared": True}


def _scenario(mock: MockBehaviour, payload: dict, _: dict) -> tuple[int, dict]:
    name = payload["name"]
    if name not in mock.faults.scenarios:
        return 404, {"error": f"no fault scenario {name!r}", "scenarios": sorted(mock.faults.scenarios)}
    return 200, {"started": [rule.describe() for rule in mock.faults.start_scenario(name)]}


def _drift(mock: MockBehaviour, payload: dict, _: dict) -> tuple[int, dict]:
    if not mock.upstream:
        return 400, {"error": f"mock {mock.config['name']!r} has no 'upstream' to compare its cassettes with"}
    return 200, mock.drift({str(k): str(v) for k, v in (payload.get("headers") or {}).items()})


ADMIN_PATHS = {
    ("GET", "health"): _health, ("GET", "report"): _report, ("POST", "reset"): _reset,
    ("GET", "requests"): _requests, ("POST", "context"): _context,
    ("POST", "faults"): _add_fault, ("DELETE", "faults"): _clear_faults, ("POST", "scenario"): _scenario,
    ("POST", "drift"): _drift,
}


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
