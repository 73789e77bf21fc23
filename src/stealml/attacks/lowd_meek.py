"""Lowd-Meek: a linear (or polynomial-kernel) binary classifier from its labels alone.

Each line search between two points of different classes ends on the decision boundary
w·φ(x) + b = 0, to the chosen precision: one linear equation in (w, b). With φ(x) = x
(logistic regression, linear SVM) d boundary points in general position fix the
hyperplane up to scale; with φ the degree-2 monomials (an SVM with kernel (γx·x' + c)²),
one point per monomial fixes the quadric. The unknown scale does not matter for labels;
the sign comes from the points already labelled. Extra boundary points test the fit, so
the degree can be found too: 1 first, then 2 with the same points reused.

References: Tramèr et al., "Stealing Machine Learning Models via Prediction APIs",
USENIX Security 2016, section 6 (Lowd-Meek, and its extension to polynomial kernels);
Lowd and Meek, "Adversarial learning", KDD 2005.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures
from sklearn.svm import SVC, LinearSVC

from stealml.attacks._boundary import BoundarySearch
from stealml.attacks._labels import LabelStore, refuse_probabilities
from stealml.attacks.base import Attack, Querier
from stealml.attacks.equations.logistic import make_logistic_regression
from stealml.exceptions import ConfigurationError, UnsupportedModelError
from stealml.oracles.base import Oracle, valid_rows_only
from stealml.random import RandomState, as_generator

__all__ = ["LowdMeek", "n_monomials"]


def n_monomials(n_columns: int, degree: int) -> int:
    """Coefficients of a polynomial of ``degree`` in ``n_columns`` variables (with b)."""
    return math.comb(n_columns + degree, degree)


class LowdMeek(Attack):
    """Extract a linear or polynomial-kernel binary classifier by line searches.

    Parameters
    ----------
    degree : int, optional
        Degree of the decision function in the model space: 1 for logistic regression
        and linear SVMs, 2 for ``SVC(kernel="poly", degree=2)``. By default the attack
        tries 1, then each degree up to ``max_degree``, keeping the boundary points.
    max_degree : int
        Highest degree tried when ``degree`` is not given.
    precision : float
        Length of the final bracket of each line search, in model-space units: the
        boundary points are this close to the true boundary.
    extra : int
        Boundary points beyond the unknowns, to test the fit (and the degree).
    max_search : int
        Most uniform points asked to find both classes.
    ignore_probabilities : bool
        Run on an API that reveals probabilities, using its labels only.
    batch_size : int, optional
        Most queries sent in one request.
    random_state : int or Generator, optional
        Seed of the points and pairs.

    Notes
    -----
    Labels fix the boundary, not the scale of w: the stolen model's labels match the
    target's, its probabilities do not. When the budget runs out before the line
    searches are done, the model is a logistic regression retrained on every answer
    bought (``complete`` is False and ``info["message"]`` says so).

    Against an API that takes raw rows over categorical features
    (:func:`~stealml.oracles.valid_rows_only`), whose one-hot columns are 0 or 1, every
    query is a valid row: the pool holds valid rows, each line search runs along the
    numeric columns between two rows of the same categories, and each category is then
    switched on in both ends of a segment found, whose new crossing ties its weight to
    the segment's category's. Each feature's first one-hot column is dropped (its
    weight joins the bias: valid rows cannot tell them apart), degree 1 only.
    Adult-income's logistic regression over HTTP: exact (R_test = R_unif = 0) with 5,955-5,967
    queries on seeds 0-5, against 3,123 on the model space.

    Examples
    --------
    >>> from sklearn.svm import LinearSVC
    >>> from stealml.oracles import LocalOracle
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, (300, 4)); y = (X @ [1, -2, 0.5, 1] > 0.2).astype(int)
    >>> result = LowdMeek(random_state=0).run(LocalOracle(LinearSVC().fit(X, y)))
    >>> result.complete, result.info["degree"]
    (True, 1)
    """

    name: ClassVar[str] = "lowd-meek"
    requires: ClassVar[frozenset[str]] = frozenset({"labels"})
    classes_only: ClassVar[bool] = True

    def __init__(self, degree: int | None = None, max_degree: int = 2,
                 precision: float = 1e-7, extra: int = 3, max_search: int = 256,
                 ignore_probabilities: bool = False, batch_size: int | None = None,
                 random_state: RandomState = None) -> None:
        self.degree = degree
        self.max_degree = max_degree
        self.precision = precision
        self.extra = extra
        self.max_search = max_search
        self.ignore_probabilities = ignore_probabilities
        self.batch_size = batch_size
        self.random_state = random_state

    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        return n_monomials(n_columns, self.degree or 1)

    @classmethod
    def supports(cls, model: Any) -> bool:
        classes = getattr(model, "classes_", None)
        if classes is None or len(classes) != 2:
            return False
        if isinstance(model, SVC):
            return model.kernel == "linear" or (model.kernel == "poly" and model.degree <= 3)
        return isinstance(model, (LogisticRegression, LinearSVC))

    def _degrees(self) -> list[int]:
        if self.degree is not None:
            if self.degree < 1:
                raise ConfigurationError(f"degree must be at least 1, not {self.degree}")
            return [self.degree]
        return list(range(1, self.max_degree + 1))

    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        refuse_probabilities(self.name, oracle, self.ignore_probabilities)
        if not self.precision > 0:
            raise ConfigurationError(f"precision must be positive, not {self.precision}")
        classes = oracle.classes
        if classes is not None and len(classes) != 2:
            raise UnsupportedModelError(f"attack {self.name!r} extracts binary classifiers; "
                                        f"the API has {len(classes)} classes")
        valid = valid_rows_only(oracle)
        rng = as_generator(self.random_state)
        lo, hi = oracle.space.encoded_bounds()
        free = hi > lo
        store = LabelStore(querier)
        search = BoundarySearch(store, oracle.space, rng, valid)
        degrees = self._degrees()
        if valid:  # an API of raw rows: lines along numeric columns, between rows of the
            # same categories; each one-hot block sums to 1, so its first column is
            # dropped (its weight goes to the bias) and the rest are solved for
            if not (free & ~search.categorical).any():
                raise UnsupportedModelError(
                    f"attack {self.name!r} line-searches along numeric features, and this "
                    f"API's are all categorical: use retrain-uniform, retrain-line-search "
                    f"or retrain-adaptive")
            if degrees != [1] and self.degree is not None:
                raise UnsupportedModelError(
                    f"attack {self.name!r} fits degree {self.degree} through the feature "
                    f"map, which one-hot columns of raw rows (0 or 1) leave rank-deficient: "
                    f"this API takes raw rows; use degree 1 or a retraining attack")
            degrees = [1]
            free = free & ~_first_columns(oracle.space)
        steps = search.steps(self.precision)
        d = int(free.sum())
        need = d + 2 + (n_monomials(d, degrees[0]) - 1 + self.extra) * steps
        info: dict[str, Any] = {"precision": self.precision, "line_searches": 0}
        remaining = oracle.ledger.remaining
        if remaining is not None and remaining < need:
            info["warning"] = (f"the line searches need about {need} queries at precision "
                               f"{self.precision:g} (degree {degrees[0]}), the budget "
                               f"leaves {remaining}")
        search.find_both_classes(self.max_search, classes)
        if search.labels is None:
            return self._fallback(store, lo, info, "no point of a second class "
                                  f"among {len(store)} uniform queries")
        search.grow_pool(d + 2)
        for degree in degrees:
            search.boundary_points(n_monomials(d, degree) - 1 + self.extra, steps)
            if valid:  # every category in some boundary point, or its weight is free
                search.cover_categories(steps)
            info["line_searches"] = len(search.points)
            if store.exhausted:
                break
            fit = _fit_surface(search, free, degree, self.precision)
            if fit is not None:
                coef, intercept = fit
                info.update(degree=degree, unknowns=n_monomials(d, degree))
                return _model(coef, intercept, degree, search.labels, free), True, info
        reason = ("the budget ran out after "
                  f"{len(search.points)} line searches" if store.exhausted else
                  f"no surface of degree <= {degrees[-1]} fits the boundary points")
        return self._fallback(store, lo, info, reason)

    def _fallback(self, store: LabelStore, lo: np.ndarray, info: dict[str, Any],
                  reason: str) -> tuple[Any, bool, dict[str, Any]]:
        """The best model the answers bought allow: a logistic regression fit on them."""
        X, y = store.data()
        classes = np.unique(y.astype(str))
        info["message"] = f"Lowd-Meek incomplete: {reason}; "
        if len(classes) < 2:
            label = y[0] if len(y) else 0
            shown = label.item() if isinstance(label, np.generic) else label  # not np.str_('a')
            info["message"] += f"the model answers {shown!r} everywhere it was asked"
            return make_logistic_regression(np.zeros(len(lo)), [-1.0], [label, label]), \
                False, info
        info["message"] += "returning a logistic regression fit on the answers bought"
        model = LogisticRegression(C=1e4, max_iter=5000).fit(X, y)
        return model, False, info


def _first_columns(space: Any) -> np.ndarray:
    """The first one-hot column of each categorical feature (the reference category)."""
    of = space.feature_of_column
    first = np.r_[True, of[1:] != of[:-1]]  # each feature's first column
    return np.asarray(first & space.categorical_columns)


def _fit_surface(search: BoundarySearch, free: np.ndarray, degree: int,
                 precision: float) -> tuple[np.ndarray, float] | None:
    """The surface of ``degree`` through the boundary points, or None if none fits.

    The coefficients are the right singular vector of the smallest singular value of
    the monomials of the points; the fit is kept if every point lies within 100 times
    the precision of it (along its search segment) and it labels the pool correctly.
    """
    assert search.labels is not None
    poly = PolynomialFeatures(degree, include_bias=False).fit(np.zeros((1, int(free.sum()))))
    P = np.array(search.points)[:, free]
    Phi = np.hstack([poly.transform(P), np.ones((len(P), 1))])
    if len(Phi) < Phi.shape[1] - 1:
        return None
    scale = np.maximum(np.abs(Phi).max(axis=0), 1e-12)
    _, sing, Vt = np.linalg.svd(Phi / scale, full_matrices=False)
    if len(sing) < Phi.shape[1] or sing[-2] <= 10 * sing[-1]:
        return None  # the points leave more than one surface free
    v = Vt[-1] / scale
    q = _Surface(poly, v, free)
    A = np.array([e[0] for e in search.ends])
    B = np.array([e[1] for e in search.ends])
    slope = np.abs(q(B) - q(A))
    length = np.linalg.norm(B - A, axis=1)
    resid = np.abs(q(np.array(search.points))) / np.maximum(slope, 1e-300) * length
    if not np.all(resid <= 100 * precision):
        return None
    X, y = search.store.data()
    value = q(X)
    # points within 100 precisions of the surface say little about its sign
    clear = np.abs(value) > 100 * precision * float(np.median(slope / length))
    side = value[clear] > 0
    positive = y[clear].astype(str) == str(search.labels[1])
    if not clear.any():
        return None
    if np.all(side == positive):
        return v[:-1], float(v[-1])
    if np.all(side != positive):
        return -v[:-1], -float(v[-1])
    return None


class _Surface:
    """q(x) = v·[monomials of x's free columns, 1]."""

    def __init__(self, poly: PolynomialFeatures, v: np.ndarray, free: np.ndarray) -> None:
        self.poly, self.v, self.free = poly, v, free

    def __call__(self, X: np.ndarray) -> np.ndarray:
        feats = self.poly.transform(X[:, self.free])
        return np.asarray(feats @ self.v[:-1] + self.v[-1])


def _model(coef: np.ndarray, intercept: float, degree: int, classes: np.ndarray,
           free: np.ndarray) -> Any:
    """A real estimator: a LogisticRegression, behind PolynomialFeatures if degree > 1.

    ``coef`` holds the coefficients of the monomials of the free columns (in
    PolynomialFeatures' order); monomials of fixed columns get 0.
    """
    scale = max(float(np.abs(coef).max()), 1e-300)
    if degree == 1:
        w = np.zeros(len(free))
        w[free] = coef / scale
        return make_logistic_regression(w, [intercept / scale], classes)
    d = len(free)
    full = PolynomialFeatures(degree, include_bias=False).fit(np.zeros((1, d)))
    part = PolynomialFeatures(degree, include_bias=False).fit(np.zeros((1, int(free.sum()))))
    index = {tuple(p): i for i, p in enumerate(part.powers_)}
    w = np.zeros(full.powers_.shape[0])
    for j, p in enumerate(full.powers_):
        if not p[~free].any():
            w[j] = coef[index[tuple(p[free])]] / scale
    linear = make_logistic_regression(w, [intercept / scale], classes)
    return Pipeline([("monomials", full), ("linear", linear)])
