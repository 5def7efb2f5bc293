"""The gate's verdict as a Markdown summary for a CI page (GitHub's job summary, a merge-request note).

One table row per budget line and per baseline comparison, in the same words as the terminal table
(a baseline row names its figure plainly: "median per-second p95, against baseline", not the run's p95),
then the notes. `write_summary` writes it to a file and, when `$GITHUB_STEP_SUMMARY` is set, appends it
there (GitHub Actions renders that file on the run's page).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from gala.contract.atomic import write_text_atomic
from gala.contract.document import Bullets, Heading, Para, Table, render_markdown
from gala.gate.measure import GateResult, format_value

RESULT = {"pass": "✅ pass", "unchanged": "✅ pass", "improved": "✅ improved", "fail": "❌ FAIL",
          "regressed": "❌ REGRESSED"}


def _margin(r: GateResult) -> str:
    if r.kind == "baseline" or r.margin is None:
        return r.detail or "-"
    pct = f" ({r.margin_ratio:+.0%})" if r.margin_ratio is not None and math.isfinite(r.margin_ratio) else ""
    return ("+" if r.margin >= 0 else "-") + format_value(abs(r.margin), r.unit) + pct


def summary_markdown(run_id: str, budgets: str, results: list[GateResult], notes: list[str],
                     baseline_id: str | None = None) -> str:
    broken = [r for r in results if not r.passed]
    verdict = "FAIL" if broken else "PASS"
    head = f"{len(results) - len(broken)} of {len(results)} hold" + (f"; broken: {', '.join(r.name for r in broken)}"
                                                                      if broken else "")
    rows = pd.DataFrame([{"result": RESULT[r.status], "budget": r.name, "measured": format_value(r.measured, r.unit),
                          "margin": _margin(r), "defined at": r.source or "-"} for r in results],
                        columns=["result", "budget", "measured", "margin", "defined at"])
    blocks = [Heading(f"gala gate: {verdict} ({run_id})", 2), Para(f"Budgets `{budgets}`: {head}.")]
    if baseline_id:
        blocks.append(Para(f"Against baseline `{baseline_id}`: each baseline row compares the median per-second "
                           "percentile of both runs (not the run's whole percentile) and counts as regressed only "
                           "beyond run-to-run noise."))
    blocks.append(Table(rows))
    if notes:
        blocks += [Para("Notes:"), Bullets(notes)]
    return render_markdown(blocks)


def write_summary(markdown: str, path: str | Path | None) -> list[Path]:
    """Write the summary to `path` (if given) and append it to $GITHUB_STEP_SUMMARY (if set)."""
    written = []
    if path is not None:
        written.append(write_text_atomic(Path(path), markdown))
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as f:
            f.write(markdown + "\n")
        written.append(Path(step))
    return written
