"""The table `gala run` prints at the end: one row per phase and link, from phase_link_stats.csv."""

from __future__ import annotations

import math

import pandas as pd

from gala.contract.results import ALL

COLUMNS = [
    ("phase", "phase", "<"), ("link", "link", "<"), ("requests", "requests", ">"), ("failures", "fail", ">"),
    ("rps", "req/s", ">"), ("intended_rps", "intended", ">"), ("p50_ms", "p50 ms", ">"),
    ("p95_ms", "p95 ms", ">"), ("p99_ms", "p99 ms", ">"), ("max_ms", "max ms", ">"),
]


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 or value.is_integer() else f"{value:.1f}"
    return str(value)


def phase_table(stats: pd.DataFrame, phase_order: list[str]) -> str:
    """Rows in the scenario's phase order, the whole run (`_all`) last; per-link rows before a phase's total."""
    if stats.empty:
        return "(no requests were recorded)"
    df = stats.copy()
    rank = {name: i for i, name in enumerate([*phase_order, ALL])}
    df["_p"] = df["phase"].map(lambda p: rank.get(p, len(rank)))
    df["_l"] = (df["link"] == ALL).astype(int)
    df = df.sort_values(["_p", "_l", "link"], kind="stable")
    rows = [[_cell(r[c]) for c, _, _ in COLUMNS] for r in df.to_dict("records")]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (_, h, _) in enumerate(COLUMNS)]

    def fmt(cells):
        return "  ".join(f"{c:{a}{w}}" for c, (_, _, a), w in zip(cells, COLUMNS, widths)).rstrip()

    out = [fmt([h for _, h, _ in COLUMNS]), fmt(["-" * w for w in widths])]
    prev = None
    for cells, phase in zip(rows, df["phase"]):
        if prev is not None and phase != prev:
            out.append("")
        out.append(fmt(cells))
        prev = phase
    return "\n".join(out)
