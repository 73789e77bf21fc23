"""Functionally-equivalent extraction of ReLU networks: queries, seconds, output and
parameter error, against the goals of issue 9.

Targets: scikit-learn MLPClassifier(32 ReLU units) trained on Digits (64-32-10; scikit-learn's
``load_digits`` scaled to [-1, 1], 1,347 training images), one per seed; a 784-128-10
MLPClassifier trained on the same Digits images upsampled to 28 x 28 (scipy.ndimage.zoom,
linear, 3.5x; MNIST's shape: no MNIST ships offline and nothing is downloaded), one per
seed; Digits classifiers 64-32-1 and 64-16-16-1 (binary: digit >= 5) and 64-16-16-10, one
per seed; a 10-15-15-1 MLPRegressor (two hidden layers) trained on y = sin(x.g) + x0 x1
(2,000 uniform points in [-1, 1]^10, g Gaussian), one per seed, whose API answers its raw
output. Classifier APIs answer probabilities; the attack reads their log-ratios. Errors
are measured on 20,000 uniform points and 50 random lines of 1,000 points through the input
box, and on the Digits images.

Run: .venv/bin/python benchmarks/relu_extraction.py [--seeds 5] [--deep-seeds 15]
[--targets digits,deep,784,binary,softmax2,binary2] (the results: 784 with --seeds 3,
10-15-15-1 with --deep-seeds 15)
Writes benchmarks/results/relu_extraction.{json,md}; rows of targets not run are kept
from the previous results. Each row names the git commit that measured it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor

from stealml.attacks import FunctionallyEquivalent
from stealml.experiments.neural import (
    aligned_parameter_error,
    logits,
    output_error,
    parameter_error,
)
from stealml.experiments.tables import git_revision, write_results
from stealml.oracles import LocalOracle
from stealml.space import FeatureSpace

RESULTS = Path(__file__).resolve().parent / "results" / "relu_extraction"
TITLE = "Functionally-equivalent extraction of ReLU networks"
COLUMNS = ["target", "seed", "method", "queries", "seconds", "load", "neurons",
           "max_logit_error", "log2_error", "max_logit_error_data", "max_proba_error",
           "agree_uniform", "agree_data", "param_error", "param_matched", "complete", "git"]


NOTES = """
Goals (issue 9): 64-32-10 on Digits: 100% agreement on uniform points and on the data,
max logit error <= 1e-6, <= 150,000 queries, under 5 minutes on 2 cores, on every seed.
ART 1.20.1's FunctionallyEquivalentExtraction on such a victim (issue 9): 265,000 queries
gave 38-52% uniform agreement; 6.2 million queries (568 s) gave 95.7% uniform / 99.3% on
the data. Errors are logit errors (centred across classes: softmax fixes logits only up to
a shift); param_error is the largest parameter difference after matching neurons by
permutation and positive scale (a neuron whose weights are all zero is invisible to any
attack and is matched to a dead unit). `load` is the 1-minute load average when the run
started (the machine is shared: 2 cores, about 6 sessions); `git` the commit that ran it.

Goal (issue 9) for 10-15-15-1: worst-case output error <= 2^-30 (9.3e-10) on CPU within 10
minutes (Carlini et al., CRYPTO 2020: 2^-40 with 2^18.5 queries for a 4,000-parameter
network). `max_logit_error` is the largest |output difference| over the uniform points and
the lines, `log2_error` its log2. `neurons` is found/expected per hidden layer: a
second-layer unit that is dead on the whole box, or active on all of it, never bends the
answers there (one active everywhere adds a linear function of the first layer, which the
attack keeps as one always-active stand-in unit). `param_error` for two layers is the
largest parameter difference after aligning neurons per layer by permutation and positive
scale over the neurons that match within 1e-3 (`param_matched`: matched/total per layer).
Second-layer units stay unmatched when they never bend the answers in the box (found as a
stand-in or not at all) or when some of their weights change no answer in the box (weights
on first-layer units that are inactive wherever the second-layer unit is active there):
those are fitted to the answers, not recovered. Runs were single-threaded
(OMP/OpenBLAS/MKL threads = 1). 10-15-15-1 has seeds 0-14 (`--deep-seeds 15`; the
other targets 0-4). Seeds 7 and 8 were not exact before commits 3b1474c and b1f45a9
(errors 0.054 and 0.35): seed 8's second-layer signs (one flip at a time from the
least-squares signs had stopped 7 flips from the victim's, every row right) now come from
a subset sum over the part of the answers linear in the first layer's outputs; seed 7's
missing unit, inactive on 0.05% of the box, is met by the second round of lines through
the worst-fitted points, which are now taken apart from each other. Seeds 6 and 9
(param_error 0.068, 0.10) find 14 of 15 second-layer units (the missing one is active on
the whole box in seed 6, dead on it in seed 9) and keep the always-active stand-in, which
trades output weight with a unit active on all of 200,000 uniform points (on the victim's
scale, seed 9: 0.589 for 0.686, seed 6: -0.804 for -0.760) and takes up the linear part
of units found with the opposite sign (seed 6: 4 units); the outputs stay exact.

