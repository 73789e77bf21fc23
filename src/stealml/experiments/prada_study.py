"""Can PRADA see each attack? Queries until detection against honest traffic, per seed.

For every attack of the project (the defence matrix's cases and the neural attacks on a
ReLU network) and several seeds, the attack runs undefended while its query stream is
recorded, and PRADA's Shapiro-Wilk statistic W_n (after n distances) is computed on it.
Two detectors are compared, both calibrated on the target owner's own rows (half of the
training split), never on the honest traffic that judges them:

``paper``     Juuti et al.'s test: W of all distances from the 100th on, one delta
              (the lowest W honest reference traffic reaches, less 0.02);
``per-n``     :func:`~stealml.defences.calibrate_prada`: the test starts after
              ``MIN_SAMPLES`` distances, against a threshold per n (a simultaneous lower
              band of honest reference W_n over 1,050 orders, widened by 1.5), with W
              of the last 15 and 30 distances, their share of distinct values, and
              that share among all distances (too low or too high) tested the same
              way; the client's mix of classes against the owner's, and the mean of
              its distances against honest clients' (an upper band).

A flagged attack is run again with the detector blocking it (from its next request of
10 queries), which gives the query and the fidelity at the flag. An attack the detector
misses is judged by its lowest W against the lowest W of honest traffic of the same
volume (the target's test rows, then the training rows its owner never used, in 10
random orders): if on every seed some honest stream goes at least as deep below the
calibrated bands as the attack does before it reaches 99%, any widening of the bands
that flags it flags honest users too; an attack that ends before ``MIN_SAMPLES``
distances is never tested. Honest false positives are counted on those honest streams.
The out-of-distribution monitor (:class:`~stealml.defences.OutOfDistribution`) runs beside.

References: Juuti, Szyller, Marchal, Asokan, "PRADA: Protecting against DNN Model
Stealing Attacks", IEEE EuroS&P 2019 (section IV, Algorithm 1; delta from benign traffic).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from stealml.defences import Monitor, OutOfDistribution, Prada
from stealml.defences.likelihood import fit_row_model, lattice, off_grid
from stealml.defences.prada import (
    LABEL_DRIFT,
    REPEAT_FLOOR,
    REPEATS,
    WIDEN,
    WINDOWS,
    Band,
    _distance_queries,
    _shapiro_w,
    distances,
    distinct_curve,
    honest_bands,
    label_curve,
    label_shares,
    likelihood_curve,
    prada_from_bands,
    repeat_curve,
    scale_curve,
    spread_curve,
    w_curve,
    window_curve,
)
from stealml.exceptions import StealmlError
from stealml.experiments.defence_targets import (
    CASES,
    NEURAL_CASES,
    PRADA_MIN_SAMPLES,
    Case,
    Defence,
    Target,
    build_target,
)
from stealml.experiments.tables import load_average, write_results
from stealml.ledger import Ledger
from stealml.metrics import fidelity
from stealml.oracles.local import LocalOracle

__all__ = ["MIN_SAMPLES", "STUDY_CASES", "prada_study", "study_seed"]

MIN_SAMPLES = 10  # the per-n detector starts testing after this many distances
BATCH = 10
HONEST_ORDERS = 100
EVERY_UNTIL = 3000  # W after every distance up to here, then on a 1% grid (long attacks)
STUDY_CASES: list[Case] = [*CASES, *NEURAL_CASES]


class _Recorder:
    """A detector that flags nothing and keeps the client's queries and labels."""

    name = "record"

    def new_state(self) -> _Record:
        return _Record()


class _Record:
    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.queries = 0
        self.flagged_at: int | None = None
        self.statistic: float | None = None

    def update(self, X: np.ndarray, labels: Any) -> int | None:
        self.rows.append(np.asarray(X, dtype=float))
        self.labels.append(np.asarray(labels).astype(str))
        self.queries += len(X)
        return None

    def summary(self) -> dict[str, Any]:
        return {"queries": self.queries}


class _FlagAt:
    """A detector that flags every client after ``at`` queries: blocked there, what
    fidelity has an attack reached?"""

    name = "flag-at"

    def __init__(self, at: int) -> None:
        self.at = at

    def new_state(self) -> _FlagAtState:
        return _FlagAtState(self.at)


class _FlagAtState:
    def __init__(self, at: int) -> None:
        self.at = at
        self.queries = 0
        self.flagged_at: int | None = None
        self.statistic: float | None = None

    def update(self, X: np.ndarray, labels: Any) -> int | None:
        if self.flagged_at is not None:
            return None
        if self.queries + len(X) >= self.at:
            row = self.at - self.queries - 1
            self.queries = self.flagged_at = self.at
            return row
        self.queries += len(X)
        return None

    def summary(self) -> dict[str, Any]:
        return {"queries": self.queries, "flagged_at": self.flagged_at}


@dataclass
class _Run:
    queries: int
    fidelity: float | None  # agreement on the test rows (1 - R_test)
    flagged_at: int | None
    status: str
    fidelity_unif: float | None = None  # agreement on 1,000 uniform points (1 - R_unif)


