"""The service's durable SQLite log: every answered prediction, per key, and quotas.

A batch is committed (predictions, and the response under its idempotency key) before it
is answered, so concurrent clients can neither go past a quota nor have a prediction
logged twice or not at all: quotas and idempotency keys are checked and reserved under
one lock, and the batches of concurrent requests are written together, in one
transaction (group commit): with ``synchronous=FULL`` one fsync then makes several
requests durable, instead of each request waiting for its own behind the others. A
client that retries a request with the same ``Idempotency-Key`` gets the stored response
and is not charged again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
CREATE TABLE IF NOT EXISTS flags (
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    detector TEXT NOT NULL,
    at_query INTEGER NOT NULL,
    statistic REAL,
    time REAL NOT NULL
);
"""


_encode_input = json.JSONEncoder(default=str).encode  # one encoder for every row


@dataclass(eq=False)
class _Batch:
    """One request's predictions, reserved against its key's quota until written."""

    key: str
    request_id: str | None
    digest: str
    rows: list[tuple[Any, ...]]
    response: dict[str, Any]
    done: bool = False
    error: BaseException | None = None


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
        self._lock = threading.Lock()  # the connection, and the state below
        self._flushed = threading.Condition(self._lock)
        self._conn = sqlite3.connect(":memory:" if path is None else str(path),
                                     isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
        self._conn.executescript(_SCHEMA)
        self._usage: dict[str, int] = dict(self._conn.execute(
            "SELECT key, COUNT(*) FROM predictions GROUP BY key").fetchall())
        # reads go through a connection of their own (WAL: they see what is committed
        # while a write runs); an in-memory log has one connection, read between writes
        self._reader = None if path is None else sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False)
        self._pending: list[_Batch] = []  # reserved, to be written by the next flush
        self._in_flight: dict[tuple[str, str], _Batch] = {}  # by (key, request id)
        self._flushing = False

    def close(self) -> None:
        with self._flushed:
            while self._flushing:
                self._flushed.wait()
            self._conn.close()
            if self._reader is not None:
                self._reader.close()

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of a query (called with the lock held)."""
        if self._reader is not None:
            return self._reader.execute(sql, args).fetchall()
        while self._flushing:
            self._flushed.wait()
        return self._conn.execute(sql, args).fetchall()

    def usage(self, key: str) -> int:
        """Predictions answered (and charged, or reserved for a batch being written) to
        ``key``."""
        return self._usage.get(key, 0)

    def replay(self, key: str, request_id: str | None, digest: str) -> dict[str, Any] | None:
        """The stored response of an earlier request with this idempotency key, if any."""
        if request_id is None:
            return None
        with self._flushed:
            rows = self._read(
                "SELECT digest, response FROM requests WHERE key = ? AND request_id = ?",
                (key, request_id))
        return None if not rows else self._stored(rows[0], request_id, digest)

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
        """Log one answered batch and return the response to send, once it is durable.

        Under the lock: a request already stored (or being stored) under its idempotency
        key returns that response (nothing charged); past the quota raises 429 (nothing
        logged); else the predictions are reserved against the quota and queued. The
        first waiting request then writes every queued batch in one transaction, the
        others wait for it; a failed write releases the reservations and raises.
        """
        now = time.time()
        rows = [(key, model, request_id, _encode_input(x), json.dumps(y), price, now)
                for x, y in zip(inputs, outputs, strict=True)]
        with self._flushed:
            if request_id is not None:
                same = self._in_flight.get((key, request_id))
                if same is not None:
                    self._wait(same)
                    return self._stored((same.digest, json.dumps(same.response)),
                                        request_id, digest)
                stored = self._read(
                    "SELECT digest, response FROM requests WHERE key = ? AND request_id = ?",
                    (key, request_id))
                if stored:
                    return self._stored(stored[0], request_id, digest)
            self.check_quota(key, quota, len(inputs))
            batch = _Batch(key, request_id, digest, rows, response)
            self._usage[key] = self.usage(key) + len(inputs)
            self._pending.append(batch)
            if request_id is not None:
                self._in_flight[(key, request_id)] = batch
            self._wait(batch)
        return response

    def _wait(self, batch: _Batch) -> None:
        """Until ``batch`` is written (writing it, and whatever is queued, if no one
        else is writing); raises what its write raised. Called with the lock held."""
        while not batch.done:
            if self._flushing:
                self._flushed.wait()
                continue
            group, self._pending = self._pending, []
            self._flushing = True
            error: BaseException | None = None
            try:
                self._write(group)
            except BaseException as exc:  # every batch of the group fails with it
                error = exc
            finally:
                self._flushing = False
                for b in group:
                    b.done, b.error = True, error
                    if error is not None:
                        self._usage[b.key] = self.usage(b.key) - len(b.rows)
                    if b.request_id is not None:
                        self._in_flight.pop((b.key, b.request_id), None)
                self._flushed.notify_all()
        if batch.error is not None:
            raise batch.error

    def _write(self, group: list[_Batch]) -> None:
        """One transaction for every batch of ``group``. The lock is let go while it
        runs (others queue their batches meanwhile); nobody else touches this connection
        while ``_flushing`` is set: reads use their own, or wait (:meth:`_read`)."""
        self._lock.release()
        try:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT INTO predictions (key, model, request_id, input, output, price, "
                    "time) VALUES (?, ?, ?, ?, ?, ?, ?)", [r for b in group for r in b.rows])
                self._conn.executemany(
                    "INSERT INTO requests VALUES (?, ?, ?, ?)",
                    [(b.key, b.request_id, b.digest, json.dumps(b.response))
                     for b in group if b.request_id is not None])
        finally:
            self._lock.acquire()

    def record_flag(self, key: str, model: str, detector: str, at_query: int,
                    statistic: float | None) -> None:
        """Log that an extraction monitor flagged ``key`` on ``model`` (durable before
        the flagged request is answered: a refused request's rows are not in the log, and
        the flag must survive a restart without them)."""
        with self._flushed:
            while self._flushing:
                self._flushed.wait()
            self._conn.execute("INSERT INTO flags VALUES (?, ?, ?, ?, ?, ?)",
                               (key, model, detector, int(at_query), statistic, time.time()))

    def flags(self) -> list[dict[str, Any]]:
        """Every logged flag, in order."""
        with self._flushed:
            rows = self._read("SELECT key, model, detector, at_query, statistic FROM flags "
                              "ORDER BY rowid")
        return [{"key": r[0], "model": r[1], "detector": r[2], "at_query": r[3],
                 "statistic": r[4]} for r in rows]

    def predictions(self, key: str | None = None) -> list[dict[str, Any]]:
        """Logged predictions (of one key, or all), in order."""
        sql = "SELECT seq, key, model, request_id, input, output, price FROM predictions"
        args: tuple[Any, ...] = ()
        if key is not None:
            sql, args = sql + " WHERE key = ?", (key,)
        with self._flushed:
            rows = self._read(sql + " ORDER BY seq", args)
        return [{"seq": r[0], "key": r[1], "model": r[2], "request_id": r[3],
                 "input": json.loads(r[4]), "output": json.loads(r[5]), "price": r[6]}
                for r in rows]
