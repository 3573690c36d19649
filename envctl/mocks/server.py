"""The recorded-HTTP mock server: runs inside a mock container, on vcrpy.

Replay: a request that matches a recorded interaction gets the recorded status, headers and
body byte for byte; vcrpy does the loading and matching. Record: the request is proxied to
the upstream and the interaction appended, scrubbed, to the cassette through vcrpy.

This file runs on its own inside the container: it imports only the standard library,
vcrpy, PyYAML and requests (Debian's python3-vcr, python3-yaml, python3-requests). Its
configuration is the JSON in $ENVCTL_MOCK_CONFIG.
"""
from __future__ import annotations

import copy
import gzip
import json
import os
import random
import re
import sys
import threading
import time
import zlib
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import collapse_rfc2231_value
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
import vcr.matchers
from vcr import filters
from vcr.cassette import Cassette
from vcr.record_mode import RecordMode
from vcr.request import Request
from vcr.serializers import jsonserializer, yamlserializer

ADMIN = "/__envctl/"
UNMATCHED_STATUS = 598  # documented: "no recorded interaction matches this request"
REDACTED = "REDACTED"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "host"}
DEFAULT_SCRUB_HEADERS = ["Authorization", "Cookie", "Set-Cookie", "Proxy-Authorization", "X-Api-Key", "Api-Key",
                         "X-Auth-Token", "X-Access-Token"]
SECRET_HEADER = re.compile(r"(api[-_]?key|auth[-_]?token|access[-_]?token|secret)", re.I)
DEFAULT_SCRUB_QUERY = ["api_key", "apikey", "token", "access_token", "refresh_token", "key", "secret"]
DEFAULT_SCRUB_BODY_KEYS = ["api_key", "apikey", "token", "access_token", "refresh_token", "password", "secret",
                           "client_secret"]  # JSON keys and form fields alike


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


# -- scrubbing: vcrpy's before-record hooks ------------------------------------------------

