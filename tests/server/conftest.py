"""Real models saved as real files, served by the real app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from stealml.modelio import save_model
from stealml.server import ServiceSettings, load_settings
from stealml.space import FeatureSpace

KEYS = {"alice": "sk-alice-0001", "bob": "sk-bob-00002"}


@pytest.fixture(scope="session")
def keys() -> dict[str, str]:
    """API keys by name: alice has a quota of 20 predictions, bob none."""
    return KEYS


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory,
                mixed_space: FeatureSpace) -> dict[str, Path]:
    """A softmax LR, a binary LR and a tree on ``mixed_space`` (one-hot), as skops files."""
    root = tmp_path_factory.mktemp("served")
    rng = np.random.default_rng(0)
    X = mixed_space.sample_encoded(400, rng)
    y3 = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])
    y2 = (X @ np.array([1.5, -2.0, 0.7, -0.7, 0.3, 1.0, -1.2]) > 0).astype(int)
    models = {"softmax": LogisticRegression(max_iter=2000).fit(X, y3),
              "binary": LogisticRegression(max_iter=2000).fit(X, y2),
              "tree": DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y3)}
    paths = {}
    for name, model in models.items():
        paths[name] = root / f"{name}.skops"
        save_model(paths[name], model, mixed_space)
    return paths


@pytest.fixture
def settings(model_files: dict[str, Path], tmp_path: Path) -> ServiceSettings:
    """Three models with three policies; alice has a quota of 20, bob none."""
    return load_settings(None, log=tmp_path / "log.sqlite", max_batch=50, models=[
        {"name": "softmax", "path": model_files["softmax"], "price": 0.0001},
        {"name": "amazon", "path": model_files["binary"], "incomplete": "zeros",
         "significant_digits": 16},
        {"name": "bigml", "path": model_files["tree"], "incomplete": "native",
         "rounding": 5}],
        keys=[{"name": "alice", "key": KEYS["alice"], "quota": 20},
              {"name": "bob", "key": KEYS["bob"]}])
