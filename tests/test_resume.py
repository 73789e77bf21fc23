"""Kill an attack with SIGKILL part-way, rerun it on the same log: no query is paid twice
and the stolen model is the same as an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = r'''
import json, sys, time
import numpy as np
from sklearn.linear_model import LogisticRegression
from stealml.attacks import EquationSolving
from stealml.ledger import Ledger
from stealml.oracles import LocalOracle
from stealml.space import FeatureSpace

class RemoteLikeOracle(LocalOracle):
    """A local target answering with a network's latency."""
    def _fetch(self, X):
        time.sleep(0.02)
        return super()._fetch(X)

rng = np.random.default_rng(0)
d = 200
X = rng.uniform(-1, 1, (1000, d))
y = (X @ rng.normal(size=d) > 0).astype(int)
target = LogisticRegression(max_iter=3000).fit(X, y)
log = sys.argv[1] if sys.argv[1] != "-" else None
oracle = RemoteLikeOracle(target, FeatureSpace.continuous(d), ledger=Ledger(log=log))
result = EquationSolving(batch_size=5, random_state=3).run(oracle)
print(json.dumps({"queries": result.queries, "replayed": result.replayed,
                  "coef": result.model.coef_.ravel().tolist(),
                  "intercept": float(result.model.intercept_[0])}))
'''

TOTAL = 201


def _rows(log: Path) -> int:
    if not log.exists():
        return 0
    try:
        with sqlite3.connect(log) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM queries").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.slow
def test_sigkill_then_resume_pays_nothing_twice(tmp_path: Path) -> None:
    script = tmp_path / "steal.py"
    script.write_text(SCRIPT)
    log = tmp_path / "queries.sqlite"
    proc = subprocess.Popen([sys.executable, str(script), str(log)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _rows(log) < 60 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the attack ended before it could be killed"
    paid_before = _rows(log)
    assert 60 <= paid_before < TOTAL

    resumed = subprocess.run([sys.executable, str(script), str(log)], env=_env(),
                             capture_output=True, text=True, check=True)
    clean = subprocess.run([sys.executable, str(script), "-"], env=_env(),
                           capture_output=True, text=True, check=True)
    r, c = json.loads(resumed.stdout), json.loads(clean.stdout)
    assert r["replayed"] == paid_before
    assert r["queries"] == TOTAL - paid_before
    assert _rows(log) == TOTAL  # each query logged (and paid) exactly once
    assert r["coef"] == c["coef"] and r["intercept"] == c["intercept"]
    assert c["queries"] == TOTAL
