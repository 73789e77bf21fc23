"""Functionally-equivalent extraction of ReLU networks: queries, seconds, output and
parameter error, against the goals of issue 9.

Targets: scikit-learn MLPClassifier(32 ReLU units) trained on Digits (64-32-10; scikit-learn's
``load_digits`` scaled to [-1, 1], 1,347 training images), one per seed; a 784-128-10 ReLU
network with random weights (He initialisation) on uniform inputs in [-1, 1]^784 (no MNIST
download is possible offline: the same shape, not MNIST's weights). The API answers
probabilities; the attack reads their log-ratios. Errors are measured on 20,000 uniform
points and 50 random lines of 1,000 points through the input box, and on the Digits images.
A 10-15-15-1 network (two hidden layers) is outside what the attack extracts.

Run: .venv/bin/python benchmarks/relu_extraction.py [--seeds 5] [--skip-784]
Writes benchmarks/results/relu_extraction.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from stealml.attacks import FunctionallyEquivalent
from stealml.attacks._relu_model import make_relu_mlp
from stealml.experiments.neural import logits, output_error, parameter_error
from stealml.experiments.tables import write_results
from stealml.oracles import LocalOracle
from stealml.space import FeatureSpace

RESULTS = Path(__file__).resolve().parent / "results" / "relu_extraction"


def digits_victim(seed: int) -> tuple[MLPClassifier, np.ndarray, np.ndarray]:
    """The 64-32-10 Digits victim of a seed, its training and test images."""
    X, y = load_digits(return_X_y=True)
    X = X / 8.0 - 1.0
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.25, random_state=seed)
    model = MLPClassifier((32,), max_iter=1000, random_state=seed).fit(Xtr, ytr)
    return model, Xtr, Xte


def random_victim(d: int, h: int, c: int, seed: int) -> MLPClassifier:
    rng = np.random.default_rng(seed)
    W1 = rng.normal(0, np.sqrt(2 / d), (d, h))
    W2 = rng.normal(0, np.sqrt(2 / h), (h, c))
    return make_relu_mlp([W1, W2], [rng.normal(0, 0.1, h), rng.normal(0, 0.1, c)],
                         np.arange(c))


def measure(name: str, target: MLPClassifier, seed: int,
            X_data: np.ndarray | None = None) -> dict[str, Any]:
    d = target.n_features_in_
    space = FeatureSpace.continuous(d)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = FunctionallyEquivalent(tuple(target.hidden_layer_sizes),
                                    random_state=seed).run(LocalOracle(target, space))
    seconds = time.perf_counter() - start
    err = output_error(target, result.model, space, random_state=seed + 100)
    row: dict[str, Any] = {
        "target": name, "seed": seed, "queries": result.queries,
        "seconds": round(seconds, 1), "load": round(load, 1),
        "neurons": f"{result.info['neurons_found'][0]}/{result.info['neurons_expected'][0]}",
        "max_logit_error": err["max_logit_error"],
        "agree_uniform": err["agreement_uniform"],
        "param_error": parameter_error(target, result.model),
        "complete": result.complete,
    }
    if X_data is not None:
        row["agree_data"] = float(np.mean(target.predict(X_data) ==
                                          result.model.predict(X_data)))
        row["max_logit_error_data"] = float(np.abs(logits(target, X_data) -
                                                   logits(result.model, X_data)).max())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--skip-784", action="store_true")
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        target, Xtr, Xte = digits_victim(seed)
        rows.append(measure("64-32-10 Digits", target, seed, np.vstack([Xtr, Xte])))
        print(rows[-1], flush=True)
    if not args.skip_784:
        rows.append(measure("784-128-10 random", random_victim(784, 128, 10, 0), 0))
        print(rows[-1], flush=True)
    notes = """
Goals (issue 9): 64-32-10 on Digits: 100% agreement on uniform points and on the data,
max logit error <= 1e-6, <= 150,000 queries, under 5 minutes on 2 cores, on every seed.
ART 1.20.1's FunctionallyEquivalentExtraction on such a victim (issue 9): 265,000 queries
gave 38-52% uniform agreement; 6.2 million queries (568 s) gave 95.7% uniform / 99.3% on
the data. Errors are logit errors (centred across classes: softmax fixes logits only up to
a shift); param_error is the largest parameter difference after matching neurons by
permutation and positive scale (a neuron whose weights are all zero is invisible to any
attack and is matched to a dead unit). `load` is the 1-minute load average when the run
started (the machine is shared: 2 cores, about 6 sessions). The 10-15-15-1 goal (two hidden
layers) is not attempted: the attack extracts one hidden layer.
"""
    write_results(RESULTS, "Functionally-equivalent extraction of ReLU networks", rows,
                  ["target", "seed", "queries", "seconds", "load", "neurons",
                   "max_logit_error", "max_logit_error_data", "agree_uniform",
                   "agree_data", "param_error", "complete"], notes)


if __name__ == "__main__":
    main()
