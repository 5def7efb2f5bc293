"""Validation (step 6 of the capacity model): a plan's model held against a run at a known allocation.

The model is what the plan fitted on its runs: the demands D[link, service] and idle cores U0. The
validated run ran the target at a known allocation (its nodes/processes, as run.json records them);
at the per-link rates it measured in each phase, the model predicts
  - each target service's busy cores, U0 + sum_l X_l D[l, s] (and as a fraction of the run's cores);
  - each planned link's latency percentile: the plan's low-load percentile plus, per service the link
    passes through, the M/M/c waiting-time quantile with c = the run's cores, the service's arrivals
    sum_l X_l and its offered load sum_l X_l D[l, s] (as the sizing does, at the union-bound quantile);
and compares with what the run measured over the same seconds (cpu.csv, and the phase's histogram).

Phases overlap, so a phase's seconds are those attributed to it (results/README.md's rule) and both
X and U are means over exactly those seconds (phase_link_stats.csv's rps divides by the whole phase
duration, overlap included, and would not line up with the CPU).

Pure functions: `capacity_model.api` reads the folders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import linprog

from capacity_model.attribution import attributed_demand
from capacity_model.contracts import Measurements, Plan, finite_or_none, percentile_column
from capacity_model.identify import regress
from capacity_model.queueing import wait_quantile
from gala.contract.errors import InputError

# a link's phase rate this far outside the fit's per-second range is an extrapolation worth a warning
RANGE_SLACK = 0.05


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")


class Tolerance(_Model):
    """How far a prediction may miss and still pass.

    CPU: max(cpu_cores, cpu_relative x measured, cpu_sigmas x the standard error of the difference).
    The error of a phase's prediction is the fit's (the demands' bootstrap standard errors times the
    phase's rates: 0.012-0.023 cores for a 20-second rehearsal of the built-in target) plus the noise
    of the measured phase mean (per-second std / sqrt(seconds): ~0.005-0.015 cores); 3 standard errors
    of the two together (~0.05-0.06 cores) is what a correct model misses by at most, nearly always. 0.05
    cores is also the CPU sampler's per-second jitter on the built-in target, a floor for short phases;
    15% is the drift of CPU-seconds per request between runs of the same target at different times on a
    shared machine (measured between two short rehearsals: 2-19%, 0.003-0.034 cores). A model whose
    demand is off by a factor of two misses by ~50%: far outside.
    Latency: a p99 of a few thousand requests rests on a few dozen samples in 1 ms buckets, and the
    Erlang C waiting time is a model of a FCFS queue, not of an event loop: within 5 ms or 50%.
    """

    cpu_cores: float = Field(0.05, ge=0)
    cpu_relative: float = Field(0.15, ge=0)
    cpu_sigmas: float = Field(3.0, ge=0)
    latency_ms: float = Field(5.0, ge=0)
    latency_relative: float = Field(0.5, ge=0)


class CpuCheck(_Model):
    """One target service in one phase: predicted and measured busy cores."""

    phase: str
    service: str
    windows: int  # seconds of the phase with both throughput and CPU
    predicted_cores: float
    predicted_se_cores: float  # from the demands' bootstrap standard errors
    measured_cores: float
    measured_se_cores: float  # of the phase mean: per-second std / sqrt(seconds)
    allocation_cores: float  # cores of the validated run's target (nodes x cores per node)
    predicted_utilization: float
    measured_utilization: float
    error_cores: float  # predicted - measured
    relative_error: float | None  # error / measured
    tolerance_cores: float
    passed: bool


class LatencyCheck(_Model):
    """One planned link in one phase: predicted and measured latency percentile."""

    phase: str
    link: str
    percentile: float
    rate_per_s: float
    utilization: float  # the busiest of the link's services, model load over the run's cores
    predicted_ms: float | None  # None: the queue is unstable at this load, or the model has no base latency
    measured_ms: float | None
    error_ms: float | None
    relative_error: float | None
    tolerance_ms: float | None
    passed: bool | None  # None: not comparable (see why)
    why: str = ""


class LinkCheck(_Model):
    """One planned link's CPU per request: the plan's against what the validated run measured for it
    (its target's own attribution per link where it has one, else its own regression). A total that
    matches can hide a wrong split between links (issue 10: runs whose plans differed 1.76x both passed)."""

    link: str
    model_cpu_s: float
    model_se_cpu_s: float
    observed_cpu_s: float
    observed_se_cpu_s: float
    observed_source: str  # "attributed" or "regression"
    relative_error: float | None  # model / observed - 1
    tolerance_cpu_s: float
    passed: bool


class Validation(_Model):
    """A plan's model against a run at a known allocation (`validation.json` is its dump)."""

    model_run_ids: list[str]
    validated_run_id: str
    allocation_nodes: int
    allocation_cores: float
    baseline_scale: float  # the model's idle cores times this: the validated run's processes / the model's
    tolerance: Tolerance
    cpu: list[CpuCheck]
    latency: list[LatencyCheck]
    extrapolation: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    links: list[LinkCheck] = Field(default_factory=list)

    @property
    def cpu_passed(self) -> bool:
        return bool(self.cpu) and all(c.passed for c in self.cpu) and all(c.passed for c in self.links)

    @property
    def latency_passed(self) -> bool:
        return all(c.passed is not False for c in self.latency)

    @property
    def passed(self) -> bool:
        return self.cpu_passed and self.latency_passed

    def headline(self) -> str:
        worst = max(self.cpu, key=lambda c: abs(c.error_cores))
        lat = [c for c in self.latency if c.passed is not None]
        verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
        text = (f"validation against {self.validated_run_id}: CPU {verdict(self.cpu_passed)} "
                f"({sum(c.passed for c in self.cpu)}/{len(self.cpu)} phase/service within tolerance; worst "
                f"{worst.phase}/{worst.service}: predicted {worst.predicted_cores:.3f}, measured "
                f"{worst.measured_cores:.3f} cores); latency {verdict(self.latency_passed)} "
                f"({sum(bool(c.passed) for c in lat)}/{len(lat)} phase/link within tolerance)")
        if self.links:
            bad = [c.link for c in self.links if not c.passed]
            text += (f"; per link {verdict(not bad)} ({len(self.links) - len(bad)}/{len(self.links)} links' CPU per "
                     f"request within tolerance" + (f"; off: {', '.join(bad)}" if bad else "") + ")")
        if self.extrapolation:
            text += f"; {len(self.extrapolation)} extrapolation warning(s)"
        return text


# ------------------------------------------------------------------ per-phase means

def phase_means(m: Measurements) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    """(phase x link mean req/s, phase x service mean busy cores, its standard error, windows per phase)
    over the seconds attributed to each phase, phases in the order they first ran."""
    phase = m.window_phase.reindex(m.throughput.index).astype(str)
    order = list(dict.fromkeys(p for p in phase if p))
    keep = (phase != "").to_numpy()
    x = m.throughput[keep].groupby(phase[keep].to_numpy()).mean().reindex(order)
    by = m.busy_cores[keep].groupby(phase[keep].to_numpy())
    u, u_se = by.mean().reindex(order), by.sem().reindex(order).fillna(0.0)
    n = phase[keep].value_counts().reindex(order).astype(int)
    return x.rename_axis("phase"), u.rename_axis("phase"), u_se.rename_axis("phase"), n


# ------------------------------------------------------------------ predictions

def predict_cpu(plan: Plan, rates: pd.DataFrame, baseline_scale: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(phase x service busy cores U0 + X D, its standard error from the demands' standard errors)."""
    fit = plan.demand
    D, SE = fit.demand_frame(), fit.standard_error_frame()
    X = rates.reindex(columns=D.index, fill_value=0.0).fillna(0.0)
    u0 = pd.Series(fit.baseline_busy_cores).reindex(D.columns).fillna(0.0) * baseline_scale
    pred = X @ D + u0
    se = np.sqrt((X ** 2) @ (SE ** 2))
    return pred, se


def predict_latency(plan: Plan, rates: pd.DataFrame, cores: float) -> pd.DataFrame:
    """Per (phase, link) of the planned cpu-demand links with a budget: percentile, rate, utilization and
    predicted latency (ms; inf when a service's queue is unstable)."""
    fit = plan.demand
    D = fit.demand_frame()
    X = rates.reindex(columns=D.index, fill_value=0.0).fillna(0.0).to_numpy()  # (phases, links)
    arrivals = X @ (D.to_numpy() > 0)  # (phases, services): requests that pass through each service
    load = X @ D.to_numpy()  # offered load in cores
    rows = []
    for s in plan.sizing:
        if s.method != "cpu-demand" or s.budget is None or not s.services:
            continue
        idx = [fit.services.index(p.service) for p in s.services]
        lam, a = arrivals[:, idx], load[:, idx]
        q_stage = 1.0 - (1.0 - s.budget.quantile) / len(idx)
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = np.where(a > 0, lam / a, np.inf)
            wait_ms = np.where(lam > 0, wait_quantile(q_stage, cores, lam, mu) * 1000.0, 0.0)
        util = a / cores
        lat = (s.base_latency_ms if s.base_latency_ms is not None else np.nan) + wait_ms.sum(axis=1)
        link_rate = rates[s.link].to_numpy(float) if s.link in rates else np.zeros(len(rates))
        rows += [{"phase": ph, "link": s.link, "percentile": s.budget.percentile, "rate_per_s": link_rate[k],
                  "utilization": float(util[k].max()), "predicted_ms": float(lat[k]),
                  "base_ms": s.base_latency_ms} for k, ph in enumerate(rates.index)]
    return pd.DataFrame(rows, columns=["phase", "link", "percentile", "rate_per_s", "utilization",
                                       "predicted_ms", "base_ms"])


# ------------------------------------------------------------------ extrapolation

def extrapolation(model_rates: pd.DataFrame, rates: pd.DataFrame, model_name: str) -> list[str]:
    """Where the validated run's phase mixes lie outside what the model's windows saw: per link beyond
    the per-second range (by more than RANGE_SLACK), and per phase outside the windows' convex hull."""
    out = []
    links = [l for l in rates.columns if (rates[l] > 0).any()]
    unseen = [l for l in links if l not in model_rates.columns or not (model_rates[l] > 0).any()]
    if unseen:
        out.append(f"link(s) {', '.join(unseen)} never ran in {model_name}: the model has no demand for them, "
                   "so their CPU is missing from every prediction")
    seen = [l for l in links if l not in unseen]
    lo, hi = model_rates[seen].min(), model_rates[seen].max()
    over = rates[seen].gt(hi * (1 + RANGE_SLACK)) | rates[seen].lt(lo * (1 - RANGE_SLACK))
    for phase, link in zip(*np.nonzero(over.to_numpy())):
        p, l = rates.index[phase], seen[link]
        out.append(f"phase {p}: {l} at {rates.at[p, l]:.4g} req/s is outside the {lo[l]:.4g}..{hi[l]:.4g} req/s "
                   f"{model_name}'s windows saw: the prediction extrapolates")
    pts = model_rates[seen].to_numpy(float)
    for p, x in rates[seen].iterrows():
        if over.loc[p].any() or not len(pts):
            continue
        # a convex combination of the model's windows equal to this mix: an LP feasibility problem
        res = linprog(np.zeros(len(pts)), A_eq=np.vstack([pts.T, np.ones(len(pts))]),
                      b_eq=np.append(x.to_numpy(float), 1.0), bounds=(0, None), method="highs")
        if res.status == 2:
            out.append(f"phase {p}: each link's rate is within what {model_name} saw, but not this mix of them "
                       "(outside the convex hull of its windows): the prediction extrapolates")
    return out


# ------------------------------------------------------------------ the comparison

def _relative(err: np.ndarray, measured: np.ndarray) -> list[float | None]:
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = err / measured
    return [finite_or_none(v) for v in rel]


def cpu_checks(pred: pd.DataFrame, se: pd.DataFrame, measured: pd.DataFrame, measured_se: pd.DataFrame,
               windows: pd.Series, cores: float, tol: Tolerance) -> list[CpuCheck]:
    services = [s for s in pred.columns if s in measured.columns]
    phases = [p for p in pred.index if p in measured.index and not measured.loc[p, services].isna().any()]
    P, M = pred.loc[phases, services].to_numpy(float), measured.loc[phases, services].to_numpy(float)
    S, SM = se.loc[phases, services].to_numpy(float), measured_se.loc[phases, services].to_numpy(float)
    err = P - M
    allowed = np.maximum.reduce([np.full_like(M, tol.cpu_cores), tol.cpu_relative * np.abs(M),
                                 tol.cpu_sigmas * np.hypot(S, SM)])
    rel = np.array(_relative(err.ravel(), M.ravel()), dtype=object).reshape(err.shape)
    return [CpuCheck(phase=p, service=s, windows=int(windows.get(p, 0)), predicted_cores=P[i, j],
                     predicted_se_cores=S[i, j], measured_cores=M[i, j], measured_se_cores=SM[i, j],
                     allocation_cores=cores,
                     predicted_utilization=P[i, j] / cores, measured_utilization=M[i, j] / cores,
                     error_cores=err[i, j], relative_error=rel[i, j], tolerance_cores=allowed[i, j],
                     passed=bool(abs(err[i, j]) <= allowed[i, j]))
            for i, p in enumerate(phases) for j, s in enumerate(services)]


def latency_checks(pred: pd.DataFrame, measured_ms: pd.DataFrame, tol: Tolerance) -> list[LatencyCheck]:
    out = []
    cols = list(measured_ms.columns)
    for r in pred.itertuples(index=False):
        key = (r.phase, r.link)
        meas = float(measured_ms.at[key, percentile_column(r.percentile, cols)]) if key in measured_ms.index else None
        meas = finite_or_none(meas)
        if meas is None and r.rate_per_s <= 0:
            continue  # the link did not run in this phase: nothing to predict or compare
        predicted = finite_or_none(r.predicted_ms)
        why = ""
        if meas is None:
            why = "the run measured no request of this link in this phase"
        elif r.base_ms is None:
            why = "the model measured no low-load percentile for this link"
        elif predicted is None:
            why = f"the model's queue is unstable at utilization {r.utilization:.2f} (>= 1)"
        if why:
            out.append(LatencyCheck(phase=r.phase, link=r.link, percentile=r.percentile, rate_per_s=r.rate_per_s,
                                    utilization=r.utilization, predicted_ms=predicted, measured_ms=meas,
                                    error_ms=None, relative_error=None, tolerance_ms=None, passed=None, why=why))
            continue
        err = predicted - meas
        allowed = max(tol.latency_ms, tol.latency_relative * abs(meas))
        out.append(LatencyCheck(phase=r.phase, link=r.link, percentile=r.percentile, rate_per_s=r.rate_per_s,
                                utilization=r.utilization, predicted_ms=predicted, measured_ms=meas, error_ms=err,
                                relative_error=_relative(np.array([err]), np.array([meas]))[0],
                                tolerance_ms=allowed, passed=bool(abs(err) <= allowed)))
    return out


def validate(plan: Plan, model: Measurements, observed: Measurements, *, observed_run_id: str,
             baseline_scale: float = 1.0, tolerance: Tolerance | None = None) -> Validation:
    """Hold the plan's fitted model against `observed`, a run at a known allocation (its measured nodes
    and cores per node). `baseline_scale`: the observed run's target processes over the model's."""
    tol = tolerance or Tolerance()
    if plan.demand is None:
        raise InputError(f"--validate {observed_run_id}: the plan has no CPU demand fit to predict from "
                         f"(runs {', '.join(plan.run_ids)} have no target CPU samples)")
    if observed.busy_cores.shape[1] == 0 or observed.busy_cores.empty:
        raise InputError(f"--validate {observed_run_id}: cpu.csv has no target CPU samples; expected a run of a "
                         "target whose CPU gala reads (the built-in target, or --target-pid)")
    notes = []
    common = [s for s in plan.demand.services if s in observed.busy_cores.columns]
    if not common:
        raise InputError(f"--validate {observed_run_id}: its target services ({', '.join(observed.busy_cores.columns)}) "
                         f"share none with the model's ({', '.join(plan.demand.services)})")
    missing = [s for s in plan.demand.services if s not in common]
    if missing:
        notes.append(f"services {', '.join(missing)} of the model are not in {observed_run_id}: not compared")
    cores = float(observed.measured_nodes * observed.measured_cores_per_node)
    rates, busy, busy_se, windows = phase_means(observed)
    pred, se = predict_cpu(plan, rates, baseline_scale)
    model_name = "the model run" + ("s" if len(plan.run_ids) > 1 else "") + f" ({', '.join(plan.run_ids)})"
    extra = extrapolation(model.throughput, rates, model_name)
    if observed_run_id in plan.run_ids:
        notes.append(f"{observed_run_id} is one of the runs the model was fitted on: an in-sample check, "
                     "not a validation")
    return Validation(
        model_run_ids=list(plan.run_ids), validated_run_id=observed_run_id,
        allocation_nodes=observed.measured_nodes, allocation_cores=cores, baseline_scale=baseline_scale,
        tolerance=tol,
        cpu=cpu_checks(pred[common], se[common], busy, busy_se, windows, cores, tol),
        latency=latency_checks(predict_latency(plan, rates, cores), observed.phase_latency_ms, tol),
        extrapolation=extra, notes=notes, links=link_checks(plan, observed, tol),
    )


# without a Monte Carlo band: a link's demand may miss by 1.645 of its standard errors (the p5-p95
# half-width), or by cpu_relative (15%: the drift of CPU per request between runs of one target)
LINK_BAND_Z = 1.645


def _band_half_width(plan: Plan, link: str) -> float | None:
    """The relative half-width of the link's p5-p95 node band: how far the plan itself says it may be off."""
    q = plan.uncertainty.links.get(link) if plan.uncertainty is not None else None
    if q is None or q.p50 <= 0:
        return None
    return (q.p95 - q.p5) / (2.0 * q.p50)


def link_checks(plan: Plan, observed: Measurements, tol: Tolerance) -> list[LinkCheck]:
    """Each sized link's CPU per request against the validated run's own figure for it. Tolerance: the
    relative half-width of the link's own p5-p95 node band (nodes scale with demand), so two runs whose
    plans differ by more than the band do not both pass; without a band, max(cpu_relative, LINK_BAND_Z
    standard errors)."""
    if plan.demand is None:
        return []
    common = [s for s in plan.demand.services if s in observed.busy_cores.columns]
    att = (attributed_demand(observed.link_cpu, observed.idle_cores, observed.speed_units_per_cpu_s)
           if observed.link_cpu else None)
    try:
        reg = regress(observed, seed=plan.spec.uncertainty.seed)
    except InputError:
        reg = None
    out = []
    for link in plan.allocation.nodes():
        if plan.methods.get(link) != "cpu-demand" or link not in plan.demand.links:
            continue
        d_m = se_m = d_o = se_o = 0.0
        sources = set()
        for s in common:
            if att is not None and link in att.cpu_s.get(s, {}):
                d, e = att.cpu_s[s][link], att.se_cpu_s[s][link]
                sources.add("attributed")
            elif reg is not None and link in reg.links:
                d, e = reg.cpu_s_per_request[link].get(s, 0.0), reg.standard_error_cpu_s[link].get(s, 0.0)
                sources.add("regression")
            else:
                continue
            d_o, se_o = d_o + d, float(np.hypot(se_o, e))
            d_m += plan.demand.cpu_s_per_request[link].get(s, 0.0)
            se_m = float(np.hypot(se_m, plan.demand.standard_error_cpu_s[link].get(s, 0.0)))
        if not sources or d_o <= 0:
            continue
        half = _band_half_width(plan, link)
        allowed = half * d_m if half is not None else max(tol.cpu_relative * d_m, LINK_BAND_Z * se_m)
        out.append(LinkCheck(link=link, model_cpu_s=d_m, model_se_cpu_s=se_m, observed_cpu_s=d_o,
                             observed_se_cpu_s=se_o, observed_source="+".join(sorted(sources)),
                             relative_error=d_m / d_o - 1, tolerance_cpu_s=allowed, passed=abs(d_m - d_o) <= allowed))
    return out
