"""The knee search's decisions (`gala probe`), pure: what one step measured, which rate to offer
next, and what a phase mix's steps say about a node's operating points.

A step is one short run of a phase's mix at one offered rate against a node (the target, usually
confined to a fraction of a core). The search climbs until a link's latency budget breaks (or
errors pass 1%), guided by the measured utilization (the rate at which CPU would reach the ceiling,
then saturation, estimated from the last step), then bisects the budget's edge and, when it is
wide, the ceiling's. It stops at once when the generator, not the target, is what saturated: a
generator process near a full core, or a rate well short of the offered one while the target had
headroom and every link was within budget. The loop that runs the steps is the orchestrator's
(`loadtests/orchestrator/knee.py`); everything it decides is here, testable on synthetic steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capacity_model.contracts import LatencyBudget, percentile_column
from capacity_model.contracts.knee import KneeStep, MixKnee, StopReason
from capacity_model.loaddemand import fit_load_demand
from gala.contract.results import Run

MAX_ERROR_RATIO = 0.01  # a step failing more than 1% of a link's requests broke that link
COLLAPSED = 0.9         # a saturated step that carried less than this share of its offered rate collapsed
CURVE_REACH = 0.15      # read the ceiling on the curve only from steps within this of it
NEAR = 0.45             # from this utilization on, the climb takes smaller strides


@dataclass(frozen=True)
class KneeConfig:
    ceiling: float = 0.7                # target CPU / node cores at which a node is full (the spec's)
    tolerance: float = 0.10             # bisect until the edge's bracket is this narrow (relative)
    max_growth: float = 3.0             # never offer more than this times the last rate in one step
    blind_growth: float = 1.5           # the climb's factor where the target's CPU is unknown
    near_growth: float = 1.35           # ... and from NEAR utilization on
    max_steps: int = 9                  # per mix
    generator_cpu_percent: float = 85.0  # a generator process this busy is saturated (of one core)
    min_achieved_ratio: float = 0.85     # a step that carried less, with the target not full, is the generator's
    saturated_utilization: float = 0.93  # a target this busy (of its cores) is saturated


def measure_step(run: Run, *, mix: str, index: int, phase: str, links: list[str],
                 budgets: dict[str, LatencyBudget], node_cores: float | None, trim_s: float = 0.5) -> KneeStep:
    """A step's figures from its results folder: the phase `phase` (the steady part of the step) of `run`."""
    rec = next(p for p in run.info.phases if p.name == phase)
    start = (rec.started_s or rec.planned_start_s) + trim_s
    end = rec.ended_s if rec.ended_s is not None else rec.planned_end_s
    stats = run.phase_link[run.phase_link["phase"] == phase].set_index("link")
    link_rps, latency, errors, broken = {}, {}, {}, []
    for link in links:
        budget = budgets.get(link)
        col = percentile_column(budget.percentile, ["p50", "p90", "p95", "p99"]) if budget else "p99"
        if link not in stats.index or stats.at[link, "requests"] <= 0:
            link_rps[link], latency[link], errors[link] = 0.0, 0.0, 0.0
            continue
        row = stats.loc[link]
        link_rps[link] = float(row["rps"])
        latency[link] = float(row[f"{col}_ms"])
        errors[link] = float(row["error_ratio"])
        if errors[link] > MAX_ERROR_RATIO or (budget is not None and latency[link] > budget.latency_ms):
            broken.append(link)
    achieved = sum(link_rps.values())
    good = sum(link_rps[l] * (1 - errors[l]) for l in links)
    intended = sum(v for k, v in rec.intended_rps.items() if k in links)
    others = {str(l): float(stats.at[l, "rps"]) for l in stats.index if l != "_all" and l not in links}

    cpu = run.cpu
    window = cpu[(cpu["t_s"] >= math.floor(start)) & (cpu["t_s"] < math.floor(end))]
    target = window[window["role"] == "target"]
    cores = util = cpu_ms = None
    if not target.empty:
        cores = float(target.groupby("t_s")["cpu_percent"].sum().mean() / 100.0)
        util = cores / node_cores if node_cores else None
        cpu_ms = cores / achieved * 1000.0 if achieved > 0 else None
    gen = window[window["role"] == "generator"]
    gen_pct = float(gen.groupby("pid")["cpu_percent"].mean().max()) if not gen.empty else 0.0
    refs = [r.get("units_per_cpu_s") for r in (run.info.machine.speed_ref_start, run.info.machine.speed_ref_end) if r]
    return KneeStep(
        mix=mix, index=index, run_id=run.run_id, intended_rps=intended, achieved_rps=achieved, good_rps=good,
        link_rps=link_rps, other_link_rps=others, link_latency_ms=latency, link_error_ratio=errors, broken_links=broken,
        target_cpu_cores=cores, utilization=util, cpu_ms_per_request=cpu_ms, generator_cpu_percent=gen_pct,
        speed_units_per_cpu_s=float(np.median(refs)) if refs else None, window_s=max(0.0, end - start),
    )


