"""Oracles: the only door to a target."""

from __future__ import annotations

from stealml.oracles.base import BaseOracle, Oracle, valid_rows_only
from stealml.oracles.http import HttpOracle
from stealml.oracles.local import LocalOracle
from stealml.oracles.mapped import JsonApiOracle, JsonMapping
from stealml.oracles.oip import OipOracle
from stealml.oracles.transport import RetryPolicy

__all__ = ["BaseOracle", "HttpOracle", "JsonApiOracle", "JsonMapping", "LocalOracle", "OipOracle",
           "Oracle", "RetryPolicy", "valid_rows_only"]
