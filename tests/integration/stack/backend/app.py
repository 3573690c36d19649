"""backend: reads and writes items in the store it finds through STORE_URL."""
import json
import os
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STORE_URL = os.environ["STORE_URL"]


def call(method, url, body=None):
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status, payload = call("GET", STORE_URL + self.path)
        self.reply(status, {"backend": "ok", "store_url": STORE_URL, **payload})

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, payload = call("PUT", STORE_URL + self.path, body)
        self.reply(status, {"backend": "ok", **payload})

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("backend:", fmt % args, flush=True)


print(f"backend listening on 8000, store at {STORE_URL}", flush=True)
ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()
