"""EnsembleService: a fitted forest or boosted ensemble answering like an ML service.

The answer to a query is the ensemble's label and class probabilities (what any API
serving an ensemble returns). With ``per_tree=True`` it also carries, in
``raw["trees"]``, each member tree's own answer with BigML's tree semantics (see
:class:`~stealml.models.tree_service.TreeService`): its prediction and confidence (the
leaf's identity), its class distribution (a forest's trees) or its value (a boosted
ensemble's regression trees), and the fields its path used. BigML's ensembles answered
this way: each model's prediction with its confidence. Incomplete queries walk every
tree to its first node splitting on a missing feature; the ensemble's answer is then
aggregated from those nodes.

Which ensembles: ``RandomForestClassifier`` and ``ExtraTreesClassifier`` (mean of the
trees' leaf distributions) and ``GradientBoostingClassifier`` (initial score plus the
learning rate times the sum of the trees' values, through the sigmoid or softmax).

References: Tramèr et al., USENIX Security 2016, sections 4.2 (identity oracles) and 7
("Ensemble methods"); BigML's ensemble predictions (per-model predictions and
confidences).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
)

from stealml.answers import to_jsonable
from stealml.exceptions import UnsupportedModelError
from stealml.models.tree_service import TreeService
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace

__all__ = ["EnsembleService", "serves_as_ensemble"]

FORESTS = (RandomForestClassifier, ExtraTreesClassifier)


def serves_as_ensemble(model: Any) -> bool:
    """Whether ``model`` is an ensemble of trees an :class:`EnsembleService` can serve."""
    return isinstance(model, (*FORESTS, GradientBoostingClassifier))


class EnsembleService(BaseEstimator):
    """A fitted tree ensemble behind an API that may reveal each tree's answer.

    Give it to :class:`~stealml.oracles.LocalOracle`.

    Parameters
    ----------
    ensemble : RandomForestClassifier, ExtraTreesClassifier or GradientBoostingClassifier
        Fitted on model-space rows (``FeatureSpace.encode``).
    space : FeatureSpace, optional
        The raw features behind the model space (default: continuous inputs).
    per_tree : bool
        Answers also carry every member tree's answer (``raw["trees"]``), and so the
        identity of the leaf each tree reached, when the policy reveals probabilities.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from stealml.oracles import LocalOracle
    >>> X, y = [[-1.0], [-0.5], [0.5], [1.0]], [0, 0, 1, 1]
    >>> forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    >>> oracle = LocalOracle(EnsembleService(forest, per_tree=True))
    >>> len(oracle.query([[0.9]]).raw[0]["trees"])
    3
    """

    def __init__(self, ensemble: Any, space: FeatureSpace | None = None,
                 per_tree: bool = False) -> None:
        self.ensemble = ensemble
        self.space = space
        self.per_tree = per_tree

    # -- what it is -------------------------------------------------------------------
    def _check(self) -> Any:
        if not serves_as_ensemble(self.ensemble) or not hasattr(self.ensemble, "estimators_"):
            raise UnsupportedModelError(
                f"an EnsembleService needs a fitted random forest, extra-trees or gradient "
                f"boosting classifier, not a {type(self.ensemble).__name__}")
        return self.ensemble

    @property
    def is_boosted(self) -> bool:
        return isinstance(self.ensemble, GradientBoostingClassifier)

    def __sklearn_tags__(self) -> Any:
        return self.ensemble.__sklearn_tags__()

    @property
    def n_features_in_(self) -> int:
        return int(self.ensemble.n_features_in_)

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.ensemble.classes_)

    @property
    def n_trees(self) -> int:
        return len(self.trees())

    def trees(self) -> list[Any]:
        """The member trees in answer order (boosting: stage by stage, class by class).

        A forest's trees are fitted on class indices; each is answered as a shallow copy
        that names the ensemble's classes instead.
        """
        model = self._check()
        if self.is_boosted:
            return list(np.ravel(model.estimators_))
        out = []
        for tree in model.estimators_:
            named = copy.copy(tree)
            named.classes_ = np.asarray(model.classes_)
            out.append(named)
        return out

    def feature_space(self) -> FeatureSpace:
        """The raw features the service speaks in."""
        return self.space if self.space is not None else FeatureSpace.continuous(
            self.n_features_in_)

    def reveals(self, policy: ApiPolicy) -> frozenset[str]:
        """What answers hold under ``policy`` (see :attr:`Oracle.reveals`)."""
        out = {"labels"}
        if policy.reveals_probabilities:
            out.add("probabilities")
            if self.per_tree:
                out.add("tree-ids")
        if policy.incomplete != "reject":
            out.add("incomplete")
        return frozenset(out)

    # -- predicting -------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self._check().predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self._check().predict_proba(X))

    def _boosting_init(self) -> np.ndarray:
        """The boosted ensemble's initial raw score (a constant: the class prior), from
        its decision at one point minus its trees' share there; computed once."""
        cached = getattr(self, "_init", None)
        if cached is not None:
            return np.asarray(cached)
        model = self._check()
        x0 = np.zeros((1, self.n_features_in_))
        raw = np.asarray(model.decision_function(x0), dtype=float).reshape(1, -1)
        stages = np.asarray(model.estimators_)
        total = np.array([[sum(float(t.predict(x0)[0]) for t in stages[:, k])
                           for k in range(stages.shape[1])]])
        self._init = np.asarray(raw - model.learning_rate * total)[0]
        return self._init

    def _aggregate(self, services: list[TreeService], nodes: list[np.ndarray]) -> np.ndarray:
        """Class probabilities of the ensemble from each tree's stop nodes."""
        if not self.is_boosted:
            return np.mean([s._node_outputs(n)[2] for s, n in zip(services, nodes,
                                                                 strict=True)], axis=0)
        model = self._check()
        k = np.asarray(model.estimators_).shape[1]
        raw = np.tile(self._boosting_init(), (len(nodes[0]), 1))
        for j, (s, n) in enumerate(zip(services, nodes, strict=True)):
            raw[:, j % k] += model.learning_rate * s._node_outputs(n)[0].astype(float)
        if k == 1:
            p1 = expit(raw[:, 0])
            return np.stack([1 - p1, p1], axis=1)
        return np.asarray(softmax(raw, axis=1))

    # -- answering --------------------------------------------------------------------
    def answer_records(self, X: np.ndarray, policy: ApiPolicy) -> list[dict[str, Any]]:
        """Answer validated model-space rows with JSON-able records, ``policy`` applied."""
        X = np.asarray(X, dtype=float)
        if policy.incomplete == "zeros":
            X = np.where(np.isnan(X), 0.0, X)
        services = [TreeService(t, self.feature_space()) for t in self.trees()]
        missing = np.isnan(X).any(axis=1)
        if missing.any():
            proba = self._aggregate(services, [s.stop_nodes(X) for s in services])
            if not missing.all():  # complete rows: the ensemble's own arithmetic
                proba[~missing] = self.predict_proba(X[~missing])
        else:
            proba = self.predict_proba(X)
        classes = self.classes_
        top, shown = policy.apply(classes[np.argmax(proba, axis=1)], proba, X, classes)
        labels = to_jsonable(top)
        per_tree = self.per_tree and policy.reveals_probabilities
        trees = [s.answer_records(X, policy) for s in services] if per_tree else []
        names = [str(c) for c in to_jsonable(classes)]
        records = []
        for i, label in enumerate(labels):
            raw: dict[str, Any] = {"prediction": label}
            rec: dict[str, Any] = {"label": label, "raw": raw}
            if shown is not None:
                row = [None if np.isnan(p) else float(p) for p in shown[i]]
                rec["probabilities"] = row
                raw["probabilities"] = {c: p for c, p in zip(names, row, strict=True)
                                        if p is not None}
            if per_tree:
                raw["trees"] = [t[i] for t in trees]
            records.append(rec)
        return records
