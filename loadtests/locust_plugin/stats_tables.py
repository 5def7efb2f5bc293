"""Per-phase, per-link statistics as plain data: mergeable counters, the phase timeline, and the
tables gala writes (phase_link_stats.csv, histograms.json, timeseries.csv; see results/README.md).

Pure (no Locust, no gevent): the stats plugin (`loadtests/stats.py`) fills and merges these on the
Locust side; tests use them directly.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from gala.contract.results import ALL, PHASE_LINK_COLUMNS, TIMESERIES_COLUMNS, histogram_percentiles, round_response_time

# ---------------------------------------------------------------- counters

def new_record() -> list:
    """[requests, failures, sum_ms, max_ms, histogram {rounded ms: count}]."""
    return [0, 0, 0.0, 0.0, {}]


def add_sample(rec: list, response_time_ms: float, failed: bool) -> None:
    rec[0] += 1
    rec[1] += failed
    rec[2] += response_time_ms
    if response_time_ms > rec[3]:
        rec[3] = response_time_ms
    h = rec[4]
    k = round_response_time(response_time_ms)
    h[k] = h.get(k, 0) + 1


def merge_record(into: list, rec: list) -> None:
    into[0] += rec[0]
    into[1] += rec[1]
    into[2] += rec[2]
    into[3] = max(into[3], rec[3])
    h = into[4]
    for k, v in rec[4].items():
        k = int(k)
        h[k] = h.get(k, 0) + v


def merge_table(into: dict, rows: list) -> None:
    """Add wire rows [key1, key2, requests, failures, sum_ms, max_ms, hist] into a {(k1, k2): record} table."""
    for k1, k2, *rec in rows:
        merge_record(into.setdefault((k1, k2), new_record()), rec)


def table_rows(table: dict) -> list:
    return [[k1, k2, *rec] for (k1, k2), rec in table.items()]


def summarize(rec: list) -> dict[str, float]:
    p50, p90, p95, p99 = histogram_percentiles(rec[4], [0.5, 0.9, 0.95, 0.99])
    return {"requests": rec[0], "failures": rec[1], "mean_ms": rec[2] / rec[0] if rec[0] else math.nan,
            "p50_ms": p50, "p90_ms": p90, "p95_ms": p95, "p99_ms": p99, "max_ms": rec[3] if rec[0] else math.nan}


class Timeline:
    """Actual phase times (seconds since epoch0) and the phase a moment belongs to."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.epoch0: float | None = None
        self.times: dict[str, list[float | None]] = {n: [None, None] for n in order}

    def reset(self, epoch0: float) -> None:
        self.epoch0 = epoch0
        self.times = {n: [None, None] for n in self.order}

    def update(self, active: list[str], t_s: float) -> bool:
        """Start phases newly active, end phases no longer active; True when something changed."""
        changed = False
        for name, se in self.times.items():
            if name in active and se[0] is None:
                se[0], changed = t_s, True
            elif name not in active and se[0] is not None and se[1] is None:
                se[1], changed = t_s, True
        return changed

    def end_all(self, t_s: float) -> None:
        for se in self.times.values():
            if se[0] is not None and se[1] is None:
                se[1] = t_s

    def owner(self, t_s: float) -> str:
        """The most recently started phase still running at t_s; else the last one started; else the first."""
        best, best_start, last, last_start = None, -math.inf, None, -math.inf
        for name, (start, end) in self.times.items():
            if start is None or start > t_s:
                continue
            if start >= last_start:
                last, last_start = name, start
            if (end is None or t_s < end) and start >= best_start:
                best, best_start = name, start
        return best or last or self.order[0]

    def as_wire(self) -> dict:
        return {"epoch0": self.epoch0, "times": self.times}

    def load_wire(self, data: dict) -> None:
        self.epoch0 = data["epoch0"]
        self.times = {n: list(v) for n, v in data["times"].items()}


# ---------------------------------------------------------------- tables

def histograms_doc(phase_link: dict) -> dict:
    phases: dict[str, dict[str, dict[str, int]]] = {}
    total: dict[str, dict[int, int]] = {}
    for (phase, link), rec in sorted(phase_link.items()):
        phases.setdefault(phase, {})[link] = {str(k): v for k, v in sorted(rec[4].items())}
        h = total.setdefault(link, {})
        for k, v in rec[4].items():
            h[k] = h.get(k, 0) + v
    return {"bucketing": "locust", "phases": phases,
            "all": {link: {str(k): v for k, v in sorted(h.items())} for link, h in sorted(total.items())}}


def phase_link_table(phase_link: dict, timeline: Timeline, plans: dict, stop_t_s: float | None) -> pd.DataFrame:
    """Rows per (phase, link), per link over the run (phase `_all`), per phase (link `_all`), and `_all,_all`."""
    run_s = stop_t_s if stop_t_s is not None else max((se[1] or 0.0 for se in timeline.times.values()), default=0.0)
    planned_total = max((p.end_s for p in plans.values()), default=0.0) - min((p.start_s for p in plans.values()), default=0.0)
    rows = []

    def row(phase: str, link: str, rec: list, duration_s: float | None, intended: float | None) -> None:
        s = summarize(rec)
        rps = rec[0] / duration_s if duration_s else math.nan
        rows.append({"phase": phase, "link": link, "requests": rec[0], "failures": rec[1],
                     "error_ratio": rec[1] / rec[0] if rec[0] else math.nan, "duration_s": duration_s,
                     "rps": rps, "intended_rps": intended,
                     "achieved_ratio": rps / intended if intended else None,
                     **{k: s[k] for k in ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")}})

    links = sorted({link for _, link in phase_link})
    by_link: dict[str, list] = {}
    everything = new_record()
    for phase in timeline.order + sorted({p for p, _ in phase_link} - set(timeline.order)):
        start, end = timeline.times.get(phase, [None, None])
        duration = (end if end is not None else run_s) - start if start is not None else None
        plan = plans.get(phase)
        phase_all = new_record()
        for link in links:
            rec = phase_link.get((phase, link))
            if not rec:
                continue
            row(phase, link, rec, duration, plan.intended_rps.get(link) if plan else None)
            merge_record(phase_all, rec)
            merge_record(by_link.setdefault(link, new_record()), rec)
        if phase_all[0]:
            row(phase, ALL, phase_all, duration, None)
            merge_record(everything, phase_all)
    for link in links:
        intended = sum(p.intended_rps.get(link, 0.0) * (p.end_s - p.start_s) for p in plans.values())
        row(ALL, link, by_link[link], run_s or None, intended / planned_total if intended and planned_total else None)
    if everything[0]:
        row(ALL, ALL, everything, run_s or None, None)
    return pd.DataFrame(rows, columns=PHASE_LINK_COLUMNS)


def timeseries_table(second_link: dict, timeline: Timeline) -> pd.DataFrame:
    epoch0 = timeline.epoch0 or 0.0
    rows = []
    for (t_s, link), rec in sorted(second_link.items()):
        p50, p95, p99 = histogram_percentiles(rec[4], [0.5, 0.95, 0.99])
        rows.append({"t_s": t_s, "ts": round(epoch0 + t_s, 3), "phase": timeline.owner(t_s + 0.5), "link": link,
                     "requests": rec[0], "failures": rec[1], "p50_ms": p50, "p95_ms": p95, "p99_ms": p99})
    return pd.DataFrame(rows, columns=TIMESERIES_COLUMNS)


def write_csv_atomic(path: Path, df: pd.DataFrame) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    df.round(6).to_csv(tmp, index=False)
    tmp.replace(path)
