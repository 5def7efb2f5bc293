"""Black-box capacity: per-node throughput of a link from a step-load run, when the target's CPU is unknown.

A step-load scenario (`loadtests/scenarios/probe.yaml`) raises each link's arrival rate in steps
against a target whose node count is declared (`gala run --target-nodes N`). Per link, the knee is
the highest step whose latency percentile stays within the link's budget and whose error ratio stays
under `MAX_ERROR_RATIO`; the link's capacity per node is that step's good throughput / N. (A step
whose achieved rate fell short of the intended one, with latency still within budget, was held back
by the users, not the target: its measured throughput still counts.) The Universal Scalability Law is fitted to the steps
(concurrency from Little's law), and across runs at several node counts when they exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capacity_model.contracts import CapacitySpec, LatencyBudget, USLFit, finite_or_none, percentile_column
from capacity_model.usl import fit_usl
from gala.contract.errors import InputError

MAX_ERROR_RATIO = 0.01   # assumed: a step failing more than 1% of requests is past the knee
MIN_ACHIEVED_RATIO = 0.9  # a knee below this share of its intended rate is said to be generator-limited
MIN_STEPS_FOR_USL = 3     # the USL has three parameters
MIN_SCALES_FOR_USL = 2    # across node counts, two scales fit sigma with kappa = 0
LINEAR_WITHIN = 0.10      # a smaller per-node drop across node counts is within the steps' resolution
MIN_USL_R2 = 0.8          # a worse fit describes noise (e.g. a step inflated by users starting), not the target


@dataclass
class ProbeResult:
    """A black-box link's knee, the capacity per node it implies, and the runs and steps behind it."""

    link: str
    capacity_per_node_rps: float
    knee_phase: str
    knee_run: str
    nodes: int
    budget: LatencyBudget | None
    steps: pd.DataFrame  # the link's steps: run_id, phase, rps, good_rps, latency, error_ratio, within
    lower_bound: bool  # the budget never broke: the capacity is at least this
    achieved_ratio: float | None = None  # the knee step's achieved / intended rate
    usl: USLFit | None = None
    scale_usl: USLFit | None = None
    rejected_usl: list[str] = field(default_factory=list)  # fits left out, and why

    @property
    def note(self) -> str:
        runs = ", ".join(dict.fromkeys(self.steps["run_id"]))
        budget = f"p{self.budget.percentile:g} <= {self.budget.latency_ms:g} ms" if self.budget else "no latency budget"
        bound = " (the budget never broke: a lower bound, so the plan errs on the safe side)" if self.lower_bound else ""
        if self.achieved_ratio is not None and self.achieved_ratio < MIN_ACHIEVED_RATIO:
            bound += (f"; that step reached only {self.achieved_ratio:.0%} of its intended rate (the users, not "
                      "the target, held it back: probe at higher rates for a tighter figure)")
        rejected = "".join(f"; {r}" for r in self.rejected_usl)
        return (f"link {self.link}: black-box, {self.capacity_per_node_rps:.4g} req/s per node at step "
                f"{self.knee_phase!r} of run {self.knee_run} ({self.nodes} nodes, {budget}, errors <= "
                f"{MAX_ERROR_RATIO:.0%}){bound}; steps from runs {runs}{rejected}")


def link_steps(rows: pd.DataFrame, link: str) -> pd.DataFrame:
    """The phases that stepped `link`: those meant to load it most (their intended rates), else those where
    it carried most of the requests, else every phase it saw."""
    mine = rows[(rows["link"] == link) & (rows["requests"] > 0)]
    for chosen in (mine[mine["intended_leader"] == link], mine[mine["share"] >= 0.5]):
        if not chosen.empty:
            return chosen.copy()
    return mine.copy()


def judge_steps(steps: pd.DataFrame, budget: LatencyBudget | None) -> pd.DataFrame:
    """Add `latency_ms` (the budget's percentile), `good_rps`, `concurrency` and `within` to a link's steps."""
    out = steps.copy()
    col = percentile_column(budget.percentile, ["p50", "p90", "p95", "p99"]) if budget else "p99"
    out["latency_ms"] = out[f"{col}_ms"].astype(float)
    out["good_rps"] = out["rps"].astype(float) * (1.0 - out["error_ratio"].astype(float))
    # Little's law: requests in flight = throughput x mean response time
    out["concurrency"] = out["rps"].astype(float) * out["mean_ms"].astype(float) / 1000.0
    ok = out["error_ratio"].astype(float) <= MAX_ERROR_RATIO
    if budget is not None:
        ok &= out["latency_ms"] <= budget.latency_ms
    out["within"] = ok
    return out.sort_values(["nodes", "rps"]).reset_index(drop=True)