def _run(target: Target, case: Case, seed: int, detectors: list[Any],
         response: str) -> tuple[_Run, Monitor]:
    attack = case.make(seed, BATCH)
    mon = Monitor(detectors, response=response)  # type: ignore[arg-type]
    oracle = LocalOracle(target.served, target.space, Defence("none").api_policy(target.tree),
                         ledger=Ledger(budget=case.budget_for(target, attack)), monitor=mon,
                         client="attacker")
    try:
        result = attack.run(oracle)
    except (StealmlError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
        # blocked before it had anything to build (a flag that stopped it cold) or failed
        flag = mon.flag("attacker")
        return _Run(oracle.ledger.queries, None, None if flag is None else int(flag["at_query"]),
                    f"failed: {type(exc).__name__}"), mon
    fid = fidelity(target.model, result.model, target.space, target.X_test, 1000, seed)
    flag = mon.flag("attacker")
    unif = fid.get("r_unif")
    return _Run(result.queries, 1 - float(fid["r_test"] or 0.0),
                None if flag is None else int(flag["at_query"]), "ok",
                None if unif is None else 1 - float(unif)), mon


def _curve(D: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, W_n) for n from m on: every n up to EVERY_UNTIL, then a 1% grid."""
    if len(D) < m:
        return np.array([], dtype=int), np.array([])
    head = w_curve(D, m, stop=EVERY_UNTIL)
    ns = list(range(m, m + len(head)))
    n = ns[-1]
    tail = []
    while n < len(D):
        n = min(len(D), max(n + 1, int(n * 1.01)))
        ns.append(n)
        tail.append(_shapiro_w(D[:n]))
    return np.array(ns), np.concatenate([head, tail])


def _first_below(ns: np.ndarray, ws: np.ndarray, prada: Prada) -> int | None:
    hit = np.flatnonzero(ws < np.array([prada.threshold(int(n)) for n in ns]))
    return int(ns[hit[0]]) if len(hit) else None


def _windows(D: np.ndarray, prada: Prada, labels: np.ndarray,
             X: np.ndarray) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """Each test of ``prada`` but W of all distances, by name (``"W<k>"``: W of the last
    k distances, ``"R<k>"``: their share of distinct values, ``"R"``: the share among
    all distances, ``"U"``: minus it, ``"L"``: minus the label test's statistic, from the
    queries' predicted ``labels``, ``"S"``: minus the mean of the distances, ``"P"``: minus
    the mean distance between every pair of the queries ``X``, ``"N"``: minus their mean
    negative log-likelihood under the owner's rows, ``"G"``: minus the count of queries
    off the owner's lattice, from the first distance): (its first
    n, its statistic at every n from there, the thresholds there; flagged where the
    statistic is below)."""
    out = {}
    for i, k in enumerate(prada.windows):
        w = window_curve(D, k)
        out[f"W{k}"] = k, w, np.array([prada.window_threshold(i, n)
                                       for n in range(k, k + len(w))])
    for i, k in enumerate(prada.repeats):
        r = repeat_curve(D, k)
        out[f"R{k}"] = k, r, np.array([prada.repeat_threshold(i, n)
                                       for n in range(k, k + len(r))])
    if prada.distinct_low or prada.distinct_high:
        m = prada.min_samples
        share = distinct_curve(D, m)
        bounds = np.array([prada.distinct_bounds(n) for n in range(m, m + len(share))])
        if len(share):
            out["R"] = m, share, bounds[:, 0]
            out["U"] = m, -share, -bounds[:, 1]
    if prada.label_high:
        m = prada.min_samples
        tv = label_curve(labels, prada.label_shares, m)
        if len(tv):
            out["L"] = m, -tv, -np.array([prada.label_bound(n) for n in range(m, m + len(tv))])
    if prada.scale_high:
        m = prada.min_samples
        mean = scale_curve(D, m)
        if len(mean):
            out["S"] = m, -mean, -np.array([prada.scale_bound(n)
                                           for n in range(m, m + len(mean))])
    if prada.spread_high:
        m = prada.min_samples
        pairs = spread_curve(X, labels, m, stop=m + len(prada.spread_high) - 1)
        if len(pairs):
            out["P"] = m, -pairs, -np.array([prada.spread_bound(n)
                                            for n in range(m, m + len(pairs))])
    if prada.likelihood_high and prada.row_model is not None:
        m = prada.min_samples
        mean = likelihood_curve(prada.row_model.scores(X, labels), labels, m,
                                stop=m + len(prada.likelihood_high) - 1)
        if len(mean):
            out["N"] = m, -mean, -np.array([prada.likelihood_bound(n)
                                           for n in range(m, m + len(mean))])
    if prada.grid:
        # minus the count of queries off the lattice after each distance (from the 1st):
        # flagged once it reaches grid_flag
        at = _distance_queries(labels)
        if len(at):
            count = np.cumsum(off_grid(X, prada.grid))[at]
            out["G"] = 1, -count.astype(float), np.full(len(at), 0.5 - prada.grid_flag)
    return out


def _tests(D: np.ndarray, prada: Prada, labels: np.ndarray,
           X: np.ndarray) -> dict[str, tuple[int, np.ndarray]]:
    """Each of ``prada``'s tests along ``D`` (its queries ``X``, their predicted
    ``labels``): name ->
    (first n, its statistic at every n from there, up to EVERY_UNTIL distances)."""
    out = {"W": (prada.min_samples, w_curve(D, prada.min_samples, stop=EVERY_UNTIL))}
    for k in prada.windows:
        out[f"W{k}"] = (k, window_curve(D, k, stop=EVERY_UNTIL))
    for k in prada.repeats:
        out[f"R{k}"] = (k, repeat_curve(D, k, stop=EVERY_UNTIL))
    if prada.distinct_low or prada.distinct_high:
        share = distinct_curve(D, prada.min_samples, stop=EVERY_UNTIL)
        out["R"], out["U"] = (prada.min_samples, share), (prada.min_samples, -share)
    if prada.label_high:
        out["L"] = (prada.min_samples, -label_curve(labels, prada.label_shares,
                                                     prada.min_samples, stop=EVERY_UNTIL))
    if prada.scale_high:
        out["S"] = (prada.min_samples, -scale_curve(D, prada.min_samples, stop=EVERY_UNTIL))
    if prada.spread_high:
        m = prada.min_samples
        out["P"] = (m, -spread_curve(X, labels, m, stop=m + len(prada.spread_high) - 1))
    if prada.likelihood_high and prada.row_model is not None:
        m = prada.min_samples
        out["N"] = (m, -likelihood_curve(prada.row_model.scores(X, labels), labels, m,
                                         stop=m + len(prada.likelihood_high) - 1))
    return out


def _reaches_99(target: Target, case: Case, seed: int, queries: int) -> int:
    """The first multiple of BATCH queries after which the attack, blocked there, has
    99% fidelity (bisection: fidelity taken as growing with the queries it gets)."""
    lo, hi = 0, -(-queries // BATCH)  # in batches: lo below 99%, hi at or above
    while hi - lo > 1:
        mid = (lo + hi) // 2
        run, _ = _run(target, case, seed, [_FlagAt(mid * BATCH)], "block")
        if (run.fidelity or 0.0) >= 0.99:
            hi = mid
        else:
            lo = mid
    return min(hi * BATCH, queries)


def _first_flag(curve: tuple[np.ndarray, np.ndarray],
                windows: dict[str, tuple[int, np.ndarray, np.ndarray]],
                prada: Prada) -> int | None:
    """The number of distances after which ``prada`` flags a stream (any test), from its
    :func:`_curve` (W of all distances every n up to EVERY_UNTIL, then on a 1% grid) and
    its :func:`_windows`."""
    hits = [_first_below(*curve, prada)]
    for start, w, t in windows.values():
        below = np.flatnonzero(w < t)
        hits.append(start + int(below[0]) if len(below) else None)
    found = [h for h in hits if h is not None]
    return min(found) if found else None


def _honest(target: Target, volume: int, detectors: dict[str, Prada], bands: dict[str, Band],
            seed: int, orders: int, ood: OutOfDistribution) -> dict[str, Any]:
    """Honest streams of ``volume`` queries (test rows first, in random orders): the
    lowest W per test, each stream's depth below the per-n bands (:func:`_depth`) and
    each detector's false positives (also the out-of-distribution monitor's, ``"ood"``,
    and those of the per-n detector and it together, ``"monitor"``)."""
    rows = target.honest
    labels = np.asarray(target.model.predict(rows)).astype(str)
    rng = np.random.default_rng([seed, 11])
    out: dict[str, Any] = {"honest_queries": min(volume, len(rows)), "orders": orders}
    lows: dict[int, float] = {}
    window_lows: dict[str, float] = {}
    flags = dict.fromkeys([*detectors, "ood", "monitor"], 0)
    far = ood.far(rows)
    depths = []
    for _ in range(orders):
        order = rng.permutation(len(rows))[:volume]
        D = distances(rows[order], labels[order])
        depths.append(_depth(D, labels[order], rows[order], detectors["per-n"], bands,
                             len(D)))
        for name, prada in detectors.items():
            curve = _curve(D, prada.min_samples)
            windows = _windows(D, prada, labels[order], rows[order])
            ws = curve[1]
            if len(ws):
                lows[prada.min_samples] = min(lows.get(prada.min_samples, 1.0), ws.min())
            for test, (_, w, _) in windows.items():
                if len(w):  # (for U, the lowest of minus the share)
                    window_lows[test] = min(window_lows.get(test, np.inf), float(w.min()))
            flagged = _first_flag(curve, windows, prada) is not None
            flags[name] += flagged
            if name == "per-n":
                out_flag = ood.first_flag(far[order]) is not None
                flags["ood"] += out_flag
                flags["monitor"] += flagged or out_flag
    out["min_w"] = {m: float(w) for m, w in lows.items()}
    out["window_min_w"] = window_lows
    out["depths"] = np.array(depths)
    out["flags"] = flags
    return out


def _judge(row: dict[str, Any], D: np.ndarray, labels: np.ndarray, X: np.ndarray,
           prada: Prada,
           bands: dict[str, Band], honest: np.ndarray, stop: int | None, caught: bool,
           reaches_99: Callable[[], int]) -> None:
    """The attack's depth below the per-n bands up to its flag (``stop`` distances),
    against the honest streams' depths (``honest``); when it is deeper than all of them,
    not caught before 99% and reaches 99%, its depth before it reaches 99%
    (``reaches_99()``: the query, measured only then)."""
    stop = len(D) if stop is None else stop
    row["depth"] = _depth(D, labels, X, prada, bands, stop)
    row["99%_at_query"] = None
    if row["depth"] > honest.max() and not caught and (row["fidelity"] or 0.0) >= 0.99:
        q99 = row["99%_at_query"] = reaches_99()
        seen: set[str] = set()
        n99 = 0  # distances PRADA has from the first q99 queries
        for label in labels[:q99]:
            n99 += label in seen
            seen.add(label)
        row["depth"] = _depth(D, labels, X, prada, bands, min(stop, n99))
    row["honest_max_depth"] = float(honest.max())
    row["honest_at_or_deeper"] = int((honest >= row["depth"]).sum())


def _detectors(target: Target, seed: int,
               orders: int) -> tuple[dict[str, Prada], dict[str, Band]]:
    """The two detectors, and the per-n one's bands by test (as calibrate_prada)."""
    labels = target.model.predict(target.reference)
    whole, bands = honest_bands(target.reference, labels, MIN_SAMPLES, WINDOWS, orders,
                                short_orders=20 * orders, random_state=seed, repeats=REPEATS,
                                distinct=True, label_test=True, scale=True,
                                spread_test=True, likelihood_test=True)
    return ({"paper": Prada(delta=target.calibrated_delta(), min_samples=PRADA_MIN_SAMPLES),
             "per-n": prada_from_bands(whole, bands, MIN_SAMPLES,
                                       shares=label_shares(labels),
                                       rows=fit_row_model(target.reference, labels),
                                       grid=lattice(target.reference))},
            {"W": whole, **bands})


