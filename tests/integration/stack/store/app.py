"""store: a key-value HTTP service that keeps its data in /data (a named volume)."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DATA = Path("/data")
NAME = os.environ.get("STORE_NAME", "?")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"ok": True})
        key = self.path.strip("/").replace("/", "_")
        item = DATA / key
        if not item.is_file():
            return self.reply(404, {"error": f"no {key}"})
        self.reply(200, {"key": key, "value": item.read_text(), "store": NAME})

    def do_PUT(self):
        key = self.path.strip("/").replace("/", "_")
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        (DATA / key).write_bytes(body)
        self.reply(201, {"key": key, "store": NAME})

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("store:", fmt % args, flush=True)


print(f"store {NAME} listening on 8000", flush=True)
ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()
