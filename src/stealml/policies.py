"""What a prediction API reveals: probabilities, labels only, top-k, rounding, price.

An :class:`ApiPolicy` is applied by an oracle to the full answer of the target before the
attacker sees it, exactly as an ML service post-processes its model's output.

References: Tramèr et al., USENIX Security 2016, sections 2.2 and 7 (rounding, labels only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from stealml.exceptions import ConfigurationError

Output = Literal["probabilities", "labels", "top-k"]
Incomplete = Literal["reject", "zeros", "native"]

__all__ = ["ApiPolicy", "Incomplete", "Output"]


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
    """

    output: Output = "probabilities"
    top_k: int | None = None
    rounding: int | None = None
    incomplete: Incomplete = "reject"
    price: float = 0.0
    significant_digits: int | None = None

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
        if not self.price >= 0:
            raise ConfigurationError(f"price must be >= 0, not {self.price}")

    @property
    def reveals_probabilities(self) -> bool:
        return self.output != "labels"

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        if self.significant_digits is None:
            del d["significant_digits"]  # keeps the fingerprints of earlier logs
        return d

    def round(self, values: np.ndarray) -> np.ndarray:
        if self.significant_digits is not None:
            n = self.significant_digits
            flat = [float(f"{v:.{n}g}") for v in np.asarray(values, dtype=float).ravel()]
            return np.asarray(flat, dtype=float).reshape(np.shape(values))
        return values if self.rounding is None else np.round(values, self.rounding)

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