def _depth(D: np.ndarray, labels: np.ndarray, X: np.ndarray, prada: Prada,
           bands: dict[str, Band], stop: int) -> float:
    """How deep the stream ``D`` (its queries ``X``, their predicted ``labels``) goes
    below the per-n
    detector's bands before ``stop`` distances: the largest (centre_n - W_n) / (c
    spread_n) of any test at any calibrated n. The detector (band centre - widen c
    spread) flags the stream iff this exceeds ``widen``, so a stream at least as deep as
    an attack is flagged by every widening that flags the attack."""
    deepest = -np.inf
    for test, (start, w) in _tests(D, prada, labels, X).items():
        if test not in bands:
            continue
        centre, spread, c = bands[test]
        m = max(0, min(len(w), len(centre), stop - start))
        if m:
            d = (centre[:m] - w[:m]) / (max(c, 1e-12) * spread[:m])
            deepest = max(deepest, float(d.max()))
    return deepest


def study_seed(seed: int, cases: list[Case] | None = None, log: Any = None,
               orders: int = 50, honest_orders: int = HONEST_ORDERS) -> list[dict[str, Any]]:
    """Every case at one seed: the attack's W against each detector and honest traffic
    (``orders`` calibration orders, ``honest_orders`` honest streams per attack)."""
    cases = STUDY_CASES if cases is None else cases
    targets: dict[str, tuple[Target, dict[str, Prada], dict[str, Band]]] = {}
    rows = []
    for case in cases:
        start = time.perf_counter()
        if case.target not in targets:
            t = build_target(case.target, seed)
            targets[case.target] = (t, *_detectors(t, seed, orders))
        target, detectors, bands = targets[case.target]
        ood = OutOfDistribution(target.reference, random_state=seed)
        free, mon = _run(target, case, seed, [_Recorder(), ood], "log")
        row: dict[str, Any] = {"attack": case.name, "seed": seed, "queries": free.queries,
                               "fidelity": free.fidelity, "fidelity_unif": free.fidelity_unif,
                               "status": free.status}
        if free.status != "ok":
            rows.append(row)
            continue
        record = mon._client("attacker")[0]
        assert isinstance(record, _Record)
        X, labels = np.vstack(record.rows), np.concatenate(record.labels)
        D = distances(X, labels)
        row["distances"] = len(D)
        honest = _honest(target, free.queries, detectors, bands, seed, honest_orders, ood)
        row["honest_queries"] = honest["honest_queries"]
        row["honest_orders"] = honest["orders"]
        for name, prada in detectors.items():
            ns, ws = _curve(D, prada.min_samples)
            windows = _windows(D, prada, labels, X)
            row[f"{name}_min_w"] = float(ws.min()) if len(ws) else None
            row[f"{name}_min_w_at"] = int(ns[np.argmin(ws)]) if len(ws) else None
            row[f"{name}_honest_min_w"] = honest["min_w"].get(prada.min_samples)
            row[f"{name}_honest_flags"] = honest["flags"][name]
            for test, (first, w, _) in windows.items():
                key = test.lower() if test.startswith(("R", "U", "L", "S", "P", "N", "G")) \
                    else f"w{test[1:]}"
                stat = "min_w" if test.startswith("W") else "max_share" if test == "U" \
                    else "max_tv" if test == "L" else "max_mean" if test in ("S", "P", "N") \
                    else "max_count" if test == "G" else "min_share"
                # minus the share, minus TV, minus the mean, minus the count
                sign = -1.0 if test in ("U", "L", "S", "P", "N", "G") else 1.0
                honest_low = honest["window_min_w"].get(test)
                row[f"{key}_{stat}"] = sign * float(w.min()) if len(w) else None
                row[f"{key}_{stat}_at"] = first + int(np.argmin(w)) if len(w) else None
                row[f"{key}_honest_{stat}"] = None if honest_low is None else sign * honest_low
            row[f"{name}_flag"] = row[f"{name}_fidelity_at_flag"] = None
            row[f"{name}_fidelity_unif_at_flag"] = None
            flag_n = _first_flag((ns, ws), windows, prada)
            if flag_n is not None:
                blocked, watch = _run(target, case, seed, [prada], "block")
                row[f"{name}_flag"] = blocked.flagged_at
                row[f"{name}_fidelity_at_flag"] = blocked.fidelity
                row[f"{name}_fidelity_unif_at_flag"] = blocked.fidelity_unif
                row[f"{name}_flagged_by"] = getattr(watch._client("attacker")[0], "flagged_by",
                                                    None)
            if name == "per-n":
                caught = flag_n is not None and (blocked.fidelity or 0.0) < 0.99
                _judge(row, D, labels, X, prada, bands, honest["depths"],
                       None if flag_n is None else flag_n + 1, caught,
                       partial(_reaches_99, target, case, seed, free.queries))
        row["ood_flag"] = row["ood_fidelity_at_flag"] = row["ood_fidelity_unif_at_flag"] = None
        ood_state = mon._client("attacker")[1]
        if ood_state.flagged_at is not None:
            blocked, _ = _run(target, case, seed, [ood], "block")
            row["ood_flag"], row["ood_fidelity_at_flag"] = blocked.flagged_at, blocked.fidelity
            row["ood_fidelity_unif_at_flag"] = blocked.fidelity_unif
        row["ood_honest_flags"] = honest["flags"]["ood"]
        # the service's monitor with both detectors: the first flag of either
        earliest = min(((row[f"{d}_flag"], row[f"{d}_fidelity_at_flag"],
                         row[f"{d}_fidelity_unif_at_flag"])
                        for d in ("per-n", "ood") if row[f"{d}_flag"] is not None),
                       key=lambda flag: flag[0], default=(None, None, None))
        (row["monitor_flag"], row["monitor_fidelity_at_flag"],
         row["monitor_fidelity_unif_at_flag"]) = earliest
        row["monitor_honest_flags"] = honest["flags"]["monitor"]
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        if log is not None:
            log(row)
        print(f"seed {seed}: {case.name}: {row['seconds']:.0f} s", file=sys.stderr,
              flush=True)
    return rows


