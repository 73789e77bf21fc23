"""Top-down path finding: extract a decision tree layer by layer with incomplete queries.

The empty query stops at the root and its answer names the root's split feature (the one
feature in the answer's fields that the query left out). Setting that feature to each of
its values, the query passes the root (and every node below it that splits on the same
feature) and stops at the next node: a search over the feature's values finds where that
next node changes, which gives a multi-way split on the feature. Each child is then a
partial query one feature longer, explored the same way, until the fields name no new
feature (a leaf). Leaves that share an identity are harmless here: a node is told from a
leaf by its fields, and two neighbouring leaves with one output may be merged without
changing a single prediction.

References: Tramèr et al., USENIX Security 2016, section 4.2.1 ("A top-down approach")
and appendix C.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from sklearn.tree import BaseDecisionTree

from stealml.attacks._tree_search import (
    Piece,
    Signed,
    Signer,
    category_pieces,
    covering_array,
    interval_pieces,
    simple_signer,
)
from stealml.attacks._trees import (
    Asking,
    Exhausted,
    Leaf,
    Predicate,
    Probe,
    Row,
    TreeQuerier,
    build_tree,
    check_leaf_count,
    drive,
    grids,
    holds,
    with_value,
)
from stealml.attacks.base import Attack, Querier
from stealml.exceptions import OracleCapabilityError, UnsupportedModelError
from stealml.models.tree_service import TreeService
from stealml.oracles.base import Oracle
from stealml.random import RandomState, as_generator
from stealml.space import CategoricalFeature

__all__ = ["TopDown"]

Split = tuple[int, list[Piece]]  # the feature a node splits on, and its children


@dataclass
class Node:
    """A partial query, the predicates of its region, its answer and the feature just
    split on (its piece needs no second look)."""

    row: Row
    preds: dict[int, Predicate]
    probe: Probe
    fresh: int = -1
    checked: bool = False
    parent: Node | None = None
    fresh_new: bool = False  # the parent split on a feature no query had set


class TopDown(Attack):
    """Top-down tree extraction with incomplete queries (BigML's semantics).

    Parameters
    ----------
    epsilon : float
        Precision of threshold searches on continuous features, in raw units (the
        feature's granularity when that is coarser).
    probes : int
        Extra random values tried on a continuous split feature before the search, so
        that a child hidden between two children with one identity may still be found.
    checks : int
        Strength of the corner checks (every ``checks`` features of a leaf's box in every
        combination of their ends) run on leaves whose identity another leaf shares.
    max_leaves : int
        A target with more leaves than this is reported as not a tree.
    random_state : int or Generator, optional
        Picks which value of each piece represents it in deeper queries.
    batch_size : int, optional
        Most queries per request.

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from stealml.oracles import LocalOracle
    >>> X, y = [[-1.], [-.5], [.5], [1.], [.9]], [0, 1, 1, 0, 0]
    >>> tree = DecisionTreeClassifier(max_depth=2).fit(X, y)
    >>> result = TopDown(random_state=0).run(LocalOracle(TreeService(tree)))
    >>> result.model.n_leaves, result.complete
    (3, True)
    """

    name: ClassVar[str] = "top-down"
    requires: ClassVar[frozenset[str]] = frozenset({"ids", "incomplete"})

    def __init__(self, epsilon: float = 1e-3, probes: int = 3, checks: int = 3,
                 max_leaves: int = 10_000, random_state: RandomState = None,
                 batch_size: int | None = None) -> None:
        self.epsilon = epsilon
        self.probes = probes
        self.checks = checks
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
        self._thresholds: dict[int, set[int]] = {}
        self._space = oracle.space
        self._rng = as_generator(self.random_state)
        self._keys: Counter[str] = Counter()
        self._shared_keys: set[str] = set()
        leaves: list[Node] = []  # checked leaves
        unchecked: list[Node] = []
        layer: list[Node] = []
        complete = True
        try:
            root: Row = [None] * oracle.space.n_features
            layer = [Node(root, {}, tq.ask([root])[0])]
            while layer or unchecked:
                if layer:
                    found = drive(tq, [self._children(tq, node) for node in layer])
                else:  # the tree looks whole: check its leaves, reopen those that split
                    shared = Counter(n.probe.key for n in leaves + unchecked)
                    found = drive(tq, [self._recheck(tq, node, shared[node.probe.key] > 1)
                                       for node in unchecked])
                    layer, unchecked = unchecked, []
                deeper: list[Node] = []
                for node, children in zip(layer, found, strict=True):
                    if children is None:
                        (unchecked if node.checked is False else leaves).append(node)
                        continue
                    i, pieces = children
                    deeper += [Node(with_value(node.row, i, rep), {**node.preds, i: pred},
                                    child, i, parent=node, fresh_new=i not in node.preds)
                               for pred, rep, child in pieces]
                    self._count_keys([child.key for _, _, child in pieces])
                deeper = self._join_fragments(deeper)
                check_leaf_count(len(leaves) + len(unchecked) + len(deeper), self.max_leaves)
                layer = deeper
        except Exhausted:
            complete = False
        found_leaves = [Leaf(n.probe, dict(n.preds), complete=True) for n in leaves + unchecked]
        found_leaves += [Leaf(n.probe, dict(n.preds), complete=False) for n in layer]
        model = build_tree(oracle, found_leaves)
        return model, complete, {"leaves": len(found_leaves),
                                 "unique_ids": len({leaf.probe.key for leaf in found_leaves})}

    def _join_fragments(self, nodes: list[Node]) -> list[Node]:
        """A new layer with pieces cut along another branch joined (see
        :func:`_merge_fragments`)."""
        return _merge_fragments(nodes)

    def _count_keys(self, keys: list[str]) -> None:
        """Count the identities of the nodes found; those on two or more are shared."""
        self._keys.update(keys)
        self._shared_keys.update(k for k in keys if self._keys[k] > 1)

    # -- one node ---------------------------------------------------------------------
    def _split_feature(self, tq: TreeQuerier, node: Node) -> int | None:
        if node.probe.fields is None:
            raise OracleCapabilityError("top-down needs answers that name their fields "
                                        "(the features used), as BigML's do")
        assigned = {tq.space.names[i] for i in node.preds}
        new = node.probe.fields - assigned
        if len(new) > 1:
            raise UnsupportedModelError(
                f"an incomplete query stopped at a node using {len(new)} missing features "
                f"({', '.join(sorted(new))}): the target does not answer like a tree")
        if new - set(tq.space.names):
            raise OracleCapabilityError(
                f"the answers name features the space does not have: "
                f"{', '.join(sorted(new - set(tq.space.names)))}")
        return None if not new else tq.space.names.index(next(iter(new)))

    def _children(self, tq: TreeQuerier, node: Node,
                  again: bool = False) -> Asking[Split | None]:
        """The node's split into children (None for a leaf; ``again``: see
        :meth:`_expand`). Where the piece of the feature set last holds two nodes that
        answered alike, each child finds the boundary between them itself: it searches
        that feature again over its piece, and its answers change there."""
        return (yield from self._expand(tq, node, again))

    def _recheck(self, tq: TreeQuerier, node: Node, shared: bool) -> Asking[Split | None]:
        """Check a leaf whose identity another leaf shares at corners of its box; where a
        corner shows a hidden test, split the leaf from a row that sees it. A leaf whose
        identity is its own needs no check: each single change of a feature set above was
        searched at the leaf and answered as it does, so (a leaf is a box) every
        combination of them does too; only nodes that answer alike can hide a test."""
        node.checked = True
        strength = self.checks if shared else 0
        inside = yield from self._check_leaf(node, strength)
        if inside is None:
            return None
        node.row = inside
        return (yield from self._children(tq, node, again=True))

    def _check_leaf(self, node: Node, strength: int) -> Asking[Row | None]:
        """Ask corners of a leaf's box (each feature set above at either end of its piece,
        where trees fitted on skewed data put their thresholds; any ``strength`` of them
        in every combination): a corner answering otherwise shows a test hidden behind
        two nodes that answer alike for the values chosen above. Returns a row of the
        leaf from which one feature's line crosses that test, or None. A categorical
        feature's two "ends" are its value and another value of its set."""
        ranged = [i for i in sorted(node.preds) if node.row[i] is not None and (
            not isinstance(node.preds[i], frozenset) or len(node.preds[i]) > 1)]
        if not ranged or strength <= 0:
            return None
        corners = [self._corner(node, dict(zip(ranged, ends, strict=True)))
                   for ends in covering_array(len(ranged), strength)]
        answers = yield corners
        for corner, probe in zip(corners, answers, strict=True):
            if probe.signature == node.probe.signature:
                continue
            moved = [i for i in ranged if corner[i] != node.row[i]]

            def walk(t: int, corner: Row = corner, moved: list[int] = moved) -> Row:
                row = list(node.row)
                for i in moved[:t]:
                    row[i] = corner[i]
                return row

            lo, hi = 0, len(moved)  # walk(lo) answers like the leaf, walk(hi) does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if (yield [walk(mid)])[0].signature == node.probe.signature:
                    lo = mid
                else:
                    hi = mid
            return walk(lo)
        return None

    def _corner(self, node: Node, ends: dict[int, int]) -> Row:
        """The node's row with each feature of ``ends`` at the end of its piece it picks
        (for a set of categories: the row's value, or another one of the set at random)."""
        row = list(node.row)
        for i, end in ends.items():
            pred = node.preds[i]
            if isinstance(pred, frozenset):
                others = sorted(pred - {row[i]})
                if end and others:
                    row[i] = others[int(self._rng.integers(len(others)))]
                continue
            grid = self._grids[i]
            assert grid is not None, "a continuous feature always has a grid"
            row[i] = grid.value(grid.span(*pred)[end])
        return row

    def _expand(self, tq: TreeQuerier, node: Node,
                again: bool = False) -> Asking[Split | None]:
        """The node's split: on a feature set higher up (a node below may test it again,
        seen as the answer changing within the feature's range), else on the new one.
        ``again``: the row was moved inside the node, so its fresh feature is searched too."""
        again_features = [i for i in sorted(node.preds) if i != node.fresh or again]
        given = yield from self._group_tests(node, again_features)
        for i in again_features:
            pieces = yield from self._pieces(node, simple_signer(node.row, i), i,
                                             node.preds[i], probes=0, given=given[i])
            if len(pieces) > 1:
                return i, pieces
        new = self._split_feature(tq, node)
        if new is None:
            return None
        f = tq.space.features[new]
        domain: Predicate = (frozenset(f.values) if isinstance(f, CategoricalFeature)
                             else (-math.inf, math.inf))
        pieces = yield from self._pieces(node, simple_signer(node.row, new), new, domain,
                                         probes=self.probes)
        return new, pieces

    def _changes(self, node: Node, i: int) -> list[Any]:
        """The single changes a search of set feature ``i`` over its piece asks first: the
        other values of its set of categories, or the ends of its interval."""
        pred, value = node.preds[i], node.row[i]
        if isinstance(pred, frozenset):
            f = self._space.features[i]
            return [v for v in f.values  # type: ignore[union-attr]
                    if v in pred and v != value]
        grid = self._grids[i]
        assert grid is not None, "a continuous feature always has a grid"
        first, last = grid.span(*pred)
        return [grid.value(k) for k in dict.fromkeys((first, last))
                if value is None or k != grid.index(value)]

    def _group_tests(self, node: Node,
                     features: list[int]) -> Asking[dict[int, dict[Any, Signed]]]:
        """Ask the single changes of the set features' searches together: the t-th row
        changes every feature to its t-th value at once. A row answering as the node does
        stays on the node's path for each change in it (a change that left the path would
        lead to another node or leaf, answering otherwise), so each of its values is
        signed by the node's own answer without a query of its own; the changes of a row
        that answers otherwise are left to each feature's own search (one by one, up to
        the first feature that splits). Answers per feature, keyed by value. Only a node
        whose identity no other node found has shown is tested this way: a change that
        leaves its path can only meet its answer again where the identity recurs."""
        given: dict[int, dict[Any, Signed]] = {i: {} for i in features}
        changes = {i: self._changes(node, i) for i in features}
        depth = max((len(c) for c in changes.values()), default=0)
        if depth == 0 or node.probe.key in self._shared_keys or sum(
                len(c) > 0 for c in changes.values()) < 2:
            return given
        rows = []
        for t in range(depth):
            row = list(node.row)
            for i, c in changes.items():
                if t < len(c):
                    row[i] = c[t]
            rows.append(row)
        answers = yield rows
        for t, probe in enumerate(answers):
            moved = [(i, c[t]) for i, c in changes.items() if t < len(c)]
            if probe.signature == node.probe.signature or len(moved) == 1:
                for i, v in moved:
                    given[i][v] = (probe, probe.signature)
        return given

    def _pieces(self, node: Node, sign: Signer, i: int, domain: Predicate,
                probes: int, given: dict[Any, Signed] | None = None) -> Asking[list[Piece]]:
        value = node.row[i]
        known_sign = [] if value is None else (yield from sign([value]))
        given = given or {}
        if isinstance(domain, frozenset):
            f = self._space.features[i]
            values = [v for v in f.values if v in domain]  # type: ignore[union-attr]
            known = dict(zip([value], known_sign, strict=True)) if known_sign else {}
            return (yield from category_pieces(sign, values, known, self._rng, given))
        grid = self._grids[i]
        assert grid is not None, "a continuous feature always has a grid"
        known_k = {grid.index(value): known_sign[0]} if known_sign else {}
        given_k = {grid.index(v): signed for v, signed in given.items()}
        return (yield from interval_pieces(sign, grid, domain, known_k, probes, self._rng,
                                           self._thresholds.setdefault(i, set()), given_k))


