"""Grids: the same results in-process, on joblib and on a local Dask cluster of 2 workers;
a grid killed with SIGKILL resumes without redoing finished jobs.

Run: .venv/bin/python benchmarks/grid.py
Writes benchmarks/results/grid.{json,md} (the issue's goals beside what we measured).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stealml.experiments.executors import DaskExecutor, InProcessExecutor, JoblibExecutor
from stealml.experiments.grid import expand, run_grid
from stealml.experiments.tables import write_results

RESULTS = Path(__file__).resolve().parent / "results"
GRID: dict[str, Any] = {
    "name": "labels-only retraining",
    "fixed": {"model": "logreg", "output": "labels", "eval_points": 10_000},
    "grid": {"data": ["circles", "moons", "breast-cancer", "diabetes"],
             "attack": ["retrain-uniform", "retrain-line-search", "lowd-meek"],
             "alpha": [1, 10, 100], "seed": [0]},
}


def _measured(run: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in {**o.config, **(o.result or {})}.items() if k != "seconds"}
            for o in run.outcomes]


def _finished(store: Path) -> dict[str, float]:
    if not store.exists():
        return {}
    try:
        with sqlite3.connect(store) as conn:
            return dict(conn.execute("SELECT key, finished FROM jobs WHERE ok = 1"))
    except sqlite3.OperationalError:
        return {}


def kill_and_resume(tmp: Path, kill_after: int = 10) -> dict[str, Any]:
    config = tmp / "grid.json"
    config.write_text(json.dumps(GRID))
    store = tmp / "results.sqlite"
    cmd = [sys.executable, "-m", "stealml", "grid", str(config), "--store", str(store),
           "--out", str(tmp / "out"), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(_finished(store)) < kill_after and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _finished(store)
    start = time.perf_counter()
    resumed = json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                        check=True).stdout)
    after = _finished(store)
    return {"killed after": len(before), "jobs": resumed["jobs"], "rerun": resumed["ran"],
            "reused": resumed["reused"],
            "finished jobs run again": sum(after[k] != t for k, t in before.items()),
            "resume seconds": time.perf_counter() - start}


def main() -> None:
    jobs = expand(GRID).jobs
    load_start = os.getloadavg()
    runs, rows = {}, []
    for name, executor in (("in-process", InProcessExecutor()),
                           ("joblib, 2 processes", JoblibExecutor(2)),
                           ("Dask LocalCluster, 2 workers", DaskExecutor(local_workers=2))):
        start = time.perf_counter()
        runs[name] = run_grid(jobs, executor=executor)
        rows.append({"executor": name, "jobs": len(jobs), "failed": len(runs[name].failed),
                     "wall seconds (incl. start-up)": time.perf_counter() - start,
                     "results == in-process": _measured(runs[name]) == _measured(
                         runs["in-process"]),
                     "goal": "same results as in-process"})
    with tempfile.TemporaryDirectory() as tmp:
        resume = kill_and_resume(Path(tmp))
    rows.append({"executor": "SIGKILL, then resume (CLI, in-process)", "jobs": resume["jobs"],
                 "failed": 0, "wall seconds (incl. start-up)": resume["resume seconds"],
                 "results == in-process": None,
                 "killed after": resume["killed after"], "rerun": resume["rerun"],
                 "finished jobs run again": resume["finished jobs run again"],
                 "goal": "resumes without redoing finished jobs (0 run again)"})
    load = os.getloadavg()
    notes = (f"{len(jobs)} jobs: {GRID['grid']['data']} × {GRID['grid']['attack']} × alpha "
             f"{GRID['grid']['alpha']}, labels-only LR targets, R_unif on 10,000 points. "
             "Equality compares every job's configuration and measured result except its "
             "seconds. The resume row: the grid was killed with SIGKILL once `killed after` "
             "jobs were stored, then rerun; `rerun` = jobs the second run executed, "
             "`finished jobs run again` = stored jobs whose record changed (must be 0). "
             f"Load average at start {tuple(round(x, 2) for x in load_start)}, at end "
             f"{tuple(round(x, 2) for x in load)} (2 cores shared with other sessions: "
             "wall times are pessimistic).")
    cols = ["executor", "jobs", "failed", "wall seconds (incl. start-up)",
            "results == in-process", "killed after", "rerun", "finished jobs run again",
            "goal"]
    for path in write_results(RESULTS / "grid", "Grids: executors agree; kill and resume",
                              rows, cols, notes):
        print(path)


if __name__ == "__main__":
    main()
