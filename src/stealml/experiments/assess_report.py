"""The one-page report of ``stealml assess``: Markdown, HTML (plot embedded) and JSON."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from stealml.experiments.report import STYLE
from stealml.experiments.tables import format_value, markdown_table

__all__ = ["write_assessment"]


def _money(x: Any) -> str:
    return "-" if x is None else f"${x:,.4f}"


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _api_lines(r: dict[str, Any]) -> list[tuple[str, str]]:
    a = r["api"]
    shows = {"probabilities": "all class probabilities", "labels": "labels only",
             "values": "regression values", "top-k": f"the top {a['top_k']} probabilities"}
    decimals = ("full precision" if a["decimals"] is None
                else f"rounded to {a['decimals']} decimals (inferred from the answers)")
    return [("answers reveal", shows.get(a["output"], a["output"])),
            ("precision", decimals),
            ("incomplete inputs", "accepted" if a["incomplete_accepted"] else "refused"),
            ("features (encoded columns)", f"{a['features']} ({a['encoded_columns']})"),
            ("classes", "-" if a["classes"] is None else str(len(a["classes"]))),
            ("price per query", _money(a["price"])),
            ("probe", f"{a['probe_queries']} queries, {_money(a['probe_cost'])}"),
            ("fidelity measured with", f"{r['eval_queries']} evaluation queries bought "
             f"apart ({_money(r['eval_cost'])}), never counted in an attack's")]


def _attack_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for e in r["attacks"]:
        best = e.get("best") or {}
        row: dict[str, Any] = {"attack": e["attack"]}
        for level in ("0.99", "0.999", "1"):
            q = e.get(f"queries@{level}")
            row[f"{level} fidelity"] = "not reached" if q is None else (
                f"{q} q, {_money(e.get(f'dollars@{level}'))}")
        row["best fidelity"] = _pct(best.get("fidelity"))
        row["at queries"] = best.get("queries")
        row["note"] = (e.get("error") or "")[:120]
        rows.append(row)
    return rows


def _defence_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    d = r.get("defences")
    if not d:
        return []
    rows = []
    for row in d["rows"]:
        out: dict[str, Any] = {"defence": row["defence"]}
        if "value_change" in row:  # a regressor
            out["mean value change"] = row["value_change"]
        else:
            out["accuracy lost"] = row["accuracy_lost"]
            out["TV distortion"] = row["tv_distortion"]
        for name, cell in row["attacks"].items():
            fid = _pct(cell["fidelity"]) if cell["fidelity"] is not None else (
                cell["status"] or "-")
            verdict = {True: "STOPS", False: "no", None: "-"}[cell["stopped"]]
            out[name] = f"{verdict} ({fid})"
        rows.append(out)
    return rows


def _defence_note(r: dict[str, Any]) -> str:
    d = r.get("defences")
    if d is None:
        if r["config"]["url"] is not None:
            return ("Defences are evaluated on a local copy of the model: run "
                    "`stealml assess --target MODEL_FILE` with the model's file.")
        return "Defences were not evaluated (--no-defences)."
    return (f"Each attack replayed at its best budget against each defence; STOPS: it no "
            f"longer reaches {d['stopped_below']:.0%} fidelity (on the {d['measured_on']}) "
            f"or cannot run; `-`: the attack stays below it at this budget even with no "
            f"defence (its fidelity in brackets). Utility cost for honest clients on the "
            f"{d['measured_on']}: "
            f"accuracy lost and mean total-variation distance of the answers (a "
            f"regressor's: the mean absolute change of its values). Monitors "
            f"watch against {d['owner_rows']}."
            + "".join(f" Not evaluated, {name}: {why}."
                      for name, why in d.get("not_applicable", {}).items()))


def _plot(r: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    for e in r["attacks"]:
        pts = e["points"]
        if pts:
            ax.plot([max(p["queries"], 1) for p in pts],
                    [max(1 - p["fidelity"], 1e-4) for p in pts], marker="o",
                    label=e["attack"])
    for level, style in ((0.99, ":"), (0.999, "--")):
        ax.axhline(1 - level, color="grey", linestyle=style, linewidth=1)
        ax.text(ax.get_xlim()[0] if ax.lines else 1, 1 - level, f" {level:.1%}",
                va="bottom", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("queries paid by the attack")
    ax.set_ylabel("1 - fidelity (100% drawn at 1e-4)")
    ax.set_title(f"Fidelity against queries: {r['target']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_assessment(r: dict[str, Any], out: Path) -> list[Path]:
    """Write ``assessment.{json,md,html}`` and ``fidelity.png`` into ``out``."""
    png = _plot(r, out / "fidelity.png")
    attack_rows, defence_rows = _attack_rows(r), _defence_rows(r)
    attack_cols = ["attack", "0.99 fidelity", "0.999 fidelity", "1 fidelity",
                   "best fidelity", "at queries", "note"]
    skipped = [f"- {k}: {v}" for k, v in r["skipped"].items()]
    budget = (f"Each attack may spend up to {r['max_queries_per_attack']} queries "
              f"(${r['budget_dollars']:g} at the API's price); its budget grows in steps "
              "(alpha × its unknowns) until it completes or reaches 100% fidelity.")
    md = [f"# Extraction risk of {r['target']}", "", "## What the API reveals", "",
          "| | |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in _api_lines(r)], "",
          "## Attacks: queries and dollars to reach each fidelity", "", budget, "",
          markdown_table(attack_rows, attack_cols) if attack_rows else "No attack applies.",
          ""]
    if skipped:
        md += ["Not run:", "", *skipped, ""]
    md += ["![fidelity against queries](fidelity.png)", "", "## Defences", "",
           _defence_note(r), ""]
    if defence_rows:
        md += [markdown_table(defence_rows, list(defence_rows[0])), ""]
    md.append(f"Assessed in {r['seconds']:.1f} s.")
    md_path = out / "assessment.md"
    md_path.write_text("\n".join(md) + "\n")
    json_path = out / "assessment.json"
    json_path.write_text(json.dumps(r, indent=2, default=str) + "\n")
    html_path = out / "assessment.html"
    html_path.write_text(_html(r, attack_rows, attack_cols, defence_rows, skipped, budget,
                               png))
    return [md_path, html_path, json_path, png]


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            text = format_value(r.get(c))
            klass = " class=far" if text.startswith("STOPS") else (
                " class=close" if text.startswith("no (") else "")
            cells.append(f"<td{klass}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _html(r: dict[str, Any], attack_rows: list[dict[str, Any]], attack_cols: list[str],
          defence_rows: list[dict[str, Any]], skipped: list[str], budget: str,
          png: Path) -> str:
    api = "".join(f"<tr><th class=l>{html.escape(k)}</th><td class=l>{html.escape(v)}</td>"
                  "</tr>" for k, v in _api_lines(r))
    image = base64.b64encode(png.read_bytes()).decode()
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>stealml assess: {html.escape(str(r['target']))}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Extraction risk of {html.escape(str(r['target']))}</h1>",
             "<h2>What the API reveals</h2>", f"<table>{api}</table>",
             "<h2>Attacks: queries and dollars to reach each fidelity</h2>",
             f"<p>{html.escape(budget)}</p>",
             _table(attack_rows, attack_cols) if attack_rows else "<p>No attack applies.</p>"]
    if skipped:
        parts.append("<p>Not run: " + "; ".join(html.escape(s[2:]) for s in skipped) + "</p>")
    parts += [f"<img alt='fidelity against queries' src='data:image/png;base64,{image}'>",
              "<h2>Defences</h2>", f"<p>{html.escape(_defence_note(r))}</p>"]
    if defence_rows:
        parts.append(_table(defence_rows, list(defence_rows[0])))
    parts.append(f"<p class=notes>Assessed in {r['seconds']:.1f} s.</p></body></html>")
    return "\n".join(parts) + "\n"
