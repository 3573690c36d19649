"""Paced load on one running mock, on 127.0.0.1 only: latency at a fixed request rate.

    python bench/mock_load.py URL [--rate 1000] [--seconds 5] [--threads 8] [--method GET] [--body JSON]

Each of THREADS keep-alive connections sends on its own schedule (RATE/THREADS per second),
so a slow answer does not lower the rate offered (an open loop, unlike bench/benchmark.py's
closed one). Bounded: RATE x SECONDS requests, and nothing but 127.0.0.1 is accepted.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from urllib.parse import urlsplit

import requests


def load(url: str, rate: float, seconds: float, threads: int, method: str, body: bytes | None) -> dict:
    if urlsplit(url).hostname != "127.0.0.1":
        raise SystemExit("only 127.0.0.1 is loaded")
    per_thread = int(rate * seconds / threads)
    interval = threads / rate
    latencies: list[float] = []
    due_latencies: list[float] = []
    late: list[float] = []
    errors = 0
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def worker(offset: float) -> None:
        nonlocal errors
        session = requests.Session()
        session.trust_env = False
        mine, from_due, behind, failed = [], [], 0.0, 0
        for i in range(per_thread):
            due = start + offset + i * interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sent = time.perf_counter()
            behind = max(behind, sent - due)
            response = session.request(method, url, data=body,
                                        headers={"Content-Type": "application/json"} if body else {}, timeout=10)
            done = time.perf_counter()
            mine.append(done - sent)
            from_due.append(done - due)  # a server falling behind shows here, not hidden by the loop
            failed += response.status_code >= 500
        with lock:
            latencies.extend(mine)
            due_latencies.extend(from_due)
            late.append(behind)
            errors += failed

    for _ in range(200):  # warm-up, not counted
        requests.request(method, url, data=body, timeout=10)
    pool = [threading.Thread(target=worker, args=(t * interval / threads,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    latencies.sort()
    due_latencies.sort()
    elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "errors": errors, "achieved_rps": round(len(latencies) / elapsed),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
            "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2),
            "max_ms": round(1000 * latencies[-1], 2),
            "p99_from_due_ms": round(1000 * due_latencies[int(len(due_latencies) * 0.99)], 2),
            "most_behind_ms": round(1000 * max(late), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body")
    args = parser.parse_args()
    body = args.body.encode() if args.body else None
    print(json.dumps(load(args.url, args.rate, args.seconds, args.threads, args.method, body)))


if __name__ == "__main__":
    main()
