"""The command line, run as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def stealml(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "stealml", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "target.skops"
    run = stealml("train", "--data", "breast-cancer", "--model", "logreg", "--seed", "1",
                  "--out", str(path))
    assert run.returncode == 0, run.stderr
    assert "trained logreg on breast-cancer" in run.stdout
    return path


@pytest.mark.parametrize("cmd", [[], ["datasets"], ["train"], ["extract"], ["evaluate"]])
def test_help_everywhere(cmd: list[str]) -> None:
    run = stealml(*cmd, "--help")
    assert run.returncode == 0 and "Usage:" in run.stdout


def test_datasets_json() -> None:
    run = stealml("datasets", "--json")
    rows = {d["name"]: d for d in json.loads(run.stdout)}
    assert rows["adult-income"]["rows"] == 48842 and rows["adult-income"]["features"] == 108
    assert rows["iris"]["classes"] == 3


def test_extract_exact_then_replay(target: Path, tmp_path: Path) -> None:
    log, out = tmp_path / "q.sqlite", tmp_path / "stolen.skops"
    args = ["extract", "--target", str(target), "--attack", "equation-solving",
            "--data", "breast-cancer", "--seed", "1", "--log", str(log), "--json"]
    first = json.loads(stealml(*args, "--out", str(out)).stdout)
    assert set(first) >= {"attack", "target", "queries", "replayed", "cost", "seconds",
                          "fidelity"}
    assert first["queries"] >= 10 and first["replayed"] == 0 and first["complete"]
    assert first["cost"] == pytest.approx(first["queries"] * 0.0001)
    fid = first["fidelity"]
    assert fid["r_test"] == 0 and fid["r_unif"] == 0 and fid["tv_unif"] < 1e-9
    again = json.loads(stealml(*args).stdout)
    assert again["queries"] == 0 and again["replayed"] == first["queries"]
    assert again["fidelity"] == first["fidelity"]
    ev = stealml("evaluate", "--target", str(target), "--stolen", str(out),
                 "--data", "breast-cancer", "--seed", "1", "--json")
    assert json.loads(ev.stdout)["fidelity"]["r_test"] == 0


def test_functionally_equivalent_on_a_relu_mlp(tmp_path: Path) -> None:
    path, out = tmp_path / "relu.skops", tmp_path / "stolen.skops"
    run = stealml("train", "--data", "iris", "--model", "relu-mlp", "--out", str(path))
    assert run.returncode == 0, run.stderr
    run = stealml("extract", "--target", str(path), "--attack", "functionally-equivalent",
                  "--data", "iris", "--out", str(out), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["complete"] and report["fidelity"]["r_unif"] == 0
    assert report["fidelity"]["tv_unif"] < 1e-9


def test_budget_and_alpha(target: Path) -> None:
    base = ["extract", "--target", str(target), "--attack", "equation-solving", "--json"]
    small = json.loads(stealml(*base, "--budget", "5").stdout)
    assert small["queries"] == 5 and small["complete"] is False
    half = json.loads(stealml(*base, "--alpha", "0.5").stdout)
    assert half["budget"] == 5 and half["queries"] == 5  # 0.5 * (9 + 1) unknowns


def test_table_report(target: Path) -> None:
    run = stealml("extract", "--target", str(target), "--attack", "equation-solving")
    assert run.returncode == 0
    assert "queries paid" in run.stdout and "R_unif" in run.stdout


def _one_line_error(run: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, run.stderr
    for needle in needles:
        assert needle in lines[0]


def test_bad_inputs_give_one_line(target: Path, tmp_path: Path) -> None:
    ext = ["extract", "--target", str(target), "--attack", "equation-solving"]
    _one_line_error(stealml(*ext, "--budget", "0"), "budget")
    _one_line_error(stealml(*ext, "--output", "labels"), "probabilities")
    _one_line_error(stealml(*ext, "--budget", "5", "--alpha", "1"), "not both")
    junk = tmp_path / "junk.skops"
    junk.write_text("not a model")
    _one_line_error(stealml("extract", "--target", str(junk), "--attack",
                            "equation-solving"), "not a model file")
    tree = tmp_path / "tree.skops"
    assert stealml("train", "--data", "breast-cancer", "--model", "tree", "--out",
                   str(tree)).returncode == 0
    _one_line_error(stealml("extract", "--target", str(tree), "--attack", "equation-solving"),
                    "does not apply", "DecisionTreeClassifier")
    _one_line_error(stealml("extract", "--target", str(tree), "--attack", "top-down",
                            "--param", "chekcs=0"), "no parameter 'chekcs'", "checks=3")
    space = tmp_path / "space.json"
    space.write_text('{"features": [{"name": "a", "type": "continuous", "min": 0, "max": 1}]}')
    _one_line_error(stealml(*ext, "--space", str(space)), "the model takes 9 features")
    space.write_text("{not json")
    _one_line_error(stealml(*ext, "--space", str(space)), "not valid JSON")
    _one_line_error(stealml(*ext, "--data", "iris"), "iris", "features")
    _one_line_error(stealml("train", "--data", "nope", "--model", "logreg", "--out",
                            str(tmp_path / "x.skops")), "nope")
    _one_line_error(stealml("train", "--data", "iris", "--model", "logreg", "--out",
                            str(tmp_path / "x.skops")), "softmax")
    # a file that cannot be written; a stolen model of another shape
    _one_line_error(stealml("train", "--data", "circles", "--model", "logreg", "--out",
                            str(tmp_path / "no-such-folder" / "x.skops")),
                    "No such file or directory", "no-such-folder")
    circles = tmp_path / "circles.skops"
    assert stealml("train", "--data", "circles", "--model", "logreg", "--out",
                   str(circles)).returncode == 0
    _one_line_error(stealml("evaluate", "--target", str(circles), "--stolen", str(target)),
                    "the stolen model takes 9 features", "space has 2")


def test_param_sets_the_attacks_constructor(tmp_path: Path) -> None:
    tree = tmp_path / "tree.skops"
    assert stealml("train", "--data", "german-credit", "--model", "tree", "--max-leaves",
                   "26", "--out", str(tree)).returncode == 0
    ext = ["extract", "--target", str(tree), "--attack", "top-down", "--data",
           "german-credit", "--json"]
    default, unchecked = (json.loads(stealml(*ext, *more).stdout)
                          for more in ([], ["--param", "checks=0", "--param", "probes=3"]))
    # two leaves share an identity: the corner checks cost queries; without them the
    # attack is still exact on this tree
    assert unchecked["queries"] < default["queries"]
    assert default["fidelity"]["r_test"] == unchecked["fidelity"]["r_test"] == 0


def test_calibrated_prada_flags_top_down_early(tmp_path: Path) -> None:
    tree, calibration = tmp_path / "tree.skops", tmp_path / "prada.json"
    assert stealml("train", "--data", "german-credit", "--model", "tree", "--out",
                   str(tree)).returncode == 0
    run = stealml("calibrate-prada", str(tree), "--data", "german-credit", "--orders", "5",
                  "--out", str(calibration), "--json")
    summary = json.loads(run.stdout)
    assert summary["rows"] == 700 and summary["min_samples"] == 10
    assert summary["threshold_at"]["10"] < summary["threshold_at"]["100"] < 1
    assert json.loads(calibration.read_text())["detector"] == "prada"
    shares = summary["label_shares"]  # the tree's classes on the owner's 700 rows
    assert set(shares) == {"bad", "good"} and sum(shares.values()) == pytest.approx(1)
    off = tmp_path / "off.json"
    assert not json.loads(stealml("calibrate-prada", str(tree), "--data", "german-credit",
                                  "--orders", "2", "--no-label-test", "--out", str(off),
                                  "--json").stdout)["label_shares"]
    assert "label_high" not in json.loads(off.read_text())
    bounds = summary["mean_distance_at"]  # the scale test's upper bounds on the mean distance
    assert set(bounds) >= {"10", "20", "50"} and all(v > 0 for v in bounds.values())
    assert len(json.loads(calibration.read_text())["scale_high"]) > 40
    assert not json.loads(stealml("calibrate-prada", str(tree), "--data", "german-credit",
                                  "--orders", "2", "--no-scale-test", "--out", str(off),
                                  "--json").stdout)["mean_distance_at"]
    assert "scale_high" not in json.loads(off.read_text())
    pairs = summary["pair_distance_at"]  # the spread test's bounds on the pairs' mean
    assert set(pairs) >= {"10", "20", "50"} and all(v > 0 for v in pairs.values())
    assert len(json.loads(calibration.read_text())["spread_high"]) == len(
        json.loads(calibration.read_text())["scale_high"])
    assert not json.loads(stealml("calibrate-prada", str(tree), "--data", "german-credit",
                                  "--orders", "2", "--no-spread-test", "--out", str(off),
                                  "--json").stdout)["pair_distance_at"]
    assert "spread_high" not in json.loads(off.read_text())
    likely = summary["likelihood_at"]  # the likelihood test's bounds on the mean score
    assert set(likely) >= {"10", "20", "50"} and all(v > 0 for v in likely.values())
    saved = json.loads(calibration.read_text())
    assert len(saved["likelihood_high"]) == len(saved["scale_high"])
    assert set(saved["row_model"]["log_probs"]) == {"bad", "good"}
    assert not json.loads(stealml("calibrate-prada", str(tree), "--data", "german-credit",
                                  "--orders", "2", "--no-likelihood-test", "--out", str(off),
                                  "--json").stdout)["likelihood_at"]
    assert "row_model" not in json.loads(off.read_text())
    assert summary["grid_features"] == len(saved["grid"]) > 30 and summary["grid_flag"] == 3
    assert json.loads(stealml("calibrate-prada", str(tree), "--data", "german-credit",
                              "--orders", "2", "--no-grid-test", "--out", str(off),
                              "--json").stdout)["grid_features"] == 0
    assert "grid" not in json.loads(off.read_text())
    assert summary["label_level"] == 1e-5  # the default; a looser level is cheaper
    loose = json.loads(stealml("calibrate-prada", str(tree), "--data", "german-credit",
                               "--orders", "2", "--label-level", "0.01", "--out", str(off),
                               "--json").stdout)
    assert loose["label_level"] == 0.01 and loose["label_shares"] == shares
    _one_line_error(stealml("calibrate-prada", str(tree), "--data", "german-credit",
                            "--label-level", "0", "--out", str(off)), "level must be between")
    ext = ["extract", "--target", str(tree), "--attack", "top-down", "--monitor", "prada",
           "--data", "german-credit", "--batch-size", "10", "--json"]
    flagged = json.loads(stealml(*ext, "--prada-calibration", str(calibration)).stdout)
    # the paper's constant delta cannot test before 100 distances; the calibrated one can
    assert flagged["detection"]["prada"]["flagged_at"] <= 20 and not flagged["complete"]
    no_data = [a for a in ext if a not in ("--data", "german-credit")]
    _one_line_error(stealml(*no_data, "--prada-calibrate"), "needs the owner's data")
    _one_line_error(stealml(*ext, "--prada-calibrate", "--prada-calibration",
                            str(calibration)), "not both")
    _one_line_error(stealml("serve", str(tree), "--prada-calibration", str(calibration)),
                    "needs --monitor prada")
    _one_line_error(stealml("calibrate-prada", str(tree), "--data", "iris", "--out",
                            str(calibration)), "shape (105, 4)", "61 columns")
