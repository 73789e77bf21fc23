"""The paper's Figure 2: training data leaked by extracting a kernel logistic regression.

An RBF KLR model with 20 representers (training digits) is trained on Digits; equation
solving recovers its weights and its representers from probability answers alone, the
representers starting from uniform random images. Each true representer is matched to
a recovered one (one-to-one, minimising the largest pixel error), and both are drawn
side by side.

References: Tramèr et al., USENIX Security 2016, section 4.1.3 and Figure 2.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from stealml.attacks.equations import EquationSolving
from stealml.attacks.equations.kernel import match_representers
from stealml.datasets import load
from stealml.experiments.tables import write_results
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.models.kernel_logreg import KernelLogisticRegression
from stealml.oracles import LocalOracle

__all__ = ["reproduce"]

GAMMA = 0.02  # kernel width on Digits scaled to [-1, 1]: K ~ exp(-1) between images


def _picture(true: np.ndarray, found: np.ndarray, errors: np.ndarray, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(true)
    fig, axes = plt.subplots(2, n, figsize=(n * 0.8, 2.2))
    for i in range(n):
        for row, img in ((0, true[i]), (1, found[i])):
            ax = axes[row, i]
            ax.imshow(img.reshape(8, 8), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, i].set_xlabel(f"{errors[i]:.0e}" if errors[i] < 0.01 else f"{errors[i]:.2f}",
                              fontsize=6)
    axes[0, 0].set_ylabel("true", fontsize=7)
    axes[1, 0].set_ylabel("stolen", fontsize=7)
    fig.suptitle("Figure 2: KLR representers (training digits) and those extracted",
                 fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _run(seed: int, n_representers: int, n_queries: int | None,
         restarts: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    ds = load("digits", random_state=seed)
    target = KernelLogisticRegression(gamma=GAMMA, n_representers=n_representers,
                                      random_state=seed).fit(ds.X_train, ds.y_train)
    attack = EquationSolving(model_class="kernel-logreg", n_representers=n_representers,
                             gamma=GAMMA, n_queries=n_queries, restarts=restarts,
                             random_state=seed)
    start = time.perf_counter()
    result = attack.run(LocalOracle(target, ds.space, ledger=Ledger()))
    seconds = time.perf_counter() - start
    errors = match_representers(target.representers_, result.model.representers_)
    fid = fidelity(target, result.model, ds.space, ds.X_test, random_state=seed)
    pixel = 32.0 / 2  # an encoded unit is 8 of Digits' 0-16 grey levels: 16 / 2
    row = {"seed": seed, "representers": n_representers, "unknowns": result.info["unknowns"],
           "queries": result.queries, "loss per point": result.info["loss_per_point"],
           "1-R_test": 1 - float(fid["r_test"] or 0), "1-R_unif": 1 - float(fid["r_unif"] or 0),
           "R_TV test": fid["tv_test"], "median rep. error": float(np.median(errors)),
           "max rep. error": float(errors.max()),
           "reps within 1 grey level": int(np.sum(errors * pixel / 2 < 1.0)),
           "seconds": seconds, "complete": result.complete}
    # order the stolen representers like the true ones
    from scipy.optimize import linear_sum_assignment

    cost = np.abs(target.representers_[:, None] - result.model.representers_[None]).max(-1)
    rows, cols = linear_sum_assignment(cost)
    found = result.model.representers_[cols[np.argsort(rows)]]
    return row, target.representers_, found, errors


def reproduce(out: Path, quick: bool = False) -> list[Path]:
    """Figure 2 into ``out``: figure2.png, figure2.{json,md}."""
    load_start = os.getloadavg()
    seeds = [0] if quick else [0, 1, 2]
    rows, picture = [], None
    for seed in seeds:
        row, true, found, errors = _run(seed, 20, None, 1 if quick else 2)
        rows.append(row)
        if picture is None:
            picture = (true, found, errors)
    written = []
    if picture is not None:
        written.append(_picture(*picture, out / "figure2.png"))
    notes = ("Digits (64 pixels scaled to [-1, 1]), RBF kernel logistic regression with 20 "
             f"representers drawn from the 1,257 training digits, gamma = {GAMMA} (known to "
             "the attacker, as the number of representers is in the paper). Queries: "
             "uniform images; the attacker starts its representers from uniform random "
             "images. Rep. error: largest absolute pixel difference between a true "
             "representer and the stolen one matched to it, in encoded units (1 = 8 grey "
             "levels of 16). Paper: 50,000 equations (5,000 queries), representers "
             "visibly close to the training digits (no number given). Load average (1, 5, "
             f"15 min) at start {', '.join(f'{v:.1f}' for v in load_start)}, at end "
             f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}.")
    columns = ["seed", "representers", "unknowns", "queries", "loss per point", "1-R_test",
               "1-R_unif", "R_TV test", "median rep. error", "max rep. error",
               "reps within 1 grey level", "seconds", "complete"]
    written += write_results(out / "figure2", "Figure 2: training digits leaked by KLR "
                             "extraction", rows, columns, notes)
    return written
