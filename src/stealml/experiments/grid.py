"""Grids of experiments that scale out and resume: ``stealml grid CONFIG``.

Every cell of a grid (data set, model, attack, budget, seed, defence, ...) is a
:class:`~stealml.experiments.jobs.Job`. :func:`run_grid` looks each job up in a
:class:`~stealml.experiments.store.ResultStore` (keyed by the job's configuration and the
code version), runs only the missing ones on an executor (in-process, joblib, Dask) and
records each as it finishes, so a killed or extended grid only runs what is missing.
A job that fails is recorded with its error and the grid goes on.

A grid configuration (TOML or JSON)::

    name = "labels-only, two data sets"
    task = "extraction"            # a name of stealml.experiments.jobs.TASKS
    [fixed]                        # parameters of every job
    model = "logreg"
    output = "labels"
    [grid]                         # every combination of these is a job
    data = ["circles", "moons"]
    attack = ["retrain-uniform", "lowd-meek"]
    alpha = [1, 10]
    seed = [0, 1]

A ``jobs = [{...}, ...]`` list adds cells one by one (merged over ``fixed``).
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stealml.exceptions import ConfigurationError
from stealml.experiments.executors import Executor, InProcessExecutor
from stealml.experiments.jobs import Job
from stealml.experiments.store import Outcome, ResultStore, code_version
from stealml.experiments.tables import write_results

__all__ = ["GridRun", "GridSpec", "expand", "load_grid", "run_grid", "write_summary"]


@dataclass
class GridSpec:
    """A named list of jobs."""

    name: str
    jobs: list[Job]


def expand(config: Mapping[str, Any]) -> GridSpec:
    """The jobs of a grid configuration (see the module docstring), checked.

    Examples
    --------
    >>> spec = expand({"fixed": {"model": "logreg", "attack": "equation-solving"},
    ...                "grid": {"data": ["circles", "moons"], "seed": [0, 1]}})
    >>> len(spec.jobs), spec.jobs[0].params["data"], spec.jobs[-1].params["seed"]
    (4, 'circles', 1)
    """
    unknown = set(config) - {"name", "task", "fixed", "grid", "jobs"}
    if unknown:
        raise ConfigurationError(f"unknown grid keys: {', '.join(sorted(unknown))} (use "
                                 "name, task, fixed, grid, jobs)")
    for key in ("fixed", "grid"):
        if not isinstance(config.get(key, {}), Mapping):
            raise ConfigurationError(f"{key} must be a table, not {config[key]!r}")
    jobs_given = config.get("jobs", [])
    if not isinstance(jobs_given, list) or not all(isinstance(c, Mapping) for c in jobs_given):
        raise ConfigurationError(f"jobs must be a list of tables (one per job), not "
                                 f"{jobs_given!r}")
    task = str(config.get("task", "extraction"))
    fixed = dict(config.get("fixed", {}))
    grid = dict(config.get("grid", {}))
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigurationError(f"grid.{name} must be a non-empty list")
    cells: list[dict[str, Any]] = []
    if grid:
        names = list(grid)
        cells += [dict(zip(names, combo, strict=True))
                  for combo in itertools.product(*(grid[n] for n in names))]
    cells += [dict(c) for c in jobs_given]
    if not cells:
        raise ConfigurationError("the grid has no jobs: give [grid] lists or a jobs list")
    jobs = list(dict.fromkeys(Job.make(task, {**fixed, **cell}) for cell in cells))
    for job in jobs:
        job.check()
    return GridSpec(str(config.get("name", "grid")), jobs)


def load_grid(path: str | Path) -> GridSpec:
    """Read a grid configuration from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the grid file {path}: {exc}") from exc
    try:
        config = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path} is not valid {path.suffix[1:] or 'JSON'}: "
                                 f"{exc}") from exc
    if not isinstance(config, dict):
        raise ConfigurationError(f"{path} must hold a table/object, not a list")
    config.setdefault("name", path.stem)
    return expand(config)


