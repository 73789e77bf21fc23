"""Grid jobs: one cell of a grid as a hashable configuration, and how a worker runs it.

A :class:`Job` names a *task* (a registered function) and its parameters, a JSON object.
Running a job calls ``task(**params)``, which returns one JSON-able result row. A job that
raises is not an error of the grid: :func:`execute` returns its error as an
:class:`~stealml.experiments.store.Outcome`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from stealml.exceptions import ConfigurationError
from stealml.experiments.store import Outcome

__all__ = ["TASKS", "Job", "Task", "execute", "resolve_task"]


@dataclass(frozen=True)
class Task:
    """A registered job function (``"module:function"``) and its parameter check."""

    run: str
    check: str | None = None
    doc: str = ""


# name -> Task; a grid config's ``task``. Functions are imported only when used.
TASKS: dict[str, Task] = {
    "extraction": Task("stealml.experiments.cells:extraction_cell",
                       "stealml.experiments.cells:check_extraction",
                       "train a target on a data set, attack it behind an API, measure"),
    "labels-only": Task("stealml.experiments.labels_only:cell", None,
                        "one strategy and budget of the paper's Figures 4-6"),
    "table4": Task("stealml.experiments.table4:row", None,
                   "equation solving on one target at one budget (Table 4)"),
}


def _import(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot import the job function {path!r}: {exc}") from exc


def resolve_task(name: str) -> Callable[..., dict[str, Any]]:
    """The function that runs jobs of task ``name``."""
    if name not in TASKS:
        raise ConfigurationError(f"unknown task {name!r}; choose one of: "
                                 f"{', '.join(sorted(TASKS))}")
    return _import(TASKS[name].run)


@dataclass(frozen=True)
class Job:
    """One grid cell: a task and its parameters, hashable and stable across processes.

    Examples
    --------
    >>> a = Job.make("extraction", {"seed": 0, "data": "iris"})
    >>> b = Job.make("extraction", {"data": "iris", "seed": 0})
    >>> a == b, a.params["data"]
    (True, 'iris')
    >>> len(a.key("0.1.0")) == 32 and a.key("0.1.0") != a.key("0.2.0")
    True
    """

    task: str
    params_json: str

    @classmethod
    def make(cls, task: str, params: Mapping[str, Any]) -> Job:
        """A job of ``task`` with ``params`` (keys sorted; values must be JSON)."""
        try:
            text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"job parameters must be JSON values: {exc}") from exc
        return cls(task, text)

    @cached_property
    def params(self) -> dict[str, Any]:
        return json.loads(self.params_json)

    def key(self, code: str) -> str:
        """The results store's key: a hash of the task, the parameters and ``code``."""
        text = json.dumps({"task": self.task, "params": self.params_json, "code": code})
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def check(self) -> None:
        """Validate the parameters with the task's check (at configuration time)."""
        if self.task not in TASKS:
            raise ConfigurationError(f"unknown task {self.task!r}; choose one of: "
                                     f"{', '.join(sorted(TASKS))}")
        check = TASKS[self.task].check
        if check is not None:
            _import(check)(self.params)


def execute(job: Job, key: str) -> Outcome:
    """Run ``job`` here; its exception, if any, becomes the outcome's error."""
    start = time.perf_counter()
    try:
        result = resolve_task(job.task)(**job.params)
        ok, error = True, None
    except Exception as exc:  # a failed job is recorded, it does not stop the grid
        result, ok = None, False
        error = f"{type(exc).__name__}: {exc}".strip() + "\n" + traceback.format_exc(limit=-3)
    return Outcome(key=key, task=job.task, config=job.params, ok=ok, result=result,
                   error=error, seconds=time.perf_counter() - start)
