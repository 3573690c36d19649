"""A tiny JSON-over-HTTP framework on the standard library, and a client for the other services."""
from __future__ import annotations

import json
import re
import sys
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from shoplib.config import env


class HTTPError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload = {"error": message, **extra}


class Request:
    def __init__(self, method: str, path: str, query: str, headers: Any, body: bytes, params: dict) -> None:
        self.method, self.path, self.headers, self.body, self.params = method, path, headers, body, params
        self.query = dict(part.split("=", 1) if "=" in part else (part, "") for part in query.split("&") if part)

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HTTPError(400, "the body is not JSON") from None

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value[7:] if value.startswith("Bearer ") else None


Handler = Callable[[Request], Any]


class App:
    """Routes ("GET", "/items/{id}") to handlers returning a payload or (status, payload)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.health_checks: list[Callable[[], None]] = []
        self.route("GET", "/healthz")(self._health)

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

        def register(fn: Handler) -> Handler:
            self.routes.append((method, regex, fn))
            return fn

        return register

    def _health(self, request: Request) -> Any:
        for check in self.health_checks:
            check()
        return {"ok": True, "service": self.name}

    def dispatch(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        path, _, query = raw_path.partition("?")
        allowed = False
        for route_method, regex, fn in self.routes:
            match = regex.match(path)
            if not match:
                continue
            allowed = True
            if route_method != method:
                continue
            try:
                result = fn(Request(method, path, query, headers, body, match.groupdict()))
            except HTTPError as exc:
                return exc.status, exc.payload
            except Exception as exc:  # a bug or a dependency down: say which, keep serving
                traceback.print_exc()
                return 500, {"error": f"{type(exc).__name__}: {exc}", "service": self.name}
            return result if isinstance(result, tuple) else (200, result)
        return (405, {"error": "method not allowed"}) if allowed else (404, {"error": f"no route for {path}"})

    def serve(self, port: int | None = None) -> None:
        app = self
        port = port or int(env("PORT", "8000"))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                started = time.monotonic()
                status, payload = app.dispatch(self.command, self.path, self.headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if self.path != "/healthz":
                    print(f"{app.name}: {self.command} {self.path} {status} {1000 * (time.monotonic() - started):.0f}ms",
                          flush=True)

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
        server.daemon_threads = True
        print(f"{self.name} listening on {port}", flush=True)
        sys.stdout.flush()
        server.serve_forever()


def call(method: str, url: str, payload: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, Any]:
    """JSON in, (status, JSON) out; a service that cannot be reached is a 503 with its URL."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, {"error": raw.decode(errors="replace")[:200]}
    except (urllib.error.URLError, OSError) as exc:
        raise HTTPError(503, f"cannot reach {url}: {exc}") from None


def expect(status_and_body: tuple[int, Any], *ok: int) -> Any:
    """The body of a call that must succeed; otherwise pass its failure on."""
    status, body = status_and_body
    if status not in (ok or (200,)):
        raise HTTPError(status if status >= 400 else 502, (body or {}).get("error", f"upstream said {status}"),
                        upstream=body)
    return body
