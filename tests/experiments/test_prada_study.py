"""The PRADA study on two attacks: one it sees early, one too short for any test that
reads distances (the grid test sees it)."""

from __future__ import annotations

import json

from stealml.experiments.defence_targets import Case
from stealml.experiments.prada_study import MIN_SAMPLES, _verdict, prada_study


def test_study_flags_top_down_and_explains_the_short_attack(tmp_path) -> None:
    cases = [Case("top-down", "german-credit tree", budget=1000),
             Case("equation-solving", "breast-cancer LR", alpha=1,
                  params={"model_class": "logreg"})]
    paths = prada_study(tmp_path, seeds=(0,), cases=cases, orders=10, honest_orders=3)
    assert {p.name for p in paths} >= {"prada_detection.md", "prada_detection-runs.json"}
    runs = {r["attack"]: r for r in
            json.loads((tmp_path / "prada_detection-runs.json").read_text())["rows"]}
    tree = runs["top-down on german-credit tree"]
    assert tree["status"] == "ok" and tree["fidelity"] == 1.0
    # the per-n detector flags it before the paper's (which waits for 100 distances)
    assert tree["per-n_flag"] is not None and tree["per-n_flag"] < tree["paper_flag"]
    assert tree["per-n_fidelity_at_flag"] < 0.99
    assert tree["per-n_min_w"] < tree["per-n_honest_min_w"]
    # before the flag it goes deeper below the calibrated bands than any honest stream
    assert tree["depth"] > 1.5 > tree["honest_max_depth"] and tree["honest_at_or_deeper"] == 0
    assert tree["per-n_honest_flags"] == 0 and tree["paper_honest_flags"] == 0
    # the service's monitor with PRADA and the out-of-distribution detector: the first flag
    # of either, and the honest streams either flags
    flags = [tree[k] for k in ("per-n_flag", "ood_flag") if tree[k] is not None]
    assert tree["monitor_flag"] == min(flags) and tree["monitor_fidelity_at_flag"] < 0.99
    assert tree["ood_honest_flags"] == tree["monitor_honest_flags"] == 0
    short = runs["equation-solving (logreg) on breast-cancer LR"]
    # 9 distances: too few for every test that reads them, but its random queries leave
    # the data's 1-10 lattice, and the grid test flags it at query 3: blocked there, the
    # attack solves from 2 rows
    assert short["distances"] < MIN_SAMPLES and short["per-n_flag"] == 3
    assert short["per-n_flagged_by"] == "G" and short["per-n_fidelity_at_flag"] < 0.5
    assert 0 <= tree["per-n_fidelity_unif_at_flag"] < 1 and tree["fidelity_unif"] == 1.0
    rows = {r["attack"]: r for r in
            json.loads((tmp_path / "prada_detection.json").read_text())["rows"]}
    assert rows["top-down on german-credit tree"]["per-n verdict"].startswith(
        "flagged before 99% on 1/1")
    assert rows["top-down on german-credit tree"]["PRADA + OOD: flagged before 99%"] == "1/1"
    assert rows["top-down on german-credit tree"]["honest PRADA + OOD flags"] == "0/3"
    short_row = rows["equation-solving (logreg) on breast-cancer LR"]
    assert short_row["per-n verdict"].startswith("flagged before 99% on 1/1")
    assert short_row["per-n before 99% on test rows / on test and uniform"] == "1/1 / 1/1"


def test_verdict_names_an_attack_too_short_for_the_tests() -> None:
    """Without the grid test, an attack that ends before the 10th distance is unseeable
    by construction, and the verdict says so."""
    runs = [{"status": "ok", "seed": s, "distances": 9, "fidelity": 1.0,
             "per-n_flag": None, "per-n_fidelity_at_flag": None} for s in (0, 1)]
    assert _verdict(runs, "per-n") == "unseeable: ends before 10 distances (at most 9)"
