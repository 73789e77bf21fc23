"""Defences on the model owner's side: extraction monitors and their responses.

Output defences (rounding, labels only, top-k, Gaussian noise, reverse sigmoid, price)
are fields of :class:`~stealml.policies.ApiPolicy`; a query budget is the
:class:`~stealml.ledger.Ledger`'s ``budget`` locally and an API key's ``quota`` in
``stealml serve``. This package holds what watches clients over time: the detectors
(:class:`Prada`, :class:`OutOfDistribution`) and the per-client :class:`Monitor` that
answers a flagged client by blocking it, giving labels only, or adding noise.
See ``docs/defences.md``.
"""

from __future__ import annotations

from stealml.defences.monitor import RESPONSES, Monitor, Response
from stealml.defences.ood import OutOfDistribution
from stealml.defences.prada import Prada, calibrate_delta, calibrate_prada, prada_from_file

__all__ = ["RESPONSES", "Monitor", "OutOfDistribution", "Prada", "Response",
           "calibrate_delta", "calibrate_prada", "prada_from_file"]
