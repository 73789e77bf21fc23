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
from dataclasses import dataclass
from typing import Any, ClassVar

from sklearn.tree import BaseDecisionTree

from stealml.attacks._tree_search import (
    Piece,
    Signer,
    category_pieces,
    deep_signer,
    interval_pieces,
    simple_signer,
)
from stealml.attacks._trees import (
    Exhausted,
    Leaf,
    Predicate,
    Probe,
    Row,
    TreeQuerier,
    build_tree,
    check_leaf_count,
    grids,
    with_value,
)
from stealml.attacks.base import Attack, Querier
from stealml.exceptions import OracleCapabilityError, UnsupportedModelError
from stealml.models.tree_service import TreeService
from stealml.oracles.base import Oracle
from stealml.random import RandomState, as_generator
from stealml.space import CategoricalFeature

__all__ = ["TopDown"]



@dataclass
class Node:
    """A partial query, the predicates of its region, its answer, the feature just split
    on (its piece needs no second look) and another value of that piece to verify with."""

    row: Row
    preds: dict[int, Predicate]
    probe: Probe
    fresh: int = -1
    alt: Any = None


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

    def __init__(self, epsilon: float = 1e-3, probes: int = 3, max_leaves: int = 10_000,
                 random_state: RandomState = None, batch_size: int | None = None) -> None:
        self.epsilon = epsilon
        self.probes = probes
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
        leaves: list[Leaf] = []
        stack: list[Node] = []
        complete = True
        try:
            root: Row = [None] * oracle.space.n_features
            stack.append(Node(root, {}, tq.ask([root])[0]))
            while stack:
                node = stack[-1]
                children = self._expand(tq, node)
                if children is not None and node.alt is not None:
                    children = self._verify(tq, node, *children)
                stack.pop()
                if children is None:
                    leaves.append(Leaf(node.probe, dict(node.preds), complete=True))
                    check_leaf_count(len(leaves), self.max_leaves)
                    continue
                i, pieces = children
                stack += [Node(with_value(node.row, i, rep), {**node.preds, i: pred}, child, i,
                               alt) for pred, rep, child, alt in reversed(pieces)]
        except Exhausted:
            complete = False
            leaves += [Leaf(n.probe, dict(n.preds), complete=False) for n in stack]
        model = build_tree(oracle, leaves)
        return model, complete, {"leaves": len(leaves),
                                 "unique_ids": len({leaf.probe.key for leaf in leaves})}

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

    def _expand(self, tq: TreeQuerier, node: Node) -> tuple[int, list[Piece]] | None:
        """The node's split: on a feature set higher up (a node below may test it again,
        seen as the answer changing within the feature's range), else on the new one."""
        for i in sorted(node.preds):
            if i != node.fresh:
                pieces = self._pieces(tq, node, simple_signer(tq, node.row, i), i,
                                      node.preds[i], probes=0)
                if len(pieces) > 1:
                    return i, pieces
        new = self._split_feature(tq, node)
        if new is None:
            return None
        f = tq.space.features[new]
        domain: Predicate = (frozenset(f.values) if isinstance(f, CategoricalFeature)
                             else (-math.inf, math.inf))
        return new, self._pieces(tq, node, simple_signer(tq, node.row, new), new, domain,
                                 probes=self.probes)

    def _verify(self, tq: TreeQuerier, node: Node, s: int,
                pieces: list[Piece]) -> tuple[int, list[Piece]]:
        """Ask the children again with the fresh feature at its other value: answers that
        differ show two nodes merged into one piece (they answered alike); the piece is
        then cut again, each value signed by its answers one split further down."""
        i, reps = node.fresh, [rep for _, rep, _, _ in pieces]
        other = with_value(node.row, i, node.alt)
        again = tq.ask([with_value(other, s, rep) for rep in reps])
        differ = sum(p.signature != q.signature for (_, _, p, _), q in zip(pieces, again,
                                                                             strict=True))
        if differ < min(2, len(pieces)):
            return s, pieces  # one child apart: a test on i below it, found there
        sign = deep_signer(tq, node.row, i, s, reps)
        return i, self._pieces(tq, node, sign, i, node.preds[i], probes=0)

    def _pieces(self, tq: TreeQuerier, node: Node, sign: Signer, i: int, domain: Predicate,
                probes: int) -> list[Piece]:
        value = node.row[i]
        if isinstance(domain, frozenset):
            f = tq.space.features[i]
            values = [v for v in f.values if v in domain]  # type: ignore[union-attr]
            known = {} if value is None else dict(zip([value], sign([value]), strict=True))
            return category_pieces(sign, values, known, self._rng)
        grid = self._grids[i]
        assert grid is not None, "a continuous feature always has a grid"
        known = {} if value is None else {grid.index(value): sign([value])[0]}
        return interval_pieces(sign, grid, domain, known, probes, self._rng)
