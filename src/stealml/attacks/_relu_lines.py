"""Reading a ReLU network's outputs and finding where they bend along lines.

A fully connected ReLU network is piecewise linear in its input, and so is every log-ratio
of its softmax (or the logit of its logistic output): along a line x(t) = p + t v the
answers are a polyline in t whose corners ("critical points") are the inputs where one
neuron's pre-activation crosses zero. :func:`find_kinks` locates the corners of one line
by the slopes at the ends of an interval: when one corner lies between them, the two
lines through the ends meet exactly there (three queries check it: the answer there and
the slopes either side); otherwise the interval is halved. :func:`jump` measures the
change of the Jacobian across a corner, which for a first-layer neuron is its weight row
(times its output weights).

References: Carlini, Jagielski and Mironov, "Cryptanalytic Extraction of Neural Network
Models", CRYPTO 2020, sections 4.2-4.3 (critical points by binary search on slopes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stealml.attacks.base import Querier

__all__ = ["Line", "OutOfBudget", "Outputs", "find_kinks", "jump", "kink_normal", "refine_kink",
           "unsaturated"]

EPS_T = 1e-7          # step (in t, a line has length 1) for one-sided slopes
# smallest probability read: softmax probabilities keep their relative precision down to
# the normal range; a logistic output's 1 - p is rounded to the double nearest it, so its
# logit log(p / (1 - p)) carries an absolute error of about 1e-16 / min(p, 1 - p): below
# 1e-3 that error (2e-13) would drown the slopes the corner search compares
MIN_PROBABILITY = {"binary": 1e-3, "softmax": 1e-290}
GRID = 33  # points on a line to find its unsaturated stretch


class OutOfBudget(Exception):
    """The ledger refused a query: the attack stops and keeps what it has."""


@dataclass
class Outputs:
    """The answers as a piecewise-linear vector function of the scaled input.

    ``kind`` is ``"values"`` (a regressor's value, or raw logits), ``"binary"`` (the
    logit log(p1 / p0) of a logistic output) or ``"softmax"`` (centred log-probabilities,
    the logits up to the shift softmax ignores). Queries are in scaled coordinates
    y = (x - centre) / half_width over the free columns; rows whose answers saturate
    (see ``MIN_PROBABILITY``) come back as NaN and are counted in ``saturated``.
    """

    querier: Querier
    kind: str
    centre: np.ndarray
    half_width: np.ndarray
    free: np.ndarray
    asked: int = 0
    saturated: int = 0
    scale: float = 1.0
    partial: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros((0, 0)), np.zeros((0, 0))))

    def to_x(self, Y: np.ndarray) -> np.ndarray:
        X = np.tile(self.centre, (len(Y), 1))
        X[:, self.free] += Y * self.half_width[self.free]
        return X

    def __call__(self, Y: np.ndarray) -> np.ndarray:
        Y = np.atleast_2d(np.asarray(Y, dtype=float))
        X = self.to_x(Y)
        answered, answers = self.querier.ask(X)
        self.asked += len(answered)
        if len(answered) < len(X):
            self.partial = (Y[:len(answered)], self._read(answers))
            raise OutOfBudget
        return self._read(answers)

    def _read(self, answers: list[Any]) -> np.ndarray:
        if not answers:
            return np.zeros((0, 1))
        if self.kind == "values":
            F = np.concatenate([a.values for a in answers])[:, None]
            return np.asarray(F, dtype=float)
        P = np.concatenate([a.probabilities for a in answers])
        bad = ~(P.min(axis=1) >= MIN_PROBABILITY[self.kind])
        self.saturated += int(bad.sum())
        with np.errstate(divide="ignore", invalid="ignore"):  # a 0 (rounded) answer: -inf,
            L = np.log(P)  # and -inf - (-inf) below: nan; both rows are marked bad
            F = L[:, 1:] - L[:, :1] if self.kind == "binary" else \
                L - L.mean(axis=1, keepdims=True)
        F[bad] = np.nan
        return F


@dataclass
class Line:
    """The segment from ``p`` to ``p + v`` (t in [0, 1]) in scaled coordinates."""

    p: np.ndarray
    v: np.ndarray

    def at(self, t: np.ndarray) -> np.ndarray:
        return self.p + np.asarray(t, dtype=float)[:, None] * self.v


def unsaturated(f: Outputs, line: Line) -> list[Line]:
    """The stretches of ``line`` whose answers (at ``GRID`` evenly spaced points) are all
    read: a logistic output's answers are only read where min(p, 1 - p) >=
    ``MIN_PROBABILITY``, so its lines are cut to where they are. Other outputs never
    saturate on a line and keep it whole (no query)."""
    if f.kind != "binary":
        return [line]
    ts = np.linspace(0.0, 1.0, GRID)
    ok = np.isfinite(f(line.at(ts))).all(axis=1)
    out, start = [], None
    for k, good in enumerate([*ok, False]):
        if good and start is None:
            start = k
        elif not good and start is not None:
            if k - 1 > start:
                a, b = ts[start], ts[k - 1]
                out.append(Line(line.p + a * line.v, (b - a) * line.v))
            start = None
    return out


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return bool(np.all(np.abs(a - b) <= tol * (1.0 + np.abs(a) + np.abs(b))))


def find_kinks(f: Outputs, line: Line, tol: float = 1e-7, max_waves: int = 60,
               known: np.ndarray | None = None, margin: float = 1e-6) -> list[float]:
    """The corners of ``f`` along ``line``, as sorted t values in (0, 1).

    Intervals are worked on in waves (one batch of queries per wave): an interval whose
    end slopes agree and whose far end the near end's line predicts holds no corner; one
    whose two end lines meet at a point where the answer lies on both and the slopes
    either side are the end slopes holds exactly that corner; any other is split in three
    queries (a split point where the slopes either side differ is a corner). A saturated
    answer (NaN) ends the search of its interval.

    ``known`` corners (t values, e.g. where known hyperplanes cross the line) are not
    searched: the line is cut there, ``margin`` either side, and only the pieces between
    them are searched (four queries each when a piece holds no new corner).
    """
    e = EPS_T
    cuts = np.sort(np.asarray([] if known is None else known, dtype=float))
    cuts = cuts[(cuts > margin) & (cuts < 1 - margin)]
    starts = np.concatenate([[0.0], cuts + margin])
    ends = np.concatenate([cuts - margin, [1.0]])
    ok = ends - starts > 8 * e
    starts, ends = starts[ok], ends[ok]
    g = f(line.at(np.column_stack([starts, starts + e, ends - e, ends]).ravel()))
    g = g.reshape(len(starts), 4, -1)
    work = [(float(a), float(b), ga, gb, (ga2 - ga) / e, (gb - gb2) / e)
            for a, b, (ga, ga2, gb2, gb) in zip(starts, ends, g, strict=True)
            if np.isfinite(np.stack([ga, ga2, gb2, gb])).all()]
    kinks: list[float] = []
    for _ in range(max_waves):
        if not work:
            break
        guesses, split = [], []
        for iv in work:
            a, b, ga, gb, sa, sb = iv
            if _close(ga + sa * (b - a), gb, tol) and _close(sa, sb, tol * 10):
                continue
            ds = sa - sb
            j = int(np.argmax(np.abs(ds)))
            t = (gb[j] - ga[j] + sa[j] * a - sb[j] * b) / ds[j] if ds[j] != 0 else np.nan
            if np.isfinite(t) and a + 4 * e < t < b - 4 * e:
                guesses.append((iv, t))
            elif b - a > 100 * e:
                split.append(iv)
        if guesses:
            # a single corner at t: the answer there lies on both end lines, and the
            # slopes just before and after t are the end slopes (a meeting point past
            # every corner of the interval, or before all of them, fails the slopes)
            pts = np.array([[t - e, t, t + e] for _, t in guesses])
            gt = f(line.at(pts.ravel())).reshape(len(pts), 3, -1)
            for (iv, t), (gl, gv, gr) in zip(guesses, gt, strict=True):
                a, b, ga, gb, sa, sb = iv
                if (np.isfinite(np.stack([gl, gv, gr])).all() and _close(ga + sa * (t - a), gv, tol)
                        and _close(gb + sb * (t - b), gv, tol)
                        and _close((gv - gl) / e, sa, tol * 10)
                        and _close((gr - gv) / e, sb, tol * 10)):
                    kinks.append(float(t))
                elif b - a > 100 * e:
                    split.append(iv)
        work = []
        if split:
            mids = np.array([(iv[0] + iv[1]) / 2 for iv in split])
            gm = f(line.at(np.concatenate([mids - e, mids, mids + e])))
            n = len(split)
            for k, (a, b, ga, gb, sa, sb) in enumerate(split):
                lo, mid, hi = gm[k], gm[n + k], gm[2 * n + k]
                if not (np.isfinite(lo).all() and np.isfinite(mid).all()
                        and np.isfinite(hi).all()):
                    continue
                m, left, right = mids[k], (mid - lo) / e, (hi - mid) / e
                if not _close(left, right, tol * 10):
                    kinks.append(float(m))  # a corner at the split point (within e)
                work.append((a, m, ga, mid, sa, left))
                work.append((m, b, mid, gb, right, sb))
    return sorted(kinks)


def _gradient(f: Outputs, y: np.ndarray, step: float) -> np.ndarray | None:
    """The Jacobian (outputs x inputs) of ``f`` at ``y``, by central differences, or None
    if forward and backward differences disagree (a corner lies within ``step``)."""
    d = len(y)
    E = np.eye(d) * step
    F = f(np.vstack([y[None, :], y + E, y - E]))
    if not np.isfinite(F).all():
        return None
    fwd = (F[1:d + 1] - F[0]) / step
    bwd = (F[0] - F[d + 1:]) / step
    if not _close(fwd, bwd, 1e-6):
        return None
    return np.asarray(((fwd + bwd) / 2).T)


def jump(f: Outputs, line: Line, t: float, delta: float) -> np.ndarray | None:
    """The change of the Jacobian across the corner at ``t`` (from t - delta to
    t + delta), or None when no clean measurement was possible."""
    y = line.at(np.array([t]))[0]
    dy = delta * line.v
    step = min(1e-4, delta * float(np.linalg.norm(line.v)) / 20)
    for _ in range(3):
        lo, hi = _gradient(f, y - dy, step), _gradient(f, y + dy, step)
        if lo is not None and hi is not None:
            return hi - lo
        step /= 50
    return None


def refine_kink(f: Outputs, line: Line, t: float, delta: float) -> float:
    """``t`` sharpened: the meeting point of the two lines fitted just either side of it
    (at distance ``delta``), where slope errors barely move it."""
    e = min(EPS_T, delta / 10)
    ts = np.array([t - delta - e, t - delta, t + delta, t + delta + e])
    g = f(line.at(ts))
    if not np.isfinite(g).all():
        return t
    sa, sb = (g[1] - g[0]) / e, (g[3] - g[2]) / e
    ds = sa - sb
    j = int(np.argmax(np.abs(ds)))
    if ds[j] == 0:
        return t
    new = (g[2][j] - g[1][j] + sa[j] * ts[1] - sb[j] * ts[2]) / ds[j]
    return float(new) if abs(new - t) < delta else t


def kink_normal(f: Outputs, line: Line, t: float,
                room: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The corner at ``t`` sharpened, and the unit normal of the one hyperplane that bends
    the answers there (the Jacobian's jump is rank one: output gains times that normal),
    or None when it is not one clean corner. ``room`` is the distance in t to the
    nearest other corner (or end of the line).

    The jump is measured over two windows, the second five times narrower: a corner
    missed nearby would sit in one window only and make them differ.
    """
    delta = 0.3 * room
    t = refine_kink(f, line, t, delta / 10)
    J = jump(f, line, t, delta)
    if J is None or not np.abs(J).max() > 0:
        return None
    J2 = jump(f, line, t, delta / 5)
    if J2 is None or np.linalg.norm(J - J2) > 1e-3 * np.linalg.norm(J):
        return None
    _, sv, Vt = np.linalg.svd(J, full_matrices=False)
    if len(sv) > 1 and sv[1] > 1e-3 * sv[0]:
        return None  # two neurons bend at (almost) the same point: not rank one
    return line.at(np.array([t]))[0], Vt[0]
