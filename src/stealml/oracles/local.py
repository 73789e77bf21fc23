"""LocalOracle: a scikit-learn estimator or Pipeline, or an ONNX model, behind an API policy.

References: Tramèr et al., USENIX Security 2016, section 2.2 (ML services) and 4.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.base import is_regressor

from stealml.answers import to_jsonable
from stealml.defences.monitor import Monitor
from stealml.exceptions import (
    FeatureCountError,
    KeyBlocked,
    ModelFileError,
    OracleUnavailableError,
)
from stealml.ledger import Ledger
from stealml.models.onnx import OnnxModel
from stealml.oracles.base import BaseOracle, fingerprint_of
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace

__all__ = ["LocalOracle", "model_digest"]


def model_digest(model: Any) -> str:
    """sha256 of a model's serialised form (ONNX bytes, else its pickle, never loaded)."""
    if isinstance(model, OnnxModel):
        return hashlib.sha256(model.model_bytes).hexdigest()
    return hashlib.sha256(pickle.dumps(model, protocol=5)).hexdigest()


class LocalOracle(BaseOracle):
    """A fitted model answering like a prediction API.

    Parameters
    ----------
    model : estimator, Pipeline or OnnxModel
        Anything with ``predict`` (and ``predict_proba`` for probabilities). A service
        that builds its own answer records (``answer_records(X, policy)`` and
        ``reveals(policy)``, e.g. :class:`~stealml.models.TreeService`) answers itself;
        without a policy it then accepts incomplete queries (``incomplete="native"``).
    space : FeatureSpace, optional
        The API's input features. Defaults to ``n_features_in_`` continuous features in
        [-1, 1] (so the model space is the model's own input).
    policy : ApiPolicy, optional
        What the API reveals, rounding, incomplete queries, price.
    ledger : Ledger, optional
        The accountant (budget, log); a fresh one by default.
    model_input : {"encoded", "raw"}
        The model takes model-space vectors (targets stealml trains) or raw rows (a
        Pipeline with its own encoders): the oracle decodes queries for the latter.
    digest : str, optional
        Identifies the model in query logs (e.g. the sha256 of its file).
    monitor : Monitor, optional
        Extraction detection (:mod:`stealml.defences`): every paid query is observed as
        ``client``'s; once flagged, each later query gets the monitor's response, from
        the query after the flagging one (``block`` raises
        :class:`~stealml.exceptions.KeyBlocked`, which attacks take as the end of their
        budget).
    client : str
        The client (API key) the monitor records these queries under.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> target = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> oracle = LocalOracle(target)
    >>> oracle.query([[0.5]]).probabilities.shape
    (1, 2)
    """

    def __init__(self, model: Any, space: FeatureSpace | None = None,
                 policy: ApiPolicy | None = None, ledger: Ledger | None = None,
                 model_input: Literal["encoded", "raw"] = "encoded",
                 digest: str | None = None, monitor: Monitor | None = None,
                 client: str = "local") -> None:
        if not hasattr(model, "predict"):
            raise ModelFileError(f"a {type(model).__name__} cannot predict: not a model")
        n_in = getattr(model, "n_features_in_", None)
        if space is None and callable(getattr(model, "feature_space", None)):
            space = model.feature_space()  # a service that knows its raw features
        if space is None:
            if n_in is None:
                raise FeatureCountError("the model does not say how many features it takes; "
                                        "give its FeatureSpace")
            space = FeatureSpace.continuous(int(n_in))
        expected = space.n_encoded if model_input == "encoded" else space.n_features
        if n_in is not None and int(n_in) != expected:
            raise FeatureCountError(f"the model takes {n_in} features, but the space has "
                                    f"{expected}")
        self._service = callable(getattr(model, "answer_records", None))
        if self._service and policy is None:
            policy = ApiPolicy(incomplete="native")
        super().__init__(space, policy, ledger)
        self._model = model
        self._model_input = model_input
        self.raw_rows = model_input == "raw"
        self._digest = digest
        self._is_regressor = is_regressor(model)  # an OnnxModel answers it too
        self._has_proba = not self._is_regressor and hasattr(model, "predict_proba")
        n_classes = None if self.classes is None else len(self.classes)
        self.policy.check_model(n_classes, self._has_proba or self._service)
        self.monitor = monitor
        self.client = client
        self._owed = 0  # rows answered before a block, refused with their batch

    @property
    def fingerprint(self) -> str:
        if self._digest is None:
            self._digest = model_digest(self._model)
        return fingerprint_of({"model": self._digest, "policy": self.policy.describe(),
                              "space": self.space.to_dict(), "input": self._model_input})

    @property
    def classes(self) -> np.ndarray | None:
        if self._is_regressor:
            return None
        classes = getattr(self._model, "classes_", None)
        return None if classes is None else np.asarray(classes)

    @property
    def reveals(self) -> frozenset[str]:
        if self._service:
            return frozenset(self._model.reveals(self.policy))
        out = {"labels"}
        if self._is_regressor:
            out.add("values")
        elif self._has_proba and self.policy.reveals_probabilities:
            out.add("probabilities")
        if self.policy.incomplete != "reject":
            out.add("incomplete")
        return frozenset(out)

    def _model_rows(self, X: np.ndarray) -> Any:
        if self.policy.incomplete == "zeros":
            X = np.where(np.isnan(X), 0.0, X)
        return self.space.decode(X) if self._model_input == "raw" else X

    def _fetch(self, X: np.ndarray) -> Sequence[dict[str, Any]]:
        m = self.monitor
        if m is None:
            return self._answer(X, self.policy)
        if m.blocks(self.client):
            if 0 < len(X) <= self._owed:  # the rows before the flag, asked again
                self._owed = 0
                return self._answer(X, self.policy)
            raise self._blocked(len(X), 0)
        policy = m.policy_for(self.client, self.policy)
        records = list(self._answer(X, policy))
        hit = m.observe(self.client, X, [r["label"] for r in records])
        if hit is None or hit + 1 == len(X):
            return records
        if m.response == "block":
            self._owed = hit + 1
            raise self._blocked(len(X), hit + 1)
        records[hit + 1:] = self._answer(X[hit + 1:], m.flagged_policy(self.policy))
        return records

    def _blocked(self, requested: int, remaining: int) -> KeyBlocked:
        assert self.monitor is not None
        flag = self.monitor.flag(self.client) or {}
        return KeyBlocked(requested, remaining, flag.get("detector", "?"),
                          int(flag.get("at_query", 0)))

    def _answer(self, X: np.ndarray, policy: ApiPolicy) -> Sequence[dict[str, Any]]:
        if self._service:
            return self._model.answer_records(X, policy)
        Xm = self._model_rows(X)
        try:
            if self._is_regressor:
                values = policy.round(np.asarray(self._model.predict(Xm), dtype=float))
                return [{"label": float(v), "value": float(v), "raw": {"prediction": float(v)}}
                        for v in values]
            labels = np.asarray(self._model.predict(Xm))
            proba = (np.asarray(self._model.predict_proba(Xm), dtype=float)
                     if self._has_proba else None)
        except (ValueError, TypeError) as exc:
            raise OracleUnavailableError(f"the model failed to answer: {exc}") from exc
        if proba is not None and self.classes is not None:
            labels, shown = policy.apply(labels, proba, X, self.classes)
        else:
            shown = None if proba is None else policy.reveal(proba)
        classes = [to_jsonable(c) for c in (self.classes if self.classes is not None else [])]
        records = []
        for i, label in enumerate(labels):
            lab = to_jsonable(label)
            rec: dict[str, Any] = {"label": lab, "raw": {"label": lab}}
            if shown is not None:
                row = [None if np.isnan(p) else float(p) for p in shown[i]]
                rec["probabilities"] = row
                rec["raw"]["probabilities"] = {str(c): p for c, p in zip(classes, row, strict=False)
                                               if p is not None}
            records.append(rec)
        return records