def generator_saturated(step: KneeStep, cfg: KneeConfig) -> str | None:
    """Why this step's limit was the generator's, or None. A target past the ceiling or a broken link
    explains a short rate (users wait for slow replies); a generator core near full does not."""
    if step.generator_cpu_percent >= cfg.generator_cpu_percent:
        return (f"a generator process used {step.generator_cpu_percent:.0f}% of a core at {step.intended_rps:.0f} "
                "req/s offered")
    # past the ceiling, queues explain a short rate: measured, a target whose cost grows with its queue read
    # 87% busy (of a 0.5-core quota) while carrying 30 of 52 req/s at 2.2 s, its generator 6% busy
    past_ceiling = step.utilization is not None and step.utilization >= cfg.ceiling
    if step.achieved_ratio < cfg.min_achieved_ratio and not step.broken_links and not past_ceiling:
        return (f"only {step.achieved_ratio:.0%} of the offered {step.intended_rps:.0f} req/s was carried while the "
                "target had headroom and every link was within budget")
    return None


def _collapsed(step: KneeStep, cfg: KneeConfig) -> bool:
    return step.achieved_ratio < COLLAPSED and (step.utilization or 0.0) >= cfg.saturated_utilization


def _broken(step: KneeStep, cfg: KneeConfig) -> bool:
    """Past the edge: a link over its budget, or the node no longer carrying what was offered (however
    lax the budget, a collapsed step is beyond the knee)."""
    return bool(step.broken_links) or _collapsed(step, cfg)


def _over(step: KneeStep, cfg: KneeConfig) -> bool:
    return step.utilization is not None and step.utilization >= cfg.ceiling


def next_rate(steps: list[KneeStep], cfg: KneeConfig) -> tuple[float | None, StopReason | None]:
    """The next rate to offer, or (None, why the mix is done)."""
    if not steps:
        raise ValueError("next_rate needs the first step")
    last = steps[-1]
    if generator_saturated(last, cfg):
        return None, "generator"
    if len(steps) >= cfg.max_steps:
        return None, "budget" if any(_broken(s, cfg) for s in steps) else "max-rate"
    ok = sorted((s for s in steps if not _broken(s, cfg)), key=lambda s: s.intended_rps)
    bad = sorted((s for s in steps if _broken(s, cfg)), key=lambda s: s.intended_rps)
    if not ok:  # the first rates already broke a budget: come down (at most three times)
        return (bad[0].intended_rps / 3.0, None) if len(steps) < 3 else (None, "budget")
    top = ok[-1]
    above = [s for s in bad if s.intended_rps > top.intended_rps]
    if not above:
        return _climb(steps, top, cfg), None
    hi = above[0]
    if hi.intended_rps / top.intended_rps > 1.0 + cfg.tolerance:
        return math.sqrt(top.intended_rps * hi.intended_rps), None
    # the budget's edge is narrow: narrow the ceiling's too when it was crossed in a wide stride
    below_c = [s for s in steps if s.utilization is not None and s.utilization < cfg.ceiling]
    above_c = [s for s in steps if _over(s, cfg)]
    if below_c and above_c:
        lo = max(below_c, key=lambda s: s.utilization)
        up = min(above_c, key=lambda s: s.utilization)
        wide = 1.0 + (cfg.tolerance / 2 if _collapsed(up, cfg) else 3 * cfg.tolerance)
        if up.intended_rps / lo.intended_rps > wide:
            return math.sqrt(lo.intended_rps * up.intended_rps), None
    elif above_c and not below_c and len(steps) < cfg.max_steps - 1:
        return min(s.intended_rps for s in steps) / 2.0, None  # never seen below the ceiling: measure there
    return None, "budget"


def _climb(steps: list[KneeStep], top: KneeStep, cfg: KneeConfig) -> float:
    """The next rate up from the highest step within budget, aimed past the next utilization mark."""
    r = top.intended_rps
    u = top.utilization
    if u is None or u <= 0:
        return r * cfg.blind_growth
    if u < cfg.ceiling:
        aim = r * cfg.ceiling / u * 1.05  # just past the ceiling, on a straight line through the step
        # near it, smaller strides: a cost that grows with load makes the straight line overshoot into a collapse
        growth = cfg.max_growth if u < NEAR else cfg.near_growth
        return min(r * growth, max(r * 1.2, aim))
    # past the ceiling: aim just past saturation, where queues (and the budget) break
    aim = r / u * 1.08
    return min(r * 1.6, max(r * 1.12, aim))


def _interp(x0: float, y0: float, x1: float, y1: float, x: float) -> float:
    return y0 if x1 == x0 else y0 + (x - x0) * (y1 - y0) / (x1 - x0)