784-128-10 (issue 9 names the shape; no goal numbers): Digits upsampled to 28 x 28, 1,347
training images, 128 ReLU units, probabilities. Inputs wider than 200 columns take the
Jacobian sweep (`method` sweep: one forward-difference Jacobian per segment between corners,
signs from the Jacobians, output layer from the jumps refitted on 2(h+1) uniform points;
narrower ones refine each neuron in a ball, `balls`). Training leaves a few units with
weights decayed to ~1e-5 and a negative bias: dead on the whole box, they change no answer
there and are not found (`neurons` 126/128); `param_error` is then over the matched units
(`param_matched`). `max_proba_error` is the largest probability difference over 5,000
uniform points and the data.

Probabilities from other heads: 64-32-1 Digits binary (is the digit 5 or more; one
logistic output, whose 1 - p is rounded, so answers with min(p, 1 - p) < 1e-3 are not read
and lines are cut to their unsaturated stretches), and two hidden layers: 64-16-16-10
Digits (softmax; its centred logits reach 12.6-18.2 on the box over seeds 0-4) and
64-16-16-1 Digits binary (logistic, digit >= 5; 10-20% of the box answers
min(p, 1 - p) < 1e-3 and is not read; the errors are over all of the box). Softmax
answers fix the logits up to one constant per input: the stolen output layer is centred
across classes (the gauge). The two-layer rows' `max_logit_error` is over 20,000 uniform
points and 50 lines of the box, as for 10-15-15-1, and `max_logit_error_data` over the
1,797 Digits images.
"""


def digits_victim(seed: int) -> tuple[MLPClassifier, np.ndarray, np.ndarray]:
    """The 64-32-10 Digits victim of a seed, its training and test images."""
    X, y = load_digits(return_X_y=True)
    X = X / 8.0 - 1.0
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.25, random_state=seed)
    model = MLPClassifier((32,), max_iter=1000, random_state=seed).fit(Xtr, ytr)
    return model, Xtr, Xte


def digits28_victim(seed: int) -> tuple[MLPClassifier, np.ndarray, np.ndarray]:
    """The 784-128-10 victim of a seed (Digits upsampled to 28 x 28), its training and
    test images."""
    X, y = load_digits(return_X_y=True)
    X = zoom(X.reshape(-1, 8, 8), (1, 3.5, 3.5), order=1).reshape(len(X), -1)
    X = np.clip(X / 8.0 - 1.0, -1.0, 1.0)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.25, random_state=seed)
    model = MLPClassifier((128,), max_iter=300, random_state=seed).fit(Xtr, ytr)
    return model, Xtr, Xte


def digits_classifier(seed: int, hidden: tuple[int, ...], binary: bool = False,
                      ) -> tuple[MLPClassifier, np.ndarray, np.ndarray]:
    """A ReLU classifier on Digits (``binary``: is the digit 5 or more, one logistic
    output), its training and test images."""
    X, y = load_digits(return_X_y=True)
    X = X / 8.0 - 1.0
    y = (y >= 5).astype(int) if binary else y
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.25, random_state=seed)
    model = MLPClassifier(hidden, max_iter=1000, random_state=seed).fit(Xtr, ytr)
    return model, Xtr, Xte


def deep_victim(seed: int) -> MLPRegressor:
    """The 10-15-15-1 regressor of a seed."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (2000, 10))
    y = np.sin(X @ rng.normal(size=10)) + X[:, 0] * X[:, 1]
    return MLPRegressor(hidden_layer_sizes=(15, 15), max_iter=500, random_state=seed).fit(X, y)


