"""The defence matrix on a tiny grid: files written, cells consistent with the monitors."""

from __future__ import annotations

import json

from stealml.experiments.defence_matrix import defence_matrix
from stealml.experiments.defence_targets import DEFENCES, Case
from stealml.experiments.reproduce import REPRODUCTIONS


def test_tiny_grid_writes_tables_and_a_heat_map(tmp_path) -> None:
    assert "defence-matrix" in REPRODUCTIONS
    cases = [Case("path-finding", "german-credit tree", budget=2000),
             Case("retrain-uniform", "german-credit tree", budget=150)]
    defences = [d for d in DEFENCES if d.name in (
        "none", "round 2", "labels only", "noise 0.05", "PRADA+block", "OOD+block")]
    paths = defence_matrix(tmp_path, quick=True, cases=cases, defences=defences)
    names = {p.name for p in paths}
    assert {"defence_matrix.json", "defence_matrix.md", "defence_matrix.png",
            "defence_utility.json", "defence_detection.md"} <= names
    assert (tmp_path / "defence_matrix.png").read_bytes()[:4] == b"\x89PNG"
    cells = {(r["attack"], r["defence"]): r for r in
             json.loads((tmp_path / "defence_matrix.json").read_text())["rows"]}
    free = cells[("path-finding on german-credit tree", "none")]
    assert free["status"] == "ok" and free["fidelity"] == 1.0
    # path finding reads leaf identities: a labels-only API does not give them
    assert cells[("path-finding on german-credit tree", "labels only")]["status"].startswith(
        "n/a")
    # blocked at the flag: no more queries than the flag, less fidelity than unblocked
    blocked = cells[("path-finding on german-credit tree", "PRADA+block")]
    assert blocked["queries"] <= free["prada_flag"] + 10 < free["queries"]
    assert blocked["fidelity"] < 1.0
    uniform = cells[("retrain-uniform on german-credit tree", "OOD+block")]
    assert uniform["ood_flag"] is not None and uniform["queries"] < 150
    utility = {r["defence"]: r for r in
               json.loads((tmp_path / "defence_utility.json").read_text())["rows"]}
    assert utility["none"]["accuracy_lost"] == 0 and utility["none"]["tv_distortion"] == 0
    assert utility["noise 0.05"]["tv_distortion"] > 0
    assert utility["labels only"]["tv_distortion"] > utility["round 2"]["tv_distortion"]
    detection = json.loads((tmp_path / "defence_detection.json").read_text())["rows"]
    assert all(r["honest PRADA flag"] is None and r["honest OOD flag"] is None
               for r in detection)
    assert "| attack |" in (tmp_path / "defence_matrix.md").read_text()
