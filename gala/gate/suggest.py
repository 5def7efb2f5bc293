"""`gala gate --suggest RUN [RUN ...]`: a budgets file derived from clean runs, so that default budgets
catch regressions instead of being widened until anything passes.

The noise model (docs/gate.md, "Budgets from clean runs"): a clean run's latency on a shared machine
moves by a factor (the CPU the target gets) plus an additive delay (the scheduler's time slices when
another process holds the core). So each ceiling is the worst of the given clean runs' percentiles,
times `headroom`, and at least that worst plus `floor_ms`:

    ceiling = nice_round_up(max(worst * headroom, worst + floor_ms))

Give it clean runs made where the gate will run (a CI runner, or this machine with other work on it);
the more runs, the better the worst case is known. Medians move least with load, so the p50 ceilings
are the sharp ones; p95/p99 catch gross tail regressions; `--baseline` catches smaller ones.
Pure: reads `Run`s, returns YAML text; no I/O.
"""

from __future__ import annotations

import math

from gala.contract.errors import InputError
from gala.contract.histogram import histogram_percentiles
from gala.contract.results import ALL, Run

PERCENTILES = (50.0, 95.0, 99.0)
MIN_ERROR_RATIO = 0.01  # a clean run with no failures still allows 1%: a target restart, a reset connection


def nice_ceiling(x: float) -> float:
    """`x` rounded up to 2 significant figures (37.2 -> 38, 1234 -> 1300)."""
    if x <= 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(x)) - 1)
    return math.ceil(x / step - 1e-9) * step


def measured_percentile(run: Run, link: str, percentile: float) -> float | None:
    """A link's whole-run percentile: from its merged histogram, else from phase_link_stats.csv."""
    hist = run.histogram(link)
    if hist:
        return float(histogram_percentiles(hist, [percentile / 100])[0])
    df = run.phase_link
    row = df[(df["phase"] == ALL) & (df["link"] == link)]
    column = f"p{percentile:g}_ms"
    if row.empty or column not in row or row[column].isna().all():
        return None
    return float(row[column].iloc[0])


def _error_ratio(run: Run, link: str) -> float:
    df = run.phase_link
    row = df[(df["phase"] == ALL) & (df["link"] == link)]
    requests = int(row["requests"].sum()) if not row.empty else 0
    return int(row["failures"].sum()) / requests if requests else 0.0


def _fmt(x: float) -> str:
    return f"{x:g}" if x < 1e6 else f"{x:.0f}"


def suggest_budgets(runs: list[Run], headroom: float = 3.0, floor_ms: float = 25.0) -> str:
    """A budgets file (YAML text, commented) for the critical links the runs share."""
    if not runs:
        raise InputError("--suggest: expected at least one clean results folder")
    if not (1 <= headroom <= 100 and math.isfinite(headroom)):
        raise InputError(f"--headroom {headroom}: expected a factor in 1..100 (3 = three times the worst clean run)")
    if not (0 <= floor_ms <= 60_000 and math.isfinite(floor_ms)):
        raise InputError(f"--floor-ms {floor_ms}: expected milliseconds in 0..60000")
    for run in runs:
        if run.info.status not in ("complete",):
            raise InputError(f"{run.path}: the run is {run.info.status}; expected a clean, complete run to "
                             "derive budgets from")
        if run.info.target.injected_faults:
            raise InputError(f"{run.path}: the run had injected faults ({', '.join(run.info.target.injected_faults)}); "
                             "expected a clean run")
    links = [link for link in (runs[0].info.critical_links or runs[0].info.links)
             if all(link in r.info.links for r in runs)]
    if not links:
        raise InputError(f"{runs[0].path}: no critical link common to every run given")
    ids = ", ".join(r.run_id for r in runs)
    out = [
        f"# Budgets suggested by `gala gate --suggest` from {len(runs)} clean run(s): {ids}",
        f"# ceiling = max(worst clean run x {headroom:g}, worst + {floor_ms:g} ms), rounded up to 2 figures;",
        f"# error_ratio = max({MIN_ERROR_RATIO}, worst x {headroom:g}). Noise model: docs/gate.md.",
        "version: 1",
        "links:",
    ]
    for link in links:
        out.append(f"  {link}:")
        for q in PERCENTILES:
            values = [v for v in (measured_percentile(r, link, q) for r in runs) if v is not None]
            if not values:
                continue
            worst = max(values)
            ceiling = nice_ceiling(max(worst * headroom, worst + floor_ms))
            seen = "/".join(f"{v:.3g}" for v in values)
            out.append(f"    p{q:g}_ms: {_fmt(ceiling):<8} # measured {seen} ms")
        worst_err = max(_error_ratio(r, link) for r in runs)
        out.append(f"    error_ratio: {min(1.0, max(MIN_ERROR_RATIO, nice_ceiling(worst_err * headroom))):g}"
                   f"   # measured {worst_err:.3g}")
    out += [
        "baseline:                # with --baseline RUN: the sharp check, against a run made beside this one",
        "  allowed_regression: 0.1",
        "  metrics: [p95_ms, p99_ms]",
        "  noise_z: 3",
    ]
    return "\n".join(out) + "\n"
