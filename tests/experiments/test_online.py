"""Tables 1 and 7 rows against real served models on loopback (small cases)."""

from __future__ import annotations

from stealml.experiments.online import AMAZON, BIGML, run_case, serving
from stealml.experiments.reproduce import REPRODUCTIONS


def test_circles_with_binning_is_stolen_within_the_papers_queries() -> None:
    case = AMAZON[0]
    assert case.data == "circles" and case.binning
    with serving([case]) as url:
        row = run_case(url, case, n_uniform=500)
    assert row["complete"] and row["model class"] == "softmax"
    assert row["bins found"] == row["true bins"] == 20  # 10 quantile bins a feature
    assert row["queries"] <= case.paper_queries == 278
    assert abs(row["price ($)"] - row["queries"] * 0.0001) < 1e-12
    assert row["1-R_test"] == "100.00%"
    assert row["eval queries"] == 500 + 1500  # uniform points and the test split, apart


def test_german_credit_tree_is_stolen_top_down_over_http() -> None:
    case = BIGML[0]
    with serving([case]) as url:
        row = run_case(url, case, n_uniform=500)
    assert row["complete"] and row["leaves found"] >= 26
    assert row["queries"] <= case.paper_queries == 1150
    assert row["1-R_test"] == row["1-R_unif"] == "100.00%"


def test_tables_are_registered() -> None:
    assert REPRODUCTIONS["table7"] == "stealml.experiments.online:table7"
    assert REPRODUCTIONS["table1"] == "stealml.experiments.online:table1"


def test_extract_url_runs_feature_discovery_and_measures_apart() -> None:
    from stealml.experiments.runner import ExtractionConfig, run_extraction

    case = AMAZON[2]  # iris, binned
    with serving([case]) as url:
        config = ExtractionConfig(target=url, attack="feature-discovery", protocol="stealml",
                                  model=case.name, data="iris", eval_queries=300)
        result, report = run_extraction(config)
    assert report["queries"] == result.queries <= case.paper_queries
    assert report["eval_queries"] == 300 + 45  # uniform points and the test split
    assert report["fidelity"]["r_test"] == 0.0
    assert report["info"]["model_class"] == "softmax"
