"""shop: charges through the payment provider it finds at PAYMENTS_URL (the mock)."""
import json
import os
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAYMENTS_URL = os.environ["PAYMENTS_URL"]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"ok": True})
        if self.path == "/checkout":
            body = json.dumps({"amount": 1200, "currency": "eur", "source": "tok_visa"}).encode()
            request = urllib.request.Request(PAYMENTS_URL + "/v1/charges", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return self.reply(200, {"payments_url": PAYMENTS_URL, "charge": json.loads(response.read())})
            except urllib.error.HTTPError as exc:
                return self.reply(502, {"payments_url": PAYMENTS_URL, "status": exc.code})
        self.reply(404, {})

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
