"""upstream: a stand-in for a payment provider's real API, used while recording."""
import gzip
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/healthz":
            return self.send(200, b"ok", "text/plain")
        if self.path.startswith("/v1/charges/ch_1"):
            body = gzip.compress(json.dumps({"id": "ch_1", "status": "succeeded", "amount": 1200}).encode(), mtime=0)
            return self.send(200, body, "application/json", {"Content-Encoding": "gzip"})
        if self.path == "/v1/events":
            return self.chunked([b'{"events": [', b'{"id": "ev_1"}', b"]}"])
        if self.path == "/v1/logo.png":
            return self.send(200, bytes(range(256)) * 4, "image/png")
        self.send(404, b'{"error": {"type": "invalid_request_error", "message": "no such resource"}}',
                  "application/json")

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/oauth/token":  # an OAuth token endpoint: a form in, a form out (as GitHub's)
            fields = dict(parse_qsl(raw.decode(errors="replace")))
            answer = urlencode({"access_token": fields.get("client_secret", "none"), "token_type": "bearer"})
            return self.send(200, answer.encode(), "application/x-www-form-urlencoded")
        payload = json.loads(raw or b"{}")
        if self.path.split("?")[0] == "/v1/charges":
            token = self.headers.get("Authorization", "Bearer none").split()[-1]
            if payload.get("source") == "tok_chargeDeclined":
                return self.send(402, json.dumps({"error": {"type": "card_error", "code": "card_declined"}}).encode(),
                                 "application/json")
            # CHARGE_STATUS: the API "changing" under its recordings, for the drift tests
            body = {"id": "ch_1", "object": "charge", "amount": payload.get("amount"),
                    "status": os.environ.get("CHARGE_STATUS", "succeeded")}
            extra = {"X-Request-Id": "req_1"}
            if "Authorization" in self.headers:  # a session for authenticated callers: secrets to scrub
                body["access_token"] = token
                extra["Set-Cookie"] = f"sid={token}; HttpOnly"
            return self.send(201, json.dumps(body).encode(), "application/json", extra)
        self.send(404, b"{}", "application/json")

    def send(self, status, body, content_type, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunked(self, parts):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in parts:
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, fmt, *args):
        print("upstream:", fmt % args, flush=True)


ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
