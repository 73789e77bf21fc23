"""A real binary logistic regression behind a real service on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from stealml.modelio import save_model
from stealml.server import ServiceSettings, load_settings, running
from stealml.space import FeatureSpace

KEY = "sk-attacker-01"


@pytest.fixture(scope="session")
def numeric_space() -> FeatureSpace:
    """Continuous features only (one with integer granularity), as in Diabetes."""
    return FeatureSpace.from_dict({"features": [
        {"name": "pregnancies", "type": "continuous", "min": 0, "max": 17, "granularity": 1},
        {"name": "glucose", "type": "continuous", "min": 0, "max": 199},
        {"name": "bmi", "type": "continuous", "min": 0, "max": 67.1},
        {"name": "age", "type": "continuous", "min": 21, "max": 81, "granularity": 1}]})


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory,
           numeric_space: FeatureSpace) -> tuple[LogisticRegression, Path]:
    rng = np.random.default_rng(3)
    X = numeric_space.sample_encoded(500, rng)
    y = (X @ np.array([0.8, 2.0, 1.1, 0.6]) - 0.3 + rng.normal(0, 0.5, len(X)) > 0)
    model = LogisticRegression(C=5.0, max_iter=2000).fit(X, y.astype(int))
    path = tmp_path_factory.mktemp("target") / "diabetes-lr.skops"
    save_model(path, model, numeric_space)
    return model, path


@pytest.fixture(scope="session")
def api_key() -> str:
    return KEY


@pytest.fixture
def make_settings(target: tuple[LogisticRegression, Path],
                  tmp_path: Path) -> Callable[..., ServiceSettings]:
    """Settings serving the target as ``lr`` (max_batch 4, so attacks batch), with one key
    (``api_key``, named ``attacker``; ``quota`` optional) and a log; ``policy`` for it."""
    def make(quota: int | None = None, **policy: object) -> ServiceSettings:
        return load_settings(None, log=tmp_path / "log.sqlite", max_batch=4, models=[
            {"name": "lr", "path": target[1], "price": 0.0001, **policy}],
            keys=[{"name": "attacker", "key": KEY, "quota": quota}])
    return make


@pytest.fixture
def service(make_settings: Callable[..., ServiceSettings]) -> Iterator[str]:
    """The target served on a free loopback port; yields its URL."""
    with running(make_settings()) as url:
        yield url
