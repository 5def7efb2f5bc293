"""The demand a plan sizes with, moved to where the nodes will run: to the utilization ceiling (a knee
search's anchor, or the rehearsal's demand extrapolated with a widened error) and to the night's machine
(speed units).

Demands are measured at the rehearsal's load (often 15–30% of a core). `load_adjustment` moves
them to the ceiling: with a knee search, each link's demand is scaled so that the mix it weighs
most in costs what the search measured at the ceiling (interpolated between its steps, or read on
its fitted curve d(u), `capacity_model.loaddemand`); the rehearsal's fit keeps only the split
between links (NNLS over time windows measures a marginal cost, not the average at one load).
Without one, demands stay as measured, with an error band that grows with the distance to the
ceiling, and a note that says so.

Speed units: demand times the measuring machine's speed reference (work units per CPU-second,
run.json `machine.speed_ref_*`) is work per request, the same on any machine; another machine's CPU
per request is that work over its own speed. `speed_ratio` gives the factor; `node_speed` turns a
declared node rating into `node.speed_vs_measured`.

Per phase mix p, the CPU per critical request is d_p = Σ_l r_pl·D_l / Σ_critical r_pl (every link
the phase carried, set-up traffic included, priced at its demand D_l summed over services).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capacity_model.contracts import Assumption, DemandFit, Measurements
from capacity_model.contracts.knee import KneeSearch, MixKnee
from capacity_model.loaddemand import EXTRAPOLATION_FLOOR, MEASURED_MARGIN, DemandAt, LoadDemandFit, fit_steps
from gala.contract.results import RunInfo

SATURATED = 0.93          # a knee search that pushed the node this far measured what it carries at most


# ------------------------------------------------------------------ machines

def run_speed(infos: list[RunInfo]) -> float | None:
    """Median speed reference (units per CPU-second) over the runs' start and end measurements."""
    refs = [r.get("units_per_cpu_s") for i in infos for r in (i.machine.speed_ref_start, i.machine.speed_ref_end) if r]
    refs = [float(x) for x in refs if x]
    return float(np.median(refs)) if refs else None


def run_cores(info: RunInfo) -> float:
    """Cores of one measured node: the CPU limit, else the declared cores per node, else (the built-in
    target, one Python process per core at most) its processes."""
    t = info.target
    declared = (t.model_extra or {}).get("cores_per_node")
    return float(t.cpu_limit_cores or declared or max(1, t.processes) / max(1, t.nodes))


SPEED_NOISE = 0.10  # measured: one VM's median references differ by up to 8% between searches minutes apart


def speed_ratio(model_speed: float | None, other_speed: float | None) -> float:
    """CPU-seconds on the other machine per CPU-second on the model's: work units are equal. A ratio within
    the reference's own noise between runs on one machine (the VM's slow and fast spells) is taken for 1:
    converting by it would add that noise, not remove a difference."""
    if not model_speed or not other_speed:
        return 1.0
    ratio = model_speed / other_speed
    return 1.0 if abs(ratio - 1.0) < SPEED_NOISE else ratio


# ------------------------------------------------------------------ load-dependent demand

@dataclass
class Anchor:
    """A knee mix's measured CPU per critical request at the ceiling (in the model machine's CPU-seconds)."""

    mix: str
    cpu_s: float
    rel_error: float
    rates: pd.Series   # the mix's rates per link (critical and others), as the knee measured them
    note: str
    saturation_rps_per_core: float | None = None  # the most the node carried once pushed (model machine's speed)


@dataclass
class LoadAdjust:
    """How the demands move from the rehearsal's load to the ceiling's: per knee mix an anchor (the
    measured CPU per request at the ceiling; the fit keeps only the split between links), per link
    the mix that anchors it; without a knee, per link the relative error of a linear extrapolation."""

    anchors: dict[str, Anchor] = field(default_factory=dict)
    home: dict[str, str] = field(default_factory=dict)              # link -> anchoring mix
    rel_error: dict[str, float] = field(default_factory=dict)       # link -> extrapolation error (no knee)
    notes: list[str] = field(default_factory=list)
    curves: dict[str, LoadDemandFit] = field(default_factory=dict)  # per knee mix
    measured_utilization: dict[str, float] = field(default_factory=dict)  # per link: the rehearsal's
    global_rel_error: float = 0.0  # every link's: the scale-out's extrapolation (capacity_model.scaleout)

    @property
    def source(self) -> str:
        return "load-dependent" if self.anchors else "linear"