class Scrubber:
    """Removes secrets from requests and responses before they are written or matched.

    Secret keys are redacted alike in JSON bodies, in form bodies (urlencoded fields and
    multipart form-data parts) and, for the query's names, in the URL.
    """

    def __init__(self, headers: list[str], query: list[str], json_keys: list[str]) -> None:
        self.headers = {h.lower() for h in DEFAULT_SCRUB_HEADERS + headers}
        self.query = DEFAULT_SCRUB_QUERY + query
        self.body_keys = {k.lower() for k in DEFAULT_SCRUB_BODY_KEYS + json_keys}

    def _secret_header(self, name: str) -> bool:
        return name.lower() in self.headers or bool(SECRET_HEADER.search(name))

    def request(self, request: Request) -> Request:
        request = copy.deepcopy(request)
        secret = [(name, REDACTED) for name in list(request.headers) if self._secret_header(name)]
        request = filters.replace_headers(request, secret)
        request = filters.replace_query_parameters(request, [(name, REDACTED) for name in self.query])
        if request.body:
            request.body = self._body(request.body, request.headers.get("Content-Type") or "")
        return request

    def response(self, response: dict) -> dict:
        headers = response.get("headers") or {}
        for name in list(headers):
            if self._secret_header(name):
                headers[name] = [REDACTED for _ in headers[name]]
        content_type = " ".join(_header(headers, "Content-Type"))
        body = response.get("body", {}).get("string")
        if body and _media_type(content_type)[0] in SCRUBBED_BODIES:
            encoding = " ".join(_header(headers, "Content-Encoding")).lower()
            try:
                if "gzip" in encoding:
                    plain = gzip.decompress(body)
                    scrubbed = self._body(plain, content_type)
                    if scrubbed != plain:  # otherwise keep the recorded bytes exactly
                        response["body"]["string"] = gzip.compress(scrubbed, mtime=0)
                elif "deflate" in encoding:
                    plain = zlib.decompress(body)
                    scrubbed = self._body(plain, content_type)
                    if scrubbed != plain:
                        response["body"]["string"] = zlib.compress(scrubbed)
                elif not encoding:
                    response["body"]["string"] = self._body(body, content_type)
            except (OSError, zlib.error):
                pass  # not really compressed as it claims: leave it as it is
        return response

    def _body(self, body: bytes | str, content_type: str) -> bytes:
        """The body with secret keys redacted; the very same bytes when there are none."""
        raw = body.encode() if isinstance(body, str) else body
        kind, boundary = _media_type(content_type)
        if kind == "json":
            return self._json_bytes(raw)
        if kind == "form":
            return self._form_bytes(raw)
        if kind == "multipart" and boundary:
            return self._multipart_bytes(raw, boundary)
        return raw

    def _json_bytes(self, raw: bytes) -> bytes:
        try:
            data = json.loads(raw)
        except ValueError:
            return raw
        scrubbed = self._scrub_json(data)
        return raw if scrubbed == data else json.dumps(scrubbed).encode()

    def _scrub_json(self, value):
        if isinstance(value, dict):
            return {k: (REDACTED if k.lower() in self.body_keys else self._scrub_json(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub_json(v) for v in value]
        return value

    def _form_bytes(self, raw: bytes) -> bytes:
        try:
            fields = parse_qsl(raw.decode(), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return raw
        if not any(name.lower() in self.body_keys for name, _ in fields):
            return raw
        return urlencode([(name, REDACTED if name.lower() in self.body_keys else value) for name, value in fields]).encode()

    def _multipart_bytes(self, raw: bytes, boundary: str) -> bytes:
        """Each secret part's content replaced; the framing (RFC 2046: CRLF--boundary) kept as it was."""
        delimiter = b"--" + boundary.encode()
        parts = raw.split(delimiter)
        changed = False
        for index in range(1, len(parts) - 1):  # the first is the preamble, the last the closing '--'
            head, gap, _ = parts[index].partition(b"\r\n\r\n")
            if gap and (_part_name(head) or "").lower() in self.body_keys:
                parts[index] = head + gap + REDACTED.encode() + b"\r\n"
                changed = True
        return delimiter.join(parts) if changed else raw


SCRUBBED_BODIES = ("json", "form", "multipart")


def _media_type(content_type: str) -> tuple[str, str | None]:
    """What kind of body a Content-Type announces (json, form, multipart, or other), and its boundary."""
    message = Message()
    message["Content-Type"] = content_type or "application/octet-stream"
    media = message.get_content_type()
    if "json" in media:
        return "json", None
    if media == "application/x-www-form-urlencoded":
        return "form", None
    if media == "multipart/form-data":
        return "multipart", message.get_boundary()
    return "other", None


def _part_name(head: bytes) -> str | None:
    """The field name in a multipart part's Content-Disposition."""
    headers = BytesHeaderParser().parsebytes(head.lstrip(b"\r\n"))
    name = headers.get_param("name", header="content-disposition")
    return collapse_rfc2231_value(name) if name else None


def _header(headers: dict, name: str) -> list[str]:
    for key, values in headers.items():
        if key.lower() == name.lower():
            return values if isinstance(values, list) else [values]
    return []


# -- the cassettes ---------------------------------------------------------------------------

def serializer_for(path: Path):
    return jsonserializer if path.suffix == ".json" else yamlserializer


class Library:
    """Every cassette of one mock, with play counts and the unmatched requests seen."""

    def __init__(self, config: dict, scrubber: Scrubber) -> None:
        self.config = config
        self.scrubber = scrubber
        self.match_on = tuple(getattr(vcr.matchers, name) for name in config["match_on"])
        self.allow_repeats = config["allow_repeats"]
        self.lock = threading.Lock()
        self.unmatched: list[dict] = []
        root = Path(config["cassettes"])
        files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml", ".json")) if root.is_dir() else [root]
        self.cassettes = [
            Cassette.load(path=str(p), serializer=serializer_for(p), match_on=self.match_on,
                          record_mode=RecordMode.NONE, allow_playback_repeats=False,
                          before_record_request=scrubber.request, before_record_response=scrubber.response)
            for p in files
        ]
        fallback = config.get("upstream") or "http://upstream.invalid"
        # Each cassette is matched at the origin it was recorded from (where it came from may
        # differ from today's upstream); an empty cassette uses the upstream.
        self.origins = [_recorded_origin(c) or fallback for c in self.cassettes]
        self.origin = self.origins[0] if self.origins else fallback

    def play(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> dict | None:
        """The first unplayed match; with repeats allowed, then the first match again."""
        candidates = [(c, Request(method, origin + path, body, headers)) for c, origin in zip(self.cassettes, self.origins)]
        with self.lock:
            for repeats in ((False, True) if self.allow_repeats else (False,)):
                for cassette, request in candidates:
                    cassette.allow_playback_repeats = repeats
                    if cassette.can_play_response_for(request):
                        return cassette.play_response(request)
            request = candidates[0][1] if candidates else Request(method, self.origin + path, body, headers)
            self.unmatched.append({"request": describe(self.scrubber.request(request)), "closest": self.closest(candidates)})
        return None

    def closest(self, candidates: list[tuple[Cassette, Request]], limit: int = 3) -> list[dict]:
        scored = []
        for cassette, request in candidates:
            for index, (stored, _) in enumerate(cassette.data):
                succeeded, failed = vcr.matchers.get_matchers_results(
                    cassette.filter_request(request), stored, self.match_on)
                scored.append((len(succeeded), {
                    "cassette": Path(cassette._path).name, "index": index, "request": describe(stored),
                    "failed": {name: str(reason).strip()[:300] for name, reason in failed},
                }))
        scored.sort(key=lambda item: -item[0])
        return [entry for _, entry in scored[:limit]]

    def report(self) -> dict:
        with self.lock:
            played, unplayed = [], []
            for cassette in self.cassettes:
                for index, (stored, _) in enumerate(cassette.data):
                    entry = {"cassette": Path(cassette._path).name, "index": index, "request": describe(stored),
                             "count": cassette.play_counts[index]}
                    (played if entry["count"] else unplayed).append(entry)
            return {"mode": "replay", "played": played, "unplayed": unplayed, "unmatched": list(self.unmatched)}

    def reset(self) -> None:
        with self.lock:
            for cassette in self.cassettes:
                cassette.rewind()
            self.unmatched.clear()


def _recorded_origin(cassette: Cassette) -> str | None:
    for request in cassette.requests:
        parts = urlsplit(request.uri)
        return f"{parts.scheme}://{parts.netloc}"
    return None


class Recorder:
    """Proxies to the upstream and appends each interaction, scrubbed, to one cassette."""

    def __init__(self, config: dict, scrubber: Scrubber) -> None:
        self.upstream = config["upstream"].rstrip("/")
        self.origin = self.upstream
        self.scrubber = scrubber
        path = Path(config["record_file"])
        self.cassette = Cassette(path=str(path), serializer=serializer_for(path), record_mode=RecordMode.ALL,
                                 before_record_request=scrubber.request, before_record_response=scrubber.response)
        self.lock = threading.Lock()
        self.session = requests.Session()
        self.recorded: list[str] = []

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> dict:
        response = self.session.request(method, self.upstream + path, headers=headers, data=body or None,
                                        stream=True, allow_redirects=False, timeout=60)
        raw = response.raw.read(decode_content=False)
        recorded_headers: dict[str, list[str]] = {}
        for name, value in response.raw.headers.items():
            recorded_headers.setdefault(name, []).append(value)
        return {"status": {"code": response.status_code, "message": response.reason or ""},
                "headers": recorded_headers, "body": {"string": raw}}

    def record(self, request: Request, response: dict) -> str:
        """Append and save the interaction; what was recorded, said without its secrets."""
        with self.lock:
            self.cassette.append(request, response)
            self.cassette._save(force=True)  # after every interaction: nothing is lost if the mock is killed
            self.recorded.append(describe(self.scrubber.request(request)))
            return self.recorded[-1]

    def report(self) -> dict:
        with self.lock:
            return {"mode": "record", "recorded": list(self.recorded), "played": [], "unplayed": [], "unmatched": []}

    def reset(self) -> None:
        pass


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
    backend: Library | Recorder
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
        if isinstance(self.backend, Recorder):
            request = Request(self.command, self.backend.origin + self.path, body or None, headers)
            try:
                response = self.backend.forward(self.command, self.path, headers, body)
            except requests.RequestException as exc:
                log(f"record: upstream failed for {describe(self.backend.scrubber.request(request))}: {exc}")
                return self.send_json(502, {"error": f"envctl mock: upstream failed: {exc}"})
            recorded = self.backend.record(request, response)
            log(f"recorded {recorded} -> {response['status']['code']}")
            return self.send_recorded(response)
        response = self.backend.play(self.command, self.path, body or None, headers)
        if response is None:
            miss = self.backend.unmatched[-1]
            closest = miss["closest"]
            hint = "; ".join(f"#{c['index']} {c['request']} failed {', '.join(c['failed']) or 'nothing'}" for c in closest)
            log(f"UNMATCHED {miss['request']}" + (f" (closest: {hint})" if hint else " (no recorded interactions)"))
            return self.send_json(UNMATCHED_STATUS, {
                "error": "envctl mock: no recorded interaction matches this request",
                "mock": self.config["name"], "request": miss["request"],
                "match_on": self.config["match_on"], "closest": closest,
            }, extra={"X-Envctl-Mock": ["unmatched"]})
        self.send_recorded(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_one

    def admin(self) -> None:
        what = self.path[len(ADMIN):].split("?")[0]
        if what == "health":
            return self.send_json(200, {"ok": True, "mock": self.config["name"], "mode": self.config["mode"]})
        if what == "report":
            return self.send_json(200, {"mock": self.config["name"], **self.backend.report()})
        if what == "reset" and self.command == "POST":
            self.backend.reset()
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
    scrub = config.get("scrub") or {}
    scrubber = Scrubber(scrub.get("headers", []), scrub.get("query", []), scrub.get("body_json_keys", []))
    if config["mode"] == "record":
        Handler.backend = Recorder(config, scrubber)
        log(f"mock {config['name']} recording {config['upstream']} into {config['record_file']}")
    else:
        Handler.backend = Library(config, scrubber)
        count = sum(len(c) for c in Handler.backend.cassettes)
        log(f"mock {config['name']} replaying {count} interactions from {len(Handler.backend.cassettes)} cassette(s) "
            f"as {Handler.backend.origin}")
    Handler.config = config
    Server(("0.0.0.0", int(config.get("port", 8080))), Handler).serve_forever()


if __name__ == "__main__":
    sys.exit(main())
