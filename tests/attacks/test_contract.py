"""Checks every registered attack must pass, like scikit-learn's estimator_checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.tree import BaseDecisionTree

from stealml.answers import Answers
from stealml.attacks import ATTACKS
from stealml.attacks._discovery_map import DiscoveredExtraction
from stealml.exceptions import ConfigurationError, OracleCapabilityError
from stealml.ledger import Ledger
from stealml.models.ensemble_service import EnsembleService
from stealml.models.tree_service import TreeService
from stealml.oracles import LocalOracle
from stealml.policies import ApiPolicy
from stealml.space import FeatureSpace


class ProtocolOnlyOracle:
    """Forwards exactly the Oracle protocol, so an attack that reaches for anything else
    (the model, its coefficients) fails with AttributeError."""

    __slots__ = ("_inner", "calls")

    def __init__(self, inner: LocalOracle) -> None:
        self._inner = inner
        self.calls = 0

    @property
    def space(self) -> FeatureSpace:
        return self._inner.space

    @property
    def policy(self) -> ApiPolicy:
        return self._inner.policy

    @property
    def ledger(self) -> Ledger:
        return self._inner.ledger

    @property
    def classes(self) -> np.ndarray | None:
        return self._inner.classes

    @property
    def reveals(self) -> frozenset[str]:
        return self._inner.reveals

    def query(self, X: Any) -> Answers:
        self.calls += 1
        return self._inner.query(X)

    def query_raw(self, rows: Any) -> Answers:
        self.calls += 1
        return self._inner.query_raw(rows)


@pytest.fixture
def contract_targets(binary_logreg, softmax_logreg, small_tree, mixed_space) -> list[Any]:
    rng = np.random.default_rng(0)
    X = mixed_space.sample_encoded(200, rng)
    svc = SVC(kernel="rbf").fit(X, X[:, 0] + X[:, 1] > 0)
    # a softmax behind server-side quantile bins and one-hot encoding (Amazon)
    binned = Pipeline([("extraction", DiscoveredExtraction(
        ["bins", "bins", "onehot", "onehot"], [1, 1, 2, 3], [[-0.4, 0.3], [0.0], [], []])),
        ("model", LogisticRegression(max_iter=2000))]).fit(
        X, np.digitize(X[:, 0] - X[:, 1] + X[:, 5], [-0.5, 0.5]))
    relu = MLPClassifier((6,), max_iter=400, random_state=0).fit(X, X[:, 0] * X[:, 1] > 0)
    forest = RandomForestClassifier(n_estimators=3, max_leaf_nodes=4, random_state=0).fit(
        X, np.digitize(X[:, 0] + X[:, 5], [-0.3, 0.4]))
    return [binary_logreg, softmax_logreg, small_tree, svc, binned, relu, forest]


def _target_for(name: str, targets: list[Any]) -> Any:
    for t in targets:
        if ATTACKS[name].supports(t):
            return t
    pytest.fail(f"no contract target for attack {name!r}: add one to contract_targets")


def _served(target: Any, space: FeatureSpace) -> Any:
    """Trees are served as `stealml extract` serves them: BigML's answers; ensembles
    with each tree's answer too."""
    if isinstance(target, RandomForestClassifier):
        return EnsembleService(target, space, per_tree=True)
    return TreeService(target, space) if isinstance(target, BaseDecisionTree) else target


def _labels_only(name: str) -> bool:
    """Attacks that need nothing but labels run against a labels-only API."""
    return ATTACKS[name].requires == frozenset({"labels"})


def _run(name: str, target: Any, space: FeatureSpace, seed: int = 0,
         budget: int | None = None, **params: Any) -> tuple[Any, ProtocolOnlyOracle]:
    policy = ApiPolicy(output="labels") if _labels_only(name) else None
    oracle = ProtocolOnlyOracle(LocalOracle(_served(target, space), space, policy,
                                            ledger=Ledger(budget=budget)))
    attack = ATTACKS[name](random_state=seed, **params)  # type: ignore[call-arg]
    return attack.run(oracle), oracle


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_reaches_target_only_through_oracle(name, contract_targets, mixed_space) -> None:
    target = _target_for(name, contract_targets)
    result, oracle = _run(name, target, mixed_space)
    assert oracle.calls > 0
    assert result.queries == oracle.ledger.queries > 0
    assert hasattr(result.model, "predict") and result.model is not target


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_respects_budget_and_keeps_what_it_learned(name, contract_targets, mixed_space) -> None:
    target = _target_for(name, contract_targets)
    full, _ = _run(name, target, mixed_space)
    budget = max(1, full.queries // 2)
    # an attack that spends whatever budget it gets is given a plan larger than it
    plan = {"n_queries": full.queries} if getattr(ATTACKS[name], "fills_budget", False) else {}
    result, oracle = _run(name, target, mixed_space, budget=budget, **plan)
    assert oracle.ledger.queries == result.queries <= budget
    assert result.complete is False
    X = mixed_space.sample_encoded(50, 0)
    assert len(result.model.predict(X)) == 50


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_deterministic_for_a_seed(name, contract_targets, mixed_space) -> None:
    target = _target_for(name, contract_targets)
    a, oa = _run(name, target, mixed_space, seed=7)
    b, ob = _run(name, target, mixed_space, seed=7)
    _c, oc = _run(name, target, mixed_space, seed=8)
    assert oa.ledger.paid_keys == ob.ledger.paid_keys != oc.ledger.paid_keys
    X = mixed_space.sample_encoded(200, 1)
    assert np.array_equal(a.model.predict(X), b.model.predict(X))
    if hasattr(a.model, "predict_proba"):
        assert np.array_equal(a.model.predict_proba(X), b.model.predict_proba(X))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_clear_error_on_wrong_oracle_kind(name, contract_targets, mixed_space) -> None:
    attack = ATTACKS[name]
    needs = sorted(attack.requires & {"probabilities", "ids", "tree-ids"})
    if not needs:
        pytest.skip("attack works from labels alone")
    target = _target_for(name, contract_targets)
    oracle = LocalOracle(_served(target, mixed_space), mixed_space, ApiPolicy(output="labels"))
    with pytest.raises(OracleCapabilityError, match=needs[0]):
        attack(random_state=0).run(oracle)  # type: ignore[call-arg]
    assert oracle.ledger.queries == 0


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_labels_only_attack_uses_probability_api_only_when_asked(
        name, contract_targets, mixed_space) -> None:
    if not _labels_only(name):
        pytest.skip("attack needs more than labels")
    target = _target_for(name, contract_targets)
    oracle = LocalOracle(_served(target, mixed_space), mixed_space, ledger=Ledger(budget=40))
    if "probabilities" not in oracle.reveals:
        pytest.skip("the contract target reveals no probabilities")
    with pytest.raises(ConfigurationError, match="reads labels only"):
        ATTACKS[name](random_state=0).run(oracle)  # type: ignore[call-arg]
    assert oracle.ledger.queries == 0
    attack = ATTACKS[name](random_state=0, ignore_probabilities=True)  # type: ignore[call-arg]
    assert attack.run(oracle).queries > 0


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_has_reference_and_constructor_only_stores(name) -> None:
    attack = ATTACKS[name]
    assert "References:" in (attack.__doc__ or "") or "References:" in (
        __import__(attack.__module__, fromlist=["x"]).__doc__ or "")
    params = attack(random_state=3, batch_size=5).get_params()  # type: ignore[call-arg]
    assert params["random_state"] == 3 and params["batch_size"] == 5
