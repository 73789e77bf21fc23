"""stealml against IBM ART 1.20.1 in one run: the same victims, the same budgets.

1. Functionally-equivalent extraction: ART's FunctionallyEquivalentExtraction (reading the
   victim's logits) against stealml's ``functionally-equivalent`` (reading its
   probabilities), on 64-32-10 Digits victims and 10-16-2 victims: queries, seconds,
   agreement, logit error, parameter error after aligning neurons.
2. Substitute training from labels on the 64-32-10 Digits victim: ART's KnockoffNets
   (random strategy) and CopycatCNN, both training the victim's architecture in PyTorch,
   against stealml's ``substitute-knockoff`` and ``substitute-jacobian`` (scikit-learn
   MLPs, 8 networks averaged; one network for comparison), at 1,000, 1,347 (the training
   images), 10,000 and 50,000 queries.
3. The 1,347 training images as the only queries, on five victims (seeds 0-4), on
   stealml's [-1, 1] scale and on the [0, 1] scale of the issue's own ART measurement,
   beside what an attacker who knew the victim's training recipe could reach: the
   victim's "twins" (its architecture, solver and data, other seeds) fit every bought
   answer, and the label most of them give is the best guess the answers allow.

ART lives only in its own virtual environment (``.venv-art``, made here on first use,
or by ``make bench-art``): this script runs its ART half there in a subprocess, from the
victims' weights saved to a temporary folder, and measures both halves here.

Transfer pool for the substitutes (the same for every method): the 1,347 Digits training
images, then uniform points of [-1, 1]^64 up to the budget (no other 8x8 image data set
is available offline). Digits are scaled to [-1, 1] (x / 8 - 1), stealml's model space.

Run: .venv/bin/python benchmarks/art_comparison.py [--fe-seeds 1] [--binary-seeds 2]
[--reuse-art] (``--reuse-art``: ART's rows are copied from the results file already there,
and ART is not run). Writes benchmarks/results/art_comparison.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ART_VENV = ROOT / ".venv-art"
RESULTS = Path(__file__).resolve().parent / "results" / "art_comparison"
ART_PACKAGES = ["adversarial-robustness-toolbox==1.20.1", "torch==2.13.0", "packaging==26.4",
                "scikit-learn==1.9.1"]
BUDGETS = [1000, 1347, 10_000, 50_000]
FE_CAP_SECONDS = 150


def ensure_art_venv() -> Path:
    """The ART virtual environment's python, made on first use."""
    python = ART_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ART_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ART_PACKAGES],
                       check=True)
    return python


# ---------------------------------------------------------------- the ART half (subprocess)

