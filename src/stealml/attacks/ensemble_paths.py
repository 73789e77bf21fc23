"""Tree by tree: extract an ensemble whose API leaks each member tree's leaf identity.

An API serving a forest may answer, besides the ensemble's label and probabilities, each
tree's own prediction and confidence (BigML's ensembles did). Each tree's answers then
form a leaf-identity oracle of their own: the attack views the API through one tree at a
time and runs the top-down attack on it (with incomplete queries) or bottom-up path
finding (without), every answer paid once at the ensemble's ledger, repeats free. The
trees found are rebuilt as scikit-learn trees and put together as the target was:

* a random forest (or extra trees) becomes a ``RandomForestClassifier`` averaging the
  trees' leaf distributions, as the API showed them;
* a gradient-boosted model becomes a ``GradientBoostingClassifier``: its trees answer
  their leaf values, and the two numbers the API does not show, the initial score and
  the learning rate, are solved from the ensemble's probabilities on a few complete
  queries (its log-odds are linear in them: equation solving on top of path finding).

When the API reveals only the ensemble's label and probabilities, no identity leaks:
the answer is a sum over many leaves, and the retraining attacks are what remains.

References: Tramèr et al., USENIX Security 2016, section 4.2 (path finding, top-down),
section 4.1 (equation solving) and section 7 ("Ensemble methods", left open there).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from stealml.answers import Answers
from stealml.attacks.base import Attack, Querier
from stealml.attacks.path_finding import PathFinding
from stealml.attacks.top_down import TopDown
from stealml.exceptions import ConfigurationError, OracleCapabilityError, UnsupportedModelError
from stealml.ledger import Ledger
from stealml.models.ensemble_service import EnsembleService, serves_as_ensemble
from stealml.models.sklearn_export import to_gradient_boosting, to_random_forest
from stealml.models.tree_service import identity_key
from stealml.oracles.base import Oracle
from stealml.policies import ApiPolicy
from stealml.random import RandomState, as_generator
from stealml.space import FeatureSpace

__all__ = ["EnsemblePaths"]

METHODS = ("auto", "top-down", "path-finding")
MIN_PROBABILITY = 1e-4  # boosting calibration: answers below this are too rounded to use


class _Recorder:
    """The API as the attack sees it, keeping every complete query and its answer."""

    def __init__(self, oracle: Oracle) -> None:
        self.oracle = oracle
        self.X: list[np.ndarray] = []
        self.P: list[np.ndarray] = []

    def query(self, X: Any) -> Answers:
        X = np.asarray(X, dtype=float)
        answers = self.oracle.query(X)
        self.keep(X, answers)
        return answers

    def keep(self, X: np.ndarray, answers: Answers) -> None:
        complete = ~np.isnan(X).any(axis=1)
        if answers.probabilities is not None and complete.any():
            self.X.append(X[complete])
            self.P.append(answers.probabilities[complete])

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.X:
            return np.empty((0, 0)), np.empty((0, 0))
        return np.vstack(self.X), np.vstack(self.P)


class _TreeView:
    """One member tree's answers as a leaf-identity oracle (the Oracle protocol)."""

    def __init__(self, recorder: _Recorder, index: int, regressor: bool) -> None:
        self._recorder = recorder
        self._index = index
        self._regressor = regressor
        oracle = recorder.oracle
        self.space: FeatureSpace = oracle.space
        self.policy: ApiPolicy = oracle.policy
        self.ledger: Ledger = oracle.ledger

    @property
    def classes(self) -> np.ndarray | None:
        return None if self._regressor else self._recorder.oracle.classes

    @property
    def reveals(self) -> frozenset[str]:
        out = {"labels", "ids", "values" if self._regressor else "probabilities"}
        return frozenset(out | ({"incomplete"} & self._recorder.oracle.reveals))

    def query(self, X: Any) -> Answers:
        answers = self._recorder.query(X)
        records = [_trees_of(raw)[self._index] for raw in answers.raw or []]
        return Answers.from_records(records, self.classes)

    def query_raw(self, rows: Any) -> Answers:
        return self.query(self.space.encode(rows))


