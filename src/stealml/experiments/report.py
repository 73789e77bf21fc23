"""``stealml reproduce all``: every registered reproduction into one report folder.

Each entry of :data:`~stealml.experiments.reproduce.REPRODUCTIONS` runs into a subfolder of
its own; one that fails is reported with its error and the others still run. Then
``report.md`` and a self-contained ``report.html`` (plots embedded, no external files)
put the paper's numbers beside ours.

The convention that finds "ours vs paper" pairs: in the rows of a reproduction's JSON
(see :func:`~stealml.experiments.tables.write_results`), a column ``"paper X"`` holds the
paper's value of column ``"X"``. Values may be numbers or strings such as ``"99.5%"`` or
``"1,234"``. A ``"paper X"`` column without an ``"X"`` is shown as the paper's text.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import platform
import re
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stealml import __version__
from stealml.experiments.reproduce import REPRODUCTIONS, run_reproduction
from stealml.experiments.store import code_version
from stealml.experiments.tables import format_value, markdown_table, package_versions

__all__ = ["EntryRun", "compare", "paper_pairs", "reproduce_all", "write_report"]

PAPER = "paper "
CLOSE, OFF = 0.10, 0.50  # |ours - paper| / |paper| up to CLOSE: close; past OFF: far
VERDICTS = ("close", "better", "off", "far")
HIGHER_IS_BETTER = re.compile(r"1\s*-\s*R|accuracy|fidelity|found", re.IGNORECASE)
LOWER_IS_BETTER = re.compile(r"^r_|R_|queries|seconds|price|cost|q/leaf|error|gap",
                             re.IGNORECASE)


@dataclass
class EntryRun:
    """One reproduction's run: its files, or its error."""

    name: str
    ok: bool
    seconds: float
    files: list[str] = field(default_factory=list)
    error: str | None = None