def _honest_flags(ok: list[dict[str, Any]], name: str) -> str:
    """The honest streams the ``name`` detector flags, of all (runs before it: '-')."""
    if any(f"{name}_honest_flags" not in r for r in ok):
        return "-"
    return f"{sum(r[f'{name}_honest_flags'] for r in ok)}/{sum(r['honest_orders'] for r in ok)}"


def _before_99(ok: list[dict[str, Any]], name: str) -> str:
    """On how many seeds the ``name`` detector flags the attack before it has 99%
    fidelity (the rerun blocked at the flag has less; runs before it: '-')."""
    if any(f"{name}_flag" not in r for r in ok):
        return "-"
    return f"{len(_caught(ok, name))}/{len(ok)}"


def _caught(ok: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The runs the ``name`` detector flags before 99% fidelity (the rerun blocked at the
    flag has less on the test rows, or nothing to give)."""
    return [r for r in ok if r[f"{name}_flag"] is not None
            and (r[f"{name}_fidelity_at_flag"] or 0.0) < 0.99]


def _caught_both(ok: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The runs the ``name`` detector flags before the attack has 99% on the test rows
    *and* 99% on uniform points (the paper's two measures, R_test and R_unif): the rerun
    blocked at the flag has less on either, or nothing to give."""
    return [r for r in ok if r[f"{name}_flag"] is not None
            and min(r[f"{name}_fidelity_at_flag"] or 0.0,
                    r.get(f"{name}_fidelity_unif_at_flag") or 0.0) < 0.99]


def _before_99_both(ok: list[dict[str, Any]], name: str) -> str:
    """As :func:`_before_99`, by both measures (:func:`_caught_both`)."""
    if any(f"{name}_fidelity_unif_at_flag" not in r for r in ok):
        return "-"
    return f"{len(_caught_both(ok, name))}/{len(ok)}"


def _verdict(runs: list[dict[str, Any]], name: str) -> str:
    """How the ``name`` detector fares on one attack over the seeds."""
    ok = [r for r in runs if r["status"] == "ok"]
    if not ok:
        return "did not run"
    caught = _caught(ok, name)
    late = [r for r in ok if r[f"{name}_flag"] is not None and r not in caught]
    if len(caught) == len(ok):
        return f"flagged before 99% on {len(ok)}/{len(ok)} seeds"
    m = MIN_SAMPLES if name == "per-n" else PRADA_MIN_SAMPLES
    short = [r for r in ok if r["distances"] < m]
    if len(short) == len(ok):
        return f"unseeable: ends before {m} distances (at most {max(r['distances'] for r in ok)})"
    after = f"; flagged only at >= 99% on {len(late)}" if late else ""
    reached = [r for r in ok if (r["fidelity"] or 0.0) >= 0.99]
    if name == "per-n":
        # an honest stream at least as deep below the bands as the attack (before it
        # reaches 99%) is flagged by every widening of the bands that flags the attack
        rest = [r for r in ok if r not in caught and r not in short]
        hidden = [r for r in rest if r.get("honest_at_or_deeper", 0) > 0]
        before = f"flagged before 99% on {len(caught)}/{len(ok)} seeds; " if caught else ""
        if len(hidden) == len(rest):
            return (f"{before}unseeable{' on the others' if caught else ''}: on every seed "
                    "an honest stream of its volume goes at least as deep below the "
                    "calibrated bands as the attack does before 99%"
                    + (f" ({len(short)} too short)" if short else "") + after)
        seen = [f"seed {r['seed']}: {r['depth']:.2f} vs {r['honest_max_depth']:.2f}"
                for r in rest if r not in hidden]
        return (f"{before}not flagged before 99% on {len(seen)} seed(s) where it is deeper "
                f"than every honest stream ({'; '.join(seen)}; a widening below the depth "
                "would flag it)"
                f"{after}; the attack reaches 99% on {len(reached)}/{len(ok)}")
    above = [r for r in ok if r not in short and r[f"{name}_min_w"] is not None
             and r[f"{name}_honest_min_w"] is not None
             and r[f"{name}_min_w"] >= r[f"{name}_honest_min_w"]]
    if len(above) + len(short) == len(ok) and not caught:
        return ("unseeable: its lowest W >= honest traffic's lowest W on every seed"
                + (f" ({len(short)} too short)" if short else "") + after)
    return (f"flagged before 99% on {len(caught)}/{len(ok)} seeds{after}; lowest W above "
            f"honest's on {len(above)}, too short on {len(short)}; the attack reaches 99% "
            f"on {len(reached)}/{len(ok)}")


def _fmt_range(values: list[Any], digits: int = 3) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    lo, hi = min(vals), max(vals)
    if isinstance(lo, int) and isinstance(hi, int):
        return str(lo) if lo == hi else f"{lo}-{hi}"
    return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f}-{hi:.{digits}f}"


