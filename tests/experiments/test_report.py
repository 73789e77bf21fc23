"""``stealml reproduce all``: every registered reproduction into one report, the paper's
numbers beside ours, a failed reproduction reported without stopping the others."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sklearn
from click.testing import CliRunner

from stealml.attacks import EquationSolving
from stealml.cli import main
from stealml.datasets import load
from stealml.experiments.report import compare, paper_pairs
from stealml.experiments.reproduce import REPRODUCTIONS
from stealml.experiments.tables import write_results
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.oracles import LocalOracle
from stealml.targets import make_target


def tiny_reproduction(out: Path, quick: bool) -> list[Path]:
    """Equation solving on two small data sets, against a made-up 'paper' row."""
    rows = []
    for data, paper_queries in (("circles", 3), ("moons", 30)):
        ds = load(data, random_state=0)
        target = make_target("logreg", "classification", 2).fit(ds.X_train, ds.y_train)
        result = EquationSolving(random_state=0).run(
            LocalOracle(target, ds.space, ledger=Ledger()))
        fid = fidelity(target, result.model, ds.space, ds.X_test, 1000)
        rows.append({"data set": data, "queries": result.queries,
                     "paper queries": paper_queries, "1-R_test": 1 - fid["r_test"],
                     "paper 1-R_test": "100.00%", "paper note": "as in Table 3"})
    paths = list(write_results(out / "tiny", "Tiny: equation solving", rows, list(rows[0]),
                               "Two binary data sets."))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([r["queries"] for r in rows])
    fig.savefig(out / "tiny.png")
    plt.close(fig)
    return [*paths, out / "tiny.png"]


def broken_reproduction(out: Path, quick: bool) -> list[Path]:
    load("no-such-data-set")
    return []


def test_pairs_and_comparison() -> None:
    pairs, alone = paper_pairs(["queries", "paper queries", "paper note", "seconds"])
    assert pairs == [("queries", "paper queries")] and alone == ["paper note"]
    assert compare(3, 3, "queries")["verdict"] == "close"
    worse = compare(40, 30, "queries")
    assert (worse["verdict"], worse["direction"]) == ("off", "worse")
    assert compare("99.95%", 1.0, "1-R_test")["verdict"] == "close"
    assert compare("99.0%", 1.0, "1-R_test")["verdict"] == "far"  # 1% errors against none
    assert compare(1.0, 0.99, "1-R_test")["verdict"] == "better"
    assert compare(0.5, 0.9, "1-R_test")["direction"] == "worse"


def test_reproduce_all_writes_one_report(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REPRODUCTIONS, "tiny", f"{__name__}:tiny_reproduction")
    monkeypatch.setitem(REPRODUCTIONS, "broken", f"{__name__}:broken_reproduction")
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["reproduce", "all", "--quick", "--out", str(out),
                                       "--only", "broken,tiny"])
    assert result.exit_code == 1
    assert "1 of 2 reproductions failed: broken" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [e["name"] for e in summary["entries"]] == ["broken", "tiny"]
    assert summary["entries"][1]["ok"] and (out / "tiny" / "tiny.json").exists()
    # the numeric packages' versions travel with every result (re-runs in a fresh
    # environment can move the last digits)
    tiny = json.loads((out / "tiny" / "tiny.json").read_text())["meta"]
    assert tiny["packages"]["numpy"] == np.__version__
    assert f"numpy {np.__version__}, scipy " in (out / "tiny" / "tiny.md").read_text()
    assert summary["meta"]["packages"]["scikit-learn"] == sklearn.__version__
    md = (out / "report.md").read_text()
    assert "DatasetError" in md and "no-such-data-set" in md
    # equation solving needs d + 1 = 3 queries: close to 3 on circles, far from 30 on moons
    assert "| circles | 3 | 3 | **close** +0 (+0%) |" in md
    assert "| moons | 3 | 30 | *better* -27 (-90%) |" in md
    assert "as in Table 3" in md and "Two binary data sets." in md
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "<link" not in page and "<script" not in page
    assert "class=far" in page and "no-such-data-set" in page


def test_reproduce_all_rejects_unknown_names(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["reproduce", "all", "--only", "tabel4",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: unknown reproduction(s) tabel4")