def reproduce_all(out: str | Path, quick: bool = False, names: Sequence[str] | None = None,
                  announce: Callable[[str], None] | None = None) -> list[EntryRun]:
    """Run every reproduction (or those in ``names``) into ``out/NAME``; then write
    ``out/report.md``, ``out/report.html`` and ``out/summary.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(REPRODUCTIONS) if names is None else list(names)
    runs: list[EntryRun] = []
    start = time.perf_counter()
    for name in names:
        if announce is not None:
            announce(f"reproducing {name} ...")
        t0 = time.perf_counter()
        try:
            files = run_reproduction(name, out / name, quick=quick)
            runs.append(EntryRun(name, True, time.perf_counter() - t0,
                                 [str(Path(f).relative_to(out)) for f in files]))
        except Exception as exc:  # one failed reproduction must not stop the others
            runs.append(EntryRun(name, False, time.perf_counter() - t0,
                                 error=f"{type(exc).__name__}: {exc}\n"
                                       f"{traceback.format_exc(limit=-4)}"))
        if announce is not None:
            r = runs[-1]
            announce(f"  {name}: {'done' if r.ok else 'FAILED'} in {r.seconds:.1f} s")
    meta = {"stealml": __version__, "code": code_version(), "quick": quick,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "seconds": time.perf_counter() - start, "machine": _machine(),
            "load average (1, 5, 15 min)": _load(), "packages": package_versions()}
    (out / "summary.json").write_text(json.dumps(
        {"meta": meta, "entries": [asdict(r) for r in runs]}, indent=2) + "\n")
    write_report(out, runs, meta)
    return runs


def _machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def as_number(value: Any) -> float | None:
    """A table cell as a number: ``0.5``, ``"99.5%"`` (0.995), ``"1,234"``; else None.

    Examples
    --------
    >>> as_number("99.50%"), as_number("1,234"), as_number("26/25/11"), as_number(True)
    (0.995, 1234.0, None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    text = str(value).strip().replace(",", "")
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    try:
        return float(text) * scale
    except ValueError:
        return None


def paper_pairs(columns: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``(ours, paper)`` column pairs, and the paper columns without one of ours."""
    pairs, alone = [], []
    for col in columns:
        if col.startswith(PAPER):
            ours = col[len(PAPER):]
            (pairs.append((ours, col)) if ours in columns else alone.append(col))
    return pairs, alone


def compare(ours: Any, paper: Any, column: str) -> dict[str, Any]:
    """How ``ours`` stands against ``paper``: difference, relative difference, verdict
    and, where the column says which way is better, the direction (``better``/``worse``).
    The verdict is ``close`` (within 10%), ``better`` (beyond that, the good way), or
    ``off`` (within 50%) and ``far`` (beyond) the other way or where no way is better.
    Accuracies (``1-R``, fidelity) are compared by their errors.

    Examples
    --------
    >>> compare(0.9344, 0.9868, "1-R_test")["verdict"]  # 6.6% errors against 1.3%
    'far'
    >>> compare(388, 400, "queries")["verdict"], compare(388, 400, "queries")["direction"]
    ('close', 'better')
    >>> compare(1.0, 0.9975, "1-R_unif")["verdict"], compare(200, 400, "queries")["verdict"]
    ('better', 'better')
    """
    a, b = as_number(ours), as_number(paper)
    if a is None or b is None:
        return {"diff": None, "rel": None, "verdict": None, "direction": None,
                "errors": False}
    diff = a - b
    errors = bool(HIGHER_IS_BETTER.search(column)) and 0 <= a <= 1 and 0 <= b <= 1
    if errors:
        # an accuracy: 99.9% against 99% is ten times fewer errors, not 1% more
        rel = ((1 - a) - (1 - b)) / max(1 - b, 1e-3)
    else:
        scale = max(abs(b), 1e-3 if abs(b) < 1 else 0)
        rel = diff / scale if scale else 0.0
    direction = None
    if abs(diff) > 1e-12:
        if HIGHER_IS_BETTER.search(column):
            direction = "better" if diff > 0 else "worse"
        elif LOWER_IS_BETTER.search(column):
            direction = "better" if diff < 0 else "worse"
    if abs(rel) <= CLOSE or abs(diff) <= (1e-3 if errors else 1e-4):  # 0.1 points
        verdict = "close"
    elif direction == "better":
        verdict = "better"
    else:
        verdict = "off" if abs(rel) <= OFF else "far"
    return {"diff": diff, "rel": rel, "verdict": verdict, "direction": direction,
            "errors": errors}


@dataclass
class Table:
    """One JSON result of a reproduction, ready to show."""

    title: str
    path: str
    columns: list[str]
    rows: list[dict[str, Any]]
    pairs: list[tuple[str, str]]
    alone: list[str]
    notes: str

    @property
    def labels(self) -> list[str]:
        """The columns that say which row this is: the first few that are no pair and
        whose value changes from row to row."""
        taken = {c for p in self.pairs for c in p} | set(self.alone)
        free = [c for c in self.columns if c not in taken]
        rows = self.compared_rows() or self.rows
        varying = [c for c in free
                   if len({json.dumps(r.get(c), sort_keys=True, default=str)
                           for r in rows}) > 1]
        return varying[:4] or free[:1]

    def compared_rows(self) -> list[dict[str, Any]]:
        """Rows with at least one paper value."""
        cols = [p for _, p in self.pairs] + self.alone
        return [r for r in self.rows if any(r.get(c) not in (None, "") for c in cols)]


def _tables(out: Path, run: EntryRun) -> list[Table]:
    tables = []
    for rel in run.files:
        path = out / rel
        if path.suffix != ".json" or not path.exists():
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        rows = data.get("rows") if isinstance(data, dict) else None
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            continue
        columns = list(dict.fromkeys(k for r in rows for k in r))
        pairs, alone = paper_pairs(columns)
        title = str(data.get("meta", {}).get("title", path.stem))
        tables.append(Table(title, rel, columns, rows, pairs, alone,
                            _notes(path.with_suffix(".md"))))
    return tables


def _notes(md: Path) -> str:
    """The prose a reproduction wrote under its table (not the table, not the title)."""
    if not md.exists():
        return ""
    keep = [line for line in md.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "|"))]
    return " ".join(keep)


def _counts(tables: Sequence[Table]) -> dict[str, int]:
    counts = dict.fromkeys(VERDICTS, 0)
    for t in tables:
        for row in t.compared_rows():
            for ours, paper in t.pairs:
                c = compare(row.get(ours), row.get(paper), ours)
                if c["verdict"]:
                    counts[c["verdict"]] += 1
    return counts


def write_report(out: Path, runs: Sequence[EntryRun], meta: dict[str, Any]) -> list[Path]:
    """``report.md`` and ``report.html`` in ``out`` from the runs' files."""
    tables = {r.name: _tables(out, r) for r in runs}
    md = out / "report.md"
    md.write_text(_markdown(out, runs, tables, meta))
    page = out / "report.html"
    page.write_text(_html(out, runs, tables, meta))
    return [md, page]


def _diff_text(c: dict[str, Any]) -> str:
    if c["diff"] is None:
        return ""
    text = f"{c['diff']:+.3g}"
    if c["rel"] is not None and abs(c["rel"]) < 1e6:
        text += f" ({'errors ' if c['errors'] else ''}{c['rel']:+.0%})"
    return text + (", worse" if c["direction"] == "worse" else "")


def _heading(meta: dict[str, Any]) -> list[str]:
    grid = "quick grid (--quick)" if meta["quick"] else "the paper's full grid"
    return [f"Run {meta['date']} with stealml {meta['stealml']} (code {meta['code']}), "
            f"{grid}; {meta['seconds']:.0f} s in all on {meta['machine']}, load average "
            f"{meta['load average (1, 5, 15 min)']} at the end; "
            + ", ".join(f"{k} {v}" for k, v in meta.get("packages", {}).items()) + ".",
            "Beside each of our numbers, the paper's (Tramèr et al., USENIX Security 2016) "
            f"and the difference: **close** within {CLOSE:.0%} of the paper's value "
            "(accuracies: of its error rate), *better* beyond that the good way, else *off* "
            f"within {OFF:.0%} and **FAR** beyond; better/worse where the column says "
            "which way is better."]


def _markdown(out: Path, runs: Sequence[EntryRun], tables: dict[str, list[Table]],
              meta: dict[str, Any]) -> str:
    lines = ["# Reproduction of Tramèr et al. 2016 (stealml)", "", *_heading(meta), "",
             "| reproduction | status | seconds | close | better | off | far |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        c = _counts(tables[r.name])
        status = "ok" if r.ok else "**failed**"
        lines.append(f"| [{r.name}](#{r.name}) | {status} | {r.seconds:.1f} | {c['close']} | "
                     f"{c['better']} | {c['off']} | {c['far']} |")
    for r in runs:
        lines += ["", f"## {r.name}", ""]
        if not r.ok:
            lines += ["**Failed:**", "", "```", (r.error or "").strip(), "```"]
            continue
        for t in tables[r.name]:
            lines += [f"### {t.title}", "", f"From `{t.path}`.", ""]
            lines += [_md_comparison(t) if t.compared_rows() else
                      markdown_table(t.rows[:40], t.columns), ""]
            if (t.pairs or t.alone) and not t.compared_rows():
                lines += ["(The paper gives no number for this grid.)", ""]
            if t.notes:
                lines += [t.notes, ""]
        lines += [f"![{f}]({f})" for f in r.files if f.endswith(".png")]
    return "\n".join(lines) + "\n"


def _md_comparison(t: Table) -> str:
    head = [*t.labels]
    for ours, _ in t.pairs:
        head += [ours, "paper", "difference"]
    head += t.alone
    body = []
    for row in t.compared_rows():
        cells = [format_value(row.get(c)) for c in t.labels]
        for ours, paper in t.pairs:
            c = compare(row.get(ours), row.get(paper), ours)
            mark = {"close": "**close** ", "better": "*better* ", "off": "*off* ",
                    "far": "**FAR** "}.get(
                c["verdict"] or "", "")
            cells += [format_value(row.get(ours)), format_value(row.get(paper)),
                      (mark + _diff_text(c)).strip() or "-"]
        cells += [format_value(row.get(c)) for c in t.alone]
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join(["| " + " | ".join(head) + " |",
                      "| " + " | ".join("---" for _ in head) + " |", *body])


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
td.close{background:#dff3df}td.better{background:#d6e9f8}td.off{background:#fff2cc}td.far{background:#f8d0d0}
td.paper{color:#555;font-style:italic}.worse{font-weight:bold}
.failed{color:#a00;font-weight:bold}pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}.notes{color:#444;font-size:.9em}
"""


def _h(value: Any) -> str:
    return html.escape(format_value(value) if not isinstance(value, str) else value)


def _html(out: Path, runs: Sequence[EntryRun], tables: dict[str, list[Table]],
          meta: dict[str, Any]) -> str:
    heading = "".join(f"<p>{_md_inline(p)}</p>" for p in _heading(meta))
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<title>stealml: reproduction of Tramèr et al. 2016</title>",
             f"<style>{STYLE}</style></head><body>",
             "<h1>Reproduction of Tramèr et al. 2016 (stealml)</h1>", heading,
             "<table><tr><th class=l>reproduction</th><th>status</th><th>seconds</th>"
             "<th>close</th><th>better</th><th>off</th><th>far</th></tr>"]
    for r in runs:
        c = _counts(tables[r.name])
        status = "ok" if r.ok else "<span class=failed>failed</span>"
        parts.append(f"<tr><td class=l><a href='#{html.escape(r.name)}'>{html.escape(r.name)}"
                     f"</a></td><td>{status}</td><td>{r.seconds:.1f}</td>"
                     f"<td class=close>{c['close']}</td><td class=better>{c['better']}</td>"
                     f"<td class=off>{c['off']}</td>"
                     f"<td class=far>{c['far']}</td></tr>")
    parts.append("</table>")
    for r in runs:
        parts.append(f"<h2 id='{html.escape(r.name)}'>{html.escape(r.name)}</h2>")
        if not r.ok:
            parts.append(f"<p class=failed>Failed:</p><pre>{html.escape(r.error or '')}</pre>")
            continue
        for t in tables[r.name]:
            parts.append(f"<h3>{html.escape(t.title)}</h3>")
            parts.append(_html_comparison(t) if t.compared_rows() else
                         _html_table(t.rows[:40], t.columns))
            if (t.pairs or t.alone) and not t.compared_rows():
                parts.append("<p class=notes>(The paper gives no number for this grid.)</p>")
            if t.notes:
                parts.append(f"<p class=notes>{_md_inline(t.notes)}</p>")
        for f in r.files:
            if f.endswith(".png") and (out / f).exists():
                data = base64.b64encode((out / f).read_bytes()).decode()
                parts.append(f"<img alt='{html.escape(f)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md_inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_h(r.get(c))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_comparison(t: Table) -> str:
    head = "".join(f"<th class=l>{html.escape(c)}</th>" for c in t.labels)
    head += "".join(f"<th>{html.escape(o)}</th><th>paper</th><th>difference</th>"
                    for o, _ in t.pairs)
    head += "".join(f"<th>{html.escape(c)}</th>" for c in t.alone)
    body = []
    for row in t.compared_rows():
        cells = "".join(f"<td class=l>{_h(row.get(c))}</td>" for c in t.labels)
        for ours, paper in t.pairs:
            c = compare(row.get(ours), row.get(paper), ours)
            klass = c["verdict"] or ""
            worse = " worse" if c["direction"] == "worse" else ""
            cells += (f"<td>{_h(row.get(ours))}</td><td class=paper>{_h(row.get(paper))}</td>"
                      f"<td class='{klass}{worse}'>{html.escape(_diff_text(c))}</td>")
        cells += "".join(f"<td class=paper>{_h(row.get(c))}</td>" for c in t.alone)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"