def _versus(ok: list[dict[str, Any]], key: str, digits: int = 2) -> str:
    """The attack's range of ``key`` over the runs ``ok`` / the honest streams' (the
    run field with ``_honest`` after the test's letter: ``w15_min_w`` ->
    ``w15_honest_min_w``)."""
    test, stat = key.split("_", 1)
    return (_fmt_range([r.get(key) for r in ok], digits) + " / "
            + _fmt_range([r.get(f"{test}_honest_{stat}") for r in ok], digits))


def summary_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per attack over the seeds (ranges over seeds)."""
    out = []
    for attack in dict.fromkeys(r["attack"] for r in runs):
        rs = [r for r in runs if r["attack"] == attack]
        ok = [r for r in rs if r["status"] == "ok"]
        n = len(ok)

        def flags(name: str, rs: list[dict[str, Any]] = ok) -> str:
            return f"{sum(r[f'{name}_flag'] is not None for r in rs)}/{len(rs)}"

        out.append({
            "attack": attack, "seeds": f"{n}/{len(rs)}",
            "queries": _fmt_range([r["queries"] for r in ok], 0),
            "fidelity": _fmt_range([r["fidelity"] for r in ok], 4),
            "per-n flags": flags("per-n"),
            "per-n flag at query": _fmt_range([r["per-n_flag"] for r in ok]),
            "fidelity at per-n flag": _fmt_range([r["per-n_fidelity_at_flag"] for r in ok], 4),
            "uniform agreement at per-n flag": _fmt_range(
                [r.get("per-n_fidelity_unif_at_flag") for r in ok], 4),
            "per-n before 99% on test rows / on test and uniform": _before_99(ok, "per-n")
            + " / " + _before_99_both(ok, "per-n"),
            "per-n flagged by": ", ".join(sorted({r.get("per-n_flagged_by") or "-"
                                                  for r in ok if r["per-n_flag"]})) or "-",
            "attack min W (n>=10)": _fmt_range([r["per-n_min_w"] for r in ok]),
            "honest min W (n>=10)": _fmt_range([r["per-n_honest_min_w"] for r in ok]),
            **{f"attack / honest min W{k}": _versus(ok, f"w{k}_min_w", 3) for k in WINDOWS},
            **{f"attack / honest min distinct share R{k}": _versus(ok, f"r{k}_min_share")
               for k in REPEATS},
            "attack / honest distinct share of all distances, lowest (R)":
                _versus(ok, "r_min_share"),
            "attack / honest largest class-mix distance (L)": _versus(ok, "l_max_tv"),
            "attack / honest largest mean distance (S)": _versus(ok, "s_max_mean"),
            "attack / honest largest mean distance between queries (P)":
                _versus(ok, "p_max_mean"),
            "attack / honest largest mean negative log-likelihood (N)":
                _versus(ok, "n_max_mean"),
            "attack / honest most queries off the owner's lattice (G)":
                _versus(ok, "g_max_count", 0),
            "honest per-n flags": f"{sum(r['per-n_honest_flags'] for r in ok)}/"
                                  f"{sum(r['honest_orders'] for r in ok)}",
            "per-n verdict": _verdict(rs, "per-n"),
            "paper flags": flags("paper"),
            "paper flag at query": _fmt_range([r["paper_flag"] for r in ok]),
            "fidelity at paper flag": _fmt_range([r["paper_fidelity_at_flag"] for r in ok], 4),
            "honest paper flags": f"{sum(r['paper_honest_flags'] for r in ok)}/"
                                  f"{sum(r['honest_orders'] for r in ok)}",
            "OOD flags": flags("ood"),
            "OOD flag at query": _fmt_range([r["ood_flag"] for r in ok]),
            "fidelity at OOD flag": _fmt_range([r["ood_fidelity_at_flag"] for r in ok], 4),
            "honest OOD flags": _honest_flags(ok, "ood"),
            "PRADA + OOD: flagged before 99%": _before_99(ok, "monitor"),
            "PRADA + OOD: before 99% on test and uniform": _before_99_both(ok, "monitor"),
            "PRADA + OOD flag at query": _fmt_range([r.get("monitor_flag") for r in ok]),
            "honest PRADA + OOD flags": _honest_flags(ok, "monitor"),
        })
    return out


NOTES = f"""Each attack runs undefended at its defence-matrix budget on {{seeds}} seeds (the
target is retrained per seed). `per-n`: PRADA with twelve tests, each against its own
threshold per number of distances n: W of all distances (from the {MIN_SAMPLES}th
distance on), W of the last k distances for k in {WINDOWS} (from the kth, 'Wk'), the
share of distinct values among the last k distances for k in {REPEATS} ('Rk': too many
repeats), and the share of distinct values among all distances, on both sides ('R': too
many repeats, 'U': too few; from the {MIN_SAMPLES}th distance), and the total variation
distance between the client's mix of predicted classes and the owner's ('L': a mix
unlike natural traffic's), and the mean of all the client's distances ('S': queries
spread wider than natural traffic's; tested as far as every calibration order reaches
and at most to a quarter of the owner's rows), and the mean distance between every pair
of the client's queries of any class ('P': the same premise, steadier on few queries;
tested as far as S, from calibration orders drawn after all the others'), and the mean
negative log-likelihood of the client's queries under a per-class naive Bayes model of
the owner's rows ('N': queries whose features do not move together as a class's do;
tested as far as S, its band from models fitted on one half of the owner's rows scoring
the other half, 50 splits x 20 orders, drawn last), and the count of queries with a
value off the lattice the owner's rows lie on ('G': integer scores, counts and codes;
flagged at the 3rd such query, from the first query on), all calibrated on the owner's
reference rows only (half of the training split; 50 random orders and 1,000 more of
200 rows, none over half the rows; for L, classes drawn with replacement from the
owner's and compared with a bootstrap of the owner's shares, tolerance at least 1/n and at least
{LABEL_DRIFT}; per test the band median -
1.5 c spread of its statistic, c the largest deviation of any calibration order in units
of the per-n lower-tail spread; for Rk, c spread at least {REPEAT_FLOOR}/k, so that at
least {int(REPEAT_FLOOR * WIDEN) + 1} repeats more than the honest median flag; for R and
U at least {REPEAT_FLOOR}/n), see
`stealml.defences.calibrate_prada` and `w_band`; 'flagged by' names the test that
flagged it. `paper`: one delta (the lowest W of 5 reference
orders from the 100th distance on, less 0.02), test from the 100th distance, as Juuti et
al. A flag is measured by running the attack again, blocked from its next request of
{BATCH} queries: 'flag at query' and 'fidelity at flag' are that run's (a flag with no
fidelity: blocked before it had a model to give). Honest traffic: {HONEST_ORDERS} random
orders per seed of the target's test rows, then the training rows its owner never used,
each of the attack's volume (capped by their number); 'honest flags' the honest streams
each detector flags, 'honest min W' their lowest W (n >= {MIN_SAMPLES}; W15, W30: of any
window; R15, R30: their lowest distinct share in any window; R, U: the lowest and highest
distinct share of all distances; L: the largest class-mix distance; S: the largest mean
distance; P: the largest mean distance between queries; N: the largest mean negative
log-likelihood; G: the most queries off the lattice). Depth (per-n): how
far a stream goes beyond the detector's bands, the largest (median_n - statistic_n) /
(c spread_n) of any of its tests with a band (all but G) at any calibrated n (for U, L,
S, P and N, of minus the statistic), in units
of the band's own c; the detector with widening `widen` (here 1.5) flags the stream iff
its depth exceeds `widen`. Verdict 'unseeable' (per-n): on every seed, some honest stream
of the attack's volume is at least as deep as the attack is before it reaches 99% (or
before a flag after 99%), so every widening of the calibrated bands that flags the
attack flags that honest stream too (or the attack ends before {MIN_SAMPLES} distances).
The attack's depth is taken over its whole stream before any flag; where that is deeper
than every honest stream and the attack reaches 99%, only over the distances before it
reaches 99%: the first multiple of {BATCH} queries after which, blocked there, it has
99% fidelity ('99%_at_query' in the runs file, by bisection). Fidelity is agreement on
the target's test rows (1 - R_test); each flag also gives the agreement on 1,000 uniform
points (1 - R_unif, 'uniform agreement at flag'), and 'before 99% on test and uniform'
counts the runs that, blocked at the flag, have under 99% on either of the paper's two
measures (on breast cancer any crude hyperplane agrees on 99% of the 205 test rows: uniform
retraining can have it after 5 queries and lose it after 16). The runs file gives each
seed's 'depth', 'honest_max_depth' and 'honest_at_or_deeper' (of the {HONEST_ORDERS}).
OOD: the out-of-distribution rate monitor (quantile 0.99, alpha 1e-6) on the same runs
and honest streams. 'PRADA + OOD': the service's monitor with both detectors (a key is
flagged by the first of either; `stealml serve --monitor prada --monitor ood`).
Ranges are over seeds. Goal (issue 7): PRADA flags every attack before 99% fidelity,
except those it provably cannot see, with no flag on honest traffic of the same
volume."""


def prada_study(out: Path, seeds: tuple[int, ...] = (0, 1, 2),
                cases: list[Case] | None = None, n_jobs: int = 1, orders: int = 50,
                honest_orders: int = HONEST_ORDERS,
                only: tuple[str, ...] | None = None) -> list[Path]:
    """Run every case on every seed (``n_jobs`` seeds at a time); write
    prada_detection.{json,md} (per attack) and prada_detection-runs.{json,md}.

    ``only``: run just the cases whose name contains one of these, and keep the other runs from
    ``out``'s prada_detection-runs.json (a partial re-measurement)."""
    import json

    from joblib import Parallel, delayed

    cases = STUDY_CASES if cases is None else cases
    kept: list[dict[str, Any]] = []
    if only is not None:
        previous = out / "prada_detection-runs.json"
        if previous.exists():
            kept = [r for r in json.loads(previous.read_text())["rows"]
                    if not any(o in r["attack"] for o in only)]
        cases = [c for c in cases if any(o in c.name for o in only)]
    start = time.perf_counter()
    load = load_average()
    parts = Parallel(n_jobs=n_jobs)(delayed(study_seed)(seed, cases, None, orders,
                                                          honest_orders) for seed in seeds)
    new = [r for part in parts for r in part]
    order = {c.name: i for i, c in enumerate(STUDY_CASES)}
    runs = sorted(kept + new, key=lambda r: (order.get(r["attack"], len(order)), r["seed"]))
    wall = time.perf_counter() - start
    total = sum(r.get("seconds") or 0.0 for r in runs)
    spent = (f"The runs took {total:.0f} s in all (each: the attack, its reruns blocked at "
             "the flags, the honest streams) on 2 shared cores")
    if only == ():
        notes_end = f"{spent}; tables rewritten from the stored runs (load now {load})."
    else:
        notes_end = (f"{spent}, {n_jobs} seeds at a time; this pass "
                     + (f"re-measured {', '.join(only)}" if only else "measured all")
                     + f" in {wall:.0f} s, load at its start {load}.")
    notes = NOTES.format(seeds=len(seeds)) + "\n\n" + notes_end
    summary = summary_rows(runs)
    paths = list(write_results(out / "prada_detection", "PRADA against every attack: "
                               "queries until detection and honest false positives",
                               summary, list(summary[0]) if summary else [], notes=notes))
    cols = ["attack", "seed", "status", "queries", "fidelity", "fidelity_unif", "distances",
            "honest_queries", "per-n_flag", "per-n_fidelity_at_flag",
            "per-n_fidelity_unif_at_flag", "per-n_flagged_by", "per-n_min_w",
            "per-n_min_w_at", "per-n_honest_min_w", "99%_at_query", "depth",
            "honest_max_depth", "honest_at_or_deeper",
            *[f"w{k}_{c}" for k in WINDOWS for c in ("min_w", "min_w_at", "honest_min_w")],
            *[f"r{k}_{c}" for k in REPEATS
              for c in ("min_share", "min_share_at", "honest_min_share")],
            "r_min_share", "r_min_share_at", "r_honest_min_share",
            "u_max_share", "u_max_share_at", "u_honest_max_share",
            "l_max_tv", "l_max_tv_at", "l_honest_max_tv",
            "s_max_mean", "s_max_mean_at", "s_honest_max_mean",
            "p_max_mean", "p_max_mean_at", "p_honest_max_mean",
            "n_max_mean", "n_max_mean_at", "n_honest_max_mean",
            "g_max_count", "g_max_count_at", "g_honest_max_count",
            "per-n_honest_flags", "paper_flag",
            "paper_fidelity_at_flag", "paper_min_w", "paper_honest_min_w",
            "paper_honest_flags", "ood_flag", "ood_fidelity_at_flag", "ood_honest_flags",
            "monitor_flag", "monitor_fidelity_at_flag", "monitor_honest_flags", "seconds"]
    paths += write_results(out / "prada_detection-runs", "PRADA study: every run", runs, cols)
    return paths
