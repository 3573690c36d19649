"""Paced load on one HTTP server on 127.0.0.1: latency at a fixed request rate, open loop.

    python bench/mock_load.py URL [--rate 1000] [--seconds 5] [--connections 8] [--method GET] [--body BODY] [--content-type TYPE]
    python bench/mock_load.py --trivial [--rate 1000] ...   # the same load on a trivial server, for a peer

Request i is due at start + i/RATE whatever came before (an open loop, like wrk2): it leaves on
the first idle keep-alive connection, so a server falling behind shows in `p99_from_due_ms`
rather than lowering the rate offered. One thread and a selector, requests pre-encoded: the
generator's own cost per request is small beside the server's (measure it with --trivial, a
server that answers without looking at the request, in the same run). Bounded: RATE x SECONDS
requests, and nothing but 127.0.0.1 is loaded.
"""
from __future__ import annotations

import argparse
import json
import selectors
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

MAX_SECONDS = 60


def encoded_request(url: str, method: str, body: bytes | None, content_type: str = "application/json") -> bytes:
    """The request as a requests.Session sends it (the same headers), as bytes."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "User-Agent: python-requests/2.28.1",
             "Accept-Encoding: gzip, deflate", "Accept: */*", "Connection: keep-alive"]
    if body is not None:
        lines += [f"Content-Length: {len(body)}", f"Content-Type: {content_type}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def response_end(data: bytes | bytearray) -> int | None:
    """Where the first whole response in `data` ends (Content-Length or chunked), or None if it has not."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(data[:head_end]).lower()
    start = head_end + 4
    if b"transfer-encoding: chunked" in head:
        at = start
        while True:
            line_end = data.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(data[at:line_end]).split(b";")[0], 16)
            at = line_end + 2 + size + 2
            if len(data) < at:
                return None
            if size == 0:
                return at
    marker = head.find(b"content-length:")
    length = int(head[marker + 15:].split(b"\r\n")[0]) if marker >= 0 else 0
    return start + length if len(data) >= start + length else None


class Connection:
    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buffer = bytearray()
        self.due = self.sent = 0.0  # of the request in flight; 0 when idle


def load(url: str, rate: float, seconds: float, connections: int, method: str, body: bytes | None,
         content_type: str = "application/json") -> dict:
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise SystemExit("only 127.0.0.1 is loaded")
    if seconds > MAX_SECONDS:
        raise SystemExit(f"at most {MAX_SECONDS} s")
    payload = encoded_request(url, method, body, content_type)
    address = ("127.0.0.1", parts.port or 80)
    pool = [Connection(address) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    for c in pool:
        selector.register(c.sock, selectors.EVENT_READ, c)
    statuses = warm_up(pool[0], payload, 200)
    total = int(rate * seconds)
    from_send, from_due, behind = [], [], 0.0
    start = time.perf_counter() + 0.05
    idle = list(pool)
    index = answered = 0
    deadline = start + seconds + 30
    while answered < total:
        now = time.perf_counter()
        if now > deadline:
            raise SystemExit(f"{total - answered} requests unanswered 30 s after the last was due")
        while index < total and idle and start + index / rate <= now:
            c = idle.pop()
            c.due, c.sent = start + index / rate, time.perf_counter()
            behind = max(behind, c.sent - c.due)
            c.sock.sendall(payload)  # small: the socket buffer takes it whole
            index += 1
        wait = max(0.0, start + index / rate - time.perf_counter()) if index < total and idle else 1.0
        for key, _ in selector.select(wait):
            c = key.data
            chunk = c.sock.recv(65536)
            if not chunk:
                raise SystemExit("the server closed a keep-alive connection")
            c.buffer += chunk
            end = response_end(c.buffer)
            if end is None:
                continue
            done = time.perf_counter()
            statuses.append(int(c.buffer[9:12]))
            del c.buffer[:end]
            from_send.append(done - c.sent)
            from_due.append(done - c.due)  # a server falling behind shows here, not hidden by the loop
            answered += 1
            idle.append(c)
    elapsed = time.perf_counter() - start
    for c in pool:
        c.sock.close()
    return summary(from_send, from_due, behind, elapsed, statuses)


def warm_up(c: Connection, payload: bytes, count: int) -> list[int]:
    """`count` requests one after another, not counted; their statuses are (errors are errors)."""
    statuses = []
    c.sock.setblocking(True)
    for _ in range(count):
        c.sock.sendall(payload)
        while (end := response_end(c.buffer)) is None:
            c.buffer += c.sock.recv(65536)
        statuses.append(int(c.buffer[9:12]))
        del c.buffer[:end]
    c.sock.setblocking(False)
    return statuses


def summary(from_send: list[float], from_due: list[float], behind: float, elapsed: float,
            statuses: list[int]) -> dict:
    from_send.sort()
    from_due.sort()

    def at(values: list[float], share: float) -> float:
        return round(1000 * values[min(len(values) - 1, int(len(values) * share))], 2)

    return {"requests": len(from_send), "errors": sum(1 for s in statuses if s >= 500),
            "achieved_rps": round(len(from_send) / elapsed),
            "p50_ms": at(from_send, 0.5), "p99_ms": at(from_send, 0.99), "max_ms": at(from_send, 1.0),
            "p99_from_due_ms": at(from_due, 0.99), "most_behind_ms": round(1000 * behind, 2)}


TRIVIAL_SERVER = r"""
import selectors, socket, sys
answer = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
listener = socket.create_server(("127.0.0.1", 0))
listener.setblocking(False)
selector = selectors.DefaultSelector()
selector.register(listener, selectors.EVENT_READ)
print(listener.getsockname()[1], flush=True)
while True:
    for key, _ in selector.select():
        if key.fileobj is listener:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            selector.register(conn, selectors.EVENT_READ, bytearray())
            continue
        data = key.fileobj.recv(65536)
        if not data:
            selector.unregister(key.fileobj)
            key.fileobj.close()
            continue
        key.data.extend(data)
        while (end := key.data.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in bytes(key.data[:end]).lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
            if len(key.data) < end + 4 + length:
                break
            del key.data[:end + 4 + length]
            key.fileobj.sendall(answer)
"""


def trivial_server() -> tuple[subprocess.Popen, str]:
    """A server on 127.0.0.1 that answers 202 to anything, as cheaply as Python can: the peer."""
    process = subprocess.Popen([sys.executable, "-c", TRIVIAL_SERVER], stdout=subprocess.PIPE, text=True)
    port = process.stdout.readline().strip()
    return process, f"http://127.0.0.1:{port}/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--trivial", action="store_true", help="load a trivial server started here instead of URL")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body")
    parser.add_argument("--content-type", default="application/json", help="of the body")
    args = parser.parse_args()
    body = args.body.encode() if args.body else None
    if not args.trivial:
        print(json.dumps(load(args.url, args.rate, args.seconds, args.connections, args.method, body,
                              args.content_type)))
        return
    process, url = trivial_server()
    try:
        print(json.dumps(load(url, args.rate, args.seconds, args.connections, args.method, body, args.content_type)))
    finally:
        process.terminate()
        process.wait(5)


if __name__ == "__main__":
    main()
