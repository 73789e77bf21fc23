"""Result tables: one list of row dicts written as JSON and as a Markdown table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stealml import __version__

__all__ = ["format_value", "git_revision", "load_average", "markdown_table",
           "package_versions", "write_results"]

# the packages whose versions move results: numerics, solvers, and the optional ones
# when they are installed (a re-run in a fresh environment can differ in the last digits)
NUMERIC_PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "onnxruntime")


def format_value(value: Any) -> str:
    """Numbers as a table shows them: 3 significant digits, small ones in e-notation."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 1e-3 or abs(value) >= 1e5:
            return f"{value:.2e}"
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(format_value(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as reports print them ("?" where the
    platform has none)."""
    if not hasattr(os, "getloadavg"):
        return "?"
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def git_revision() -> str | None:
    """The short hash of the checked-out commit (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions(names: Sequence[str] = NUMERIC_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (those not installed left out)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def write_results(stem: str | Path, title: str, rows: Sequence[dict[str, Any]],
                  columns: Sequence[str], notes: str = "") -> tuple[Path, Path]:
    """Write ``stem.json`` (rows and the machine that made them) and ``stem.md``."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    packages = package_versions()
    meta: dict[str, Any] = {"title": title, "stealml": __version__, "git": git_revision(),
            "date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
            "machine": f"{platform.machine()}, {_cpus()} CPUs",
            "packages": packages}
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps({"meta": meta, "rows": list(rows)}, indent=2) + "\n")
    md = [f"# {title}", "", markdown_table(rows, columns), ""]
    if notes:
        md += [notes.strip(), ""]
    md.append(f"Measured {meta['date']} with stealml {__version__} (git {meta['git']}), "
              f"Python {meta['python']}, {meta['machine']}; "
              + ", ".join(f"{k} {v}" for k, v in packages.items()) + ".")
    md_path = stem.with_suffix(".md")
    md_path.write_text("\n".join(md) + "\n")
    return json_path, md_path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