def _merge_fragments(nodes: list[Node]) -> list[Node]:
    """Join the pieces a new feature's search cut along another branch than their own.

    A node splits on a new feature f at the cuts its row's search met, on the row's branch
    below it; where that branch tests a feature set above again (i), the cuts of f past
    that test hold on the row's side of it only. The nodes below then find the test on i
    (a search of i over its piece), and their children on the far side of it, sibling
    pieces of f alike in every other predicate, are one region of the tree cut by f where
    the tree does not cut it: they are joined into one node (runs of adjacent pieces of
    f), whose own search of f (a feature set above it now) finds the cuts that hold there,
    so the region is explored once, not once per piece of f. f is the feature of the
    nearest split on a new feature above the node that found the test on i, and never i
    itself (a node does not search again the feature it was split on)."""
    out: list[Node] = []
    groups: dict[tuple[Any, ...], list[Node]] = {}
    for n in nodes:
        p = n.parent
        a = p
        while a is not None and not a.fresh_new:
            a = a.parent
        if (p is None or a is None or a.parent is None or n.fresh in (p.fresh, a.fresh)
                or n.fresh not in p.preds or holds(n.preds[n.fresh], p.row[n.fresh])):
            out.append(n)
            continue
        f = a.fresh
        key = (id(a.parent), f, tuple(sorted((k, v) for k, v in n.preds.items() if k != f)))
        groups.setdefault(key, []).append(n)
    for (_, f, _), members in groups.items():
        if isinstance(members[0].preds[f], frozenset):
            runs = [members]
        else:
            members.sort(key=lambda n: n.preds[f][0])  # type: ignore[index]
            runs = [[members[0]]]
            for n in members[1:]:
                if n.preds[f][0] == runs[-1][-1].preds[f][1]:  # type: ignore[index]
                    runs[-1].append(n)
                else:
                    runs.append([n])
        for run in runs:
            kept = run[0]
            if len(run) > 1:
                preds = [n.preds[f] for n in run]
                kept.preds[f] = (frozenset().union(*preds)  # type: ignore[arg-type]
                                 if isinstance(preds[0], frozenset)
                                 else (preds[0][0], preds[-1][1]))  # type: ignore[index]
            out.append(kept)
    return out
