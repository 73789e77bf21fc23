"""Grids: the same results in-process, on joblib and on a real 2-worker Dask cluster; a
results store that a SIGKILLed grid resumes from without redoing finished jobs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from distributed import LocalCluster

from stealml.exceptions import ConfigurationError
from stealml.experiments.executors import DaskExecutor, JoblibExecutor, make_executor
from stealml.experiments.grid import expand, load_grid, run_grid, write_summary
from stealml.experiments.store import ResultStore

TINY: dict[str, Any] = {
    "name": "tiny",
    "fixed": {"model": "logreg", "eval_points": 500},
    "grid": {"data": ["circles", "moons"], "seed": [0, 1]},
    "jobs": [{"data": "circles", "attack": "retrain-uniform", "output": "labels",
              "alpha": 5, "seed": 3}],
}


def _grid(attack: str = "equation-solving") -> dict[str, Any]:
    return {**TINY, "fixed": {**TINY["fixed"], "attack": attack}}


def _measured(run: Any) -> list[dict[str, Any]]:
    """Each job's configuration and result, without its timing."""
    return [{k: v for k, v in {**o.config, **(o.result or {})}.items() if k != "seconds"}
            for o in run.outcomes]


def test_in_process_joblib_and_dask_agree() -> None:
    jobs = expand(_grid()).jobs
    assert len(jobs) == 5
    reference = run_grid(jobs)
    assert reference.ran == 5 and not reference.failed
    assert all(o.result and o.result["r_unif"] == 0 for o in reference.outcomes[:4])
    on_joblib = run_grid(jobs, executor=JoblibExecutor(2))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        dask = DaskExecutor(scheduler=cluster.scheduler_address)
        on_dask = run_grid(jobs, executor=dask)
        assert dask.slots == 2  # two single-threaded workers, running our code version
        assert len(cluster.workers) == 2
    assert cluster.status.name == "closed"
    assert _measured(on_joblib) == _measured(reference)
    assert _measured(on_dask) == _measured(reference)


def test_store_reuses_finished_jobs_and_records_failures(tmp_path: Path) -> None:
    config = _grid()
    config["jobs"] = [*config["jobs"], {"data": "iris", "seed": 0}]  # logreg is binary
    jobs = expand(config).jobs
    seen: list[dict[str, int]] = []
    with ResultStore(tmp_path / "r.sqlite") as store:
        first = run_grid(jobs, store, on_update=seen.append)
    assert (first.ran, first.reused, len(first.failed)) == (6, 0, 1)
    assert "logreg is binary" in (first.failed[0].error or "")
    assert seen[-1] == {"done": 5, "failed": 1, "running": 0, "total": 6}
    extended = expand({**config, "grid": {**config["grid"], "seed": [0, 1, 2]}}).jobs
    with ResultStore(tmp_path / "r.sqlite") as store:
        again = run_grid(extended, store, retry_failed=False)
    assert (again.ran, again.reused, len(again.failed)) == (2, 6, 1)
    paths = write_summary(again, tmp_path / "out")
    summary = json.loads(paths[0].read_text())
    assert summary["summary"]["reused"] == 6
    assert "logreg is binary" in paths[1].read_text()


def test_bad_grids_fail_at_configuration_time(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown attack 'nope'"):
        expand({"fixed": {"model": "logreg", "data": "circles"}, "grid": {"attack": ["nope"]}})
    with pytest.raises(ConfigurationError, match="unknown extraction job parameters: sede"):
        expand({"fixed": {"model": "logreg", "data": "circles", "attack": "lowd-meek",
                          "sede": 1}, "grid": {"alpha": [1]}})
    with pytest.raises(ConfigurationError, match="has no parameter 'chekcs'; it takes: checks"):
        expand({"fixed": {"model": "tree", "data": "circles", "attack": "top-down",
                          "attack_params": {"chekcs": 0}}, "grid": {"seed": [0]}})
    with pytest.raises(ConfigurationError, match="checks='many' is not an integer"):
        expand({"fixed": {"model": "tree", "data": "circles", "attack": "top-down",
                          "attack_params": {"checks": "many"}}, "grid": {"seed": [0]}})
    with pytest.raises(ConfigurationError, match="at most one of"):
        make_executor(jobs=2, dask_local=2)
    for config, words in (({"jobs": 3}, "jobs must be a list of tables"),
                          ({"jobs": [1]}, "jobs must be a list of tables"),
                          ({"fixed": 3}, "fixed must be a table"),
                          ({"grid": ["seed"]}, "grid must be a table")):
        with pytest.raises(ConfigurationError, match=words):
            expand(config)
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid\n")
    with pytest.raises(ConfigurationError, match="not valid toml"):
        load_grid(bad)


# -- kill and resume -----------------------------------------------------------------

SLOW = {"name": "slow", "fixed": {"model": "logreg", "output": "labels", "eval_points": 1000,
                                  "attack": "retrain-adaptive", "alpha": 5},
        "grid": {"data": ["circles", "moons"], "seed": [0, 1, 2]}}


def _finished(store: Path) -> dict[str, float]:
    """key -> when the job was recorded, for every job that finished well."""
    if not store.exists():
        return {}
    try:
        with sqlite3.connect(store) as conn:
            return dict(conn.execute("SELECT key, finished FROM jobs WHERE ok = 1"))
    except sqlite3.OperationalError:
        return {}


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.slow
def test_sigkill_then_resume_runs_only_missing_jobs(tmp_path: Path) -> None:
    config = tmp_path / "slow.json"
    config.write_text(json.dumps(SLOW))
    store = tmp_path / "results.sqlite"
    cmd = [sys.executable, "-m", "stealml", "grid", str(config), "--store", str(store),
           "--out", str(tmp_path / "out"), "--json"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_finished(store)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the grid ended before it could be killed"
    before = _finished(store)
    finished = len(before)
    assert 2 <= finished < 6

    resumed = subprocess.run([*cmd, "--dask-local", "2"], env=_env(), capture_output=True,
                             text=True, check=True)  # resumed on another executor
    summary = json.loads(resumed.stdout)
    assert summary["reused"] == finished
    assert summary["ran"] == 6 - finished
    after = _finished(store)
    assert summary["failed"] == 0 and len(after) == 6
    assert all(after[key] == when for key, when in before.items())  # none run again
    rows = json.loads((tmp_path / "out" / "grid.json").read_text())["rows"]
    assert sum(r["reused"] for r in rows) == finished
    assert all(r["status"] == "ok" and r["r_test"] < 0.2 for r in rows)
