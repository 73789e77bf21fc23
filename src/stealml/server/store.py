"""The service's durable SQLite log: every answered prediction, per key, and quotas.

A batch is committed (predictions, and the response under its idempotency key) before it
is answered, under one lock, so concurrent clients can neither go past a quota nor have a
prediction logged twice or not at all. A client that retries a request with the same
``Idempotency-Key`` gets the stored response and is not charged again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stealml.server.errors import ApiError

__all__ = ["PredictionLog", "body_digest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    request_id TEXT,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    price REAL NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_key ON predictions (key);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT NOT NULL,
    request_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (key, request_id)
);
"""


def body_digest(route: str, body: Any) -> str:
    """Identifies a request's content, to refuse an idempotency key reused for another."""
    text = json.dumps([route, body], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class PredictionLog:
    """Quotas and the log of answered predictions.

    Parameters
    ----------
    path : Path, optional
        The SQLite file; in memory (lost at exit) when None.
    sync : {"full", "normal"}
        SQLite's ``synchronous``: ``full`` survives a power loss, ``normal`` a crash.

    Examples
    --------
    >>> log = PredictionLog(None)
    >>> log.commit("alice", 10, "m", None, "d", [{"x": 1}], [{"label": 0}], 0.0, {})
    {}
    >>> log.usage("alice")
    1
    """

    def __init__(self, path: Path | None, sync: str = "full") -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(":memory:" if path is None else str(path),
                                     isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        self._conn.executescript(_SCHEMA)
        self._usage: dict[str, int] = dict(self._conn.execute(
            "SELECT key, COUNT(*) FROM predictions GROUP BY key").fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def usage(self, key: str) -> int:
        """Predictions answered (and charged) to ``key``."""
        return self._usage.get(key, 0)

    def replay(self, key: str, request_id: str | None, digest: str) -> dict[str, Any] | None:
        """The stored response of an earlier request with this idempotency key, if any."""
        if request_id is None:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT digest, response FROM requests WHERE key = ? AND request_id = ?",
                (key, request_id)).fetchone()
        return None if row is None else self._stored(row, request_id, digest)

    @staticmethod
    def _stored(row: tuple[str, str], request_id: str, digest: str) -> dict[str, Any]:
        if row[0] != digest:
            raise ApiError(422, "idempotency_conflict",
                           f"Idempotency-Key {request_id!r} was used for another request")
        stored: dict[str, Any] = json.loads(row[1])
        return stored

    def check_quota(self, key: str, quota: int | None, n: int) -> None:
        """Raise 429 when ``n`` more predictions would take ``key`` past its quota."""
        used = self.usage(key)
        if quota is not None and used + n > quota:
            raise ApiError(429, "quota_exceeded",
                           f"this request needs {n} predictions, but the key has "
                           f"{max(quota - used, 0)} of its quota of {quota} left")

    def commit(self, key: str, quota: int | None, model: str, request_id: str | None,
               digest: str, inputs: Sequence[Any], outputs: Sequence[Any], price: float,
               response: dict[str, Any]) -> dict[str, Any]:
        """Log one answered batch and return the response to send.

        Under the lock: a request already stored under its idempotency key returns the
        stored response (nothing charged); past the quota raises 429 (nothing logged);
        else every prediction and the response are committed together.
        """
        now = time.time()
        with self._lock:
            if request_id is not None:
                row = self._conn.execute(
                    "SELECT digest, response FROM requests WHERE key = ? AND request_id = ?",
                    (key, request_id)).fetchone()
                if row is not None:
                    return self._stored(row, request_id, digest)
            self.check_quota(key, quota, len(inputs))
            rows = [(key, model, request_id, json.dumps(x, default=str), json.dumps(y),
                     price, now) for x, y in zip(inputs, outputs, strict=True)]
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT INTO predictions (key, model, request_id, input, output, price, "
                    "time) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                if request_id is not None:
                    self._conn.execute("INSERT INTO requests VALUES (?, ?, ?, ?)",
                                       (key, request_id, digest, json.dumps(response)))
            self._usage[key] = self.usage(key) + len(inputs)
        return response

    def predictions(self, key: str | None = None) -> list[dict[str, Any]]:
        """Logged predictions (of one key, or all), in order."""
        sql = "SELECT seq, key, model, request_id, input, output, price FROM predictions"
        args: tuple[Any, ...] = ()
        if key is not None:
            sql, args = sql + " WHERE key = ?", (key,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY seq", args).fetchall()
        return [{"seq": r[0], "key": r[1], "model": r[2], "request_id": r[3],
                 "input": json.loads(r[4]), "output": json.loads(r[5]), "price": r[6]}
                for r in rows]
