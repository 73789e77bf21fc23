"""``stealml assess`` on a model file and on a running ``stealml serve``: the probe reads
what the API reveals, the attacks that apply reach their fidelity levels, the defences
that stop them are named, and bad input gets a one-line error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from stealml.cli import main
from stealml.experiments.training import train_target
from stealml.server.mlserver import free_port
from stealml.server.runner import serving_process


@pytest.fixture(scope="module")
def circles_lr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("assess") / "circles.skops"
    train_target("circles", "logreg", str(path), seed=0)
    return path


def _assess(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["assess", *args])
    return result.exit_code, result.output


def test_assess_a_model_file(circles_lr: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, output = _assess("--target", str(circles_lr), "--budget-dollars", "0.03",
                           "--eval-queries", "300", "--attack", "equation-solving",
                           "--attack", "retrain-uniform", "--attack", "path-finding",
                           "--out", str(out), "--json")
    assert code == 0, output
    report = json.loads(output)
    api = report["api"]
    assert (api["output"], api["decimals"], api["incomplete_accepted"]) == (
        "probabilities", None, False)
    assert api["probe_queries"] == 20 and report["max_queries_per_attack"] == 300
    attacks = {a["attack"]: a for a in report["attacks"]}
    assert set(attacks) == {"equation-solving", "retrain-uniform"}
    assert report["skipped"]["path-finding"] == "the API does not reveal ids"
    eq = attacks["equation-solving"]
    assert eq["queries@1"] == 3 and eq["dollars@1"] == pytest.approx(0.0003)
    uniform = attacks["retrain-uniform"]
    assert len(uniform["points"]) > 3  # a growing ladder of budgets
    assert all(p["queries"] <= 300 for p in uniform["points"])
    assert uniform["best"]["fidelity"] >= 0.97
    assert report["eval_queries"] >= 300  # bought apart, not in the attacks' counts
    defences = {row["defence"]: row for row in report["defences"]["rows"]}
    assert defences["none"]["attacks"]["equation-solving"]["stopped"] is False
    assert defences["labels only"]["attacks"]["equation-solving"]["stopped"] is True
    assert defences["labels only"]["accuracy_lost"] == 0
    md = (out / "assessment.md").read_text()
    assert "all class probabilities" in md and "STOPS" in md
    page = (out / "assessment.html").read_text()
    assert "data:image/png;base64," in page and "<script" not in page


@pytest.fixture
def served_rounded(circles_lr: Path, tmp_path: Path) -> Iterator[str]:
    args = [str(circles_lr), "--price", "0.001", "--rounding", "3"]
    with serving_process(args, free_port(), log=tmp_path / "serve.out") as url:
        yield url


@pytest.mark.slow
def test_assess_a_running_service(served_rounded: str, tmp_path: Path) -> None:
    out = tmp_path / "remote"
    code, output = _assess("--url", served_rounded, "--budget-dollars", "0.1",
                           "--eval-queries", "300", "--attack", "equation-solving",
                           "--attack", "lowd-meek", "--out", str(out), "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["api"]["decimals"] == 3 and report["api"]["price"] == 0.001
    assert report["max_queries_per_attack"] == 100
    attacks = {a["attack"]: a for a in report["attacks"]}
    eq = attacks["equation-solving"]
    assert eq["points"][0]["queries"] == 3 and eq["points"][0]["fidelity"] < 0.99  # rounding
    assert eq["queries@0.99"] is not None and 3 < eq["queries@0.99"] <= 100  # more equations
    assert attacks["lowd-meek"]["queries@1"] is not None
    assert report["spent"] > report["eval_cost"] > 0
    assert report["defences"] is None
    md = (out / "assessment.md").read_text()
    assert "rounded to 3 decimals" in md and "stealml assess --target MODEL_FILE" in md


@pytest.mark.parametrize(("args", "message"), [
    ([], "give either --target FILE or --url URL"),
    (["--target", "m.skops", "--url", "http://127.0.0.1:1"],
     "give either --target FILE or --url URL"),
    (["--url", "http://127.0.0.1:1"], "127.0.0.1:1"),
    (["--target", "CIRCLES", "--budget-dollars", "-1"], "--budget-dollars must be >= 0"),
    (["--target", "CIRCLES", "--budget-dollars", "0.00001"], "buys no query"),
])
def test_assess_errors_are_one_line(args: list[str], message: str, circles_lr: Path,
                                    tmp_path: Path) -> None:
    args = [str(circles_lr) if a == "CIRCLES" else a for a in args]
    code, output = _assess(*args, "--out", str(tmp_path / "x"))
    assert code == 1
    assert output.startswith("error: ") and message in output
    assert len(output.strip().splitlines()) == 1


def test_assess_a_model_that_answers_labels_only(tmp_path: Path) -> None:
    """An SVC has no probabilities: the probe sees labels, the labels-only attacks run,
    and each defence's cost is the share of labels it changes (not a crash)."""
    path = tmp_path / "circles-rbf.skops"
    train_target("circles", "rbf-svm", str(path), seed=0)
    code, output = _assess("--target", str(path), "--budget-dollars", "0.01",
                           "--eval-queries", "300", "--attack", "retrain-uniform",
                           "--attack", "equation-solving", "--out", str(tmp_path / "r"),
                           "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["api"]["output"] == "labels"
    assert "equation-solving" in report["skipped"]
    uniform = next(a for a in report["attacks"] if a["attack"] == "retrain-uniform")
    assert uniform["best"]["fidelity"] >= 0.9
    defences = {row["defence"]: row for row in report["defences"]["rows"]}
    assert defences["none"]["accuracy_lost"] == 0 and defences["none"]["tv_distortion"] == 0
    for row in defences.values():  # a label is one-hot: distortion = labels changed
        assert 0 <= row["tv_distortion"] <= 1
    skipped = report["defences"]["not_applicable"]
    assert set(skipped) == {"noise 0.05", "reverse sigmoid"}
    assert "this model gives none" in skipped["noise 0.05"]
    assert "Not evaluated, noise 0.05" in (tmp_path / "r" / "assessment.md").read_text()


def test_assess_a_regressor(tmp_path: Path) -> None:
    """A regression tree: the defences that need classes (labels only, top-1, noise,
    reverse sigmoid) are listed as not evaluated; the others cost honest clients a mean
    change of value. PRADA watches its queries as one group (a regressor has no
    classes to group them by) and is evaluated."""
    path = tmp_path / "progression-tree.skops"
    train_target("diabetes-progression", "regression-tree", str(path), seed=0)
    code, output = _assess("--target", str(path), "--budget-dollars", "0.02",
                           "--eval-queries", "200", "--out", str(tmp_path / "r"), "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["api"]["output"] == "values"
    d = report["defences"]
    assert {"labels only", "top-1", "noise 0.05", "reverse sigmoid"} == \
        set(d["not_applicable"])
    rows = {row["defence"]: row for row in d["rows"]}
    assert set(rows) == {"none", "round 2", "budget 100", "OOD+block", "PRADA+block"}
    assert rows["PRADA+block"]["value_change"] == 0
    assert rows["none"]["value_change"] == 0 and rows["none"]["accuracy_lost"] is None
    assert "mean value change" in (tmp_path / "r" / "assessment.md").read_text()
