"""`stealml extract` with output defences and monitors, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def stealml(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "stealml", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-defences") / "tree.skops"
    run = stealml("train", "--data", "german-credit", "--model", "tree", "--max-leaves", "26",
                  "--out", str(path))
    assert run.returncode == 0, run.stderr
    return path


def test_extract_reports_when_the_monitors_flag(tree: Path) -> None:
    run = stealml("extract", "--target", str(tree), "--attack", "path-finding", "--data",
                  "german-credit", "--monitor", "prada", "--prada-delta", "0.95", "--monitor",
                  "ood", "--on-flag", "log", "--batch-size", "10", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["fidelity"]["r_test"] == 0.0  # log only: the attack is not stopped
    assert report["detection"]["ood"]["flagged_at"] <= 10
    assert 100 <= report["detection"]["prada"]["flagged_at"] < report["queries"]
    blocked = json.loads(stealml("extract", "--target", str(tree), "--attack", "path-finding",
                                 "--data", "german-credit", "--monitor", "ood",
                                 "--json").stdout)
    assert blocked["queries"] == blocked["detection"]["ood"]["flagged_at"]
    assert blocked["complete"] is False


@pytest.mark.parametrize(("args", "message"), [
    (["--monitor", "ood"], "--monitor ood needs the owner's data"),
    (["--output", "top-k", "--top-k", "3"], "top_k is 3, but the model has only 2 classes"),
    (["--reverse-sigmoid", "1", "0"], "reverse_sigmoid is (beta >= 0, gamma > 0)"),
])
def test_bad_defence_options_give_one_line(tree: Path, args: list[str], message: str) -> None:
    run = stealml("extract", "--target", str(tree), "--attack", "path-finding", *args)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"error: {run.stderr.strip()[7:]}"]
    assert message in run.stderr


def test_url_targets_refuse_local_defences() -> None:
    run = stealml("extract", "--url", "http://127.0.0.1:9", "--attack", "path-finding",
                  "--noise", "0.1")
    assert run.returncode == 1 and "a service at --url sets its own defences" in run.stderr
