"""Where grid jobs run: in this process, on local cores (joblib), or on Dask.

Every executor takes ``(key, job)`` pairs and yields their
:class:`~stealml.experiments.store.Outcome` as each finishes, in any order; ``slots`` is how
many jobs it runs at once. Workers only compute: the process that drives the grid writes
the results store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from stealml.exceptions import ConfigurationError, GridError
from stealml.experiments.jobs import Job, execute
from stealml.experiments.store import Outcome, code_version

__all__ = ["DaskExecutor", "Executor", "InProcessExecutor", "JoblibExecutor",
           "make_executor"]

Work = Sequence[tuple[str, Job]]


class Executor(Protocol):
    """Runs jobs and yields their outcomes as they finish."""

    @property
    def slots(self) -> int:
        """How many jobs run at the same time."""

    def map(self, work: Work) -> Iterator[Outcome]:
        """Run every job; yield each outcome when it is done."""


class InProcessExecutor:
    """One job after the other, in this process (the reference for the others)."""

    slots = 1

    def map(self, work: Work) -> Iterator[Outcome]:
        for key, job in work:
            yield execute(job, key)


class JoblibExecutor:
    """``n_jobs`` local worker processes (joblib's loky backend)."""

    def __init__(self, n_jobs: int = 2) -> None:
        self.n_jobs = n_jobs

    @property
    def slots(self) -> int:
        if self.n_jobs < 1:
            raise ConfigurationError(f"--jobs must be at least 1, not {self.n_jobs}")
        return self.n_jobs

    def map(self, work: Work) -> Iterator[Outcome]:
        from joblib import Parallel, delayed

        if not work:
            return
        parallel = Parallel(n_jobs=self.slots, return_as="generator_unordered")
        yield from parallel(delayed(execute)(job, key) for key, job in work)


class DaskExecutor:
    """A Dask distributed cluster: the scheduler at ``scheduler`` (``tcp://HOST:8786``),
    or a ``LocalCluster`` of ``local_workers`` single-threaded worker processes started on
    127.0.0.1 for this grid and closed after it.

    Remote workers must run the same stealml code: results are stored under this
    process's code version, which is checked against every worker's before any job runs.
    """

    def __init__(self, scheduler: str | None = None, local_workers: int | None = None,
                 timeout: float = 10.0) -> None:
        self.scheduler = scheduler
        self.local_workers = local_workers
        self.timeout = timeout
        self._slots = local_workers or 1

    @property
    def slots(self) -> int:
        return self._slots

    def _connect(self) -> tuple[Any, Any]:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigurationError("Dask grids need the dask extra: "
                                     "pip install 'stealml[dask]'") from exc
        if (self.scheduler is None) == (self.local_workers is None):
            raise ConfigurationError("give a Dask scheduler address or a local worker count")
        if self.local_workers is not None:
            if self.local_workers < 1:
                raise ConfigurationError(
                    f"--dask-local needs at least 1 worker, not {self.local_workers}")
            cluster = LocalCluster(n_workers=self.local_workers, threads_per_worker=1,
                                   processes=True, host="127.0.0.1", dashboard_address=None)
            return cluster, Client(cluster)
        try:
            client = Client(self.scheduler, timeout=self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise GridError(f"cannot reach the Dask scheduler at {self.scheduler}: "
                            f"{exc}") from exc
        return None, client

    def map(self, work: Work) -> Iterator[Outcome]:
        from distributed import as_completed

        cluster, client = self._connect()
        try:
            self._check_workers(client)
            futures = [client.submit(execute, job, key, key=f"stealml-job-{key}", pure=False)
                       for key, job in work]
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def _check_workers(self, client: Any) -> None:
        info = client.scheduler_info()
        workers = info.get("workers", {})
        self._slots = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        if not workers:
            return
        ours = code_version()
        theirs = set(client.run(code_version).values())
        if theirs != {ours}:
            raise GridError(f"the Dask workers run other stealml code ({', '.join(theirs)}) "
                            f"than this process ({ours})")


def make_executor(jobs: int | None = None, dask_local: int | None = None,
                  scheduler: str | None = None) -> Executor:
    """The executor the command line asks for (in-process when nothing is given)."""
    given = [x is not None for x in (jobs, dask_local, scheduler)]
    if sum(given) > 1:
        raise ConfigurationError("give at most one of --jobs, --dask-local and --scheduler")
    if dask_local is not None or scheduler is not None:
        return DaskExecutor(scheduler=scheduler, local_workers=dask_local)
    if jobs is not None and jobs != 1:
        if jobs < 1:
            raise ConfigurationError(f"--jobs must be at least 1, not {jobs}")
        return JoblibExecutor(jobs)
    return InProcessExecutor()
