"""Watching each client of a target for extraction, and answering a flagged one differently.

A :class:`Monitor` holds one record per client (API key) for each of its detectors
(:class:`~stealml.defences.Prada`, :class:`~stealml.defences.OutOfDistribution`). Every
answered query is observed in order with the label the client was given; the client is
flagged as soon as one detector flags it, and stays flagged. A flagged client gets the
configured response:

``block``   no further query is answered (the server answers 403 ``extraction_suspected``;
            a :class:`~stealml.oracles.LocalOracle` raises :class:`~stealml.exceptions.KeyBlocked`)
``labels``  labels only, as :class:`~stealml.policies.ApiPolicy` ``output="labels"``
``noise``   probabilities with Gaussian noise of std ``noise`` (``ApiPolicy.noise``)
``log``     answers unchanged; the flag is only recorded (for measurements)

References: Juuti et al., "PRADA", IEEE EuroS&P 2019, section IV-C (responses to a
detected attack).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol

import numpy as np

from stealml.exceptions import ConfigurationError
from stealml.policies import ApiPolicy

__all__ = ["RESPONSES", "DetectorState", "Monitor", "Response"]

Response = Literal["block", "labels", "noise", "log"]
RESPONSES = ("block", "labels", "noise", "log")


class DetectorState(Protocol):
    """One client's record under one detector."""

    queries: int
    flagged_at: int | None
    statistic: float | None

    def update(self, X: np.ndarray, labels: Any) -> int | None: ...

    def summary(self) -> dict[str, Any]: ...


class Detector(Protocol):
    name: str

    def new_state(self) -> DetectorState: ...


class Monitor:
    """Per-client extraction detection with a configured response.

    Parameters
    ----------
    detectors : sequence of Prada or OutOfDistribution
        The detectors run on every client's queries.
    response : {"block", "labels", "noise", "log"}
        What a flagged client gets.
    noise : float
        Standard deviation of the noise for ``response="noise"``.

    Examples
    --------
    >>> from stealml.defences import Prada
    >>> monitor = Monitor([Prada(min_samples=20)], response="labels")
    >>> monitor.observe("mallory", np.linspace(0, 1, 50)[:, None], np.zeros(50)) is not None
    True
    >>> monitor.policy_for("mallory", ApiPolicy()).output
    'labels'
    """

    def __init__(self, detectors: Sequence[Detector], response: Response = "block",
                 noise: float = 0.1) -> None:
        if not detectors:
            raise ConfigurationError("a monitor needs at least one detector (prada, ood)")
        if response not in RESPONSES:
            raise ConfigurationError(f"response must be one of {', '.join(RESPONSES)}, "
                                     f"not {response!r}")
        if not (noise > 0 and math.isfinite(noise)):
            raise ConfigurationError(f"the noise of a flagged client's answers must be > 0, "
                                     f"not {noise}")
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"detectors given twice: {names}")
        self.detectors = list(detectors)
        self.response: Response = response
        self.noise = float(noise)
        self._states: dict[str, list[DetectorState]] = {}
        self._lock = threading.Lock()

    def _client(self, key: str) -> list[DetectorState]:
        if key not in self._states:
            self._states[key] = [d.new_state() for d in self.detectors]
        return self._states[key]

    def observe(self, key: str, X: np.ndarray, labels: Any) -> int | None:
        """Observe a client's answered queries in order; returns the index of the row after
        which the client got flagged (in this batch), or None."""
        with self._lock:
            states = self._client(key)
            already = any(s.flagged_at is not None for s in states)
            hits = [s.update(X, labels) for s in states]  # each stops at its own flag
            found = [h for h in hits if h is not None]
            return None if already or not found else min(found)

    def flag(self, key: str) -> dict[str, Any] | None:
        """The first detector that flagged ``key`` (name, ``at_query``, statistic), or None."""
        states = self._states.get(key)
        if states is None:
            return None
        flagged = [(s.flagged_at, d.name, s) for d, s in zip(self.detectors, states,
                                                              strict=True)
                   if s.flagged_at is not None]
        if not flagged:
            return None
        at, name, state = min(flagged, key=lambda t: t[0])
        return {"detector": name, "at_query": at, "statistic": state.statistic}

    def restore(self, key: str, detector: str, at_query: int,
                statistic: float | None = None) -> None:
        """Mark ``key`` as flagged by ``detector`` after ``at_query`` queries (a flag
        read back from a log), unless it already is."""
        with self._lock:
            states = self._client(key)
            if any(s.flagged_at is not None for s in states):
                return
            for d, s in zip(self.detectors, states, strict=True):
                if d.name == detector:
                    s.flagged_at, s.statistic = int(at_query), statistic
                    return
            raise ConfigurationError(f"the monitor has no detector {detector!r} "
                                     f"(it has {', '.join(x.name for x in self.detectors)})")

    def flagged(self, key: str) -> bool:
        return self.flag(key) is not None

    def blocks(self, key: str) -> bool:
        """Whether ``key``'s queries are refused."""
        return self.response == "block" and self.flagged(key)

    def policy_for(self, key: str, policy: ApiPolicy) -> ApiPolicy:
        """The policy ``key``'s answers follow now (``policy`` until it is flagged)."""
        return self.flagged_policy(policy) if self.flagged(key) else policy

    def flagged_policy(self, policy: ApiPolicy) -> ApiPolicy:
        """The policy a flagged client's answers follow (``policy`` for block and log)."""
        if self.response == "labels":
            return replace(policy, output="labels", top_k=None)
        if self.response == "noise":
            return replace(policy, noise=math.hypot(policy.noise or 0.0, self.noise))
        return policy

    def summary(self, key: str) -> dict[str, Any]:
        """Each detector's record of ``key`` (queries, flagged_at, statistic, ...)."""
        return {d.name: s.summary() for d, s in zip(self.detectors, self._client(key),
                                                     strict=True)}

    def clients(self) -> list[str]:
        return list(self._states)