def _relu_logits(net: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    Z = np.maximum(X @ net["W1"] + net["b1"], 0.0) @ net["W2"] + net["b2"]
    return np.hstack([np.zeros((len(Z), 1)), Z]) if Z.shape[1] == 1 else Z


class _Timeout(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise _Timeout


def art_part(folder: Path) -> None:
    import torch
    from art.attacks.extraction import CopycatCNN, FunctionallyEquivalentExtraction, KnockoffNets
    from art.estimators.classification import (
        BlackBoxClassifier,
        BlackBoxClassifierNeuralNetwork,
        PyTorchClassifier,
    )

    torch.set_num_threads(2)
    jobs = json.loads((folder / "jobs.json").read_text())
    out: list[dict[str, Any]] = []
    signal.signal(signal.SIGALRM, _alarm)
    for job in jobs["fe"]:
        net = dict(np.load(folder / f"{job['victim']}.npz"))
        count = [0]

        def predict(x: np.ndarray, net: dict[str, np.ndarray] = net,
                    count: list[int] = count) -> np.ndarray:
            count[0] += len(x)
            return _relu_logits(net, np.asarray(x, dtype=float))

        d, h = net["W1"].shape
        c = max(2, net["W2"].shape[1])
        np.random.seed(job["seed"])
        clf = BlackBoxClassifierNeuralNetwork(predict, input_shape=(d,), nb_classes=c)
        fee = FunctionallyEquivalentExtraction(classifier=clf, num_neurons=h)
        rec: dict[str, Any] = {"victim": job["victim"], "seed": job["seed"]}
        start = time.perf_counter()
        signal.alarm(FE_CAP_SECONDS)
        try:
            fee.extract(np.load(folder / f"{job['victim']}.npz")["X_fit"])
            np.savez(folder / f"art-fe-{job['victim']}.npz", W1=fee.w_0,
                     b1=np.ravel(fee.b_0), W2=fee.w_1, b2=np.ravel(fee.b_1))
            rec["status"] = "ok"
        except _Timeout:
            rec["status"] = f"stopped at the {FE_CAP_SECONDS} s cap"
        except AssertionError as exc:
            rec["status"] = f"AssertionError {str(exc)[:60]}".strip()
        except Exception as exc:  # ART's own failures are results here
            rec["status"] = f"{type(exc).__name__}: {str(exc)[:60]}"
        finally:
            signal.alarm(0)
        rec.update(queries=count[0], seconds=time.perf_counter() - start)
        out.append(rec)
        print(rec, flush=True)
    for job in jobs["substitute"]:
        net = dict(np.load(folder / f"{job['victim']}.npz"))
        pool = np.load(folder / "pool.npz")["pool"][:job["budget"]]
        d, c = net["W1"].shape[0], net["W2"].shape[1]

        def labels(x: np.ndarray, net: dict[str, np.ndarray] = net, c: int = c) -> np.ndarray:
            return np.eye(c)[_relu_logits(net, np.asarray(x, dtype=float)).argmax(axis=1)]

        for method in ("KnockoffNets", "CopycatCNN"):
            torch.manual_seed(job["seed"])
            np.random.seed(job["seed"])
            thief = PyTorchClassifier(
                model=torch.nn.Sequential(torch.nn.Linear(d, job["hidden"]), torch.nn.ReLU(),
                                          torch.nn.Linear(job["hidden"], c)),
                loss=torch.nn.CrossEntropyLoss(), optimizer=None, input_shape=(d,),
                nb_classes=c)
            thief._optimizer = torch.optim.Adam(thief.model.parameters(), lr=1e-3)
            victim = BlackBoxClassifier(labels, input_shape=(d,), nb_classes=c)
            epochs = job["epochs"]
            attack: Any = (KnockoffNets(victim, batch_size_fit=64, batch_size_query=512,
                                        nb_epochs=epochs, nb_stolen=len(pool),
                                        sampling_strategy="random", verbose=False)
                           if method == "KnockoffNets" else
                           CopycatCNN(victim, batch_size_fit=64, batch_size_query=512,
                                      nb_epochs=epochs, nb_stolen=len(pool)))
            start = time.perf_counter()
            stolen = attack.extract(pool.astype(np.float32), thieved_classifier=thief)
            seconds = time.perf_counter() - start
            layers = [m for m in stolen.model.modules() if isinstance(m, torch.nn.Linear)]
            name = f"art-{method}-{job['budget']}"
            np.savez(folder / f"{name}.npz",
                     W1=layers[0].weight.detach().numpy().T.astype(float),
                     b1=layers[0].bias.detach().numpy().astype(float),
                     W2=layers[1].weight.detach().numpy().T.astype(float),
                     b2=layers[1].bias.detach().numpy().astype(float))
            rec = {"method": method, "budget": job["budget"], "queries": len(pool),
                   "seconds": seconds, "file": name}
            out.append(rec)
            print(rec, flush=True)
    (folder / "art.json").write_text(json.dumps(out))


# ---------------------------------------------------------------- stealml's half and scoring

def _digits_victim(seed: int, scale: str = "[-1, 1]") -> tuple[Any, np.ndarray, np.ndarray]:
    """The 64-32-10 Digits victim of a seed and its training and test images: scikit-learn
    ``MLPClassifier((32,), max_iter=1000, random_state=seed)`` fit on the 1,347 training
    images of ``train_test_split(test_size=0.25, random_state=seed)`` (450 test images),
    pixels (0-16) scaled to [-1, 1] (x / 8 - 1, stealml's model space) or [0, 1] (x / 16)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 8.0 - 1.0 if scale == "[-1, 1]" else X / 16.0
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.25, random_state=seed)
    return MLPClassifier((32,), max_iter=1000, random_state=seed).fit(Xtr, ytr), Xtr, Xte


def _victims(fe_seeds: int, binary_seeds: int) -> dict[str, Any]:
    from sklearn.neural_network import MLPClassifier

    out: dict[str, Any] = {}
    for seed in range(fe_seeds):
        model, Xtr, Xte = _digits_victim(seed)
        out[f"digits-64-32-10-s{seed}"] = (model, Xtr, Xte, seed)
    rng = np.random.default_rng(123)
    for seed in range(binary_seeds):
        Xb = rng.uniform(-1, 1, (1000, 10))
        yb = (Xb[:, 0] * Xb[:, 1] + Xb[:, 2] - Xb[:, 3] ** 2 > 0).astype(int)
        model = MLPClassifier((16,), max_iter=2000, random_state=seed).fit(Xb, yb)
        out[f"uniform-10-16-2-s{seed}"] = (model, Xb[:800], Xb[800:], seed)
    return out


def _as_mlp(net: dict[str, np.ndarray], classes: np.ndarray) -> Any:
    from stealml.attacks._relu_model import make_relu_mlp

    W2, b2 = net["W2"], np.ravel(net["b2"])
    if len(classes) == 2 and W2.shape[1] == 2:  # two logits -> one logistic output
        W2, b2 = W2[:, 1:] - W2[:, :1], b2[1:] - b2[:1]
    return make_relu_mlp([net["W1"], W2], [np.ravel(net["b1"]), b2], classes)


def _fe_row(method: str, target: Any, stolen: Any, X_data: np.ndarray, queries: int,
            seconds: float, status: str, victim: str, load: float) -> dict[str, Any]:
    from stealml.experiments.neural import logits, output_error, parameter_error
    from stealml.space import FeatureSpace

    row: dict[str, Any] = {"victim": victim, "method": method, "status": status,
                           "queries": queries, "seconds": round(seconds, 1),
                           "load": round(load, 1)}
    if stolen is None:
        return row
    err = output_error(target, stolen, FeatureSpace.continuous(target.n_features_in_),
                       n_points=20_000, n_lines=20, random_state=7)
    row.update(agree_uniform=err["agreement_uniform"],
               agree_data=float(np.mean(target.predict(X_data) == stolen.predict(X_data))),
               max_logit_error=err["max_logit_error"],
               max_logit_error_data=float(np.abs(logits(target, X_data)
                                                 - logits(stolen, X_data)).max()),
               param_error=parameter_error(target, stolen))
    return row


def _sub_row(method: str, budget: int, target: Any, stolen: Any, Xte: np.ndarray,
             queries: int, seconds: float, load: float, low: float = -1.0,
             **extra: Any) -> dict[str, Any]:
    """Agreement on the test images and on 20,000 fresh uniform points of the pixel range
    (``low`` to 1 in the victim's scale); evaluation queries are not counted."""
    U = low + (1.0 - low) * np.random.default_rng(11).uniform(0, 1, (20_000, Xte.shape[1]))
    return {"method": method, "budget": budget, "queries": queries,
            "agree_test": float(np.mean(target.predict(Xte) == stolen.predict(Xte))),
            "agree_uniform": float(np.mean(target.predict(U) == stolen.predict(U))),
            "seconds": round(seconds, 1), "load": round(load, 1), **extra}


def _art_rows(args: argparse.Namespace, victims: dict[str, Any], pool: np.ndarray,
              sub_victim: str, sub_hidden: int) -> tuple[list[dict[str, Any]],
                                                         list[dict[str, Any]], str]:
    """ART's rows: measured now in ``.venv-art``, or (``--reuse-art``) copied from the
    results file already written; and where they come from."""
    if args.reuse_art:
        old = json.loads(RESULTS.with_suffix(".json").read_text())
        rows = [r for r in old["rows"] if str(r["method"]).startswith("ART ")]
        return ([r for r in rows if "victim" in r and "budget" not in r],
                [r for r in rows if "budget" in r and r["budget"] in args.budgets],
                f"copied from the run of git {old['meta']['git']} ({old['meta']['date']})")
    art_python = ensure_art_venv()
    target0, _, Xte0, _ = victims[sub_victim]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, (model, Xtr, _, _) in victims.items():
            np.savez(folder / f"{name}.npz", W1=model.coefs_[0], b1=model.intercepts_[0],
                     W2=model.coefs_[1], b2=model.intercepts_[1],
                     X_fit=np.random.default_rng(3).uniform(-1, 1, (500, Xtr.shape[1])))
        np.savez(folder / "pool.npz", pool=pool)
        jobs = {"fe": [{"victim": n, "seed": v[3]} for n, v in victims.items()],
                "substitute": [{"victim": sub_victim, "budget": b, "seed": 0,
                                "hidden": sub_hidden, "epochs": _epochs(b)}
                               for b in args.budgets]}
        (folder / "jobs.json").write_text(json.dumps(jobs))
        load_art = os.getloadavg()[0]
        subprocess.run([str(art_python), str(Path(__file__).resolve()), "--art-part",
                        str(folder)], check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        art = json.loads((folder / "art.json").read_text())
        fe_rows: list[dict[str, Any]] = []
        for rec in (r for r in art if "victim" in r):
            model, _, Xte, _ = victims[rec["victim"]]
            path = folder / f"art-fe-{rec['victim']}.npz"
            stolen = _as_mlp(dict(np.load(path)), model.classes_) if path.exists() else None
            fe_rows.append(_fe_row("ART FunctionallyEquivalentExtraction", model, stolen,
                                   np.vstack([victims[rec["victim"]][1], Xte]),
                                   rec["queries"], rec["seconds"], rec["status"],
                                   rec["victim"], load_art))
        sub_rows = [_sub_row(f"ART {rec['method']}", rec["budget"], target0,
                             _as_mlp(dict(np.load(folder / f"{rec['file']}.npz")),
                                     target0.classes_), Xte0, rec["queries"],
                             rec["seconds"], load_art)
                    for rec in art if "method" in rec]
    return fe_rows, sub_rows, "measured in this run"


def run_comparison(args: argparse.Namespace) -> None:
    from stealml.attacks import FunctionallyEquivalent
    from stealml.experiments.tables import write_results
    from stealml.oracles import LocalOracle

    old = (json.loads(RESULTS.with_suffix(".json").read_text())["rows"]
           if RESULTS.with_suffix(".json").exists() else [])
    victims = _victims(args.fe_seeds, args.binary_seeds)
    sub_victim, sub_hidden = "digits-64-32-10-s0", 32
    target0, Xtr0, Xte0, _ = victims[sub_victim]
    rng = np.random.default_rng(5)
    pool = np.vstack([Xtr0, rng.uniform(-1, 1, (max(max(args.budgets) - len(Xtr0), 0), 64))])
    fe_rows, sub_rows, art_source = _art_rows(args, victims, pool, sub_victim, sub_hidden)
    fe_rows = [r for r in fe_rows if r["victim"] in victims]
    if "fe" in args.sections:
        for name, (model, Xtr, Xte, seed) in victims.items():
            load = os.getloadavg()[0]
            start = time.perf_counter()
            result = FunctionallyEquivalent(tuple(model.hidden_layer_sizes),
                                            random_state=seed).run(LocalOracle(model))
            fe_rows.append(_fe_row("stealml functionally-equivalent", model, result.model,
                                   np.vstack([Xtr, Xte]), result.queries,
                                   time.perf_counter() - start,
                                   "complete" if result.complete else "partial", name, load))
            print(fe_rows[-1], flush=True)
    else:
        fe_rows += [r for r in old if r["method"] == "stealml functionally-equivalent"]
    if "budgets" in args.sections:
        for budget in args.budgets:
            sub_rows += _our_substitutes(target0, pool[:budget], Xtr0[:budget], Xte0, budget)
    else:
        sub_rows += [r for r in old if str(r["method"]).startswith("stealml substitute")
                     and "scale" not in r]
    if "images" in args.sections:
        seed_rows = [row for scale in ("[-1, 1]", "[0, 1]")
                     for seed in range(args.sub_seeds)
                     for row in _training_images_only(seed, scale, args.twins)]
    else:
        seed_rows = [r for r in old if "scale" in r]
    fe_rows.sort(key=lambda r: (r["victim"], r["method"]))
    sub_rows.sort(key=lambda r: (r["budget"], r["method"]))
    notes = NOTES + f"\nART's rows: {art_source}.\n"
    write_results(RESULTS, "stealml against IBM ART 1.20.1 (same victims, same budgets)",
                  [*fe_rows, *sub_rows, *seed_rows], [], notes)
    _write_markdown(fe_rows, sub_rows, seed_rows, notes)


def _substitute(method: str, X: np.ndarray, n_estimators: int, seed: int,
                budget: int | None = None) -> Any:
    """stealml's substitute of the victim's architecture: at most 1,000 epochs (the
    victim's own limit) up to 1,347 queries, 200 above (as many samples per epoch)."""
    from stealml.attacks import SubstituteJacobian, SubstituteKnockoff

    budget = budget or len(X)
    kwargs = {"n_queries": budget, "hidden_layer_sizes": (32,),
              "max_iter": 1000 if budget <= 1347 else 200,
              "n_estimators": n_estimators, "random_state": seed}
    if method == "substitute-jacobian":
        return SubstituteJacobian(seeds=X, **kwargs)
    return SubstituteKnockoff(transfer=X, **kwargs)


def _timed_run(attack: Any, target: Any) -> tuple[Any, float, float]:
    from stealml.oracles import LocalOracle
    from stealml.policies import ApiPolicy

    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = attack.run(LocalOracle(target, policy=ApiPolicy(output="labels")))
    return result, time.perf_counter() - start, load


def _our_substitutes(target: Any, pool: np.ndarray, seeds: np.ndarray, Xte: np.ndarray,
                     budget: int) -> list[dict[str, Any]]:
    """stealml's substitutes at one budget: Knockoff (8 networks; and one at 1,347) on the
    pool's first rows, Jacobian augmentation (8 networks) from the training images."""
    rows = []
    runs = [("substitute-knockoff", pool, 8), ("substitute-jacobian", seeds, 8)]
    if budget == 1347:
        runs.append(("substitute-knockoff", pool, 1))
    for method, X, k in runs:
        result, seconds, load = _timed_run(_substitute(method, X, k, 0, budget), target)
        label = f"stealml {method}" + ("" if k > 1 else ", 1 network")
        rows.append(_sub_row(label, budget, target, result.model, Xte, result.queries,
                             seconds, load))
        print(rows[-1], flush=True)
    return rows


def _held_out_majority(votes: np.ndarray, classes: np.ndarray) -> float:
    """Mean agreement of each twin with the majority of the others: what the majority of
    n - 1 networks reaches with a victim drawn like them."""
    out = []
    for i in range(len(votes)):
        rest = np.delete(votes, i, axis=0)
        share = np.stack([(rest == c).mean(axis=0) for c in classes])
        out.append(np.mean(classes[share.argmax(axis=0)] == votes[i]))
    return float(np.mean(out))


def _training_images_only(seed: int, scale: str, n_twins: int) -> list[dict[str, Any]]:
    """The 1,347 training images as the only queries, one victim: stealml's Knockoff
    substitute (8 networks, and one), and the victim's twins."""
    from sklearn.neural_network import MLPClassifier
    from substitute_bound import twin_votes  # benchmarks/, the script's own folder

    target, Xtr, Xte = _digits_victim(seed, scale)
    low = -1.0 if scale == "[-1, 1]" else 0.0
    base = {"victim_seed": seed, "scale": scale}
    rows = []
    for k in (8, 1):
        result, seconds, load = _timed_run(
            _substitute("substitute-knockoff", Xtr, k, 100 + seed), target)
        rows.append(_sub_row(f"stealml substitute-knockoff, {k} network{'s' * (k > 1)}",
                             len(Xtr), target, result.model, Xte, result.queries, seconds,
                             load, low, **base))
        print(rows[-1], flush=True)
    bought = target.predict(Xtr)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    twins = [MLPClassifier((32,), max_iter=1000, random_state=10_000 + i).fit(Xtr, bought)
             for i in range(n_twins)]
    seconds = time.perf_counter() - start
    U = low + (1.0 - low) * np.random.default_rng(11).uniform(0, 1, (20_000, Xtr.shape[1]))
    for X, where in ((Xte, "test"), (U, "uniform")):
        votes, agree = twin_votes(twins, target, X)
        base[f"twins_{where}"] = agree["one_twin"]
        base[f"majority_{where}"] = agree["majority"]
        base[f"expected_best_{where}"] = agree["upper"]
        base[f"held_out_{where}"] = _held_out_majority(votes, target.classes_)
    base["twins_fit_bought"] = float(min(np.mean(t.predict(Xtr) == bought) for t in twins))
    rows.append({"method": f"victim's twins ({n_twins})", "budget": len(Xtr),
                 "queries": len(Xtr), "seconds": round(seconds, 1), "load": round(load, 1),
                 **base})
    print(rows[-1], flush=True)
    return rows


def _epochs(budget: int) -> int:
    """ART's training epochs: about 100,000 sample-steps, at least 10 epochs."""
    return max(10, min(200, 100_000 // budget))


NOTES = """
Goals (issue 9): 64-32-10 Digits, functionally-equivalent: 100% agreement on uniform points
and on the data, max logit error <= 1e-6, <= 150,000 queries, under 5 minutes on 2 cores,
every seed; ART never stops with a count mismatch on our side. Substitute training, labels
only, with the 1,347 training images as queries: >= 99.5% agreement on the test images and
>= 90% on uniform points (ART measured in the issue: 99.4% and 83%, on a [0, 1] input
scale, one victim).

ART reads the victim's logits (its FunctionallyEquivalentExtraction needs them); stealml
reads probabilities. ART's FE run is capped at 150 s. `load` is the 1-minute load average
when the run started (shared machine: 2 cores, about 6 sessions). ART's thieves train the
victim's architecture (64-32-10) in PyTorch with Adam (lr 1e-3, batch 64); stealml's
substitutes are scikit-learn MLPClassifier(32 ReLU units, Adam, at most 1,000 epochs),
8 networks from different initialisations with their logits averaged (one MLPClassifier
with 256 hidden units), or one network ("1 network"). The transfer pool is the 1,347
training images, then uniform points up to the budget. Uniform agreement: 20,000 fresh
uniform points of the pixel range (not counted as queries).

Training images only: each victim (seeds 0-4) answers labels for its own 1,347 training
images, and it labels all of them correctly, so the answers are the data set's labels and
say nothing about the victim that its training data did not. Its 8 "twins" (its
architecture, solver and those labels, other seeds) fit every bought answer
(`twins_fit_bought` = 1 in the JSON) yet disagree with it off the images. "one twin": their
mean agreement with the victim; "majority": the label most twins give; "held-out twin":
each twin taken in turn as the victim, against the others' majority (what a majority of 7
reaches with a victim drawn like them); "largest share (upper estimate)": the mean share of
the twins giving the most common label, an upper estimate of the best agreement any method
can expect from these answers without knowing the victim's seed (sampled from 8 twins it
overestimates). Each victim is one draw: on a given seed the majority may do better or
worse than that expectation. Test agreement is over 450 images (one image = 0.22%).
"""


def _per_seed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per scale and method: each victim's agreement, and their mean."""
    out = []
    for scale in dict.fromkeys(r["scale"] for r in rows):
        mine = [r for r in rows if r["scale"] == scale]
        methods: list[tuple[str, str, list[dict[str, Any]]]] = [
            (m, "agree", [r for r in mine if r["method"] == m])
            for m in dict.fromkeys(r["method"] for r in mine if "agree_test" in r)]
        twins = [r for r in mine if "twins_test" in r]
        methods += [("victim's twins: one twin", "twins", twins),
                    ("victim's twins: majority", "majority", twins),
                    ("twins: the others' majority vs a held-out twin", "held_out", twins),
                    ("twins: largest share (upper estimate)", "expected_best", twins)]
        for method, key, group in methods:
            row: dict[str, Any] = {"scale": scale, "method": method}
            for where in ("test", "uniform"):
                values = [r[f"{key}_{where}"] for r in group]
                row[f"{where}, seeds 0-{len(values) - 1}"] = " / ".join(
                    f"{v:.3f}" for v in values)
                row[f"mean {where}"] = float(np.mean(values))
            out.append(row)
    return out


def _write_markdown(fe_rows: list[dict[str, Any]], sub_rows: list[dict[str, Any]],
                    seed_rows: list[dict[str, Any]], notes: str) -> None:
    from stealml.experiments.tables import markdown_table

    md = RESULTS.with_suffix(".md")
    text = md.read_text().split("\n")
    per_seed = _per_seed(seed_rows)
    body = ["# stealml against IBM ART 1.20.1 (same victims, same budgets)", "",
            "## Functionally-equivalent extraction", "",
            markdown_table(fe_rows, ["victim", "method", "status", "queries", "seconds",
                                     "load", "agree_uniform", "agree_data",
                                     "max_logit_error", "max_logit_error_data",
                                     "param_error"]), "",
            "## Substitute training from labels (64-32-10 Digits victim, seed 0)", "",
            markdown_table(sub_rows, ["budget", "method", "queries", "agree_test",
                                      "agree_uniform", "seconds", "load"]), "",
            "## The 1,347 training images as the only queries (five victims)", "",
            markdown_table(per_seed, list(per_seed[0]) if per_seed else []), "",
            notes.strip(), "", text[-1] if text[-1] else text[-2], ""]
    md.write_text("\n".join(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fe-seeds", type=int, default=1)
    parser.add_argument("--binary-seeds", type=int, default=2)
    parser.add_argument("--budgets", type=int, nargs="+", default=BUDGETS)
    parser.add_argument("--sub-seeds", type=int, default=5,
                        help="victims for the training-images-only comparison")
    parser.add_argument("--twins", type=int, default=8,
                        help="twins of each victim (its recipe, other seeds)")
    parser.add_argument("--sections", nargs="+", default=["fe", "budgets", "images"],
                        choices=["fe", "budgets", "images"],
                        help="what to measure; the other rows are copied from the results")
    parser.add_argument("--reuse-art", action="store_true",
                        help="copy ART's rows from the results file instead of running ART")
    parser.add_argument("--art-part", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.art_part:
        art_part(Path(args.art_part))
        return
    run_comparison(args)


if __name__ == "__main__":
    main()
