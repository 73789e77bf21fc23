"""Figures 4-6 (labels only): RBF targets tuned as the paper's were, one grid cell."""

from __future__ import annotations

import numpy as np
import pytest

from stealml.exceptions import StealmlError
from stealml.experiments.labels_only import (
    SVM_GRID,
    average,
    cell,
    figure_jobs,
    tune_rbf_svm,
)


def test_rbf_targets_are_tuned_over_libsvms_grid() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (120, 2))
    params = tune_rbf_svm(X, (X ** 2).sum(axis=1) < 0.5, seed=0)
    assert params["C"] in SVM_GRID["C"] and params["gamma"] in SVM_GRID["gamma"]


def test_a_figure6_cell_reports_its_target_and_the_stolen_models_error() -> None:
    row = cell("figure6", "breast-cancer", 0, "adaptive (ours)", 1, n_uniform=2000)
    assert row["queries"] == 10 and row["complete"]  # alpha (d + 1), d = 9
    target = row["target"]
    assert target["C"] in SVM_GRID["C"] and target["gamma"] in SVM_GRID["gamma"]
    assert target["support_vectors"] > 10 and target["test_accuracy"] > 0.9
    assert 0 <= row["r_test"] <= 1 and 0 <= row["r_unif"] <= 1
    rows = [{"data set": d, "strategy": "s", "alpha": 1, "queries": 10, "complete": True,
             "r_test": r, "r_unif": 0.0, "seconds": 1.0}
            for d, r in (("a", 0.1), ("a", 0.3), ("a", 0.2), ("b", 0.0))]
    # each data set's mean over its seeds, then the mean over data sets
    assert average(rows)[0]["r_test"] == pytest.approx(0.1)
    assert average(rows)[0]["complete"] == "4/4"


def test_figure_jobs_per_data_set_seeds_one_data_set_after_the_other() -> None:
    jobs = figure_jobs("figure6", seeds={"moons": 2, "circles": 1})
    sets = [(j.params["data"], j.params["seed"]) for j in jobs]
    assert list(dict.fromkeys(sets)) == [("circles", 0), ("moons", 0), ("moons", 1)]
    assert len(jobs) == 3 * 4 * 8  # 4 strategies, 8 alphas
    with pytest.raises(StealmlError, match="no data set 'iris'"):
        figure_jobs("figure6", seeds={"iris": 1})


def test_some_strategies_rerun_with_the_others_rows_kept(tmp_path) -> None:
    jobs = figure_jobs("figure6", quick=True, seeds={"circles": 1},
                       strategies=["adaptive (ours)"])
    assert {j.params["strategy"] for j in jobs} == {"adaptive (ours)"} and len(jobs) == 3
    with pytest.raises(StealmlError, match="no strategy 'greedy'"):
        figure_jobs("figure6", strategies=["greedy"])
    earlier = [{"data set": "circles", "seed": 0, "strategy": s, "alpha": 1, "queries": 3,
                "complete": True, "r_test": 0.5, "r_unif": 0.5, "seconds": 0.1}
               for s in ("line-search", "uniform")]
    from stealml.experiments.labels_only import run_figure

    run_figure("figure6", tmp_path, quick=True, seeds={"circles": 1}, n_jobs=1,
               strategies=["uniform"], earlier=earlier, note=" (test)")
    import json

    rows = json.loads((tmp_path / "figure6-runs.json").read_text())["rows"]
    assert [(r["strategy"], r["alpha"]) for r in rows] == [
        ("line-search", 1), ("uniform", 1), ("uniform", 10), ("uniform", 100)]
    # the earlier row of a strategy run again is replaced by the new one
    assert rows[1]["r_test"] != 0.5 and (tmp_path / "figure6.png").exists()
    assert "(test)" in (tmp_path / "figure6.md").read_text()


def test_small_budgets_over_several_attack_seeds(tmp_path) -> None:
    from stealml.experiments.labels_only import run_attack_seeds

    one = cell("figure6", "circles", 0, "adaptive (ours)", 10)
    other = cell("figure6", "circles", 0, "adaptive (ours)", 10, attack_seed=1000)
    assert one["queries"] == other["queries"] == 30
    assert one["r_unif"] != other["r_unif"]  # another attack seed, other queries
    run_attack_seeds("figure6", tmp_path, alphas=(10,), attack_seeds=2,
                     seeds={"circles": 1}, note=" (test)")
    import json

    rows = json.loads((tmp_path / "figure6-attack-seeds.json").read_text())["rows"]
    assert [(r["data set"], r["strategy"], r["runs"]) for r in rows] == [
        ("circles", "adaptive (ours)", 2), ("mean over data sets", "adaptive (ours)", 2),
        ("circles", "adaptive (paper)", 2), ("mean over data sets", "adaptive (paper)", 2)]
    assert rows[0]["r_unif"] == pytest.approx((one["r_unif"] + other["r_unif"]) / 2)