def phase_utilization(m: Measurements, cores: float) -> pd.Series:
    """Mean busy cores of the target per phase over its windows, as a share of one node's cores."""
    busy = m.busy_cores.sum(axis=1)
    return busy.groupby(m.window_phase.to_numpy()).mean() / max(cores, 1e-9)


def _home_phase(m: Measurements, link: str) -> str | None:
    """The phase where the link had its largest share of the traffic."""
    if link not in m.phase_rps.columns:
        return None
    share = m.phase_rps[link] / m.phase_rps.sum(axis=1).where(lambda s: s > 0, 1)
    return str(share.idxmax()) if share.max() > 0 else None


def knee_rates(k: MixKnee) -> pd.Series:
    """A knee mix's rates per link (critical and others) over its steps, per critical request."""
    rows = [{**s.link_rps, **s.other_link_rps} for s in k.steps if s.achieved_rps > 0]
    if not rows:
        return pd.Series(k.fractions, dtype=float)
    frame = pd.DataFrame(rows).fillna(0.0)
    crit = frame[[l for l in k.fractions if l in frame.columns]].sum(axis=1)
    return frame.div(crit, axis=0).mean()


def load_adjustment(m: Measurements, links: list[str], cores: float, ceiling: float,
                    knees: list[KneeSearch] = (), model_speed: float | None = None) -> LoadAdjust:
    """Demand at the ceiling (see the module's docstring)."""
    out = LoadAdjust()
    util = phase_utilization(m, cores)
    # several node sizes: the largest node's anchors win (nearest the night's); the USL over sizes is scaleout's
    for search in sorted(knees, key=lambda k: k.node_cores or float(k.target_processes)):
        ratio = speed_ratio(search.speed_units_per_cpu_s, model_speed)  # knee CPU-s -> model CPU-s
        for k in search.mixes:
            try:
                curve = fit_steps(k.steps)
            except ValueError:
                continue
            at = curve.at(ceiling)
            out.curves[k.mix] = curve
            if k.cpu_ms_at_ceiling and k.ceiling == ceiling:
                # measured there (interpolated between the two steps around it): the curve only fills gaps
                trusted = not at.extrapolated and math.isfinite(at.rel_error)
                at = DemandAt(ceiling, k.cpu_ms_at_ceiling, at.rel_error if trusted else EXTRAPOLATION_FLOOR,
                              False, curve.u_max)
            if not math.isfinite(at.rel_error):  # the curve gives no positive cost there (loaddemand: at): no anchor
                out.notes.append(f"knee mix {k.mix}: its steps give no positive CPU per request at the {ceiling:.0%} "
                                 f"ceiling ({curve.intercept_ms:.3g} + {curve.slope_ms:.3g}·u CPU-ms): not used as an "
                                 "anchor; a search whose steps reach the ceiling would be")
                continue
            pushed = any((st.utilization or 0.0) >= SATURATED for st in k.steps)
            sat = (max(st.good_rps for st in k.steps) / k.node_cores / ratio) if pushed and k.node_cores else None
            out.anchors[k.mix] = Anchor(k.mix, at.cpu_ms / 1000.0 * ratio, at.rel_error, knee_rates(k),
                                        f"{curve.intercept_ms:.3g} + {curve.slope_ms:.3g}·u CPU-ms per request; {at.note}",
                                        sat)
    for link in links:
        phase = _home_phase(m, link)
        u = float(util.get(phase, np.nan)) if phase is not None else float("nan")
        if math.isfinite(u):
            out.measured_utilization[link] = u
        home = max(out.anchors.values(), key=lambda a: a.rates.get(link, 0.0), default=None)
        if home is not None and home.rates.get(link, 0.0) > 0:
            out.home[link] = home.mix
        elif math.isfinite(u) and u < ceiling - MEASURED_MARGIN:
            out.rel_error[link] = EXTRAPOLATION_FLOOR * (ceiling - u) / 0.1
            out.notes.append(f"{link}: figures extrapolated linearly from {u:.0%} utilization to the {ceiling:.0%} "
                             f"ceiling (no knee search): band widened by ±{out.rel_error[link]:.0%}; "
                             "run `gala probe` for the demand at the ceiling")
    return out


def link_scales(fit: DemandFit, adjust: LoadAdjust, critical: list[str]) -> dict[str, float]:
    """Per anchored link: the factor that makes its mix's demand the one measured at the ceiling."""
    out = {}
    for link, mix in adjust.home.items():
        a = adjust.anchors[mix]
        modelled = mix_demand(fit, a.rates, [l for l in critical if l in a.rates.index])
        if math.isfinite(modelled) and modelled > 0:
            out[link] = a.cpu_s / modelled
    return out