def summarize(mix: str, fractions: dict[str, float], steps: list[KneeStep], cfg: KneeConfig,
              node_cores: float | None, stop: StopReason) -> MixKnee:
    """A mix's operating points per node from its steps (measured, or interpolated between two measured steps)."""
    out = MixKnee(mix=mix, fractions=fractions, node_cores=node_cores, ceiling=cfg.ceiling, steps=steps,
                  stop_reason=stop, generator_limited=stop == "generator")
    if not steps:
        return out
    notes = []
    known = sorted((s for s in steps if s.utilization is not None), key=lambda s: s.utilization)
    below = [s for s in known if s.utilization < cfg.ceiling]
    above = [s for s in known if s.utilization >= cfg.ceiling]
    # a step past saturation that carried far less than offered measures a collapse (a cost that grows
    # with the queue), not the way up to the ceiling: never interpolate towards it
    held = [s for s in above if not _collapsed(s, cfg)]
    if below and not held and node_cores:
        curve = fit_load_demand(np.array([s.utilization for s in known]), np.array([s.cpu_ms_per_request for s in known]))
        at = curve.at(cfg.ceiling)
        if at.from_utilization >= cfg.ceiling - CURVE_REACH:
            out.rps_at_ceiling = cfg.ceiling * node_cores / (at.cpu_ms / 1000.0)
            out.cpu_ms_at_ceiling = at.cpu_ms
            out.link_rps_at_ceiling = {l: out.rps_at_ceiling * f for l, f in fractions.items()}
            lo = below[-1]
            out.link_latency_ms_at_ceiling = dict(lo.link_latency_ms)
            notes.append(f"the steps past the ceiling collapsed (carried far less than offered): the rate at the ceiling "
                         f"is read on the CPU-per-request curve, {at.note}")
        above = []
    elif held:
        above = held
    if below and above:
        lo, hi = below[-1], above[0]
        out.rps_at_ceiling = _interp(lo.utilization, lo.good_rps, hi.utilization, hi.good_rps, cfg.ceiling)
        out.ceiling_interpolated = True
        if lo.cpu_ms_per_request is not None and hi.cpu_ms_per_request is not None:
            out.cpu_ms_at_ceiling = _interp(lo.utilization, lo.cpu_ms_per_request, hi.utilization,
                                            hi.cpu_ms_per_request, cfg.ceiling)
        out.link_rps_at_ceiling = {l: out.rps_at_ceiling * f for l, f in fractions.items()}
        out.link_latency_ms_at_ceiling = {
            l: _interp(lo.utilization, lo.link_latency_ms.get(l, 0.0), hi.utilization, hi.link_latency_ms.get(l, 0.0),
                       cfg.ceiling) for l in fractions}
    elif known and not above and out.rps_at_ceiling is None:
        notes.append(f"CPU never reached the {cfg.ceiling:.0%} ceiling (highest {known[-1].utilization:.0%})")
    elif above:
        notes.append(f"every step was past the {cfg.ceiling:.0%} ceiling (lowest {above[0].utilization:.0%})")
    ok = [s for s in steps if not _broken(s, cfg)]
    if ok:
        best = max(ok, key=lambda s: s.good_rps)
        out.rps_at_budget = best.good_rps
        out.link_rps_at_budget = {l: best.link_rps.get(l, 0.0) * (1 - best.link_error_ratio.get(l, 0.0))
                                  for l in fractions}
        out.budget_lower_bound = not any(_broken(s, cfg) for s in steps)
        if out.budget_lower_bound:
            notes.append("no step broke a budget: the rate within budget is a lower bound")
    else:
        notes.append("every step broke a budget: start lower")
    top = max(steps, key=lambda s: s.good_rps)
    if top.utilization is not None and top.utilization >= cfg.saturated_utilization:
        out.rps_at_saturation = top.good_rps
    if stop == "generator":
        notes.insert(0, "the generator saturated first: these figures are the generator's limit, not the node's "
                        f"({generator_saturated(steps[-1], cfg) or 'see the last step'})")
    out.note = "; ".join(notes)
    return out


def steps_frame(steps: list[KneeStep]) -> pd.DataFrame:
    """The steps as a table (one row per step), for reports and fits."""
    return pd.DataFrame([{
        "mix": s.mix, "index": s.index, "run_id": s.run_id, "intended_rps": s.intended_rps,
        "achieved_rps": s.achieved_rps, "good_rps": s.good_rps, "target_cpu_cores": s.target_cpu_cores,
        "utilization": s.utilization, "cpu_ms_per_request": s.cpu_ms_per_request,
        "generator_cpu_percent": s.generator_cpu_percent, "broken": ",".join(s.broken_links),
        **{f"{l}_latency_ms": v for l, v in s.link_latency_ms.items()},
    } for s in steps])
