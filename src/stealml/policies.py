"""What a prediction API reveals: probabilities, labels only, top-k, rounding, noise, price.

An :class:`ApiPolicy` is applied by an oracle (and by ``stealml serve``) to the full answer
of the target before the client sees it, exactly as an ML service post-processes its
model's output. Its output defences compose in one fixed order:

1. reverse sigmoid (``reverse_sigmoid=(beta, gamma)``) perturbs the probabilities;
2. Gaussian noise (``noise=std``) is added, then clipped to [0, 1] and renormalised;
3. the label becomes the arg-max of the perturbed probabilities (only when 1 or 2 is on);
4. rounding (``rounding``) or significant digits;
5. what is shown: all probabilities, the ``top_k`` largest, or none (labels only).

The noise of a query is drawn from a generator seeded by ``noise_seed`` and the query's
bytes: asking the same query again gives the same answer, so it cannot be averaged away.

References: Tramèr et al., USENIX Security 2016, sections 2.2 and 7 (rounding, labels
only); Lee et al., "Defending against NN model stealing attacks using deceptive
perturbations", IEEE S&P Workshops 2019 (reverse sigmoid).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from stealml.exceptions import ConfigurationError
from stealml.ledger import query_key

Output = Literal["probabilities", "labels", "top-k"]
Incomplete = Literal["reject", "zeros", "native"]

__all__ = ["ApiPolicy", "Incomplete", "Output", "gaussian_noise", "reverse_sigmoid"]


@dataclass(frozen=True)
class ApiPolicy:
    """How an API answers.

    Parameters
    ----------
    output : {"probabilities", "labels", "top-k"}
        What the answer reveals besides the label: all class probabilities, nothing, or
        the ``top_k`` largest probabilities.
    top_k : int, optional
        Number of probabilities revealed with ``output="top-k"``.
    rounding : int, optional
        Decimals to which probabilities and regression values are rounded.
    significant_digits : int, optional
        Significant digits kept instead (Amazon answered with 16); not with ``rounding``.
    incomplete : {"reject", "zeros", "native"}
        Incomplete queries (NaN in the model space) are refused, have their missing
        columns set to 0 (Amazon's semantics), or are handed to the model as NaN.
    price : float
        Dollars charged per answered query.
    noise : float, optional
        Standard deviation of Gaussian noise added to each probability (then clipped to
        [0, 1] and renormalised, see :func:`gaussian_noise`).
    noise_seed : int
        Seed of the noise (with each query's bytes).
    reverse_sigmoid : (float, float), optional
        ``(beta, gamma)`` of the reverse-sigmoid perturbation (:func:`reverse_sigmoid`).

    Examples
    --------
    >>> policy = ApiPolicy(noise=0.05, rounding=3)
    >>> p = policy.perturb(np.array([[0.7, 0.3]]), np.zeros((1, 2)))
    >>> bool(abs(p.sum() - 1) < 1e-12)
    True
    """

    output: Output = "probabilities"
    top_k: int | None = None
    rounding: int | None = None
    incomplete: Incomplete = "reject"
    price: float = 0.0
    significant_digits: int | None = None
    noise: float | None = None
    noise_seed: int = 0
    reverse_sigmoid: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.output not in ("probabilities", "labels", "top-k"):
            raise ConfigurationError(
                f"output must be probabilities, labels or top-k, not {self.output!r}")
        if self.output == "top-k" and (self.top_k is None or self.top_k < 1):
            raise ConfigurationError("output top-k needs top_k >= 1")
        if self.rounding is not None and not 0 <= self.rounding <= 16:
            raise ConfigurationError(f"rounding must be 0 to 16 decimals, not {self.rounding}")
        if self.significant_digits is not None and (
                not 1 <= self.significant_digits <= 17 or self.rounding is not None):
            raise ConfigurationError("significant_digits must be 1 to 17, and not given "
                                     "with rounding")
        if self.incomplete not in ("reject", "zeros", "native"):
            raise ConfigurationError(
                f"incomplete must be reject, zeros or native, not {self.incomplete!r}")
        if not (self.price >= 0 and math.isfinite(self.price)):
            raise ConfigurationError(f"price must be >= 0, not {self.price}")
        if self.noise is not None and not (self.noise >= 0 and math.isfinite(self.noise)):
            raise ConfigurationError(f"noise (a standard deviation) must be >= 0, "
                                     f"not {self.noise}")
        if self.reverse_sigmoid is not None:
            rs = tuple(self.reverse_sigmoid)
            if len(rs) != 2 or not (rs[0] >= 0 and rs[1] > 0) or not all(
                    math.isfinite(v) for v in rs):
                raise ConfigurationError(f"reverse_sigmoid is (beta >= 0, gamma > 0), "
                                         f"not {self.reverse_sigmoid}")
            object.__setattr__(self, "reverse_sigmoid", (float(rs[0]), float(rs[1])))

    def check_model(self, n_classes: int | None, has_probabilities: bool) -> None:
        """Refuse a policy that cannot apply to this model (a classifier with
        ``n_classes`` classes, or a regressor with None): top-k above the number of
        classes, perturbations of probabilities the model does not give."""
        if self.output == "top-k" and n_classes is not None and (self.top_k or 0) > n_classes:
            raise ConfigurationError(f"top_k is {self.top_k}, but the model has only "
                                     f"{n_classes} classes")
        if self.perturbs and (n_classes is None or not has_probabilities):
            raise ConfigurationError("noise and reverse_sigmoid perturb class probabilities; "
                                     "this model gives none")

    @property
    def perturbs(self) -> bool:
        """Whether answers are perturbed (noise or reverse sigmoid)."""
        return bool(self.noise) or self.reverse_sigmoid is not None

    def perturb(self, probabilities: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Steps 1-2: reverse sigmoid, then noise seeded by each query row of ``X``."""
        p = np.asarray(probabilities, dtype=float)
        if self.reverse_sigmoid is not None:
            p = reverse_sigmoid(p, *self.reverse_sigmoid)
        if self.noise:
            p = gaussian_noise(p, self.noise, X, self.noise_seed)
        return p

    @property
    def reveals_probabilities(self) -> bool:
        return self.output != "labels"

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        # options at their defaults are left out: keeps the fingerprints of earlier logs
        for key in ("significant_digits", "noise", "reverse_sigmoid"):
            if d[key] is None:
                del d[key]
        if "noise" not in d:
            del d["noise_seed"]
        return d

    def round(self, values: np.ndarray) -> np.ndarray:
        if self.significant_digits is not None:
            n = self.significant_digits
            flat = [float(f"{v:.{n}g}") for v in np.asarray(values, dtype=float).ravel()]
            return np.asarray(flat, dtype=float).reshape(np.shape(values))
        return values if self.rounding is None else np.round(values, self.rounding)

    def apply(self, labels: np.ndarray, probabilities: np.ndarray | None, X: np.ndarray,
              classes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Steps 1-5 on a classifier's answers to the query rows ``X``: the labels and the
        probabilities the client sees (None with labels only)."""
        if probabilities is None:
            return labels, None
        p = np.asarray(probabilities, dtype=float)
        if self.perturbs:
            p = self.perturb(p, X)
            labels = np.asarray(classes)[np.argmax(p, axis=1)]
        return labels, self.reveal(p)

    def reveal(self, probabilities: np.ndarray) -> np.ndarray | None:
        """The probabilities the attacker sees: rounded, NaN outside the top k, or None."""
        if self.output == "labels":
            return None
        p = self.round(np.asarray(probabilities, dtype=float))
        if self.output == "top-k":
            k = min(int(self.top_k or 1), p.shape[1])
            keep = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
            hidden = np.full_like(p, np.nan)
            np.put_along_axis(hidden, keep, np.take_along_axis(p, keep, axis=1), axis=1)
            p = hidden
        return p


def reverse_sigmoid(probabilities: np.ndarray, beta: float, gamma: float) -> np.ndarray:
    """Lee et al.'s reverse sigmoid: ``p - beta * (sigmoid(gamma * logit(p)) - 1/2)``,
    clipped to [0, 1] and renormalised (uniform where every class was clipped to 0).

    It keeps the arg-max of most answers but bends the probabilities so that their
    log-odds no longer are the model's: equation solving and any attack that reads the
    scores then fits a wrong model.

    References: Lee, Edwards, Molloy, Srivastava, "Defending against NN model stealing
    attacks using deceptive perturbations", IEEE S&P Workshops 2019, section 4.

    Examples
    --------
    >>> reverse_sigmoid(np.array([[0.5, 0.5]]), 0.7, 0.4).tolist()
    [[0.5, 0.5]]
    """
    p = np.asarray(probabilities, dtype=float)
    q = np.clip(p, 1e-12, 1 - 1e-12)
    r = beta * (1.0 / (1.0 + np.exp(-gamma * np.log(q / (1 - q)))) - 0.5)
    return _renormalise(np.clip(p - r, 0.0, 1.0), fallback="uniform")


def gaussian_noise(probabilities: np.ndarray, std: float, X: np.ndarray,
                   seed: int = 0) -> np.ndarray:
    """Add N(0, std^2) noise to each probability, clip to [0, 1] and renormalise.

    Row i's noise comes from a generator seeded by ``seed`` and the bytes of query
    ``X[i]``, so a repeated query is answered the same way. A row whose every class is
    clipped to 0 becomes one-hot at its largest noisy value.

    Examples
    --------
    >>> p = gaussian_noise(np.array([[0.9, 0.1]]), 0.01, np.zeros((1, 3)), seed=1)
    >>> bool(np.allclose(p.sum(axis=1), 1.0)), bool((p >= 0).all())
    (True, True)
    """
    p = np.asarray(probabilities, dtype=float)
    noise = np.empty_like(p)
    for i, row in enumerate(np.asarray(X, dtype=float)):
        rng = np.random.default_rng([int(seed), int(query_key(row)[:16], 16)])
        noise[i] = rng.normal(0.0, std, p.shape[1])
    return _renormalise(np.clip(p + noise, 0.0, 1.0), fallback=p + noise)


def _renormalise(p: np.ndarray, fallback: np.ndarray | str) -> np.ndarray:
    total = p.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    out = p / np.where(total > 0, total, 1.0)
    if empty.any():
        if isinstance(fallback, str):
            out[empty] = 1.0 / p.shape[1]
        else:
            out[empty] = 0.0
            out[np.flatnonzero(empty), np.argmax(fallback[empty], axis=1)] = 1.0
    return out
