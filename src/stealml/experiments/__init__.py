"""Experiments: single extractions from files, the paper's tables and figures, grids."""

from __future__ import annotations

from stealml.experiments.runner import ExtractionConfig, run_extraction

__all__ = ["ExtractionConfig", "run_extraction"]
