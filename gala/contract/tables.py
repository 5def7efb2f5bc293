"""The writer side of a run's per-phase files: phase_link_stats.csv, timeseries.csv and
histograms.json (results/README.md), built from tables of `LatencyStats` cells.

The stats plugin fills the cells inside Locust and calls these to write; synthetic runs in the
tests write through them too. Pure (pandas; no Locust, no I/O).
"""

from __future__ import annotations

import math
from typing import Mapping, Protocol

import pandas as pd

from gala.contract.histogram import LatencyStats
from gala.contract.phases import Timeline
from gala.contract.results import ALL, PHASE_LINK_COLUMNS, TIMESERIES_COLUMNS


class PlannedPhase(Protocol):
    """What the writer needs of a scenario's planned phase."""

    start_s: float
    end_s: float
    intended_rps: Mapping[str, float]


def histograms_doc(phase_link: dict) -> dict:
    """histograms.json: per phase and link, and per link over the run, {bucket ms: count}."""
    phases: dict[str, dict[str, dict[str, int]]] = {}
    total: dict[str, LatencyStats] = {}
    for (phase, link), cell in sorted(phase_link.items()):
        phases.setdefault(phase, {})[link] = {str(k): v for k, v in sorted(cell.buckets.items())}
        total.setdefault(link, LatencyStats()).merge(cell)
    return {"bucketing": "locust", "phases": phases,
            "all": {link: {str(k): v for k, v in sorted(c.buckets.items())} for link, c in sorted(total.items())}}


def phase_link_table(phase_link: dict, timeline: Timeline, plans: Mapping[str, PlannedPhase],
                     stop_t_s: float | None) -> pd.DataFrame:
    """Rows per (phase, link), per link over the run (phase `_all`), per phase (link `_all`), and `_all,_all`."""
    run_s = stop_t_s if stop_t_s is not None else max((se[1] or 0.0 for se in timeline.times.values()), default=0.0)
    planned_total = max((p.end_s for p in plans.values()), default=0.0) - min((p.start_s for p in plans.values()), default=0.0)
    rows = []

    def row(phase: str, link: str, cell: LatencyStats, duration_s: float | None, intended: float | None) -> None:
        s = cell.summary()
        rps = cell.requests / duration_s if duration_s else math.nan
        rows.append({"phase": phase, "link": link, "requests": cell.requests, "failures": cell.failures,
                     "error_ratio": cell.failures / cell.requests if cell.requests else math.nan,
                     "duration_s": duration_s, "rps": rps, "intended_rps": intended,
                     "achieved_ratio": rps / intended if intended else None,
                     **{k: s[k] for k in ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")}})

    links = sorted({link for _, link in phase_link})
    by_link: dict[str, LatencyStats] = {}
    everything = LatencyStats()
    for phase in timeline.order + sorted({p for p, _ in phase_link} - set(timeline.order)):
        start, end = timeline.times.get(phase, [None, None])
        duration = (end if end is not None else run_s) - start if start is not None else None
        plan = plans.get(phase)
        phase_all = LatencyStats()
        for link in links:
            cell = phase_link.get((phase, link))
            if not cell:
                continue
            row(phase, link, cell, duration, plan.intended_rps.get(link) if plan else None)
            phase_all.merge(cell)
            by_link.setdefault(link, LatencyStats()).merge(cell)
        if phase_all.requests:
            row(phase, ALL, phase_all, duration, None)
            everything.merge(phase_all)
    for link in links:
        intended = sum(p.intended_rps.get(link, 0.0) * (p.end_s - p.start_s) for p in plans.values())
        row(ALL, link, by_link[link], run_s or None, intended / planned_total if intended and planned_total else None)
    if everything.requests:
        row(ALL, ALL, everything, run_s or None, None)
    return pd.DataFrame(rows, columns=PHASE_LINK_COLUMNS)


def timeseries_table(second_link: dict, timeline: Timeline) -> pd.DataFrame:
    """timeseries.csv: per second and link; a second belongs to the phase owning its middle."""
    epoch0 = timeline.epoch0 or 0.0
    rows = []
    for (t_s, link), cell in sorted(second_link.items()):
        p50, p95, p99 = cell.percentiles([0.5, 0.95, 0.99])
        rows.append({"t_s": t_s, "ts": round(epoch0 + t_s, 3), "phase": timeline.owner(t_s + 0.5), "link": link,
                     "requests": cell.requests, "failures": cell.failures, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99})
    return pd.DataFrame(rows, columns=TIMESERIES_COLUMNS)
