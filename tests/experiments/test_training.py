from __future__ import annotations

import pytest

from stealml.exceptions import ConfigurationError, DatasetError
from stealml.experiments.training import train_target
from stealml.modelio import load_model
from stealml.targets import MODEL_KINDS


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_every_model_kind_trains_and_round_trips(kind: str, tmp_path) -> None:
    data = "diabetes-progression" if kind == "regression-tree" else "breast-cancer"
    out = tmp_path / f"{kind}.skops"
    report = train_target(data, kind, str(out), seed=0, max_leaves=8 if "tree" in kind
                          or kind == "random-forest" else None)
    floor = 0.0 if kind == "regression-tree" else 0.85
    assert report["score"] > floor
    loaded = load_model(out)
    assert loaded.space is not None and loaded.meta["kind"] == kind
    assert loaded.space.n_encoded == report["features"]


def test_kind_must_fit_the_data(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="regression"):
        train_target("breast-cancer", "regression-tree", str(tmp_path / "x.skops"))
    with pytest.raises(ConfigurationError, match="softmax or ovr"):
        train_target("iris", "logreg", str(tmp_path / "x.skops"))
    with pytest.raises(ConfigurationError, match="unknown model kind"):
        train_target("iris", "boosted-unicorn", str(tmp_path / "x.skops"))
    with pytest.raises(DatasetError):
        train_target("no-such-data", "logreg", str(tmp_path / "x.skops"))