def _disagreements(tree: Any, X: np.ndarray, expected: list[str]) -> int:
    """How many rows of ``X`` an extracted tree answers with another identity."""
    leaves = tree.leaves_
    got = []
    for k in tree.leaf_index(X):
        leaf = leaves[int(k)]
        got.append(identity_key(leaf["value"] if "value" in leaf else leaf["label"],
                                leaf["confidence"]))
    return sum(g != e for g, e in zip(got, expected, strict=True))


def _trees_of(raw: Any) -> list[dict[str, Any]]:
    trees = raw.get("trees") if isinstance(raw, dict) else None
    if not trees:
        raise OracleCapabilityError("the API's answers carry no per-tree answers "
                                    "(raw['trees']): its trees' identities do not leak")
    return list(trees)


class EnsemblePaths(Attack):
    """Extract a tree ensemble tree by tree from per-tree leaf identities.

    Parameters
    ----------
    epsilon : float
        Precision of the threshold searches, in raw units (see :class:`TopDown`).
    method : {"auto", "top-down", "path-finding"}
        How each tree is extracted; "auto" uses top-down when the API accepts
        incomplete queries, else bottom-up path finding.
    verify : int
        Complete random queries bought first: each answer shows every tree's leaf
        identity at once, so each extracted tree is checked against them and, where it
        disagrees, extracted again with other random choices (``retries`` times; repeated
        queries are not paid twice). Boosting also solves its initial score and learning
        rate on them.
    retries : int
        Most extra extractions of a tree that disagrees with the verification answers.
    max_leaves : int
        Per tree: more leaves than this and the target is not a tree ensemble.
    random_state : int or Generator, optional
        Seeds the per-tree searches and the calibration queries.
    batch_size : int, optional
        Most queries per request.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from stealml.oracles import LocalOracle
    >>> X, y = [[-1.], [-.5], [.5], [1.], [.9]], [0, 1, 1, 0, 0]
    >>> forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    >>> api = LocalOracle(EnsembleService(forest, per_tree=True))
    >>> result = EnsemblePaths(random_state=0).run(api)
    >>> result.complete, len(result.model.estimators_)
    (True, 3)
    """

    name: ClassVar[str] = "ensemble-paths"
    requires: ClassVar[frozenset[str]] = frozenset({"tree-ids"})

    def __init__(self, epsilon: float = 1e-3, method: str = "auto", verify: int = 50,
                 retries: int = 2, max_leaves: int = 10_000, random_state: RandomState = None,
                 batch_size: int | None = None) -> None:
        self.epsilon = epsilon
        self.method = method
        self.verify = verify
        self.retries = retries
        self.max_leaves = max_leaves
        self.random_state = random_state
        self.batch_size = batch_size

    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        return n_columns

    @classmethod
    def supports(cls, model: Any) -> bool:
        return serves_as_ensemble(model) or isinstance(model, EnsembleService)

    def _tree_attack(self, oracle: Oracle, rng: np.random.Generator) -> Attack:
        if self.method not in METHODS:
            raise ConfigurationError(f"method must be one of {', '.join(METHODS)}, "
                                     f"not {self.method!r}")
        method = self.method
        if method == "auto":
            method = "top-down" if "incomplete" in oracle.reveals else "path-finding"
        if method == "top-down":
            return TopDown(epsilon=self.epsilon, max_leaves=self.max_leaves, random_state=rng,
                           batch_size=self.batch_size)
        return PathFinding(epsilon=self.epsilon, max_leaves=self.max_leaves,
                           random_state=rng, batch_size=self.batch_size)

    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        rng = as_generator(self.random_state)
        self._tree_attack(oracle, rng)  # a bad method fails before any query
        if oracle.classes is None:
            raise UnsupportedModelError("ensemble-paths extracts classifiers; the API "
                                        "publishes no classes")
        recorder = _Recorder(oracle)
        checks = oracle.space.sample_encoded(max(1, self.verify), rng)
        asked, blocks = Querier(oracle, self.batch_size).ask(checks)
        records = [_trees_of(raw) for block in blocks for raw in block.raw or []]
        for block in blocks:
            recorder.keep(asked[:len(block)], block)
            asked = asked[len(block):]
        if not records:
            raise UnsupportedModelError("the budget allows no query")
        checks = checks[:len(records)]
        regressor = "value" in records[0][0]
        trees, complete, redone = [], len(records) == len(checks), 0
        for index in range(len(records[0])):
            view = _TreeView(recorder, index, regressor)
            expected = [str(r[index].get("id")) for r in records]
            best, best_bad = None, None
            for _ in range(1 + max(0, self.retries)):
                result = self._tree_attack(oracle, rng).run(view)
                # a tree cut off before its first answer (e.g. a blocked key) has no
                # leaves to check
                bad = (_disagreements(result.model, checks, expected)
                       if result.model.leaves_ else len(checks))
                if best_bad is None or bad < best_bad:
                    best, best_bad = result, bad
                if bad == 0 or not result.complete:
                    break
                redone += 1
            assert best is not None
            if best.model.leaves_:  # a tree cut off before its first answer is left out
                trees.append(best.model)
            if not best.complete:
                complete = False
                break
        if not trees:
            raise UnsupportedModelError("the budget ran out before one tree was extracted")
        members = records[0]
        info: dict[str, Any] = {"trees": len(members), "trees_extracted": len(trees),
                                "leaves": [t.n_leaves for t in trees],
                                "re-extracted": redone,
                                "kind": "boosting" if regressor else "forest"}
        classes = np.asarray(oracle.classes)
        if not regressor:
            return to_random_forest(trees, classes), complete, info
        k = 1 if len(classes) == 2 else len(classes)
        stages = trees[:len(trees) - len(trees) % k]  # whole boosting stages only
        if not stages:
            raise UnsupportedModelError("the budget ran out before one boosting stage was "
                                        "extracted")
        init, rate, fit = self._calibrate(recorder, stages, k, rng)
        info.update(calibration=fit)
        return to_gradient_boosting(stages, classes, init, rate), complete, info

    def _calibrate(self, recorder: _Recorder, trees: list[Any], k: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, float, dict[str, Any]]:
        """Initial score and learning rate from the ensemble's probabilities: its raw
        score is init + rate * (sum of the trees' values), linear in both (``k`` trees
        a stage: 1 for two classes, else one a class)."""
        need = max(self.verify, k + 2)
        X, _ = recorder.data()
        if len(X) < need:
            extra = recorder.oracle.space.sample_encoded(need - len(X), rng)
            asked, answers = Querier(recorder.oracle).ask(extra)  # what the budget pays
            for got in answers:
                recorder.keep(asked[:len(got)], got)
                asked = asked[len(got):]
        X, P = recorder.data()
        sums = np.zeros((len(X), k))
        for j, tree in enumerate(trees):
            sums[:, j % k] += tree.predict(X)
        with np.errstate(divide="ignore"):
            logp = np.log(P)
        if k == 1:
            rows = (P[:, 1] > MIN_PROBABILITY) & (P[:, 0] > MIN_PROBABILITY)
            A = np.column_stack([np.ones(rows.sum()), sums[rows, 0]])
            b = logp[rows, 1] - logp[rows, 0]
        else:
            rows = np.asarray((P > MIN_PROBABILITY).all(axis=1))
            n = int(rows.sum())
            # log p_j - log p_0 = (init_j - init_0) + rate (S_j - S_0), j = 1..k-1
            A = np.zeros((n * (k - 1), k))
            b = np.zeros(n * (k - 1))
            for j in range(1, k):
                part = slice((j - 1) * n, j * n)
                A[part, j - 1] = 1.0
                A[part, -1] = sums[rows, j] - sums[rows, 0]
                b[part] = logp[rows, j] - logp[rows, 0]
        if len(b) < A.shape[1]:
            raise UnsupportedModelError("too few unsaturated answers to solve the boosted "
                                        "model's initial score and learning rate")
        sol, *_ = np.linalg.lstsq(A, b, rcond=None)
        residual = float(np.max(np.abs(A @ sol - b))) if len(b) else 0.0
        init = np.array([sol[0]]) if k == 1 else np.r_[0.0, sol[:-1]]
        return init, float(sol[-1]), {"rows": int(rows.sum()), "learning_rate": float(sol[-1]),
                                      "max_residual": residual}
