"""Demands that are identified, or refused (issue 10): the one place the plan's D[link, service] comes from.

1. The regression (capacity_model.demand) over windows where CPU and request counts cover the same
   seconds (1 s where the sampler ticked on the run's clock, 5 s otherwise), with the idle CPU measured
   before the load subtracted instead of a free intercept.
2. Where the target attributed its own CPU per link (link_cpu.csv), that figure is the demand of the
   target's service, and the regression is its cross-check.
3. With several runs, each run is also taken alone: the spread of the per-run demands is added to the
   standard error, so the Monte Carlo band covers what varies between runs, not only within one.
4. Per link: relative standard error; a link above the spec's threshold, or one the regression cannot
   separate from another link (and no attribution covers it), is refused: named, with the reason and
   the run that would fix it. The plan never sizes it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from capacity_model.attribution import Attributed, attributed_demand, busy_at_speed
from capacity_model.contracts import BASELINE, CapacitySpec, DemandFit, LinkIdentification, Measurements
from capacity_model.demand import estimate_demand, fit_windows, floor_zero_demands
from gala.contract.errors import InputError

AGREE_RELATIVE = 0.25  # attributed and regressed demands agree within this share of the attributed one...
AGREE_SIGMAS = 3.0     # ...or within this many combined standard errors

CALIBRATION = ("a calibration run whose phases move the links independently: each link alone at 3 or more "
               "rates, then pairs at two different ratios (gala run --scenario loadtests/scenarios/calibrate.yaml "
               "for the built-in target), planned together with this run")


def idle_frame(m: Measurements) -> pd.DataFrame | None:
    """Windows x services: each window's run's measured idle cores (NaN where that run measured none)."""
    if not m.idle_cores or m.busy_cores.shape[1] == 0:
        return None
    idx = m.busy_cores.index
    runs = idx.get_level_values(0) if isinstance(idx, pd.MultiIndex) else pd.Index([m.run_ids[0]] * len(idx))
    cols = {s: [m.idle_cores.get(r, {}).get(s, np.nan) for r in runs] for s in m.busy_cores.columns}
    # a process name the quiet window did not see (a child started by the load) idled at 0
    for s in cols:
        cols[s] = [0.0 if (r in m.idle_cores and np.isnan(v)) else v for r, v in zip(runs, cols[s])]
    return pd.DataFrame(cols, index=idx)


def regress(m: Measurements, seed: int, draws: int = 200) -> DemandFit:
    """The regression over aligned windows with the measured idle subtracted."""
    idle = idle_frame(m)
    x, u, i = fit_windows(m.throughput, busy_at_speed(m.busy_cores, m.link_cpu, m.speed_units_per_cpu_s), idle,
                          m.fit_window_s, m.fit_from_s)
    fit = estimate_demand(x, u, idle=i, bootstrap_draws=draws, seed=seed)
    sizes = sorted(set(m.fit_window_s.values())) or [1]
    return fit.model_copy(update={"window_s": float(np.median(sizes))})


def _per_run(m: Measurements, seed: int) -> dict[str, DemandFit]:
    """Each run alone (for the spread between runs); runs too short to fit alone are left out."""
    idx = m.throughput.index
    if not isinstance(idx, pd.MultiIndex) or m.busy_cores.shape[1] == 0:
        return {}
    runs = list(dict.fromkeys(idx.get_level_values(0)))
    if len(runs) < 2:
        return {}
    idle = idle_frame(m)
    busy = busy_at_speed(m.busy_cores, m.link_cpu, m.speed_units_per_cpu_s)
    out = {}
    for run in runs:
        sel = idx.get_level_values(0) == run
        x, u, i = fit_windows(m.throughput[sel], busy[sel], None if idle is None else idle[sel],
                              m.fit_window_s, m.fit_from_s)
        try:
            out[run] = estimate_demand(x, u, idle=i, bootstrap_draws=0, seed=seed)
        except InputError:
            continue
    return out


def _attributed_only(m: Measurements, attributed: Attributed, why: InputError) -> DemandFit:
    """A DemandFit of the attributed demands alone (zeros where none), when the regression cannot run;
    re-raises `why` when some service has no attribution at all."""
    services = list(m.busy_cores.columns)
    if not services or any(s not in attributed.cpu_s for s in services):
        raise why
    links = list(m.throughput.columns)
    zero = {l: {s: 0.0 for s in services} for l in links}
    return DemandFit(links=links, services=services, cpu_s_per_request=zero, standard_error_cpu_s=zero,
                     baseline_busy_cores={s: sum(m.idle_cores.get(r, {}).get(s, 0.0) for r in m.idle_cores)
                                          / max(len(m.idle_cores), 1) for s in services},
                     r2={s: 0.0 for s in services}, residual_std_cores={s: 0.0 for s in services},
                     condition_number=0.0, windows=0, bootstrap_draws=0,
                     idle_measured={s: bool(m.idle_cores) for s in services})


def _between_sd(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


def identify(spec: CapacitySpec, m: Measurements, links: list[str]) -> tuple[DemandFit, list[LinkIdentification], list[str]]:
    """The demand the plan sizes from, each cpu-demand link's identification, and notes for the report."""
    notes: list[str] = []
    attributed = attributed_demand(m.link_cpu, m.idle_cores, m.speed_units_per_cpu_s) if m.link_cpu else Attributed()
    try:
        fit = regress(m, seed=spec.uncertainty.seed)
    except InputError as exc:
        # too few windows to regress (a very short run): the target's own attribution may still cover it
        fit = _attributed_only(m, attributed, exc)
        notes.append(f"demand: no regression cross-check ({exc}); the target's own CPU per link only")
    fit, floored = floor_zero_demands(fit, m.throughput, m.busy_cores)
    # a link the target attributes does not rest on the regression's zero
    floored = {l: d for l, d in floored.items()
               if not any(l in attributed.cpu_s.get(s, {}) for s in fit.services)}
    for link, d in floored.items():
        notes.append(f"demand: {link}'s CPU could not be separated from the other links' in these runs (the fit "
                     f"gave 0); its requests are costed at the run's pooled CPU per request, "
                     f"{d * 1e3:.3g} CPU-ms ± 100%")
    per_run = _per_run(m, spec.uncertainty.seed)

    D, SE = fit.demand_frame(), fit.standard_error_frame()
    reg_D, reg_SE = D.copy(), SE.copy()
    source: dict[str, str] = {}
    spread: dict[str, float | None] = {}
    per_run_total: dict[str, dict[str, float]] = {}
    for link in fit.links:
        covered = [s for s in fit.services if link in attributed.cpu_s.get(s, {})]
        for s in covered:
            D.loc[link, s] = attributed.cpu_s[s][link]
            SE.loc[link, s] = attributed.se_cpu_s[s][link]
        source[link] = "attributed" if covered else "regression"
        # per-run totals of the chosen source, and their spread added to each service's error
        runs: dict[str, float] = {}
        for s in fit.services:
            if s in covered:
                vals = attributed.per_run.get(s, {}).get(link, {})
            else:
                vals = {r: f.cpu_s_per_request.get(link, {}).get(s, 0.0) for r, f in per_run.items()}
            sd = _between_sd(list(vals.values()))
            if sd is not None:
                SE.loc[link, s] = float(np.hypot(SE.loc[link, s], sd))
            for r, v in vals.items():
                runs[r] = runs.get(r, 0.0) + v
        per_run_total[link] = runs if len(runs) >= 2 else {}
        spread[link] = _between_sd(list(runs.values())) if len(runs) >= 2 else None
    if any(v for v in source.values() if v == "attributed"):
        how = {"regressed": "regressed per link over the target's polls",
               "covered": "the event loop's own turns, spread equally (the links' own CPU covers most of the process's)",
               "inseparable": "spread equally (the polls could not separate the links)"}
        overhead = ", ".join(f"{s} {o * 1e3:.3g} CPU-ms per request on average, {how[attributed.overhead_shared[s]]}"
                             for s, o in attributed.overhead_cpu_s.items())
        speed = (f"; each polling interval read at the target's own core speed then, over the runs' "
                 f"{m.speed_units_per_cpu_s:,.0f} units per CPU-second" if m.speed_units_per_cpu_s else "")
        notes.append(f"demand: taken from the target's own CPU per link (link_cpu.csv: the CPU it charged each link per "
                     f"request plus what no link was charged for, after idle: {overhead}{speed}); the regression over "
                     "cpu.csv is the cross-check")
    final = fit.model_copy(update={
        "cpu_s_per_request": {l: {s: float(D.loc[l, s]) for s in fit.services} for l in fit.links},
        "standard_error_cpu_s": {l: {s: float(SE.loc[l, s]) for s in fit.services} for l in fit.links},
    })
    confused = {}
    for a, b in fit.unidentifiable:
        for x, y in ((a, b), (b, a)):
            if x != BASELINE:
                confused.setdefault(x, []).append(y)
    limit = spec.identification.max_relative_error
    out = []
    for link in links:
        if link not in fit.links:
            continue
        d, se = float(D.loc[link].sum()), float(np.sqrt((SE.loc[link] ** 2).sum()))
        rd, rse = float(reg_D.loc[link].sum()), float(np.sqrt((reg_SE.loc[link] ** 2).sum()))
        rel = se / d if d > 0 else None
        row = LinkIdentification(link=link, source=source[link], cpu_s_per_request=d, standard_error_cpu_s=se,
                                 relative_error=rel, between_runs_sd_cpu_s=spread[link],
                                 per_run_cpu_s=per_run_total[link], identified=True)
        if source[link] == "attributed":
            agree = abs(d - rd) <= max(AGREE_RELATIVE * d, AGREE_SIGMAS * float(np.hypot(se, rse)))
            row = row.model_copy(update={"regression_cpu_s": rd, "regression_se_cpu_s": rse, "agrees": bool(agree)})
            if not agree:
                notes.append(f"demand: {link}: the target attributes {d * 1e3:.3g} CPU-ms per request, the regression "
                             f"{rd * 1e3:.3g} ± {rse * 1e3:.2g}: they differ by more than {AGREE_RELATIVE:.0%} and "
                             f"{AGREE_SIGMAS:g} standard errors (the attribution is used; what no link is charged "
                             "for may not cost the same for every link)")
        reason, fix = "", ""
        if d <= 0 or link in floored:
            reason = "the runs gave it no CPU of its own (the fit put its demand at 0)"
            fix = CALIBRATION
        elif source[link] == "regression" and confused.get(link):
            others = ", ".join("the idle CPU" if o == BASELINE else o for o in confused[link])
            reason = f"the runs' rates of {link} moved together with {others}: the regression cannot separate them"
            fix = CALIBRATION.replace("the links", f"{link} and {others}")
        elif rel is not None and rel > limit:
            reason = (f"its demand {d * 1e3:.3g} ± {se * 1e3:.2g} CPU-ms has a relative error of {rel:.0%}, "
                      f"above the spec's identification.max_relative_error {limit:.0%}")
            fix = (f"a longer run with more {link} requests" if source[link] == "attributed" else CALIBRATION) + (
                "; several runs disagree" if spread[link] and spread[link] > 0.5 * se else "")
        if reason:
            row = row.model_copy(update={"identified": False, "reason": reason, "fix": fix})
        out.append(row)
    return final, out, notes
