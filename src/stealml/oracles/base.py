"""The oracle protocol: the only door an attack has to a target.

An attack sends a batch of model-space queries and reads :class:`~stealml.answers.Answers`.
It sees the API's feature space, what the API reveals and the class labels the API
publishes, and nothing else: never the target's parameters. Every query goes through the
oracle's :class:`~stealml.ledger.Ledger`, which counts, prices, limits, caches and logs.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from stealml.answers import Answers
from stealml.ledger import Ledger
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace
from stealml.validation import check_queries

__all__ = ["BaseOracle", "Oracle", "fingerprint_of", "valid_rows_only"]


def fingerprint_of(description: dict[str, Any]) -> str:
    """A short stable id for a target and its API, for query logs: sha256 of the
    description's canonical JSON (non-JSON values by their ``str``)."""
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def valid_rows_only(oracle: Any) -> bool:
    """Whether an attack on ``oracle`` must send valid encodings of raw rows: the oracle
    decodes each query to raw feature values (:attr:`BaseOracle.raw_rows`) and the space
    has a categorical feature, whose one-hot block then takes no value between 0 and 1
    (an oracle without the attribute reads model-space rows)."""
    return bool(getattr(oracle, "raw_rows", False)) and \
        bool(oracle.space.categorical_columns.any())


@runtime_checkable
class Oracle(Protocol):
    """What an attack may use of a target."""

    space: FeatureSpace
    policy: ApiPolicy
    ledger: Ledger

    @property
    def classes(self) -> np.ndarray | None:
        """Class labels the API publishes (None for a regressor)."""

    @property
    def reveals(self) -> frozenset[str]:
        """What answers hold: some of labels, probabilities, values, ids, incomplete."""

    def query(self, X: Any) -> Answers:
        """Answer a batch of model-space queries (one row each)."""

    def query_raw(self, rows: Any) -> Answers:
        """Answer a batch of raw rows (feature values), encoded through the space."""


class BaseOracle(ABC):
    """Validation, accounting and answer assembly shared by every oracle.

    Subclasses implement :meth:`_fetch`, which answers validated model-space rows with
    JSON-able records (policy already applied), and :attr:`fingerprint`.
    """

    #: Whether each query reaches the model as the raw row it decodes to (an API of named
    #: feature values, a raw-input pipeline): then only valid encodings (one-hot blocks of
    #: 0/1 with a single 1) are answered as asked, and attacks draw valid rows
    #: (:func:`valid_rows_only`). False: the model reads model-space rows as sent.
    raw_rows: bool = False

    def __init__(self, space: FeatureSpace, policy: ApiPolicy | None = None,
                 ledger: Ledger | None = None) -> None:
        self.space = space
        self.policy = policy if policy is not None else ApiPolicy()
        self.ledger = ledger if ledger is not None else Ledger()

    def _bind_ledger(self) -> None:
        self.ledger.bind(self.fingerprint, price=self.policy.price)

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Identifies the target and its API policy in query logs."""

    @property
    @abstractmethod
    def classes(self) -> np.ndarray | None: ...

    @property
    @abstractmethod
    def reveals(self) -> frozenset[str]: ...

    @abstractmethod
    def _fetch(self, X: np.ndarray) -> Sequence[dict[str, Any]]: ...

    def query(self, X: Any) -> Answers:
        X = check_queries(X, self.space.n_encoded,
                          allow_missing=self.policy.incomplete != "reject")
        if self.ledger.target is None:
            self._bind_ledger()
        records = self.ledger.answer(X, self._fetch)
        return Answers.from_records(records, self.classes)

    def query_raw(self, rows: Any) -> Answers:
        return self.query(self.space.encode(rows))
