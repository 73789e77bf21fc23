"""The paper's tables and figures, each reproduced by one registered function.

Each entry names ``module:function``; the function takes the output folder and whether to
run the quick grid, writes JSON, Markdown (and PNG where a picture helps) there, and
returns the paths it wrote. ``stealml reproduce NAME`` runs one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from stealml.exceptions import ConfigurationError

__all__ = ["REPRODUCTIONS", "run_reproduction"]

Reproduction = Callable[[Path, bool], list[Path]]

# name -> "module:function"; imported only when run, so the CLI starts fast
REPRODUCTIONS: dict[str, str] = {
    "defence-matrix": "stealml.experiments.defence_matrix:defence_matrix",
    "figure2": "stealml.experiments.figure2:reproduce",
    "figure4": "stealml.experiments.labels_only:figure4",
    "figure5": "stealml.experiments.labels_only:figure5",
    "figure6": "stealml.experiments.labels_only:figure6",
    "figure7": "stealml.experiments.figure7:reproduce",
    "labels-mlp": "stealml.experiments.labels_only:mlp_row",
    "inversion": "stealml.experiments.inversion:reproduce",
    "table1": "stealml.experiments.online:table1",
    "table4": "stealml.experiments.table4:reproduce",
    "table6": "stealml.experiments.table6:reproduce",
    "table7": "stealml.experiments.online:table7",
}


def run_reproduction(name: str, out: Path, quick: bool = False) -> list[Path]:
    """Run the reproduction ``name`` into ``out``; returns the files written."""
    if name not in REPRODUCTIONS:
        raise ConfigurationError(f"unknown reproduction {name!r}; choose one of: "
                                 f"{', '.join(sorted(REPRODUCTIONS)) or 'none yet'}")
    module, func = REPRODUCTIONS[name].split(":")
    fn: Reproduction = getattr(importlib.import_module(module), func)
    out.mkdir(parents=True, exist_ok=True)
    return fn(out, quick)
