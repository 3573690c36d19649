"""worker: takes queued notifications from Redis and has the notifications service send them."""
import json
import time

from shoplib import cache
from shoplib.config import env
from shoplib.web import HTTPError, call

NOTIFICATIONS_URL = env("NOTIFICATIONS_URL")
USERS_URL = env("USERS_URL")
QUEUE = "queue:notifications"


def handle(job: dict) -> None:
    status, user = call("GET", f"{USERS_URL}/users/{job['user_id']}")
    if status != 200:
        raise HTTPError(status, f"no user {job['user_id']}")
    status, answer = call("POST", f"{NOTIFICATIONS_URL}/send", {**job, "to": user["email"]})
    if status != 201:
        raise HTTPError(status, f"notifications answered {status}: {answer}")


def main() -> None:
    print("worker waiting for jobs on", QUEUE, flush=True)
    redis = cache.client()
    while True:
        item = redis.brpop(QUEUE, timeout=2)
        if item is None:
            continue
        job = json.loads(item[1])
        try:
            handle(job)
            print(f"worker: sent {job['template']} for {job['order_ref']}", flush=True)
        except HTTPError as exc:
            attempts = job.get("attempts", 0) + 1
            print(f"worker: {job['order_ref']} failed ({exc}); attempt {attempts}", flush=True)
            if attempts < 5:
                time.sleep(0.5 * attempts)
                redis.lpush(QUEUE, json.dumps({**job, "attempts": attempts}))


main()
