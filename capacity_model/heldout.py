"""Operating points and held-out validation: what a plan predicts one node carries per phase mix
(at the utilization ceiling and at saturation), and the plan held against a knee search it never saw
(`gala plan A --validate KNEE`).

Per phase mix p, the CPU per critical request is d_p = Σ_l r_pl·D_l / Σ_critical r_pl, and a node of
C cores carries X = (u·C − U0) / d_p at utilization u (U0: the target's idle cores). The demand is the
plan's, moved to the ceiling and to the node's speed by `capacity_model.anchor`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from capacity_model.anchor import SATURATED, SPEED_NOISE, LoadAdjust, knee_rates, mix_demand, speed_ratio
from capacity_model.contracts import DemandFit, Measurements, Plan
from capacity_model.contracts.knee import KneeSearch, MixKnee, OperatingPoint

RPS_TOLERANCE = 0.10      # predicted req/s per node at the ceiling within this of the measured
P99_TOLERANCE = 0.20      # predicted p99 at the ceiling within this, when it can be validated
CPU_TOLERANCE = 0.15      # predicted target CPU of a step within this of the measured
QUOTA_PERIOD_MS = 100.0   # the cgroup quota's period (loadtests/orchestrator/cpulimit.py PERIOD_US)


# ------------------------------------------------------------------ operating points

def operating_point(fit: DemandFit, phase: str, rates: pd.Series, critical: list[str], cores: float,
                    ceiling: float, source: str = "linear", note: str = "",
                    saturation_cap_rps: float | None = None) -> OperatingPoint | None:
    """`saturation_cap_rps`: what a knee search measured the node to carry at most (a cost that grows with
    the queue collapses below the CPU's bound): the saturation point never promises more."""
    d = mix_demand(fit, rates, critical)
    if not math.isfinite(d) or d <= 0:
        return None
    idle = float(sum(fit.baseline_busy_cores.values()))
    at_c = max(0.0, ceiling * cores - idle) / d
    at_sat = max(0.0, cores - idle) / d
    if saturation_cap_rps is not None and saturation_cap_rps < at_sat:
        at_sat = max(saturation_cap_rps, at_c)
        note = (note + "; " if note else "") + "saturation as the knee search measured it (the node collapsed)"
    crit = {l: float(rates.get(l, 0.0)) for l in critical if rates.get(l, 0.0) > 0}
    total = sum(crit.values())
    return OperatingPoint(
        phase=phase, node_cores=cores, cpu_ms_per_request=d * 1000.0, idle_cores=idle,
        rps_per_node_at_ceiling=at_c, rps_per_node_at_saturation=at_sat, cpu_cores_at_ceiling=ceiling * cores,
        link_rps_per_node_at_ceiling={l: at_c * r / total for l, r in crit.items()},
        link_rps_per_node_at_saturation={l: at_sat * r / total for l, r in crit.items()},
        source=source, note=note)


def operating_points(plan: Plan, m: Measurements, cores: float, source: str = "linear",
                     adjust: LoadAdjust | None = None) -> list[OperatingPoint]:
    """Per measured phase, the night's node (`cores`, speed included) at the ceiling and at saturation."""
    if plan.demand is None:
        return []
    out = []
    for phase, rates in m.phase_rps.iterrows():
        a = adjust.anchors.get(str(phase)) if adjust is not None else None
        cap = a.saturation_rps_per_core * cores if a is not None and a.saturation_rps_per_core else None
        p = operating_point(plan.demand, str(phase), rates, plan.links, cores, plan.spec.utilization_ceiling, source,
                            saturation_cap_rps=cap)
        if p is not None:
            out.append(p)
    return out


# ------------------------------------------------------------------ held-out validation

@dataclass
class MixCheck:
    mix: str
    predicted_rps: float
    measured_rps: float | None
    passed: bool | None
    predicted_p99_ms: dict[str, float]
    measured_p99_ms: dict[str, float]
    p99_verdict: str          # "validated", "failed" or "not validated: why"
    cpu: list[tuple[float, float, float]]  # per step: offered req/s, predicted cores, measured cores
    cpu_passed: bool
    predicted_saturation_rps: float | None = None
    measured_saturation_rps: float | None = None  # the most the node carried, once it was pushed to saturation
    note: str = ""

    @property
    def overpromised(self) -> bool:
        """The model promises more than the node carried at saturation: the dangerous direction (under-planned)."""
        return (self.measured_saturation_rps is not None and self.predicted_saturation_rps is not None
                and self.predicted_saturation_rps > self.measured_saturation_rps * (1 + RPS_TOLERANCE))

    @property
    def rps_error(self) -> float | None:
        return None if not self.measured_rps else self.predicted_rps / self.measured_rps - 1.0


@dataclass
class HeldOut:
    model: str
    knee: str
    node_cores: float
    speed_ratio: float
    source: str
    mixes: list[MixCheck]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        checked = [c for c in self.mixes if c.passed is not None]
        return bool(checked) and all(c.passed for c in checked)

    def headline(self) -> str:
        parts = []
        for c in self.mixes:
            meas = "not measured" if c.measured_rps is None else f"measured {c.measured_rps:.0f} ({c.rps_error:+.0%})"
            over = (f", saturation over-promised ({c.predicted_saturation_rps:.0f} vs {c.measured_saturation_rps:.0f} "
                    "carried)") if c.overpromised else ""
            parts.append(f"{c.mix} predicted {c.predicted_rps:.0f} req/s per node at the ceiling, {meas}{over}")
        verdict = "PASSED" if self.passed else "FAILED"
        return f"held-out validation against {self.knee} ({self.source} demand): " + "; ".join(parts) + f": {verdict}"

    def as_json(self) -> dict:
        return {"model": self.model, "knee": self.knee, "node_cores": self.node_cores, "speed_ratio": self.speed_ratio,
                "source": self.source, "passed": self.passed, "notes": self.notes,
                "tolerance": {"rps_at_ceiling": RPS_TOLERANCE, "p99_at_ceiling": P99_TOLERANCE, "cpu": CPU_TOLERANCE},
                "mixes": [{"mix": c.mix, "predicted_rps_per_node_at_ceiling": c.predicted_rps,
                           "measured_rps_per_node_at_ceiling": c.measured_rps, "error": c.rps_error,
                           "passed": c.passed, "predicted_saturation_rps": c.predicted_saturation_rps,
                           "measured_saturation_rps": c.measured_saturation_rps, "overpromised": c.overpromised,
                           "predicted_p99_ms": c.predicted_p99_ms,
                           "measured_p99_ms": c.measured_p99_ms, "p99": c.p99_verdict, "cpu_passed": c.cpu_passed,
                           "cpu_by_step": [{"offered_rps": a, "predicted_cores": b, "measured_cores": x}
                                           for a, b, x in c.cpu], "note": c.note} for c in self.mixes]}

    def markdown(self) -> str:
        rows = [f"# Held-out validation: {self.model} against {self.knee}", "",
                f"Node: {self.node_cores:g} core(s); demand {self.source}; speed ratio {self.speed_ratio:.3f} "
                f"(model machine / knee machine, work units equal). Pass: req/s per node at the ceiling within "
                f"{RPS_TOLERANCE:.0%}, and no more than {RPS_TOLERANCE:.0%} promised at saturation than the node carried "
                f"(over-promising under-plans); p99 at the ceiling within {P99_TOLERANCE:.0%} where it can be "
                "validated.", "",
                "| mix | predicted req/s at ceiling | measured | error | saturation predicted / carried | p99 predicted / measured | p99 | CPU by step | verdict |",
                "|---|---:|---:|---:|---|---|---|---|---|"]
        for c in self.mixes:
            p99 = ", ".join(f"{l} {c.predicted_p99_ms[l]:.0f}/{c.measured_p99_ms.get(l, float('nan')):.0f} ms"
                            for l in c.predicted_p99_ms)
            cpu = "; ".join(f"{a:.0f}/s {b:.3f} vs {x:.3f}" for a, b, x in c.cpu)
            err = "—" if c.rps_error is None else f"{c.rps_error:+.1%}"
            meas = "—" if c.measured_rps is None else f"{c.measured_rps:.0f}"
            verdict = "—" if c.passed is None else ("pass" if c.passed else "FAIL")
            sat = "—" if c.measured_saturation_rps is None else \
                f"{c.predicted_saturation_rps:.0f} / {c.measured_saturation_rps:.0f}"
            rows.append(f"| {c.mix} | {c.predicted_rps:.0f} | {meas} | {err} | {sat} | {p99} | {c.p99_verdict} | {cpu} "
                        f"| {verdict} |")
        rows += [""] + [f"- {c.mix}: {c.note}" for c in self.mixes if c.note]
        rows += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(rows) + "\n"


def _mmc_p99_wait_ms(service_ms: float, rho: float, q: float) -> float:
    """M/M/1 waiting-time quantile (a fraction of a core serves one request at a time)."""
    if rho <= 0 or rho >= 1:
        return float("inf") if rho >= 1 else 0.0
    if 1 - q >= rho:
        return 0.0
    return service_ms / (1 - rho) * math.log(rho / (1 - q))


def validate_knee(plan: Plan, m: Measurements, knee: KneeSearch, *, model_speed: float | None,
                  base_latency_ms: dict[str, float], source: str = "linear", adjust: LoadAdjust | None = None) -> HeldOut:
    """Hold the plan's demands against a knee search: per mix, req/s per node at the ceiling, the
    p99 there, and the target CPU at each step's measured rates."""
    cores = knee.node_cores or 1.0
    ratio = speed_ratio(model_speed, knee.speed_units_per_cpu_s)
    fit = plan.demand
    out = HeldOut(model=", ".join(plan.run_ids), knee=knee.search_id, node_cores=cores, speed_ratio=ratio,
                  source=source, mixes=[])
    if fit is None:
        out.notes.append("the plan has no CPU demands (a black-box target): nothing to predict")
        return out
    scaled = fit.model_copy(update={
        "cpu_s_per_request": {l: {s: v * ratio for s, v in d.items()} for l, d in fit.cpu_s_per_request.items()}})
    if ratio != 1.0:
        out.notes.append(f"demand converted in speed units: the knee's machine did {1 / ratio:.3f}× the model's work "
                         "per CPU-second")
    elif model_speed and knee.speed_units_per_cpu_s:
        out.notes.append(f"speed references {model_speed:,.0f} (model) and {knee.speed_units_per_cpu_s:,.0f} (knee) "
                         f"differ by less than {SPEED_NOISE:.0%}, the reference's noise on one machine: not converted")
    ceiling = knee.ceiling
    for k in knee.mixes:
        rates = _mix_rates(m, k)
        a = adjust.anchors.get(k.mix) if adjust is not None else None
        cap = a.saturation_rps_per_core * cores / ratio if a is not None and a.saturation_rps_per_core else None
        p = operating_point(scaled, k.mix, rates, [l for l in plan.links if l in k.fractions], cores, ceiling, source,
                            saturation_cap_rps=cap)
        if p is None:
            out.notes.append(f"{k.mix}: the model has no demand for this mix's links")
            continue
        measured = k.rps_at_ceiling
        pushed = any((s.utilization or 0.0) >= SATURATED for s in k.steps)
        sat = max(s.good_rps for s in k.steps) if pushed and k.steps else None
        pred_p99, verdict = _p99(p, k, base_latency_ms, plan, cores, ceiling)
        cpu = [(s.intended_rps, _cores_at(scaled, rates, s), s.target_cpu_cores) for s in k.steps
               if s.target_cpu_cores is not None]
        cpu_ok = all(abs(b / x - 1) <= CPU_TOLERANCE for _, b, x in cpu if x > 0)
        note = "" if measured is not None else f"the knee search did not bracket the ceiling ({k.note})"
        check = MixCheck(mix=k.mix, predicted_rps=p.rps_per_node_at_ceiling, measured_rps=measured, passed=None,
                         predicted_p99_ms=pred_p99, measured_p99_ms=k.link_latency_ms_at_ceiling, p99_verdict=verdict,
                         cpu=cpu, cpu_passed=cpu_ok, predicted_saturation_rps=p.rps_per_node_at_saturation,
                         measured_saturation_rps=sat, note=note)
        within = None if measured is None else abs(p.rps_per_node_at_ceiling / measured - 1) <= RPS_TOLERANCE
        check.passed = (False if check.overpromised else within)
        if check.overpromised:
            check.note = (check.note + "; " if check.note else "") + (
                f"the model promises {p.rps_per_node_at_saturation:.0f} req/s at saturation, the node carried at most "
                f"{sat:.0f}: under-planned (its cost grows with load, or it collapses past the ceiling)")
        out.mixes.append(check)
    return out


def _mix_rates(m: Measurements, k: MixKnee) -> pd.Series:
    """The mix's rates per link as the knee search measured them (its other links, set-up traffic, included):
    the rehearsal's phase of that name also carried its ramp's set-up and the next phase's overlap."""
    return knee_rates(k)


def _cores_at(fit: DemandFit, rates: pd.Series, step) -> float:
    """Target cores the model predicts at a step's measured critical rates (other links in the mix's ratio)."""
    crit_total = sum(rates.get(l, 0.0) for l in step.link_rps)
    scale = step.achieved_rps / crit_total if crit_total > 0 else 0.0
    dem = fit.demand_frame().sum(axis=1)
    return float(sum(fit.baseline_busy_cores.values())) + float(sum(r * scale * dem.get(l, 0.0) for l, r in rates.items()))


def _p99(p: OperatingPoint, k: MixKnee, base: dict[str, float], plan: Plan, cores: float,
         ceiling: float) -> tuple[dict[str, float], str]:
    """Predicted p99 per link at the ceiling (low-load p99 + the node's M/M/1 wait), and whether it can be held
    against the measurement."""
    budgets = plan.spec.latency_budgets
    pred = {}
    for link in p.link_rps_per_node_at_ceiling:
        q = budgets[link].quantile if link in budgets else 0.99
        service_ms = p.cpu_ms_per_request / cores  # a fraction of a core takes that much longer per request
        pred[link] = base.get(link, 0.0) + _mmc_p99_wait_ms(service_ms, ceiling, q)
    measured = k.link_latency_ms_at_ceiling
    if not measured:
        return pred, "not validated: the knee search did not bracket the ceiling"
    below = [l for l in pred if measured.get(l) and base.get(l) and measured[l] < base[l]]
    if below:
        l = below[0]
        return pred, (f"not validated: {l}'s measured p99 at the ceiling ({measured[l]:.1f} ms) is below the low-load "
                      f"p99 the model adds its queue to ({base[l]:.1f} ms, from the rehearsal): the rehearsal's host "
                      "jitter, not the node's queue, set that base")
    if cores < 1:
        stall = (1 - cores) * QUOTA_PERIOD_MS
        if stall > 0.5 * max(pred.values()):
            return pred, (f"not validated: a node emulated by a CPU quota ({cores:g} core) runs at a full core's "
                          f"speed for {cores * QUOTA_PERIOD_MS:.0f} ms of each {QUOTA_PERIOD_MS:.0f} ms period and "
                          f"not at all for up to {stall:.0f} ms, comparable to the predicted p99: an M/M/1 queue of a "
                          f"{cores:g}-speed server does not describe its latency (measure p99 on whole cores)")
    ok = all(abs(pred[l] / measured[l] - 1) <= P99_TOLERANCE for l in pred if measured.get(l))
    return pred, "validated" if ok else "failed"
