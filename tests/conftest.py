"""Small real targets shared by the tests."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from stealml.space import FeatureSpace


@pytest.fixture(scope="session")
def mixed_space() -> FeatureSpace:
    return FeatureSpace.from_dict({"features": [
        {"name": "age", "type": "continuous", "min": 17, "max": 90, "granularity": 1},
        {"name": "hours", "type": "continuous", "min": 0, "max": 99},
        {"name": "sex", "type": "categorical", "values": ["F", "M"]},
        {"name": "work", "type": "categorical", "values": ["gov", "private", "self"]},
    ]})


@pytest.fixture(scope="session")
def binary_logreg(mixed_space: FeatureSpace) -> LogisticRegression:
    """A binary logistic regression trained on encoded points of ``mixed_space``."""
    rng = np.random.default_rng(0)
    X = mixed_space.sample_encoded(400, rng)
    w = np.array([1.5, -2.0, 0.7, -0.7, 0.3, 1.0, -1.2])
    y = (X @ w + 0.2 + rng.normal(0, 0.3, len(X)) > 0).astype(int)
    return LogisticRegression(C=10.0, max_iter=2000).fit(X, y)


@pytest.fixture(scope="session")
def softmax_logreg(mixed_space: FeatureSpace) -> LogisticRegression:
    rng = np.random.default_rng(1)
    X = mixed_space.sample_encoded(400, rng)
    y = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])
    return LogisticRegression(max_iter=2000).fit(X, y)


@pytest.fixture(scope="session")
def small_tree(mixed_space: FeatureSpace) -> DecisionTreeClassifier:
    rng = np.random.default_rng(2)
    X = mixed_space.sample_encoded(300, rng)
    y = (X[:, 0] > 0).astype(int)
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
