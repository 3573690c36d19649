"""counter: counts visits in Redis, found through REDIS_HOST and REDIS_PORT."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

store = redis.Redis(host=os.environ["REDIS_HOST"], port=int(os.environ["REDIS_PORT"]), socket_timeout=5)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            store.ping()
            return self.reply(200, {"ok": True})
        if self.path == "/hit":
            return self.reply(200, {"count": store.incr("visits")})
        self.reply(404, {"error": "not found"})

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ.get("PORT", "8000"))
print(f"counter on {port}, redis at {os.environ['REDIS_HOST']}:{os.environ['REDIS_PORT']}")
ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
