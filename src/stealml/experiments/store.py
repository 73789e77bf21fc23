"""The results store of grids: one SQLite row per finished job.

A job's row is keyed by a hash of its full configuration *and* the code version, so a
grid run again with the same code reuses every finished job, an extended grid runs only
its new cells, and a grid run with changed code runs everything again. Rows are written
by the process that drives the grid (never by workers) and committed one by one, so a
killed grid loses at most the jobs that were running.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from stealml import __version__
from stealml.exceptions import GridError

__all__ = ["JOBS_STORE", "Outcome", "ResultStore", "code_version"]

JOBS_STORE = "jobs.sqlite"  # a reproduction's store, in its output folder: a rerun resumes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    config TEXT NOT NULL,
    code TEXT NOT NULL,
    ok INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    seconds REAL NOT NULL,
    finished REAL NOT NULL
)
"""


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version, the git commit of its checkout (if any) and a hash of its
    source files: ``"0.1.0+git.01e376b+src.3f2a..."``. Any edit to a ``.py`` file of the
    package changes it."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    parts = [__version__]
    commit = _git_commit(root)
    if commit:
        parts.append(f"git.{commit}")
    parts.append(f"src.{digest.hexdigest()[:12]}")
    return "+".join(parts)


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


@dataclass
class Outcome:
    """One job's end: its result row, or the error it failed with."""

    key: str
    task: str
    config: dict[str, Any]
    ok: bool
    result: dict[str, Any] | None
    error: str | None
    seconds: float
    reused: bool = False


class ResultStore:
    """Finished jobs in a SQLite file (``":memory:"`` keeps them for one process).

    Examples
    --------
    >>> store = ResultStore(":memory:")
    >>> store.put(Outcome("k1", "extraction", {"seed": 0}, True, {"r": 0.5}, None, 0.1))
    >>> store.get("k1").result
    {'r': 0.5}
    >>> store.get("missing") is None
    True
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
            self._conn.commit()
        except sqlite3.Error as exc:
            raise GridError(f"cannot use {self.path} as a results store: {exc}") from exc

    def get(self, key: str) -> Outcome | None:
        """The stored outcome of the job with this key, or None."""
        row = self._conn.execute("SELECT key, task, config, ok, result, error, seconds "
                                 "FROM jobs WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return Outcome(key=row[0], task=row[1], config=json.loads(row[2]), ok=bool(row[3]),
                       result=None if row[4] is None else json.loads(row[4]), error=row[5],
                       seconds=float(row[6]), reused=True)

    def put(self, outcome: Outcome, code: str = "") -> None:
        """Record ``outcome`` (replacing an earlier one of the same key), committed now."""
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (outcome.key, outcome.task, json.dumps(outcome.config, sort_keys=True),
                 code, int(outcome.ok),
                 None if outcome.result is None else json.dumps(outcome.result),
                 outcome.error, outcome.seconds, time.time()))
            self._conn.commit()
        except sqlite3.Error as exc:
            raise GridError(f"cannot write to the results store {self.path}: {exc}") from exc

    def count(self, ok: bool | None = None) -> int:
        """Stored jobs (only finished ones with ``ok=True``, failed ones with False)."""
        if ok is None:
            return int(self._conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
        return int(self._conn.execute("SELECT COUNT(*) FROM jobs WHERE ok = ?",
                                      (int(ok),)).fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
