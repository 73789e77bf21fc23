"""Splitting one feature's range into pieces that answer alike (the top-down attack's search).

A *signer* answers a batch of values of the feature with, per value, the probe to keep and
a signature to compare: the answer's identity and fields.

Searches are generators (:data:`~stealml.attacks._trees.Asking`): they yield the rows they
need answered and receive the probes, so that :func:`~stealml.attacks._trees.drive` can run
the searches of a whole layer of the tree in lockstep, one request per round.

References: Tramèr et al., USENIX Security 2016, section 4.2.1 (LINE SEARCH, CATEGORY SPLIT).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Collection, Hashable, Sequence
from typing import Any

import numpy as np

from stealml.attacks._trees import Asking, Grid, Predicate, Probe, Row, with_value

__all__ = ["Piece", "Signed", "Signer", "category_pieces", "covering_array",
           "interval_pieces", "simple_signer"]

Signed = tuple[Probe, Hashable]
Signer = Callable[[Sequence[Any]], Asking[list[Signed]]]
Piece = tuple[Predicate, Any, Probe]  # predicate, representative, its answer


def simple_signer(row: Row, i: int) -> Signer:
    """Sign a value of feature ``i`` by the answer to ``row`` with ``i`` set to it."""
    def sign(values: Sequence[Any]) -> Asking[list[Signed]]:
        probes = yield [with_value(row, i, v) for v in values]
        return [(p, p.signature) for p in probes]
    return sign


def category_pieces(sign: Signer, values: Sequence[str], known: dict[str, Signed],
                    rng: np.random.Generator,
                    given: dict[str, Signed] | None = None) -> Asking[list[Piece]]:
    """Group the values by signature: one piece (a set of values) per group, represented
    by the row's own value where the piece holds it (a child keeps its parent's row, so
    the rows its own searches ask were mostly asked already), else by a random member.
    ``given``: values signed already (by a group test), not asked again."""
    before = {**(given or {}), **known}
    ask = [v for v in values if v not in before]
    signed = {**before, **dict(zip(ask, (yield from sign(ask)), strict=True))}
    groups: dict[Hashable, list[str]] = {}
    for v in values:
        groups.setdefault(signed[v][1], []).append(v)
    pieces: list[Piece] = []
    for members in groups.values():
        rep = members[rng.permutation(len(members))[0]]
        kept = [v for v in members if v in known]
        if kept:  # the row's own value: the rows that vary it were asked already
            rep = kept[0]
        pieces.append((frozenset(members), rep, signed[rep][0]))
    return pieces


def interval_pieces(sign: Signer, grid: Grid, domain: tuple[float, float],
                    known: dict[int, Signed], probes: int,
                    rng: np.random.Generator,
                    thresholds: set[int] | None = None,
                    given: dict[int, Signed] | None = None) -> Asking[list[Piece]]:
    """Cut ``domain`` where the signature changes: bisect every segment whose ends differ
    (all segments of a round in one batch), after ``probes`` random extra values.

    ``thresholds`` holds the cuts found before on this feature (grid index k: between k
    and k + 1), elsewhere in the tree; a bisection tries them first (the pair of values
    around each), since trees reuse a feature's thresholds in many branches. The cuts
    found here are added to it. ``given``: grid indices signed already, not asked again."""
    cut_set = set() if thresholds is None else thresholds
    first, last = grid.span(*domain)
    start = sorted({first, last, *rng.integers(first, last + 1, size=probes).tolist(), *known})
    start = [k for k in start if first <= k <= last]
    seen = {**(given or {}), **known}
    ask = [k for k in start if k not in seen]
    seen.update(zip(ask, (yield from sign([grid.value(k) for k in ask])), strict=True))
    segments = list(itertools.pairwise(start))
    cuts: list[int] = []
    while segments:
        todo = []
        for a, b in segments:
            if seen[a][1] == seen[b][1]:
                continue
            if b == a + 1:
                cuts.append(a)
                cut_set.add(a)
            else:
                near = sorted(k for c in cut_set for k in (c, c + 1) if a < k < b)
                todo.append((a, near[len(near) // 2] if near else (a + b) // 2, b))
        mids = [m for _, m, _ in todo]
        seen.update(zip(mids, (yield from sign([grid.value(m) for m in mids])), strict=True))
        segments = [s for a, m, b in todo for s in ((a, m), (m, b))]
    return _pieces_from_cuts(grid, domain, (first, last), sorted(cuts), seen, rng, known)


def _pieces_from_cuts(grid: Grid, domain: tuple[float, float], span: tuple[int, int],
                      cuts: list[int], seen: dict[int, Signed],
                      rng: np.random.Generator,
                      known: Collection[int] = ()) -> list[Piece]:
    bounds = [span[0] - 1, *cuts, span[1]]
    pieces: list[Piece] = []
    for j, (a, b) in enumerate(itertools.pairwise(bounds)):
        ends = [min(k for k in seen if a < k <= b), max(k for k in seen if a < k <= b)]
        rep = ends[int(rng.integers(2))]
        kept = [k for k in known if a < k <= b]
        if kept:
            rep = kept[0]
        lo = domain[0] if j == 0 else grid.cut(a)
        hi = domain[1] if j == len(bounds) - 2 else grid.cut(b)
        pieces.append(((lo, hi), grid.value(rep), seen[rep][0]))
    return pieces



@functools.lru_cache(maxsize=256)
def covering_array(k: int, strength: int) -> np.ndarray:
    """Rows of 0/1 over ``k`` columns in which every choice of ``strength`` columns takes
    every one of its ``2 ** strength`` patterns at least once.

    Strengths 1 and 2 are built with the fewest rows there can be: the all-0 and all-1
    rows; for strength 2 the columns are distinct n-row vectors that are 0 in the first
    row and 1 in w = (n - 1) // 2 + 1 of the other n - 1 (any two share a 0 in the first
    row, share a 1 since 2w > n - 1, and each has a 1 where the other has not), with the
    least n for which C(n - 1, w) >= k (Kleitman and Spencer 1973: 6 rows up to 10
    columns, 8 up to 35, where a greedy search takes 8 and 13). Higher strengths are
    built greedily (seeded).

    >>> [len(covering_array(k, 2)) for k in (4, 10, 11, 35)]
    [5, 6, 7, 8]
    >>> a = covering_array(10, 3)
    >>> len(a) < 2 ** 10, all(len({tuple(r) for r in a[:, [0, 4, 9]]}) == 8 for _ in [0])
    (True, True)
    """
    t = min(strength, k)
    if t <= 0:
        return np.zeros((0, k), dtype=np.int8)
    if k <= t:
        return np.array(list(itertools.product((0, 1), repeat=k)), dtype=np.int8)
    if t == 1:
        return np.array([[0] * k, [1] * k], dtype=np.int8)
    if t == 2:
        n = 4
        while math.comb(n - 1, (n - 1) // 2 + 1) < k:
            n += 1
        ones = itertools.islice(itertools.combinations(range(1, n), (n - 1) // 2 + 1), k)
        out = np.zeros((n, k), dtype=np.int8)
        for c, picked in enumerate(ones):
            out[list(picked), c] = 1
        return out
    rng = np.random.default_rng(0)
    combos = np.array(list(itertools.combinations(range(k), t)))
    weights = 1 << np.arange(t)
    uncovered = np.ones((len(combos), 1 << t), dtype=bool)
    every = np.arange(len(combos))
    rows = []
    while uncovered.any():
        candidates = rng.integers(0, 2, size=(48, k))
        c, pattern = np.argwhere(uncovered)[0]
        candidates[0, combos[c]] = (pattern >> np.arange(t)) & 1  # progress is sure
        index = (candidates[:, combos] * weights).sum(axis=2)
        gain = uncovered[every, index].sum(axis=1)
        best = int(np.argmax(gain))
        rows.append(candidates[best])
        uncovered[every, index[best]] = False
    return np.array(rows, dtype=np.int8)