def adjust_fit(fit: DemandFit, adjust: LoadAdjust | None) -> DemandFit:
    """The demands moved to the ceiling, their standard errors widened by the adjustment's error."""
    if adjust is None or not (adjust.home or adjust.rel_error or adjust.global_rel_error):
        return fit
    scales = link_scales(fit, adjust, fit.links)
    for link, k in scales.items():
        a = adjust.anchors[adjust.home[link]]
        adjust.notes.append(f"{link}: demand at the ceiling = {k:.2f} × the rehearsal's fit, anchored on the knee "
                            f"search's mix {a.mix} ({a.cpu_s * 1000:.3g} CPU-ms per request there: {a.note})")
    d = {l: dict(v) for l, v in fit.cpu_s_per_request.items()}
    se = {l: dict(v) for l, v in fit.standard_error_cpu_s.items()}
    for link in d:
        k = scales.get(link, 1.0)
        rel = adjust.anchors[adjust.home[link]].rel_error if link in scales else adjust.rel_error.get(link, 0.0)
        rel = math.hypot(rel, adjust.global_rel_error)
        for s in d[link]:
            base, err = d[link][s], se[link].get(s, 0.0)
            d[link][s] = base * k
            se[link][s] = math.hypot(err * k, rel * base * k)
    return fit.model_copy(update={"cpu_s_per_request": d, "standard_error_cpu_s": se})


def node_speed(spec, model_speed: float | None, in_run_speed: float | None = None) -> str | None:
    """`node.speed_vs_measured`, unless the spec sets it: the node's rating while serving
    (`node.loaded_speed_units_per_cpu_s`) over the runs' in-run speed where the target sampled it, else the
    declared rating (`node.speed_units_per_cpu_s`) over the runs' speed reference at their ends; returns the
    note that says so."""
    rating, loaded = spec.node.speed_units_per_cpu_s, spec.node.loaded_speed_units_per_cpu_s
    if (rating is None and loaded is None) or "speed_vs_measured" in spec.node.model_fields_set:
        return None
    if loaded is not None and in_run_speed:
        spec.node.speed_vs_measured = loaded / in_run_speed
        return (f"node.speed_vs_measured = {spec.node.speed_vs_measured:.3f}: the node's rating while serving "
                f"{loaded:,.0f} over the {in_run_speed:,.0f} work units per CPU-second the target's core gave "
                "through the runs (demand in speed units, each interval at its own speed)")
    if rating is None:
        return (f"node.loaded_speed_units_per_cpu_s {loaded:g} is declared but the target sampled no speed in-run: "
                f"node.speed_vs_measured stays {spec.node.speed_vs_measured:g}")
    if not model_speed:
        return (f"node.speed_units_per_cpu_s {rating:g} is declared but the runs recorded no speed reference: "
                f"node.speed_vs_measured stays {spec.node.speed_vs_measured:g}")
    spec.node.speed_vs_measured = rating / model_speed
    return (f"node.speed_vs_measured = {spec.node.speed_vs_measured:.3f}: the node's rating {rating:,.0f} over the "
            f"measuring machine's {model_speed:,.0f} work units per CPU-second (demand in speed units)")


def assumptions(adjust: LoadAdjust, links: list[str], ceiling: float) -> list[Assumption]:
    """Rows for the plan's assumptions table: each link's demand at the ceiling, measured or extrapolated."""
    rows = []
    for link in links:
        u = adjust.measured_utilization.get(link)
        if link in adjust.home:
            a = adjust.anchors[adjust.home[link]]
            curve = adjust.curves[a.mix]
            rows.append(Assumption(figure=f"demand_at_ceiling.{link}", value=f"{a.cpu_s * 1000:.4g} CPU-ms per request "
                                   f"(mix {a.mix})", source="run",
                                   note=f"knee search, {curve.at(ceiling).note}"))
        elif u is not None:
            rows.append(Assumption(figure=f"demand_at_ceiling.{link}", value="the rehearsal's demand", source="assumed",
                                   note=f"extrapolated linearly from {u:.0%} utilization to {ceiling:.0%} "
                                        f"(±{adjust.rel_error.get(link, 0.0):.0%} added to its error)"))
    return rows


def mix_demand(fit: DemandFit, rates: pd.Series, critical: list[str]) -> float:
    """CPU-seconds per critical request of a mix given as rates per link (all links it carried)."""
    dem = fit.demand_frame().sum(axis=1)
    total = float(sum(rates.get(l, 0.0) for l in critical))
    if total <= 0:
        return float("nan")
    return float(sum(r * dem.get(l, 0.0) for l, r in rates.items() if r > 0)) / total
