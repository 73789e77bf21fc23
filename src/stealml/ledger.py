"""The ledger: the one accountant every query passes through.

It counts paid queries and their cost, enforces a budget, answers a query repeated within
a run from its cache (not paid twice), and can keep a durable SQLite log of every query
and answer. Run an attack again with the same log and the answers already paid for are
replayed instead of bought again: a crash or a Ctrl-C at query 9,000 costs nothing on
resume.

Each answered batch is committed to the log before the attack sees it, so a process
killed at any moment loses nothing it paid for. Entries are keyed by the target's
fingerprint (model and API policy) and the exact bytes of the query, so one log can hold
several targets without mixing their answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stealml.exceptions import ConfigurationError, LedgerError, QueryBudgetExceeded

__all__ = ["Ledger", "query_key"]

Fetch = Callable[[np.ndarray], Sequence[dict[str, Any]]]
Progress = Callable[["Ledger"], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stealml_log (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    x TEXT NOT NULL,
    answer TEXT NOT NULL,
    cost REAL NOT NULL,
    time REAL NOT NULL,
    UNIQUE (target, key)
);
"""


def query_key(row: np.ndarray) -> str:
    """A stable key for one model-space query: sha256 of its float64 bytes (NaN canonical)."""
    r = np.ascontiguousarray(row, dtype=np.float64).copy()
    r[np.isnan(r)] = np.nan
    r[r == 0.0] = 0.0  # -0.0 and 0.0 are the same query
    return hashlib.sha256(r.tobytes()).hexdigest()


class Ledger:
    """Counts, prices, limits and logs queries.

    Parameters
    ----------
    budget : int, optional
        Most queries that may be paid for in this run; a batch that would go past it
        raises :class:`QueryBudgetExceeded` and nothing of it is paid.
    log : str or Path, optional
        SQLite file of every paid query and answer. Reused, its answers are replayed.
    progress : callable, optional
        Called with the ledger after every paid batch (for progress bars).

    Attributes
    ----------
    queries : int
        Queries paid for in this run.
    cost : float
        Dollars paid in this run.
    replayed : int
        Answers taken from the log of an earlier run instead of paid for.
    cached : int
        Repeated queries of this run answered from the cache.
    paid_keys : list of str
        Keys (see :func:`query_key`) of the queries paid in this run, in order.

    Examples
    --------
    >>> ledger = Ledger(budget=10)
    >>> ledger.bind("demo-target", price=0.0001)
    >>> out = ledger.answer(np.zeros((2, 3)), lambda X: [{"label": 0}] * len(X))
    >>> ledger.queries, ledger.remaining
    (1, 9)
    """

    def __init__(self, budget: int | None = None, log: str | Path | None = None,
                 progress: Progress | None = None) -> None:
        if budget is not None and (isinstance(budget, bool) or int(budget) != budget
                                   or budget < 1):
            raise ConfigurationError(f"budget must be a whole number of at least 1, "
                                     f"not {budget!r}")
        self.budget = None if budget is None else int(budget)
        self.log_path = None if log is None else Path(log)
        self.progress = progress
        self.queries = 0
        self.cost = 0.0
        self.replayed = 0
        self.cached = 0
        self.target: str | None = None
        self.price = 0.0
        self._answers: dict[str, dict[str, Any]] = {}
        self._logged: set[str] = set()
        self._conn: sqlite3.Connection | None = None
        self._used: set[str] = set()  # keys already handed to the attack in this run
        self.paid_keys: list[str] = []

    # -- set-up ---------------------------------------------------------------------------
    def bind(self, target: str, price: float = 0.0) -> None:
        """Attach the ledger to one target (its fingerprint) and its price per query."""
        if self.target is not None and self.target != target:
            raise LedgerError("this ledger already accounts for another target")
        self.target = target
        self.price = float(price)
        if self.log_path is not None and self._conn is None:
            self._open_log()

    def _open_log(self) -> None:
        assert self.log_path is not None and self.target is not None
        try:
            conn = sqlite3.connect(self.log_path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO stealml_log VALUES ('format', 'stealml-1')")
            rows = conn.execute("SELECT key, answer FROM queries WHERE target = ?",
                                (self.target,)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.log_path} is not a usable stealml query log: "
                              f"{exc}") from exc
        for key, answer in rows:
            self._answers[key] = json.loads(answer)
            self._logged.add(key)
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- accounting -----------------------------------------------------------------------
    @property
    def remaining(self) -> int | None:
        """Queries the budget still allows (None without a budget)."""
        return None if self.budget is None else self.budget - self.queries

    @property
    def logged(self) -> int:
        """Answers for this target in the log (paid in this run or earlier)."""
        return len(self._logged)

    def answer(self, X: np.ndarray, fetch: Fetch) -> list[dict[str, Any]]:
        """Answer each row of ``X``: from the cache or log when known, else by ``fetch``.

        ``fetch`` is called once with the rows that must be paid for (each distinct row
        once). Raises :class:`QueryBudgetExceeded` before paying anything if those rows
        would exceed the budget.
        """
        if self.target is None:
            raise LedgerError("the ledger is not bound to a target")
        keys = [query_key(row) for row in X]
        new: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self._answers and k not in new:
                new[k] = i
        if self.budget is not None and self.queries + len(new) > self.budget:
            raise QueryBudgetExceeded(len(new), self.budget - self.queries, self.budget)
        if new:
            self._pay(X[list(new.values())], list(new), fetch)
        out = []
        seen_now = set(new)
        for k in keys:
            if k in seen_now:
                seen_now.discard(k)  # first use of a row bought in this call
            elif k in self._logged and k not in self._used:
                self.replayed += 1
            else:
                self.cached += 1
            self._used.add(k)
            out.append(self._answers[k])
        return out

    def _pay(self, X_new: np.ndarray, keys: list[str], fetch: Fetch) -> None:
        records = [dict(r) for r in fetch(X_new)]
        if len(records) != len(keys):
            raise LedgerError(f"the oracle answered {len(records)} of {len(keys)} queries")
        cost = self.price * len(keys)
        if self._conn is not None:
            now = time.time()
            rows = [(self.target, k, json.dumps(x.tolist()), json.dumps(r), self.price, now)
                    for k, x, r in zip(keys, X_new, records, strict=False)]
            try:
                with self._conn:
                    self._conn.execute("BEGIN")
                    self._conn.executemany(
                        "INSERT OR IGNORE INTO queries (target, key, x, answer, cost, time) "
                        "VALUES (?, ?, ?, ?, ?, ?)", rows)
            except sqlite3.DatabaseError as exc:
                raise LedgerError(f"cannot write the query log {self.log_path}: "
                                  f"{exc}") from exc
            self._logged.update(keys)
        for k, r in zip(keys, records, strict=False):
            self._answers[k] = r
        self.queries += len(keys)
        self.paid_keys.extend(keys)
        self.cost += cost
        if self.progress is not None:
            self.progress(self)

    def summary(self) -> dict[str, Any]:
        """Counts as a dict (for reports and ``--json``)."""
        return {"queries": self.queries, "replayed": self.replayed, "cached": self.cached,
                "cost": self.cost if math.isfinite(self.cost) else None,
                "budget": self.budget}
