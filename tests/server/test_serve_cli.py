"""``stealml serve`` and ``stealml extract --url`` as a user runs them: real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

from stealml.cli import main
from stealml.datasets import load
from stealml.modelio import save_model
from stealml.server.mlserver import free_port
from stealml.server.runner import serving_process
from stealml.server.store import PredictionLog

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
KEY = "sk-cli-attacker"


def stealml(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stealml", *args], capture_output=True,
                          text=True, env=ENV, timeout=300)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``stealml serve`` of a diabetes LR on a free loopback port; yields URL and log."""
    data = load("diabetes", random_state=0)
    model = LogisticRegression(max_iter=5000).fit(data.X_train, data.y_train)
    save_model(tmp_path / "diabetes.skops", model, data.space)
    log = tmp_path / "served.sqlite"
    args = [str(tmp_path / "diabetes.skops"), "--api-key", f"attacker:{KEY}:100000",
            "--log", str(log), "--price", "0.0001", "--significant-digits", "16"]
    with serving_process(args, free_port(), log=tmp_path / "serve.out") as url:
        yield url, log


@pytest.mark.slow
def test_serve_then_extract_over_http(served: tuple[str, Path]) -> None:
    url, log = served
    run = stealml("extract", "--url", url, "--api-key", KEY, "--attack", "equation-solving",
                  "--data", "diabetes", "--eval-queries", "500", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["queries"] == 9 and report["complete"]
    assert report["fidelity"]["r_unif"] == 0 and report["fidelity"]["r_test"] == 0
    assert report["eval_queries"] > 500 and report["cost"] == pytest.approx(0.0009)
    paid = report["queries"] + report["eval_queries"]
    assert PredictionLog(log).usage("attacker") == paid
    run = stealml("extract", "--url", url, "--model", "diabetes", "--protocol", "v2",
                  "--api-key", KEY, "--attack", "equation-solving", "--eval-queries", "200",
                  "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["fidelity"]["r_unif"] == 0


def test_command_line_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"not really")
    runner = CliRunner()
    for args, words in [
        (["serve"], "nothing to serve"),
        (["serve", str(tmp_path / "model.pkl")], "runs code when loaded"),
        (["extract", "--attack", "equation-solving"], "either --target FILE or --url"),
        (["extract", "--url", "http://127.0.0.1:9", "--attack", "equation-solving"],
         "did not answer"),
    ]:
        run = runner.invoke(main, args)
        assert run.exit_code == 1 and words in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
