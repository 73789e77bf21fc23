"""Bottom-up path finding (the paper's Algorithm 1) with a leaf-identity oracle.

From a complete query, the attack finds the predicates of the leaf it reaches: on each
continuous feature a LINE SEARCH for where the identity changes on either side of the
query's value (to precision epsilon), on each categorical feature a CATEGORY SPLIT over
every value. Each point just past a boundary is queued: it lies in another leaf. A queued
point whose identity is that of a leaf found already, and which meets that leaf's
predicates, is skipped; one that meets no such leaf's predicates is a new leaf even when
its identity was seen (the paper's fix for shared identities).

Beyond the paper, so that leaves sharing an identity cost no fidelity:

- exploration starts from a random row and from the lower corner of the space, where
  sparse data (counts, frequencies at zero) lies;
- the range ends and the other categories are asked by group tests (a whole group of
  features changed in one query; a leaf is a box, so a group that answers alike stays
  inside it); groups are sized per feature, from how often its changes left leaves so
  far; answers already bought on a line narrow its search;
- each leaf found from a row another leaf's search pushed across one of its boundaries
  (its PARENT) is predicted to keep the parent's other predicates: the two share every
  test above the node that cuts them apart. The changes the parent allows are grouped
  apart from those it does not (they stay in the new leaf far more often), and the
  parent's thresholds are the first guesses of the line searches: a range end beyond
  the parent's threshold is not asked, the row just past that threshold is (unless a
  threshold found before lies between). Once another leaf found shares the identity, a
  group can be fooled (its row may land in that other leaf): then only changes the
  parent allows are grouped, the others go one at a time (before the parents, grouping
  every change there lost 0.87% of an 80-leaf spambase tree's test rows without the
  corner checks; grouping the parent's only is exact there and on every Table 6 tree at
  seeds 0-7, with fewer queries than grouping all);
- a category that moves the row into the box of a leaf found before, with another
  identity that no other leaf found shares, is not asked and not queued: a leaf whose
  identity is its own has an exact box (each search from its seed can only stop at its
  own boundary), so the row answers as that leaf;
- once the queue is empty, boxes of different identities that overlap are split where
  a row of the overlap answers otherwise, regions no box holds (found by sampling,
  without queries) are explored, and the boxes of shared identities are checked at
  corners (covering arrays, as the top-down attack does: every pair of features where
  the box overlaps another box with its identity, every feature where ``crowd`` leaves
  share it). Each of these passes queues what it finds; the attack ends when none finds
  anything.

References: Tramèr et al., USENIX Security 2016, section 4.2.1 (Algorithm 1, duplicate
identities) and appendix C; Hwang 1972, "A method for detecting all defective members in
a population by group testing" (binary splitting).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any, ClassVar

import numpy as np
from sklearn.tree import BaseDecisionTree

from stealml.attacks._tree_search import covering_array
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
    holds,
    with_value,
)
from stealml.attacks.base import Attack, Querier
from stealml.models.tree_service import TreeService
from stealml.oracles.base import Oracle
from stealml.random import RandomState, as_generator
from stealml.space import CategoricalFeature

__all__ = ["PathFinding"]

ALONE = 0.3  # a change likelier than this to leave a leaf is tested by itself
STAY = 0.5  # a group's chance of staying inside the leaf, at least


class PathFinding(Attack):
    """Bottom-up tree extraction from complete queries (Algorithm 1).

    Parameters
    ----------
    epsilon : float
        Precision of the line searches on continuous features, in raw units (the
        feature's granularity when that is coarser).
    checks : int
        Strength of the corner checks of a leaf's box once the partition looks whole
        (every ``checks`` features at either end of the box, in every combination), for a
        leaf whose box overlaps the box of another leaf found with its identity (leaves are
        disjoint, so one of the two boxes reaches past its leaf, through a neighbour that
        answers alike), or whose identity ``crowd`` or more leaves found share and whose
        box holds at least ``wide`` of the space; one fewer for the other boxes of such
        crowded identities; none for the rest. 0 turns them off. They find a leaf that
        only a pair of changes from a box's seed reaches.
    crowd : int
        How many leaves found must share an identity for its boxes to be checked without
        an overlap.
    wide : float
        The share of the space (of its grid, feature by feature) from which a box of a
        crowded identity is checked at full strength: a leaf hidden in a large box costs
        more rows.
    gap_samples, gap_rows : int
        Rows drawn (without queries) to find regions no box holds, and the most of them
        queued per pass. A region missed costs fidelity: with 20,000 (and with 50,000 at
        another seed), one of adult's seeds 0-29 kept a small region no box held, where a
        box of an identity five leaves share reached into a leaf it hid (1 test row and
        2 uniform rows wrong). Drawing costs no queries; 100,000 takes about 3 s more
        per run on that 318-leaf tree.
    max_leaves : int
        A target with more leaves than this is reported as not a tree.
    random_state : int or Generator, optional
        Seeds the initial query and the corners' other categories.
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

    def __init__(self, epsilon: float = 1e-3, checks: int = 2, crowd: int = 6,
                 wide: float = 0.01, gap_samples: int = 100_000, gap_rows: int = 16,
                 max_leaves: int = 10_000,
                 random_state: RandomState = None, batch_size: int | None = None) -> None:
        self.epsilon = epsilon
        self.checks = checks
        self.crowd = crowd
        self.wide = wide
        self.gap_samples = gap_samples
        self.gap_rows = gap_rows
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
        self._rng = as_generator(self.random_state)
        self._lines: dict[tuple[Any, ...], dict[int, str]] = {}
        self._features = oracle.space.features
        self._known: dict[tuple[Any, ...], str] = {}
        self._cuts: dict[int, set[int]] = {}
        self._leaf_keys: Counter[str] = Counter()
        self._parents: dict[tuple[Any, ...], Leaf] = {}
        self._parent: Leaf | None = None
        self._rated: Counter[tuple[int, bool | None]] = Counter()
        self._rated_left: Counter[tuple[int, bool | None]] = Counter()
        leaves: list[Leaf] = []
        seeds: list[Row] = []
        complete = True
        self._current: Leaf | None = None
        queue: deque[Row] = deque()
        splits = 0
        try:
            queue.extend(self._starts(tq))
            unchecked = self._drain(tq, queue, leaves, seeds)
            while unchecked:
                split = self._check(tq, queue, leaves, seeds, unchecked)
                if not split:
                    split = self._disjoin(tq, queue, leaves, seeds)
                if not split and not queue:
                    queue.extend(self._gaps(tq, leaves))
                splits += len(split)
                unchecked = split | self._drain(tq, queue, leaves, seeds)
        except Exhausted:
            complete = False
            if self._current is not None:
                leaves.append(self._current)
        model = build_tree(oracle, leaves)
        return model, complete, {"leaves": len(leaves), "splits": splits,
                                 "unique_ids": len({leaf.probe.key for leaf in leaves})}

    def _starts(self, tq: TreeQuerier) -> list[Row]:
        """A random complete row (the paper's start), then the lower corner of the space
        (every feature at its minimum or first value), where sparse real data lies."""
        raw = tq.space.sample(1, self._rng)[0].tolist()
        corner: Row = []
        for i, f in enumerate(tq.space.features):
            grid = self._grids[i]
            if grid is not None:
                raw[i] = grid.value(grid.index(float(raw[i])))
                corner.append(grid.value(0))
            else:
                assert isinstance(f, CategoricalFeature)
                corner.append(f.values[0])
        return [raw, corner]

    def _drain(self, tq: TreeQuerier, queue: deque[Row], leaves: list[Leaf],
               seeds: list[Row]) -> set[int]:
        """Explore every queued row that no leaf found so far explains; returns the
        indices of the leaves found."""
        found: set[int] = set()
        while queue:
            row = queue.popleft()
            probe = tq.ask([row])[0]
            if any(leaf.probe.key == probe.key and leaf.contains(row) for leaf in leaves):
                continue
            self._current = current = Leaf(probe)
            self._parent = self._parent_of(row)
            pushed = self._explore(tq, row, current, leaves)
            self._parent = None
            for r in pushed:
                self._parents.setdefault(_frozen(r), current)
            queue.extend(pushed)
            current.complete = True
            leaves.append(current)
            self._leaf_keys[probe.key] += 1
            seeds.append(row)
            self._current = None
            found.add(len(leaves) - 1)
            check_leaf_count(len(leaves), self.max_leaves)
        return found

    def _check(self, tq: TreeQuerier, queue: deque[Row], leaves: list[Leaf],
               seeds: list[Row], which: set[int]) -> set[int]:
        """Ask corners of each leaf's box (every feature at either end of its predicate,
        any ``checks`` features in every combination where the box overlaps another box
        with its identity or is a ``wide`` box of a ``crowd``-shared identity, one fewer
        for the other boxes of such identities): a line search runs through a neighbour
        that answers like the leaf, so its box may hold leaves that answer otherwise.
        Where a corner does, the box is split on the feature that shows it, the rows past
        the split are queued, and the index of the leaf is returned (to be checked again).
        An overlapping box also gets the rows of a second array whose categorical values
        are shifted (:meth:`_corners`): other pairs of values.

        Only shared identities are checked: a box reaches past its leaf only through a
        neighbour with its identity. On the contraceptive tree (seeds 0-29, no checks,
        every other pass run), the boxes left holding rows of another identity were 23,
        every one of an identity that six or more leaves found share (of 3,129 boxes of
        identities shared by one to five, none); 18 of them overlapped another box with
        their identity, and the other 5 each had a differing corner among its strength-1
        corners. Without the shifted rows and the full strength for wide boxes, 3 of
        contraceptive seeds 0-59 were not exact (a leaf that only two values of two
        categorical features together reach, twice; one inside the first leaf's box)."""
        keys = Counter(leaf.probe.key for leaf in leaves)
        boxes = _Boxes(self._grids, leaves)
        split: set[int] = set()
        for j in sorted(which):
            leaf, seed = leaves[j], seeds[j]
            key = leaf.probe.key
            if keys[key] < 2:
                continue
            overlap = any(b != j and leaves[b].probe.key == key for b in boxes.overlapping(j))
            crowded = keys[key] >= self.crowd
            strength = (self.checks if overlap or (crowded and self._share(leaf) >= self.wide)
                        else self.checks - 1 if crowded else 0)
            corners = self._corners(tq, leaf, seed, strength, leaves)
            if overlap:
                corners += [row for row in self._corners(tq, leaf, seed, strength, leaves,
                                                         shift=1) if row not in corners]
            for corner, probe in zip(corners, tq.ask(corners), strict=True):
                if probe.key != key:
                    queue.extend(self._split(tq, leaf, seed, corner, leaves))
                    boxes.update(j, leaf)
                    split.add(j)
                    break
        return split

    def _share(self, leaf: Leaf) -> float:
        """The share of the space's grid (feature by feature) that the leaf's box holds."""
        share = 1.0
        for i, pred in leaf.predicates.items():
            grid = self._grids[i]
            if isinstance(pred, frozenset):
                share *= len(pred) / len(self._features[i].values)  # type: ignore[union-attr]
            elif grid is not None:
                first, last = grid.span(*pred)
                share *= (last - first + 1) / grid.size
        return share

    def _disjoin(self, tq: TreeQuerier, queue: deque[Row], leaves: list[Leaf],
                 seeds: list[Row]) -> set[int]:
        """Leaves are disjoint: where the boxes of two leaves with different identities
        overlap, ask a row of the overlap and split the box (or both) that answers
        otherwise there. Returns the indices of the leaves split."""
        split: set[int] = set()
        boxes = _Boxes(self._grids, leaves)
        for a in range(len(leaves)):
            for b in boxes.overlapping(a):
                if b <= a or leaves[a].probe.key == leaves[b].probe.key:
                    continue
                row = boxes.row_in_both(a, b, seeds[a])
                if row is None:
                    continue
                key = tq.ask([row])[0].key
                for j in (a, b):
                    if key != leaves[j].probe.key:
                        queue.extend(self._split(tq, leaves[j], seeds[j], row, leaves))
                        boxes.update(j, leaves[j])
                        split.add(j)
        return split

    def _gaps(self, tq: TreeQuerier, leaves: list[Leaf]) -> list[Row]:
        """Rows that no leaf's box holds, among ``gap_samples`` drawn without a query
        (half uniform, half with each feature at its minimum with probability 1/2): the
        splits of boxes can leave a region that no queued row reached."""
        features = tq.space.features
        n = self.gap_samples
        levels = [g.size if g is not None else len(f.values)  # type: ignore[union-attr]
                  for f, g in zip(features, self._grids, strict=True)]
        idx = np.column_stack([self._rng.integers(0, k, size=n) for k in levels])
        idx[n // 2:][self._rng.random((n - n // 2, len(levels))) < 0.5] = 0
        covered = np.zeros(n, dtype=bool)
        for leaf in leaves:
            inside = ~covered
            for i, pred in leaf.predicates.items():
                grid = self._grids[i]
                if grid is not None:
                    assert not isinstance(pred, frozenset)
                    first, last = grid.span(*pred)
                    inside &= (idx[:, i] >= first) & (idx[:, i] <= last)
                else:
                    values = features[i].values  # type: ignore[union-attr]
                    allowed = np.array([v in pred for v in values])
                    inside &= allowed[idx[:, i]]
            covered |= inside
        rows = []
        for r in np.flatnonzero(~covered)[:self.gap_rows]:
            rows.append([g.value(int(k)) if g is not None
                         else f.values[int(k)]  # type: ignore[union-attr]
                         for f, g, k in zip(features, self._grids, idx[r], strict=True)])
        return rows

    def _corners(self, tq: TreeQuerier, leaf: Leaf, seed: Row, strength: int,
                 leaves: list[Leaf], shift: int = 0) -> list[Row]:
        """The seed row with features set to either end of the leaf's box on them.

        A categorical feature's other end is each other value the box admits in turn
        (over the rows that move the feature), first the values that the most boxes of
        ``leaves`` tell apart from the seed's (one admits the value, not the seed's, or
        the other way round): the tree splits on those. One value drawn at random missed
        a leaf that only two such values together reach (contraceptive seed 19).

        With ``shift``, the k-th feature of the array starts its turn ``shift * k``
        values later, and only the rows that move two or more categorical features with
        several other values are kept: a strength-2 array moves a pair of features
        together in one or two rows, so it tries one or two of the pairs of their values."""
        ends: dict[int, tuple[Any, list[Any] | Any]] = {}
        for i, f in enumerate(tq.space.features):
            pred = leaf.predicates.get(i)
            grid = self._grids[i]
            if isinstance(f, CategoricalFeature):
                members = sorted((pred if isinstance(pred, frozenset) else set(f.values))
                                 - {seed[i]})
                if members:
                    apart: Counter[Any] = Counter()
                    for other in leaves:
                        p = other.predicates.get(i)
                        if isinstance(p, frozenset):
                            for v in members:
                                apart[v] += (v in p) != (seed[i] in p)
                    order = [members[k] for k in self._rng.permutation(len(members))]
                    order.sort(key=lambda v: -apart[v])
                    ends[i] = (seed[i], order)
            elif grid is not None and grid.size > 1:
                assert not isinstance(pred, frozenset)
                first, last = grid.span(*(pred or (-math.inf, math.inf)))
                if last > first:
                    ends[i] = (grid.value(first), grid.value(last))
        if strength <= 0 or not ends:
            return []
        features = sorted(ends)
        several = [i for i in features if isinstance(ends[i][1], list) and len(ends[i][1]) > 1]
        moved: Counter[int] = Counter()
        rows = []
        for pattern in covering_array(len(features), strength):
            row = list(seed)
            for k, (i, end) in enumerate(zip(features, pattern, strict=True)):
                value = ends[i][end]
                if isinstance(value, list):
                    value = value[(moved[i] + shift * k) % len(value)]
                    moved[i] += 1
                row[i] = value
            if not shift or sum(row[i] != seed[i] for i in several) >= 2:
                rows.append(row)
        return rows

    def _split(self, tq: TreeQuerier, leaf: Leaf, seed: Row, corner: Row,
               leaves: list[Leaf]) -> list[Row]:
        """Narrow ``leaf`` (whose ``corner`` answers otherwise) on the feature where a walk
        from its seed to the corner first changes identity; returns the rows past the cut.

        Each change alone answers like the leaf (the box was found so), so a pair of
        changes shows the cut: one of them moves the row into a neighbour that answers
        alike, the other then out of it, and the answers do not say which. The walk makes
        last the changes whose row lies in the box of another leaf found with the
        identity (leaves are disjoint, so that change likely leaves this one), and the
        box is narrowed on that change. Narrowed on the other, the box loses part of its
        own leaf, which is then explored again as a new leaf: on the contraceptive tree,
        seeds 0-29, this order costs 18.0 queries per leaf instead of 20.2."""
        key = leaf.probe.key
        changes = [i for i in range(len(seed)) if corner[i] != seed[i]]
        elsewhere = [i for i in changes if any(
            other is not leaf and other.probe.key == key
            and other.contains(with_value(seed, i, corner[i])) for other in leaves)]
        moved = [i for i in changes if i not in elsewhere] + elsewhere

        def walk(t: int) -> Row:
            row = list(seed)
            for i in moved[:t]:
                row[i] = corner[i]
            return row

        lo, hi = 0, len(moved)  # walk(lo) answers like the leaf, walk(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if tq.ask([walk(mid)])[0].key == key:
                lo = mid
            else:
                hi = mid
        row, i = walk(lo), moved[lo]
        f, grid = tq.space.features[i], self._grids[i]
        if isinstance(f, CategoricalFeature):
            members = leaf.predicates.get(i, frozenset(f.values))
            assert isinstance(members, frozenset)
            values = sorted(members - {row[i]})
            probes = tq.ask([with_value(row, i, v) for v in values])
            out: list[Any] = [v for v, p in zip(values, probes, strict=True)
                              if p.key != key]
            leaf.predicates[i] = members - set(out)
        else:
            assert grid is not None
            pred = leaf.predicates.get(i, (-math.inf, math.inf))
            assert not isinstance(pred, frozenset)
            inside, outside = grid.index(row[i]), grid.index(corner[i])
            k = self._boundary(tq, row, i, grid, inside=inside, outside=outside, key=key)
            if outside > inside:
                leaf.predicates[i] = (pred[0], grid.cut(k))
                out = [grid.value(k + 1)]
            else:
                leaf.predicates[i] = (grid.cut(k - 1), pred[1])
                out = [grid.value(k - 1)]
        past = [with_value(r, i, v) for v in out for r in (row, seed)]
        for r in past:
            self._parents.setdefault(_frozen(r), leaf)
        return past

    def _explore(self, tq: TreeQuerier, row: Row, leaf: Leaf,
                 known: list[Leaf]) -> list[Row]:
        """Fill ``leaf.predicates`` from ``row``; return the rows just outside it (not
        those in the box of a known leaf: see :func:`_category_hints`)."""
        pushed: list[Row] = []
        hints = _hints(row, leaf.probe.key, known, self._grids)
        elsewhere = _category_hints(row, leaf.probe.key, [
            other for other in known if self._leaf_keys[other.probe.key] == 1])
        same_ends = self._group_ends(tq, row, leaf.probe.key)
        alike = self._group_categories(tq, row, leaf.probe.key, elsewhere)
        for i, f in enumerate(tq.space.features):
            grid = self._grids[i]
            if isinstance(f, CategoricalFeature):
                same = frozenset(alike[i]) | {row[i]}
                if len(same) < len(f.values):
                    leaf.predicates[i] = same
                pushed += [with_value(row, i, v) for v in f.values
                           if v not in same and v not in elsewhere.get(i, ())]
            elif grid is not None and grid.size > 1:
                lo, hi, out = self._line_search(tq, row, i, grid, leaf.probe,
                                                hints.get(i, []), same_ends)
                if not (math.isinf(lo) and math.isinf(hi)):
                    leaf.predicates[i] = (lo, hi)
                pushed += out
        return pushed

    def _group_ends(self, tq: TreeQuerier, row: Row, key: str) -> set[tuple[int, int]]:
        """The (feature, end index) pairs whose range end answers like ``row``: each
        continuous feature set to its lower (then upper) end, by group tests."""
        same: set[tuple[int, int]] = set()
        for side in (0, 1):
            ends = {i: 0 if side == 0 else g.size - 1 for i, g in enumerate(self._grids)
                    if g is not None and g.size > 1}
            items = [(i, self._end_value(i, e)) for i, e in ends.items()
                     if self._index(i, row[i]) != e
                     and self._predict((i, self._end_value(i, e))) is not False]
            alike = self._group_test(tq, row, key, items)
            same |= {(i, ends[i]) for (i, _), ok in alike.items() if ok}
            for (i, value), ok in alike.items():
                # an end that answered otherwise in a group of one was asked; one known
                # to answer otherwise only from its group's answers is asked later
                known = key if ok else self._known.get(_frozen(with_value(row, i, value)))
                if known is not None:
                    self._line(row, i)[ends[i]] = known
        return same

    def _group_categories(self, tq: TreeQuerier, row: Row, key: str,
                          elsewhere: dict[int, set[Any]] | None = None) -> dict[int, set[Any]]:
        """Per categorical feature, its values that answer like ``row`` (the CATEGORY
        SPLIT): round r changes each feature to its r-th other value, by group tests."""
        skip = elsewhere or {}
        others = {i: [v for v in f.values if v != row[i] and v not in skip.get(i, ())]
                  for i, f in enumerate(self._features)
                  if isinstance(f, CategoricalFeature)}
        alike: dict[int, set[Any]] = {i: set() for i in others}
        for r in range(max((len(v) for v in others.values()), default=0)):
            items = [(i, v[r]) for i, v in others.items() if len(v) > r]
            for (i, value), ok in self._group_test(tq, row, key, items).items():
                if ok:
                    alike[i].add(value)
        return alike

    def _group_test(self, tq: TreeQuerier, row: Row, key: str,
                    items: list[tuple[int, Any]]) -> dict[tuple[int, Any], bool]:
        """Whether ``row`` with each one change (feature, value) of ``items`` (one per
        feature) still answers ``key``. Changes whose row was answered before cost
        nothing; the others are tested in groups (all of a group's changes in one row),
        a group that answers otherwise is halved. A leaf is a box, so where the identity
        is the leaf's own, every change of a group that answers alike stays inside the
        leaf: b changes that leave it among n cost about b log(n / b) queries instead
        of n. Groups are formed per feature from how often its changes left leaves so
        far (:meth:`_groups`): the features the tree splits on near the leaf are tested
        one change at a time, the many it never tests in a few groups. Where a leaf found before
        answers alike, a group can be fooled (its row may lie in that other leaf, hiding a
        change that alone leaves this one): such leaves are tested one change at a time.
        The overlap and gap passes catch what a group hid before the identity was
        seen twice."""
        out: dict[tuple[int, Any], bool] = {}
        unknown = []
        for item in items:
            known = self._known.get(_frozen(with_value(row, *item)))
            if known is None:
                unknown.append(item)
            else:
                out[item] = known == key
        if self._leaf_keys[key]:  # another leaf answers alike: a group may be fooled
            groups = self._groups([item for item in unknown if self._predict(item) is True])
            groups += [[item] for item in unknown if self._predict(item) is not True]
        else:
            groups = self._groups(unknown)
        # a stack of (group, known to fail): the first half of a failed group is tested;
        # where it answers alike, the second half is known to fail without a query. A
        # single change known to fail is still asked: its row is queued and asked anyway,
        # and where the first half was fooled (it landed in another leaf that answers
        # alike) the change may stay after all
        stack = [(g, False) for g in groups][::-1]
        while stack:
            g, fails = stack.pop()
            if not fails or len(g) == 1:
                changed = list(row)
                for i, value in g:
                    changed[i] = value
                if self._ask(tq, [changed])[0] == key or len(g) == 1:
                    ok = self._known[_frozen(changed)] == key
                    out.update({item: ok for item in g})
                    continue
            first, second = g[:len(g) // 2], g[len(g) // 2:]
            changed = list(row)
            for i, value in first:
                changed[i] = value
            if self._ask(tq, [changed])[0] == key or len(first) == 1:
                ok = self._known[_frozen(changed)] == key
                out.update({item: ok for item in first})
                stack.append((second, ok))
            else:
                stack += [(second, False), (first, True)]
        for item in unknown:
            rating = (item[0], self._predict(item))
            self._rated[rating] += 1
            self._rated_left[rating] += not out[item]
        return out

    def _parent_of(self, row: Row) -> Leaf | None:
        """The leaf whose search pushed ``row`` (None for the starts and the rows of the
        later passes)."""
        return self._parents.get(_frozen(row))

    def _predict(self, item: tuple[int, Any]) -> bool | None:
        """Whether the change (feature, value) keeps the parent's predicate on that
        feature (None without a parent). The new leaf lies across one boundary of its
        parent and shares every test above the node that cuts them apart, so a change
        the parent allows mostly stays in the new leaf too (contraceptive tree: 84% of
        them where the identity is shared, against 64% of all changes)."""
        if self._parent is None:
            return None
        pred = self._parent.predicates.get(item[0])
        return True if pred is None else holds(pred, item[1])

    def _groups(self, items: list[tuple[int, Any]]) -> list[list[tuple[int, Any]]]:
        """Items in groups that each stay inside the leaf with probability about one
        half, from how often the changes of each feature left leaves so far, counted
        apart for changes the parent leaf allows and those it does not (with a prior of
        one in four); a change likelier than that to leave is tested alone."""
        def rate(item: tuple[int, Any]) -> float:
            rating = (item[0], self._predict(item))
            return (self._rated_left[rating] + 1) / (self._rated[rating] + 4)

        rated = sorted((rate(item), n) for n, item in enumerate(items))
        groups: list[list[tuple[int, Any]]] = []
        current: list[tuple[int, Any]] = []
        stay = 1.0
        for p, n in rated:
            if p > ALONE:
                groups.append([items[n]])
                continue
            if current and (stay * (1 - p) < STAY or len(current) >= 64):
                groups.append(current)
                current, stay = [], 1.0
            current.append(items[n])
            stay *= 1 - p
        if current:
            groups.append(current)
        return groups

    def _ask(self, tq: TreeQuerier, rows: list[Row]) -> list[str]:
        """The identities of ``rows``, remembered for the searches that follow."""
        keys = [p.key for p in tq.ask(rows)]
        self._known.update(zip(map(_frozen, rows), keys, strict=True))
        return keys

    def _index(self, i: int, value: float) -> int:
        grid = self._grids[i]
        assert grid is not None
        return grid.index(value)

    def _end_value(self, i: int, k: int) -> float:
        grid = self._grids[i]
        assert grid is not None
        return grid.value(k)

    def _line_search(self, tq: TreeQuerier, row: Row, i: int, grid: Grid, probe: Probe,
                     hints: list[int], same_ends: set[tuple[int, int]] | None = None,
                     ) -> tuple[float, float, list[Row]]:
        """The leaf's interval on feature ``i`` around ``row`` and the rows just past it.

        Each side is searched towards the end of the range, or, where the end answers
        like the leaf, towards a point of a known leaf with another identity that lies on
        the line (``hints``): the end may then be a different leaf sharing the identity.
        Answers already bought on the same line (a neighbour's search that crossed into
        this leaf) narrow the search before anything is asked.
        """
        key, k0, last = probe.key, grid.index(row[i]), grid.size - 1
        line = self._line(row, i)
        line[k0] = key
        lo, hi, out = -math.inf, math.inf, []
        for side, end in ((-1, 0), (1, last)):
            k = self._nearest_other(line, k0, side, key)
            if k is None:
                k = self._past_parent(tq, row, i, grid, side, key)
            if k is None:
                if end not in line and (i, end) not in (same_ends or ()):
                    self._ask_line(tq, row, i, grid, [end])
                if line.get(end, key) != key:
                    k = end
                else:
                    toward = sorted((h for h in hints if (h - k0) * side > 0),
                                    key=lambda h: abs(h - k0))
                    k = self._outside(tq, row, i, grid, toward, key)
            if k is None:
                continue
            outside = k
            inside = min((j for j in line if (j - outside) * side < 0
                          and (k0 - j) * side <= 0 and line[j] == key),
                         key=lambda j: abs(j - outside))
            k = self._boundary(tq, row, i, grid, inside=inside, outside=outside, key=key,
                               prefer_cuts=self._parent_cuts(i, grid))
            if side < 0:
                lo = grid.cut(k - 1)
                out.append(with_value(row, i, grid.value(k - 1)))
            else:
                hi = grid.cut(k)
                out.append(with_value(row, i, grid.value(k + 1)))
        return lo, hi, out

    def _past_parent(self, tq: TreeQuerier, row: Row, i: int, grid: Grid, side: int,
                     key: str) -> int | None:
        """The grid index just past the parent's threshold on ``side`` of ``row``, if it
        answers another identity (asked instead of the range end, which the parent
        predicts to leave). Not where a threshold found before lies between ``row`` and
        the parent's: a narrow leaf there could be jumped over (spambase: 99.86% of the
        test rows without this guard)."""
        k0, cuts = grid.index(row[i]), self._cuts.get(i, set())
        past = [c + 1 if side > 0 else c for c in self._parent_cuts(i, grid)
                if ((c + 1 if side > 0 else c) - k0) * side > 0
                and not any((x - k0) * side >= 0 and (c - x) * side > 0 for x in cuts)]
        if not past:
            return None
        p = min(past, key=lambda j: abs(j - k0))
        line = self._line(row, i)
        if p not in line:
            self._ask_line(tq, row, i, grid, [p])
        return p if line[p] != key else None

    def _parent_cuts(self, i: int, grid: Grid) -> tuple[int, ...]:
        """The parent leaf's thresholds on continuous feature ``i``, as the grid index of
        the last value below each."""
        pred = None if self._parent is None else self._parent.predicates.get(i)
        if pred is None or isinstance(pred, frozenset):
            return ()
        lo, hi = pred
        cuts = []
        if not math.isinf(lo):
            cuts.append(grid.span(lo, math.inf)[0] - 1)
        if not math.isinf(hi):
            cuts.append(grid.span(-math.inf, hi)[1])
        return tuple(cuts)

    def _line(self, row: Row, i: int) -> dict[int, str]:
        """The answers known on the line through ``row`` along feature ``i`` (by index)."""
        return self._lines.setdefault((i, tuple(row[:i]), tuple(row[i + 1:])), {})

    def _ask_line(self, tq: TreeQuerier, row: Row, i: int, grid: Grid,
                  ks: list[int]) -> list[str]:
        keys = self._ask(tq, [with_value(row, i, grid.value(k)) for k in ks])
        self._line(row, i).update(zip(ks, keys, strict=True))
        return keys

    @staticmethod
    def _nearest_other(line: dict[int, str], k0: int, side: int, key: str) -> int | None:
        """The known index nearest ``k0`` on ``side`` that answers another identity."""
        others = [j for j, k in line.items() if (j - k0) * side > 0 and k != key]
        return min(others, key=lambda j: abs(j - k0)) if others else None

    def _outside(self, tq: TreeQuerier, row: Row, i: int, grid: Grid, candidates: list[int],
                 key: str) -> int | None:
        """The nearest candidate grid index that answers another identity, if any."""
        for k in candidates:
            if self._ask_line(tq, row, i, grid, [k])[0] != key:
                return k
        return None

    def _boundary(self, tq: TreeQuerier, row: Row, i: int, grid: Grid, inside: int,
                  outside: int, key: str, prefer_cuts: tuple[int, ...] = ()) -> int:
        """Binary search: the last grid index on the ``inside`` side still answering ``key``.

        The parent leaf's thresholds on the feature (``prefer_cuts``, grid indices of the
        last value below each) are tried first: where the new leaf shares the test, its
        boundary costs two queries. Then thresholds found before on the feature (by any
        leaf: a split bounds every leaf below it), each as the pair of grid values around
        it, so that a known threshold costs about log2 of the number known, not log2 of
        the grid."""
        cuts = self._cuts.setdefault(i, set())
        prefer = [k for c in prefer_cuts for k in ((c, c + 1) if outside > inside else (c + 1, c))]
        while abs(outside - inside) > 1:
            lo, hi = min(inside, outside), max(inside, outside)
            first = [k for k in prefer if lo < k < hi]
            known = sorted(k for c in cuts for k in (c, c + 1) if lo < k < hi)
            mid = (first[0] if first else known[len(known) // 2] if known
                   else (inside + outside) // 2)
            if self._ask_line(tq, row, i, grid, [mid])[0] == key:
                inside = mid
            else:
                outside = mid
        cuts.add(min(inside, outside))
        return inside


def _frozen(row: Row) -> tuple[Any, ...]:
    return tuple(row)


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


def _category_hints(row: Row, key: str, known: list[Leaf]) -> dict[int, set[Any]]:
    """Per categorical feature, the values that move ``row`` into the box of a known leaf
    with another identity (its only broken predicate is on that feature). ``known``
    holds only leaves whose identity no other found leaf shares. Where the identity is the
    leaf's own in the target too, its box is exact (every search from the seed stops
    where the identity changes, which is then the leaf's boundary) and such a row answers
    as that leaf; a leaf that shares it with one not found yet is what the corner checks
    and the overlap and gap passes are there for. Measured: exact on every Table 6 tree
    at seeds 0-4."""
    out: dict[int, set[Any]] = {}
    for leaf in known:
        if leaf.probe.key == key:
            continue
        bad = leaf.violated(row, limit=2)
        if len(bad) != 1:
            continue
        pred = leaf.predicates[bad[0]]
        if isinstance(pred, frozenset):
            out.setdefault(bad[0], set()).update(pred)
    return out


class _Boxes:
    """The leaves' boxes as arrays (grid-index spans, category bit masks), to find the
    leaves whose boxes overlap one leaf's in one vectorised step."""

    def __init__(self, grids_: list[Grid | None], leaves: list[Leaf]) -> None:
        self.grids = grids_
        self.cont = [i for i, g in enumerate(grids_) if g is not None]
        self.cat = [i for i, g in enumerate(grids_) if g is None]
        n = len(leaves)
        self.first = np.zeros((n, len(self.cont)), dtype=np.int64)
        self.last = np.zeros((n, len(self.cont)), dtype=np.int64)
        self.masks = np.zeros((n, len(self.cat)), dtype=object)
        self.values: dict[int, list[Any]] = {}
        self.preds: list[dict[int, Any]] = [{} for _ in range(n)]
        for j, leaf in enumerate(leaves):
            self.update(j, leaf)

    def update(self, j: int, leaf: Leaf) -> None:
        self.preds[j] = dict(leaf.predicates)
        for c, i in enumerate(self.cont):
            grid = self.grids[i]
            assert grid is not None
            pred = leaf.predicates.get(i, (-math.inf, math.inf))
            assert not isinstance(pred, frozenset)
            self.first[j, c], self.last[j, c] = grid.span(*pred)
        for c, i in enumerate(self.cat):
            members = leaf.predicates.get(i)
            self.masks[j, c] = -1 if members is None else sum(
                1 << self._bit(i, v) for v in members)

    def _bit(self, i: int, value: Any) -> int:
        seen = self.values.setdefault(i, [])
        if value not in seen:
            seen.append(value)
        return seen.index(value)

    def overlapping(self, a: int) -> list[int]:
        ok = np.all(np.maximum(self.first, self.first[a]) <= np.minimum(self.last, self.last[a]),
                    axis=1)
        for c in range(len(self.cat)):
            ok &= (self.masks[:, c] & self.masks[a, c]) != 0
        return np.flatnonzero(ok).tolist()

    def row_in_both(self, a: int, b: int, seed: Row) -> Row | None:
        """A row in both boxes: each feature at the middle of the two predicates' common
        part (a category both admit, the seed's where it can), else None."""
        row = list(seed)
        for c, i in enumerate(self.cont):
            grid = self.grids[i]
            assert grid is not None
            lo = max(self.first[a, c], self.first[b, c])
            hi = min(self.last[a, c], self.last[b, c])
            if lo > hi:
                return None
            if not lo <= grid.index(row[i]) <= hi or grid.value(grid.index(row[i])) != row[i]:
                row[i] = grid.value((lo + hi) // 2)
        for i in self.cat:
            pa, pb = self.preds[a].get(i), self.preds[b].get(i)
            if pa is None and pb is None:
                continue
            common: set[Any] = set(pa or ()) if pb is None else set(pb) if pa is None else (
                set(pa) & set(pb))
            if not common:
                return None
            if row[i] not in common:
                row[i] = sorted(common)[0]
        return row
