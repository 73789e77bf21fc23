"""Oracles: the only door to a target."""

from __future__ import annotations

from stealml.oracles.base import BaseOracle, Oracle
from stealml.oracles.local import LocalOracle

__all__ = ["BaseOracle", "LocalOracle", "Oracle"]
