"""What every attack shares: the result it returns, what it needs, how it spends a budget."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from stealml.answers import Answers
from stealml.exceptions import OracleCapabilityError, QueryBudgetExceeded
from stealml.oracles.base import Oracle

__all__ = ["Attack", "ExtractionResult", "Querier"]


@dataclass
class ExtractionResult:
    """What an attack learned and what it paid.

    ``complete`` is False when the budget ran out before the attack finished: ``model``
    is then the best model from the answers bought so far.
    """

    attack: str
    model: Any
    queries: int
    replayed: int
    cached: int
    cost: float
    seconds: float
    complete: bool
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"attack": self.attack, "queries": self.queries, "replayed": self.replayed,
                "cached": self.cached, "cost": self.cost, "seconds": self.seconds,
                "complete": self.complete, **self.info}


class Querier:
    """Spends an oracle's budget in batches and remembers every answer it got.

    ``ask`` answers as many of the rows as the budget allows: when the ledger refuses a
    batch, the querier retries with what remains, then stops with ``exhausted`` set.
    """

    def __init__(self, oracle: Oracle, batch_size: int | None = None) -> None:
        self.oracle = oracle
        self.batch_size = batch_size
        self.exhausted = False

    def _batches(self, n: int) -> Iterator[slice]:
        step = n if not self.batch_size else self.batch_size
        for start in range(0, n, max(step, 1)):
            yield slice(start, min(start + step, n))

    def ask(self, X: np.ndarray) -> tuple[np.ndarray, list[Answers]]:
        """Query the rows of ``X``; returns the rows answered (a prefix) and the answers."""
        answers: list[Answers] = []
        done = 0
        for sl in self._batches(len(X)):
            if self.exhausted:
                break
            batch = X[sl]
            try:
                answers.append(self.oracle.query(batch))
                done = sl.stop
            except QueryBudgetExceeded as exc:
                # spend what is left on a prefix: it holds at most `remaining` new rows
                self.exhausted = True
                k = min(exc.remaining, len(batch))
                if k > 0:
                    answers.append(self.oracle.query(batch[:k]))
                    done = sl.start + k
        return X[:done], answers


class Attack(ABC):
    """An extraction attack: configured in ``__init__``, run with :meth:`run`.

    Subclasses set ``name``, ``requires`` (what the oracle must reveal) and implement
    :meth:`_run`, :meth:`n_unknowns` and :meth:`supports`.
    """

    name: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset({"labels"})
    classes_only: ClassVar[bool] = False  # learns class labels: no use on regression values

    def get_params(self) -> dict[str, Any]:
        return dict(vars(self))

    @abstractmethod
    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        """Parameters of the model class to extract (what alpha multiplies)."""

    @classmethod
    @abstractmethod
    def supports(cls, model: Any) -> bool:
        """Whether this attack applies to a target model of this kind."""

    @abstractmethod
    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        """Extract: return the model, whether the attack completed, and extra info."""

    def check_oracle(self, oracle: Oracle) -> None:
        missing = self.requires - oracle.reveals
        if missing:
            raise OracleCapabilityError(
                f"attack {self.name!r} needs the API to reveal {', '.join(sorted(missing))}, "
                f"but it reveals only {', '.join(sorted(oracle.reveals))}")

    def run(self, oracle: Oracle) -> ExtractionResult:
        """Run the attack against ``oracle`` and return what it extracted."""
        self.check_oracle(oracle)
        ledger = oracle.ledger
        before = (ledger.queries, ledger.replayed, ledger.cached, ledger.cost)
        start = time.perf_counter()
        querier = Querier(oracle, getattr(self, "batch_size", None))
        model, complete, info = self._run(oracle, querier)
        return ExtractionResult(
            attack=self.name, model=model,
            queries=ledger.queries - before[0], replayed=ledger.replayed - before[1],
            cached=ledger.cached - before[2], cost=ledger.cost - before[3],
            seconds=time.perf_counter() - start,
            complete=complete and not querier.exhausted, info=info)
