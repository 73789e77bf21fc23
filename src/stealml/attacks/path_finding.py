"""Bottom-up path finding (the paper's Algorithm 1) with a leaf-identity oracle.

From a random complete query, the attack finds the predicates of the leaf it reaches: on
each continuous feature a LINE SEARCH for where the identity changes on either side of the
query's value (to precision epsilon), on each categorical feature a CATEGORY SPLIT over
every value. Each point just past a boundary is queued: it lies in another leaf. A
queued point whose identity is that of a leaf found already, and which meets that leaf's
predicates, is skipped; one that meets no such leaf's predicates is a new leaf even when
its identity was seen before (the paper's fix for shared identities). Every point pushed
is one the search already paid for, so skipping it is free.

References: Tramèr et al., USENIX Security 2016, section 4.2.1 (Algorithm 1, duplicate
identities) and appendix C.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

from sklearn.tree import BaseDecisionTree

from stealml.attacks._trees import (
    Exhausted,
    Grid,
    Leaf,
    Probe,
    Row,
    TreeQuerier,
    build_tree,
    check_leaf_count,
    grids,
    with_value,
)
from stealml.attacks.base import Attack, Querier
from stealml.models.tree_service import TreeService
from stealml.oracles.base import Oracle
from stealml.random import RandomState, as_generator
from stealml.space import CategoricalFeature

__all__ = ["PathFinding"]


class PathFinding(Attack):
    """Bottom-up tree extraction from complete queries (Algorithm 1).

    Parameters
    ----------
    epsilon : float
        Precision of the line searches on continuous features, in raw units (the
        feature's granularity when that is coarser).
    max_leaves : int
        A target with more leaves than this is reported as not a tree.
    random_state : int or Generator, optional
        Seeds the initial query.
    batch_size : int, optional
        Most queries per request.

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from stealml.oracles import LocalOracle
    >>> X, y = [[-1.], [-.5], [.5], [1.], [.9]], [0, 1, 1, 0, 0]
    >>> tree = DecisionTreeClassifier(max_depth=2).fit(X, y)
    >>> result = PathFinding(random_state=0).run(LocalOracle(TreeService(tree)))
    >>> result.model.n_leaves, result.complete
    (3, True)
    """

    name: ClassVar[str] = "path-finding"
    requires: ClassVar[frozenset[str]] = frozenset({"ids"})

    def __init__(self, epsilon: float = 1e-3, max_leaves: int = 10_000,
                 random_state: RandomState = None, batch_size: int | None = None) -> None:
        self.epsilon = epsilon
        self.max_leaves = max_leaves
        self.random_state = random_state
        self.batch_size = batch_size

    def n_unknowns(self, n_columns: int, n_classes: int | None) -> int:
        return n_columns

    @classmethod
    def supports(cls, model: Any) -> bool:
        return isinstance(model, (BaseDecisionTree, TreeService))

    def _run(self, oracle: Oracle, querier: Querier) -> tuple[Any, bool, dict[str, Any]]:
        tq = TreeQuerier(oracle, querier)
        self._grids = grids(oracle.space, self.epsilon)
        leaves: list[Leaf] = []
        complete = True
        current: Leaf | None = None
        try:
            queue: deque[Row] = deque([self._start(tq)])
            while queue:
                row = queue.popleft()
                probe = tq.ask([row])[0]
                if any(leaf.probe.key == probe.key and leaf.contains(row) for leaf in leaves):
                    continue
                current = Leaf(probe)
                queue.extend(self._explore(tq, row, current, leaves))
                current.complete = True
                leaves.append(current)
                current = None
                check_leaf_count(len(leaves), self.max_leaves)
        except Exhausted:
            complete = False
            if current is not None:
                leaves.append(current)
        model = build_tree(oracle, leaves)
        return model, complete, {"leaves": len(leaves),
                                 "unique_ids": len({leaf.probe.key for leaf in leaves})}

    def _start(self, tq: TreeQuerier) -> Row:
        """A random complete row, continuous values snapped to their search grid."""
        raw = tq.space.sample(1, as_generator(self.random_state))[0].tolist()
        for i, grid in enumerate(self._grids):
            if grid is not None:
                raw[i] = grid.value(grid.index(float(raw[i])))
        return raw

    def _explore(self, tq: TreeQuerier, row: Row, leaf: Leaf,
                 known: list[Leaf]) -> list[Row]:
        """Fill ``leaf.predicates`` from ``row``; return the rows just outside it."""
        pushed: list[Row] = []
        hints = _hints(row, leaf.probe.key, known, self._grids)
        for i, f in enumerate(tq.space.features):
            grid = self._grids[i]
            if isinstance(f, CategoricalFeature):
                probes = tq.ask([with_value(row, i, v) for v in f.values])
                same = frozenset(v for v, p in zip(f.values, probes, strict=True)
                                 if p.key == leaf.probe.key) | {row[i]}
                if len(same) < len(f.values):
                    leaf.predicates[i] = same
                pushed += [with_value(row, i, v) for v in f.values if v not in same]
            elif grid is not None and grid.size > 1:
                lo, hi, out = self._line_search(tq, row, i, grid, leaf.probe,
                                                hints.get(i, []))
                if not (math.isinf(lo) and math.isinf(hi)):
                    leaf.predicates[i] = (lo, hi)
                pushed += out
        return pushed

    def _line_search(self, tq: TreeQuerier, row: Row, i: int, grid: Grid, probe: Probe,
                     hints: list[int]) -> tuple[float, float, list[Row]]:
        """The leaf's interval on feature ``i`` around ``row`` and the rows just past it.

        Each side is searched towards the end of the range, or, where the end answers
        like the leaf, towards a point of a known leaf with another identity that lies on
        the line (``hints``): the end may then be a different leaf sharing the identity.
        """
        k0, last = grid.index(row[i]), grid.size - 1
        ends = tq.ask([with_value(row, i, grid.value(0)), with_value(row, i, grid.value(last))])
        lo, hi, out = -math.inf, math.inf, []
        below = [0] if ends[0].key != probe.key else sorted(
            (k for k in hints if k < k0), reverse=True)
        k = self._outside(tq, row, i, grid, below, probe.key, ends[0].key != probe.key)
        if k is not None:
            k = self._boundary(tq, row, i, grid, inside=k0, outside=k, key=probe.key)
            lo = grid.cut(k - 1)
            out.append(with_value(row, i, grid.value(k - 1)))
        above = [last] if ends[1].key != probe.key else sorted(k for k in hints if k > k0)
        k = self._outside(tq, row, i, grid, above, probe.key, ends[1].key != probe.key)
        if k is not None:
            k = self._boundary(tq, row, i, grid, inside=k0, outside=k, key=probe.key)
            hi = grid.cut(k)
            out.append(with_value(row, i, grid.value(k + 1)))
        return lo, hi, out

    @staticmethod
    def _outside(tq: TreeQuerier, row: Row, i: int, grid: Grid, candidates: list[int],
                 key: str, known_outside: bool) -> int | None:
        """The nearest candidate grid index that answers another identity, if any."""
        if known_outside:
            return candidates[0]
        for k in candidates:
            if tq.ask([with_value(row, i, grid.value(k))])[0].key != key:
                return k
        return None

    @staticmethod
    def _boundary(tq: TreeQuerier, row: Row, i: int, grid: Grid, inside: int, outside: int,
                  key: str) -> int:
        """Binary search: the last grid index on the ``inside`` side still answering ``key``."""
        while abs(outside - inside) > 1:
            mid = (inside + outside) // 2
            if tq.ask([with_value(row, i, grid.value(mid))])[0].key == key:
                inside = mid
            else:
                outside = mid
        return inside


def _hints(row: Row, key: str, known: list[Leaf],
           grids_: list[Grid | None]) -> dict[int, list[int]]:
    """Per continuous feature, grid points on the line through ``row`` that lie in a known
    leaf with another identity (its only broken predicate is on that feature)."""
    out: dict[int, list[int]] = {}
    for leaf in known:
        if leaf.probe.key == key:
            continue
        bad = leaf.violated(row, limit=2)
        grid = grids_[bad[0]] if len(bad) == 1 else None
        if grid is None:
            continue
        i = bad[0]
        pred = leaf.predicates[i]
        assert not isinstance(pred, frozenset)
        first, last = grid.span(*pred)
        k0 = grid.index(row[i])
        out.setdefault(i, []).append(first if first > k0 else last)
    return out
