"""PostgreSQL through DATABASE_URL: a connection per unit of work, transactions by `with`."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import psycopg
from psycopg.rows import dict_row

from shoplib.config import env


@contextmanager
def transaction() -> Iterator[psycopg.Cursor]:
    with psycopg.connect(env("DATABASE_URL"), row_factory=dict_row, connect_timeout=5) as conn:
        with conn.cursor() as cursor:
            yield cursor  # committed when the block ends, rolled back on an exception


def query(sql: str, *params: Any) -> list[dict]:
    with transaction() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def one(sql: str, *params: Any) -> dict | None:
    rows = query(sql, *params)
    return rows[0] if rows else None


def ping() -> None:
    query("SELECT 1")
