"""web: the front page; asks the counter service (COUNTER_URL) for the visitor number."""
import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTER_URL = os.environ["COUNTER_URL"]
GREETING = os.environ.get("GREETING", "hello")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, "ok\n")
        with urllib.request.urlopen(COUNTER_URL + "/hit", timeout=5) as response:
            count = json.loads(response.read())["count"]
        self.reply(200, f"{GREETING}, visitor #{count}\n")

    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ.get("PORT", "8000"))
print(f"web on {port}, counter at {COUNTER_URL}")
ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