def measure(name: str, target: Any, seed: int,
            X_data: np.ndarray | None = None) -> dict[str, Any]:
    d = target.n_features_in_
    space = FeatureSpace.continuous(d)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = FunctionallyEquivalent(tuple(target.hidden_layer_sizes),
                                    random_state=seed).run(LocalOracle(target, space))
    seconds = time.perf_counter() - start
    err = output_error(target, result.model, space, random_state=seed + 100)
    found, expected = result.info["neurons_found"], result.info["neurons_expected"]
    row: dict[str, Any] = {
        "target": name, "seed": seed, "queries": result.queries,
        "seconds": round(seconds, 1), "load": round(load, 1),
        "neurons": "/".join(",".join(str(n) for n in v) for v in (found, expected)),
        "max_logit_error": err["max_logit_error"],
        "log2_error": round(float(np.log2(max(err["max_logit_error"], 1e-300))), 1),
        "complete": result.complete, "git": git_revision(),
    }
    row["method"] = result.info.get("method", "layers")
    if hasattr(target, "predict_proba"):
        row["agree_uniform"] = err["agreement_uniform"]
    if len(expected) == 1:
        row["param_error"] = parameter_error(target, result.model)
    if len(expected) > 1 or not np.isfinite(row["param_error"]):
        # a unit dead on the whole box (weights decayed to ~1e-5 by training) never
        # bends the answers there: errors over the matched units
        aligned = aligned_parameter_error(target, result.model)
        row["param_error"] = aligned["max_error"]
        row["param_matched"] = "/".join(",".join(str(n) for n in aligned[k])
                                        for k in ("matched", "neurons"))
    if hasattr(target, "predict_proba"):
        U = np.random.default_rng(seed + 200).uniform(-1, 1, (5000, d))
        Xp = U if X_data is None else np.vstack([U, X_data])
        row["max_proba_error"] = float(np.abs(target.predict_proba(Xp) -
                                              result.model.predict_proba(Xp)).max())
    if X_data is not None:
        row["agree_data"] = float(np.mean(target.predict(X_data) ==
                                          result.model.predict(X_data)))
        row["max_logit_error_data"] = float(np.abs(logits(target, X_data) -
                                                   logits(result.model, X_data)).max())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--deep-seeds", type=int, default=None,
                        help="seeds of the 10-15-15-1 regressor (default: --seeds)")
    parser.add_argument("--skip-784", action="store_true")
    parser.add_argument("--targets", default="digits,deep,784",
                        help="comma-separated: digits, deep (10-15-15-1), 784, binary "
                        "(64-32-1 Digits, digit >= 5), softmax2 (64-16-16-10 Digits), "
                        "binary2 (64-16-16-1 Digits, digit >= 5)")
    args = parser.parse_args()
    targets = set(args.targets.split(","))
    if args.skip_784:
        targets.discard("784")
    kinds = {"digits": "64-32-10 Digits", "deep": "10-15-15-1 regressor",
             "784": "784-128-10 Digits 28x28", "binary": "64-32-1 Digits binary",
             "softmax2": "64-16-16-10 Digits", "binary2": "64-16-16-1 Digits binary"}
    rows: list[dict[str, Any]] = []
    old = RESULTS.with_suffix(".json")
    if old.exists():  # keep the rows of targets not run now
        previous = json.loads(old.read_text())
        rows = [{**r, "git": r.get("git", previous["meta"]["git"])} for r in previous["rows"]
                if not any(r["target"] == kinds[k] for k in targets)]
    if "digits" in targets:
        for seed in range(args.seeds):
            target, Xtr, Xte = digits_victim(seed)
            rows.append(measure(kinds["digits"], target, seed, np.vstack([Xtr, Xte])))
            print(rows[-1], flush=True)
    if "deep" in targets:
        for seed in range(args.seeds if args.deep_seeds is None else args.deep_seeds):
            rows.append(measure(kinds["deep"], deep_victim(seed), seed))
            print(rows[-1], flush=True)
    for key, hidden, binary in (("binary", (32,), True), ("softmax2", (16, 16), False),
                                ("binary2", (16, 16), True)):
        if key in targets:
            for seed in range(args.seeds):
                target, Xtr, Xte = digits_classifier(seed, hidden, binary)
                rows.append(measure(kinds[key], target, seed, np.vstack([Xtr, Xte])))
                print(rows[-1], flush=True)
    if "784" in targets:
        for seed in range(args.seeds):
            target, Xtr, Xte = digits28_victim(seed)
            rows.append(measure(kinds["784"], target, seed, np.vstack([Xtr, Xte])))
            print(rows[-1], flush=True)
    order = list(kinds.values())
    rows.sort(key=lambda r: (order.index(r["target"]), r["seed"]))
    write_results(RESULTS, TITLE, rows, COLUMNS, NOTES)


if __name__ == "__main__":
    main()