@dataclass
class GridRun:
    """What a grid run did: every job's outcome (in the grid's order) and the counts."""

    name: str
    code: str
    outcomes: list[Outcome]
    ran: int = 0
    reused: int = 0
    seconds: float = 0.0
    failed: list[Outcome] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per finished job: its configuration, then its result."""
        return [{**o.config, **(o.result or {})} for o in self.outcomes if o.ok]

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "code": self.code, "jobs": len(self.outcomes),
                "ran": self.ran, "reused": self.reused, "failed": len(self.failed),
                "seconds": self.seconds}


Counts = dict[str, int]


def run_grid(jobs: Sequence[Job], store: ResultStore | None = None,
             executor: Executor | None = None, name: str = "grid",
             retry_failed: bool = True, progress: bool | None = None,
             on_update: Callable[[Counts], None] | None = None) -> GridRun:
    """Run every job not already in ``store``; record each one as it finishes.

    Parameters
    ----------
    jobs : sequence of Job
        The grid's cells.
    store : ResultStore, optional
        Finished jobs (default: an in-memory store, nothing reused).
    executor : Executor, optional
        Where jobs run (default: in this process).
    retry_failed : bool
        Run jobs that failed in an earlier run again (default) or keep their error.
    progress : bool, optional
        Show a progress bar on stderr (default: when stderr is a terminal).
    on_update : callable, optional
        Called with ``{"done", "running", "failed", "total"}`` after each job.
    """
    store = store if store is not None else ResultStore()
    executor = executor if executor is not None else InProcessExecutor()
    code = code_version()
    start = time.perf_counter()
    keys = [job.key(code) for job in jobs]
    found: dict[str, Outcome] = {}
    todo: list[tuple[str, Job]] = []
    for key, job in dict(zip(keys, jobs, strict=True)).items():
        old = store.get(key)
        if old is not None and (old.ok or not retry_failed):
            found[key] = old
        else:
            todo.append((key, job))
    run = GridRun(name=name, code=code, outcomes=[], reused=len(found))
    counts: Counts = {"done": sum(o.ok for o in found.values()),
                      "failed": sum(not o.ok for o in found.values()),
                      "running": 0, "total": len(found) + len(todo)}
    with _bar(name, counts, progress) as update:
        counts["running"] = min(executor.slots, len(todo))
        update(counts)
        finished = 0
        for outcome in executor.map(todo):
            store.put(outcome, code)
            found[outcome.key] = outcome
            finished += 1
            counts["done" if outcome.ok else "failed"] += 1
            counts["running"] = min(executor.slots, len(todo) - finished)
            update(counts)
            if on_update is not None:
                on_update(dict(counts))
    run.ran = finished
    run.outcomes = [found[k] for k in dict.fromkeys(keys)]
    run.failed = [o for o in run.outcomes if not o.ok]
    run.seconds = time.perf_counter() - start
    return run


@contextmanager
def _bar(name: str, counts: Counts, enabled: bool | None) -> Iterator[Callable[[Counts], None]]:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda c: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.fields[done]} done, {task.fields[running]} running, "
                          "{task.fields[failed]} failed of {task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(name, total=counts["total"], done=0, running=0, failed=0)

        def update(c: Counts) -> None:
            bar.update(task, completed=c["done"] + c["failed"], done=c["done"],
                       running=c["running"], failed=c["failed"])

        yield update


def write_summary(run: GridRun, out: str | Path) -> list[Path]:
    """``grid.json`` (every job: configuration, result or error) and ``grid.md`` in
    ``out``; returns the paths."""
    out = Path(out)
    rows = []
    for o in run.outcomes:
        row: dict[str, Any] = {**o.config, **(o.result or {})}
        row["status"] = "ok" if o.ok else "failed"
        row["reused"] = o.reused
        if not o.ok:
            row["error"] = (o.error or "").splitlines()[0] if o.error else ""
        rows.append(row)
    varying = [k for k in dict.fromkeys(k for o in run.outcomes for k in o.config)
               if len({json.dumps(o.config.get(k), sort_keys=True)
                       for o in run.outcomes}) > 1]
    results = list(dict.fromkeys(k for o in run.outcomes for k in (o.result or {})
                                 if not isinstance((o.result or {}).get(k), (dict, list))))
    columns = [*varying, *results, "status"]
    if run.failed:
        columns.append("error")
    s = run.summary()
    notes = (f"{s['jobs']} jobs: {s['ran']} run now, {s['reused']} reused from the results "
             f"store, {s['failed']} failed; {s['seconds']:.1f} s. Code version {run.code}.")
    paths = write_results(out / "grid", f"Grid: {run.name}", rows, columns, notes)
    meta_path = out / "grid.json"
    data = json.loads(meta_path.read_text())
    data["summary"] = s
    meta_path.write_text(json.dumps(data, indent=2) + "\n")
    return list(paths)
