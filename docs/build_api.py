"""Build docs/api.md (the API reference, from the public API's numpydoc docstrings) and the
page list of docs/index.md (every guide page under docs/, by its first heading).

Run: .venv/bin/python docs/build_api.py   (or `make docs`)
``--check`` exits 1 if either file is out of date (for CI).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent

# the public API, in reading order: the one-way data flow, then experiments
MODULES = [
    "stealml.space", "stealml.policies", "stealml.ledger", "stealml.answers",
    "stealml.oracles", "stealml.attacks", "stealml.attacks.params", "stealml.defences", "stealml.models",
    "stealml.metrics", "stealml.modelio", "stealml.datasets", "stealml.targets",
    "stealml.exceptions", "stealml.experiments.runner", "stealml.experiments.grid",
    "stealml.experiments.jobs", "stealml.experiments.store", "stealml.experiments.executors",
    "stealml.experiments.report", "stealml.experiments.assess",
    "stealml.experiments.reproduce",
]
START, END = "<!-- pages: built by docs/build_api.py -->", "<!-- /pages -->"


def _doc(obj: Any) -> str:
    return inspect.cleandoc(inspect.getdoc(obj) or "").strip()


def _signature(name: str, obj: Any) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    params = []
    for p in sig.parameters.values():
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.annotation is not p.empty:
            note = p.annotation
            text += f": {note}" if isinstance(note, str) else f": {note!r}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        params.append(text)
    out = f"{name}({', '.join(params)})"
    if sig.return_annotation not in (sig.empty, "None", None):
        out += f" -> {sig.return_annotation}"
    return re.sub(r" at 0x[0-9a-f]+", "", out)


def _public(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
    return list(names)


def _members(cls: type) -> list[tuple[str, Any]]:
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if callable(value) and _doc(value):
            out.append((name, value))
    return out


def _section(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    lines = [f"## `{module_name}`", ""]
    doc = _doc(module)
    if doc:
        lines += [doc, ""]
    seen = set()
    for name in _public(module):
        obj = getattr(module, name, None)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if inspect.isclass(obj) or inspect.isfunction(obj):
            kind = "class" if inspect.isclass(obj) else "function"
            lines += [f"### {kind} `{_signature(name, obj)}`", ""]
            if obj.__module__ != module_name:
                lines += [f"*Defined in `{obj.__module__}`.*", ""]
            lines += [_doc(obj) or "(no docstring)", ""]
            if inspect.isclass(obj):
                for member, value in _members(obj):
                    lines += [f"#### `{name}.{_signature(member, value)}`", "", _doc(value), ""]
        elif isinstance(obj, dict):
            keys = ", ".join(f"`{k}`" for k in obj)
            lines += [f"### `{name}`", "", f"A registry: {keys}.", ""]
    return lines


def build_api() -> str:
    lines = ["# API reference", "",
             "Built by `docs/build_api.py` (`make docs`) from the numpydoc docstrings of the "
             "public API (each module's `__all__`). The user guide is [index.md](index.md).",
             ""]
    lines += ["Modules: " + ", ".join(f"[`{m}`](#{m.replace('.', '')})" for m in MODULES), ""]
    for m in MODULES:
        lines += _section(m)
    return "\n".join(lines).rstrip() + "\n"


def _title(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def build_index(index: str) -> str:
    pages = sorted(p for p in DOCS.rglob("*.md") if p.name not in ("index.md", "api.md"))
    guide = [p for p in pages if p.parent == DOCS]
    attacks = [p for p in pages if p.parent != DOCS]
    listing = [START, "", "Guides:", ""]
    listing += [f"- [{_title(p)}]({p.relative_to(DOCS)})" for p in guide]
    listing += ["", "Attack families:", ""]
    listing += [f"- [{_title(p)}]({p.relative_to(DOCS)})" for p in attacks]
    listing += ["", "- [API reference](api.md)", "", END]
    head, _, rest = index.partition(START)
    _, _, tail = rest.partition(END)
    return head + "\n".join(listing) + tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Fail if a file is stale.")
    args = parser.parse_args()
    index_path = DOCS / "index.md"
    wanted = {DOCS / "api.md": build_api(),
              index_path: build_index(index_path.read_text())}
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p} is out of date: run make docs", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(wanted[p])
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