def _fit(n: np.ndarray, x: np.ndarray, axis: str, min_points: int, rejected: list[str]) -> USLFit | None:
    """The USL over `axis`, or None (with the reason in `rejected`) when the points cannot support one."""
    if len(np.unique(n)) < min_points:
        return None
    try:
        fit = fit_usl(n, x, axis=axis)
    except (InputError, RuntimeError, ValueError):
        rejected.append(f"the USL over {axis} could not be fitted: the knee stands alone")
        return None
    if fit.r2 < MIN_USL_R2:
        rejected.append(f"the USL over {axis} fits the steps poorly (R² {fit.r2:.2f} < {MIN_USL_R2}): not used")
        return None
    return fit


def _scale_usl(per_run: pd.DataFrame, rejected: list[str]) -> USLFit | None:
    """The USL over node counts from each run's knee, when per-node capacity really falls with scale.

    Knees are only as fine as the probe's steps, and a small sigma extrapolated to thousands of
    nodes changes the plan by orders of magnitude: a drop within LINEAR_WITHIN is taken as linear.
    """
    if per_run["nodes"].nunique() < MIN_SCALES_FOR_USL:
        return None
    by_nodes = per_run.groupby("nodes")["per_node"].min().sort_index()
    drop = 1.0 - by_nodes.iloc[-1] / by_nodes.iloc[0]
    if drop < LINEAR_WITHIN:
        rejected.append(f"per-node capacity at {int(by_nodes.index[-1])} nodes is within {LINEAR_WITHIN:.0%} of "
                        f"{int(by_nodes.index[0])} node(s): scaled linearly")
        return None
    return _fit(per_run["nodes"].to_numpy(float), per_run["good_rps"].to_numpy(float), "nodes", MIN_SCALES_FOR_USL,
                rejected)


def probe_link(rows: pd.DataFrame, link: str, budget: LatencyBudget | None) -> ProbeResult:
    """The knee of one link over every step-load run given (rows: `runs.phase_steps`)."""
    steps = link_steps(rows, link)
    if steps.empty:
        raise InputError(f"link {link}: no target CPU was sampled and no run measured it; run the step-load "
                         "probe: gala run --scenario loadtests/scenarios/probe.yaml --host URL --target-nodes N")
    steps = judge_steps(steps, budget)
    knees = steps[steps["within"]]
    if knees.empty:
        low = steps.iloc[0]
        what = f"p{budget.percentile:g} {low['latency_ms']:.0f} ms > {budget.latency_ms:g} ms" if budget \
            else f"errors {low['error_ratio']:.1%}"
        raise InputError(f"link {link}: no step of runs {', '.join(dict.fromkeys(steps['run_id']))} stayed within "
                         f"its budget (lowest step {low['phase']!r}: {what}); start the probe at lower rates")
    # per run, the highest step within budget; the run with the most nodes is nearest the night
    per_run = knees.loc[knees.groupby("run_id")["good_rps"].idxmax()]
    per_run = per_run.assign(per_node=per_run["good_rps"] / per_run["nodes"].clip(lower=1))
    largest = per_run[per_run["nodes"] == per_run["nodes"].max()]
    knee = largest.loc[largest["per_node"].idxmin()]  # several runs at that scale: the most cautious
    run_steps = steps[steps["run_id"] == knee["run_id"]]
    lower_bound = bool(run_steps["within"].iloc[-1]) and knee["phase"] == run_steps["phase"].iloc[-1]
    nodes = int(knee["nodes"])
    rejected: list[str] = []
    # steps where other traffic dominated (users starting up: the setup link) distort latency, so concurrency
    own = run_steps[run_steps["share"] >= 0.5]
    own = own if len(own) >= MIN_STEPS_FOR_USL else run_steps
    usl = _fit(own["concurrency"].to_numpy() / nodes, own["good_rps"].to_numpy() / nodes, "concurrency",
               MIN_STEPS_FOR_USL, rejected)
    scale = _scale_usl(per_run, rejected)
    return ProbeResult(
        link=link, capacity_per_node_rps=float(knee["per_node"]), knee_phase=str(knee["phase"]),
        knee_run=str(knee["run_id"]), nodes=nodes, budget=budget, steps=steps, lower_bound=lower_bound,
        achieved_ratio=finite_or_none(pd.to_numeric(pd.Series([knee["achieved_ratio"]]), errors="coerce").iat[0]),
        usl=usl, scale_usl=scale, rejected_usl=rejected,
    )


def black_box_capacity(rows: pd.DataFrame, spec: CapacitySpec, links: list[str]) -> dict[str, ProbeResult]:
    """Per black-box link, its knee from the steps' rows (`runs.phase_steps`)."""
    return {link: probe_link(rows, link, spec.latency_budgets.get(link)) for link in links}
