"""Redis through REDIS_URL: cache, sessions, carts and the notification queue."""
from __future__ import annotations

import functools

import redis

from shoplib.config import env


@functools.lru_cache(maxsize=1)
def client() -> redis.Redis:
    return redis.Redis.from_url(env("REDIS_URL"), decode_responses=True, socket_timeout=5)


def ping() -> None:
    client().ping()
