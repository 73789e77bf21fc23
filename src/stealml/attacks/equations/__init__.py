"""Equation solving: each probability answer is a set of equations in the model's parameters.

One attack, ``equation-solving``, with a solver per model class: logistic and softmax
regression (a linear solve, exact with d + 1 queries), one-vs-rest logistic regression
(nonlinear least squares), one-hidden-layer MLPs (finite-difference Jacobians, then a
small fit) and RBF kernel logistic regression (its representers, training points, among
the unknowns).

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 4.1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neural_network import MLPClassifier

from stealml.attacks.base import Attack, Querier
from stealml.attacks.equations.logistic import (
    center_intervals,
    fit_cross_entropy,
    fit_intervals,
    make_logistic_regression,
    solve_log_ratios,
    to_logistic_regression,
)
from stealml.attacks.equations.queries import (
    BALANCED_REACH,
    Table,
    ask_balanced_star,
    ask_star,
    balanced_rows,
    row_rank,
)
from stealml.exceptions import ConfigurationError, UnsupportedModelError
from stealml.models.kernel_logreg import KernelLogisticRegression
from stealml.oracles.base import Oracle, valid_rows_only
from stealml.random import RandomState, as_generator

__all__ = ["MODEL_CLASSES", "EquationSolving", "make_logistic_regression", "model_class_of"]

MODEL_CLASSES = ("logreg", "softmax", "ovr", "mlp", "kernel-logreg")
ROUNDED_ROUNDS = 8  # rounds of boundary queries after the uniform half (rounded answers)
# rounded answers: first the exact design (a base and one step per column), kept where
# every probability is >= STAR_MARGIN x the rounding's half-width, at most STAR_FLOOR
STAR_MARGIN, STAR_FLOOR, STAR_SEARCH = 20.0, 0.01, 4
POOL_PER_QUERY, MAX_POOL = 50, 20_000  # candidates drawn (free) per boundary query
# the balanced star (ask_balanced_star) is asked only where its smallest probabilities
# (about exp(-BALANCED_REACH) / c) keep the rounding's half-width under this share of
# them: 3 decimals and finer for up to 10 classes; at 2 decimals (11% of 0.045 for five
# classes) it cost the boundary rounds more than it gave (5-class, alpha 1: 0.0067 ->
# 0.01; blobs 0 -> 6.7e-4)
BALANCED_PRECISION = 0.03


def model_class_of(model: Any) -> str | None:
    """The equation-solving model class of a target, or None if none applies."""
    if isinstance(model, LogisticRegression):
        return "logreg" if len(getattr(model, "classes_", [])) == 2 else "softmax"
    if isinstance(model, OneVsRestClassifier) and isinstance(model.estimator,
                                                              LogisticRegression):
        return "ovr"
    if isinstance(model, MLPClassifier) and len(getattr(model, "coefs_", [])) == 2:
        return "mlp"
    if isinstance(model, KernelLogisticRegression):
        return "kernel-logreg"
    return None


class EquationSolving(Attack):
    """Extract a model from its class probabilities by solving for its parameters.

    Parameters
    ----------
    model_class : {"logreg", "softmax", "ovr", "mlp", "kernel-logreg"}, optional
        The target's model class (the API's documentation says it); by default
        logistic regression for two classes and softmax for more.
    n_queries : int, optional
        Equations to collect. Linear models: d + 1 (the minimum) when answers are
        exact; with rounded answers, the remaining budget (else c(d + 1)).
    batch_size : int, optional
        Most queries sent in one request.
    spread : float
        Linear models: the length of a step along a column (this fraction of its
        half-range) while no column's effect is known yet; queries beyond d + 1
        (``n_queries``) are drawn uniformly in a box this wide around the centre.
    min_probability : float, optional
        An answer with a smaller probability is saturated (its log-ratio imprecise): it
        gives no equation, and the point is asked again nearer the centre. By default
        1e-6 for two classes (an API may compute one probability as 1 minus the other,
        which leaves it no digits below 1e-16) and 1e-12 for more (softmax outputs keep
        their relative precision).
    max_shrink, max_search : int
        Rounds of re-asking saturated points; pairs of candidates asked to find a centre.
    hidden_units : int, optional
        MLP: hidden units of the target (default: as many as the budget can identify is
        not knowable, so 20, the paper's).
    activation : {"tanh", "relu", "logistic"}
        MLP hidden activation.
    design : {"auto", "jacobian", "uniform"}
        MLP query design. "jacobian": finite-difference Jacobians reveal the first
        layer's subspace and units, then a small fit (needs three or more classes, tanh
        or logistic units, and an API that takes points of the encoded box); "uniform":
        uniform valid rows and a fit from random restarts; "auto" tries the first, and
        falls back to the second.
    n_representers : int
        Kernel logistic regression: representers of the target (the paper assumes the
        attacker knows it; too many only adds unused ones).
    gamma : float, optional
        Kernel logistic regression: the RBF kernel width, known to the attacker.
    restarts : int
        MLP / one-vs-rest / kernel LR: most random restarts of the fit.
    intervals : bool
        Linear models with rounded answers: spend the second half of the budget where
        the model fitted so far puts two classes closest, and move the cross-entropy fit
        to the nearest model whose probabilities all round to the answers given, then to
        the analytic centre of all such models. False
        reproduces the paper: uniform queries and the cross-entropy fit alone.
    balanced : bool
        Softmax with rounded answers (and ``intervals``): once the first star is asked,
        a second one from the point where the fit so far balances the classes (see
        ``_ask_rounded``). False: the first star only.
    random_state : int or Generator, optional
        Seed of the query points and restarts.

    Examples
    --------
    >>> from stealml.oracles import LocalOracle
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (300, 4)); y = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])
    >>> target = LogisticRegression().fit(X, y)
    >>> result = EquationSolving(random_state=0).run(LocalOracle(target))
    >>> result.queries, result.complete
    (5, True)
    """

    name: ClassVar[str] = "equation-solving"
    requires: ClassVar[frozenset[str]] = frozenset({"probabilities"})

    def __init__(self, model_class: str | None = None, n_queries: int | None = None,
                 batch_size: int | None = None, spread: float = 0.1,
                 min_probability: float | None = None, max_shrink: int = 8, max_search: int = 32,
                 hidden_units: int | None = None, activation: str = "tanh",
                 design: str = "auto", n_representers: int = 20,
                 gamma: float | None = None, restarts: int = 4, intervals: bool = True,
                 balanced: bool = True, random_state: RandomState = None) -> None:
        self.model_class = model_class
        self.n_queries = n_queries
        self.batch_size = batch_size
        self.spread = spread
        self.min_probability = min_probability
        self.max_shrink = max_shrink
        self.max_search = max_search
        self.hidden_units = hidden_units
        self.activation = activation
        self.design = design
        self.n_representers = n_representers
        self.gamma = gamma
        self.restarts = restarts
        self.intervals = intervals
        self.balanced = balanced
        self.random_state = random_state

    @classmethod
    def supports(cls, model: Any) -> bool:
        return model_class_of(model) is not None

    def _model_class(self, n_classes: int | None) -> str:
        if self.model_class is None:
            return "logreg" if n_classes in (None, 2) else "softmax"
        if self.model_class not in MODEL_CLASSES:
            raise ConfigurationError(f"model class must be one of {', '.join(MODEL_CLASSES)}, "
                                     f"not {self.model_class!r}")
        return self.model_class

    def _threshold(self, classes: np.ndarray | None) -> float:
        if self.min_probability is not None:
            return self.min_probability
        return 1e-6 if classes is None or len(classes) <= 2 else 1e-12

    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        c = n_classes or 2
        kind = self._model_class(n_classes)
        if kind == "logreg":
            return n_columns + 1
        if kind in ("softmax", "ovr"):
            return c * (n_columns + 1)
        outputs = 1 if c == 2 else c
        if kind == "kernel-logreg":
            return self.n_representers * (n_columns + outputs) + outputs
        h = self.hidden_units or 20
        return h * (n_columns + 1) + outputs * (h + 1)

    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        classes = oracle.classes
        kind = self._model_class(None if classes is None else len(classes))
        if kind == "logreg" and classes is not None and len(classes) != 2:
            raise UnsupportedModelError(
                f"logistic regression has two classes; the API has {len(classes)}: use "
                "model class softmax or ovr")
        rng = as_generator(self.random_state)
        table = Table(querier, classes, self._threshold(classes))
        if kind in ("logreg", "softmax"):
            return self._run_linear(oracle, table, rng)
        if kind == "ovr":
            from stealml.attacks.equations.ovr import run_ovr

            return run_ovr(self, oracle, table, rng)
        if kind == "kernel-logreg":
            from stealml.attacks.equations.kernel import run_kernel

            return run_kernel(self, oracle, table, rng)
        from stealml.attacks.equations.mlp import run_mlp

        return run_mlp(self, oracle, table, rng)

    # -- logistic and softmax -------------------------------------------------------------
    def _run_linear(self, oracle: Oracle, table: Table,
                    rng: np.random.Generator) -> tuple[Any, bool, dict[str, Any]]:
        space = oracle.space
        lo, hi = space.encoded_bounds()
        free = hi > lo
        d = int(free.sum())
        rounded = oracle.policy.rounding is not None
        valid = valid_rows_only(oracle)
        if rounded:
            m = self.n_queries or oracle.ledger.remaining or \
                len(oracle.classes if oracle.classes is not None else [0, 1]) * (d + 1)
            if self.intervals:
                self._ask_rounded(table, space, int(oracle.policy.rounding),  # type: ignore[arg-type]
                                  rng, lo, hi, free, m, valid)
            elif valid:
                table.ask(balanced_rows(space, m, rng))
            else:  # the paper's design: uniform queries
                table.ask(np.where(free, rng.uniform(lo, hi, size=(m, len(lo))), lo))
        elif valid:
            self._ask_exact(table, space, rng, lo, hi, free, self.n_queries or row_rank(space),
                            valid=True)
        else:
            self._ask_exact(table, space, rng, lo, hi, free, self.n_queries or d + 1)
        X, P = table.data()
        if table.classes is None or not len(X):
            raise UnsupportedModelError("no answer was bought: the budget allows no query")
        theta, info = solve_log_ratios(X, P, free, table.min_probability)
        if valid:  # each one-hot block sums to 1: valid rows fix row_rank unknowns, which
            # give every valid row its answer (the least-norm solution among them)
            info["exact"] = info["min_rank"] == row_rank(space)
            info["valid_rows"] = True
        exact = info["exact"] and not rounded
        solver = "linear solve"
        if not exact:
            theta = fit_cross_entropy(X, P, init=theta)
            solver = "cross-entropy fit"
        if rounded and self.intervals:
            decimals = int(oracle.policy.rounding)  # type: ignore[arg-type]
            half_width = 0.5 * 10.0 ** -decimals
            theta = center_intervals(X, P, half_width,
                                     fit_intervals(X, P, half_width, theta))
            solver += ", then the centre of the models within every answer's rounding"
        info.update({"queries_asked": len(X), "solver": solver, "rounded": rounded})
        return to_logistic_regression(theta, np.asarray(table.classes)), exact or rounded, info

    def _ask_rounded(self, table: Table, space: Any, decimals: int, rng: np.random.Generator,
                     lo: np.ndarray, hi: np.ndarray, free: np.ndarray, m: int,
                     valid: bool = False) -> None:
        """First the exact design (:func:`ask_star`) where every probability is at
        least STAR_MARGIN times the rounding's half-width (at most STAR_FLOOR: at 2
        decimals no point keeps three digits of every probability of more than a few
        classes), so that each answer's log-ratios keep about three digits (two at 2
        decimals): d + 1 such answers nearly fix the model, where uniform points of a
        wide box mostly round to 0 and 1 (with half as many queries as unknowns, the
        equations then suffice). With ``balanced``, three or more classes, d queries
        left and a fine enough rounding (BALANCED_PRECISION), a second star
        (:func:`ask_balanced_star`) from the point where the model fitted so far makes
        every class about equally likely: a rare class at p = 0.005 at the first star's
        base keeps 1% of its value through 4 decimals and its weights little more
        (adult-race, 4 decimals: R_test 2.7e-4 to 1.1e-3 at alpha 0.5); at p >= 0.04
        every log-ratio keeps 3e-3 or better. Then half of what is left uniformly, and rounds of
        queries where the model fitted so far puts two classes closest (the
        second-largest probability highest): there rounded answers keep most of their
        digits, and the boundaries are placed. Two classes skip the exact design: a
        binary model's centre is often near saturation (breast cancer: p = 0.02), where
        its steps are too short to show through the rounding (round 3: every weight 0),
        and the boundary rounds alone are exact there. With ``valid`` (an API that
        takes raw rows only), no star (its steps are not valid rows), and every uniform
        draw a valid row (:func:`balanced_rows`)."""
        def uniform(n: int) -> np.ndarray:
            if valid:
                return balanced_rows(space, n, rng)
            return np.where(free, rng.uniform(lo, hi, size=(n, len(lo))), lo)

        m_total = m

        if not valid and (table.classes is None or len(table.classes) > 2):
            saturation = table.min_probability
            table.min_probability = max(saturation, min(
                STAR_MARGIN * 0.5 * 10.0 ** -decimals, STAR_FLOOR))
            try:
                ask_star(table, space, rng, lo, hi, free, self.spread, self.max_shrink,
                         STAR_SEARCH)
            finally:
                table.min_probability = saturation
            m -= table.n
            if m <= 0 or table.querier.exhausted:
                return
            c = len(table.classes) if table.classes is not None else 3
            if self.balanced and m >= int(free.sum()) and 0.5 * 10.0 ** -decimals <= \
                    BALANCED_PRECISION * np.exp(-BALANCED_REACH) / c:
                X, P = table.data()
                theta, _ = solve_log_ratios(X, P, free, table.min_probability)
                theta = fit_cross_entropy(X, P, init=theta, max_iter=500)
                ask_balanced_star(table, theta, lo, hi, free, rng)
                m = m_total - table.n
                if m <= 0 or table.querier.exhausted:
                    return
        first = max(1, m // 2)
        table.ask(uniform(first))
        left = m - first
        for r in range(ROUNDED_ROUNDS):
            k = left // (ROUNDED_ROUNDS - r)
            left -= k
            X, P = table.data()
            if k <= 0 or table.querier.exhausted or not len(X):
                continue
            theta = fit_cross_entropy(X, P, max_iter=500)
            pool = uniform(min(max(POOL_PER_QUERY * k, 1000), MAX_POOL))
            Q = softmax(pool @ theta[:, :-1].T + theta[:, -1], axis=1)
            second = np.sort(Q, axis=1)[:, -2]
            table.ask(pool[np.argsort(-second, kind="stable")[:k]])

    def _ask_exact(self, table: Table, space: Any, rng: np.random.Generator, lo: np.ndarray,
                   hi: np.ndarray, free: np.ndarray, m: int, valid: bool = False) -> None:
        """Ask until ``m`` usable equations: one step along each free column from a
        moderate base (:func:`ask_star`: d + 1 queries when none is saturated), then, for
        any more asked, points around the base, saturated ones re-asked nearer to it.
        With ``valid`` (an API that takes raw rows only), every query is a valid row: the
        star switches categories (:func:`ask_star`), and the points around the base move
        its numeric values and draw each categorical feature anew half the time (a
        saturated one is re-asked with the base's categories and numeric values nearer)."""
        center = ask_star(table, space, rng, lo, hi, free, self.spread, self.max_shrink,
                          self.max_search, valid)
        n_usable = int(table.usable(table.data()[1]).sum())
        half = (hi - lo) / 2 * self.spread
        X = np.clip(center + rng.uniform(-half, half, size=(max(m - n_usable, 0), len(lo))),
                    lo, hi)
        pending = np.where(free, X, lo)
        categorical = np.zeros(len(lo), dtype=bool)
        if valid and len(pending):
            drawn = balanced_rows(space, len(pending), rng)
            categorical = space.categorical_columns
            keep = rng.random((len(pending), space.n_features)) < 0.5
            keep_col = keep[:, space.feature_of_column]
            pending[:, categorical] = np.where(keep_col, center, drawn)[:, categorical]
        for _ in range(self.max_shrink + 1):
            if not len(pending) or table.querier.exhausted:
                break
            asked, P = table.ask(pending)
            pending = center + (asked[~table.usable(P)] - center) / 8.0
            pending[:, categorical] = center[categorical]
