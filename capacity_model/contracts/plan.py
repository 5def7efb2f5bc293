"""Every result a plan holds, down to `Plan` (`plan.json` is its JSON dump): demand fits, USL fits,
sizings, the allocation, the Monte Carlo bands, mixes and what-ifs."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import Field

from capacity_model.contracts.base import Method, _Result
from capacity_model.contracts.spec import Assumption, CapacitySpec, LatencyBudget

class DemandFit(_Result):
    """Service demands D[link, service] (CPU-seconds per request) from NNLS over time windows."""

    links: list[str]
    services: list[str]
    cpu_s_per_request: dict[str, dict[str, float]]  # link -> service -> D
    standard_error_cpu_s: dict[str, dict[str, float]]  # link -> service -> bootstrap standard error
    baseline_busy_cores: dict[str, float]  # service -> U0 (cores busy with no request)
    r2: dict[str, float]  # service -> R^2 of its fit
    residual_std_cores: dict[str, float]  # service -> std of the residuals
    condition_number: float  # of the column-scaled design [1, X]
    unidentifiable: list[tuple[str, str]] = Field(default_factory=list)  # pairs (link, link or "U0")
    windows: int
    bootstrap_draws: int
    # service -> True when its idle was measured before the load and subtracted (no intercept fitted)
    idle_measured: dict[str, bool] = Field(default_factory=dict)
    window_s: float = 1.0  # seconds per fit window (longer where CPU ticks were not aligned to the counts)

    def demand_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.cpu_s_per_request).T.reindex(index=self.links, columns=self.services).fillna(0.0)

    def standard_error_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.standard_error_cpu_s).T.reindex(index=self.links, columns=self.services).fillna(0.0)


class USLFit(_Result):
    """Universal Scalability Law X(N) = lambda N / (1 + sigma (N-1) + kappa N (N-1))."""

    sigma: float
    kappa: float
    lambda_rps: float
    r2: float
    n_points: int
    axis: Literal["concurrency", "nodes"] = "nodes"
    n_star: float | None = None  # N of peak throughput, sqrt((1 - sigma) / kappa) when kappa > 0
    x_max_rps: float | None = None  # throughput at n_star (or lambda/sigma as N -> inf when kappa = 0)
    # "nls": least squares on throughput (R usl, usl4j); "relative": on relative residuals
    method: Literal["nls", "relative"] = "nls"


class PhaseLoad(_Result):
    """A pool (or link) in one phase at the peak."""

    phase: str
    rate_per_s: float
    utilization: float
    latency_ms: float | None = None  # predicted percentile; None when no budget or the queue is unbounded


class ServiceSizing(_Result):
    """One (link, service) pool: the nodes running `service` for `link`."""

    service: str
    cpu_s_per_request: float
    nodes_for_utilization: int
    nodes_for_latency: int | None  # None: no budget, or the budget is below the measured low-load latency
    nodes: int  # before redundancy
    nodes_required: int  # after redundancy
    phases: list[PhaseLoad]


class LinkSizing(_Result):
    """The fewest nodes a link needs on the night, and why."""

    link: str
    method: Method
    budget: LatencyBudget | None = None
    base_latency_ms: float | None = None  # measured low-load percentile the queueing delay adds to
    nodes_for_utilization: int
    nodes_for_latency: int | None
    nodes_before_redundancy: int
    nodes_required: int
    nodes_per_zone: int | None = None
    binding: Literal["utilization", "latency", "minimum"]
    latency_feasible: bool = True  # False: the budget is below the measured low-load latency
    phases: list[PhaseLoad]  # link level: the busiest pool's utilization, the predicted link latency
    services: list[ServiceSizing] = Field(default_factory=list)
    # black-box links: req/s one night-time node sustains within budget, and at its USL peak
    capacity_per_node_rps: float | None = None
    peak_per_node_rps: float | None = None


class LinkAllocation(_Result):
    link: str
    required_nodes: int
    nodes: int
    shortfall_nodes: int
    shortfall_ratio: float  # shortfall / required
    nodes_per_zone: list[int] | None = None


class Allocation(_Result):
    """Nodes per link under the global node budget (integer program, HiGHS)."""

    links: list[LinkAllocation]
    total_nodes: int
    required_nodes: int
    node_budget: int
    feasible: bool
    zones: int = 1
    solver_status: str = ""

    @property
    def short_links(self) -> list[str]:
        return [a.link for a in self.links if a.shortfall_nodes > 0]

    def nodes(self) -> dict[str, int]:
        return {a.link: a.nodes for a in self.links}


class NodeQuantiles(_Result):
    p5: float
    p50: float
    p95: float


class Uncertainty(_Result):
    """Monte Carlo node counts: demand from the fit's standard errors, the peak lognormal."""

    # True when several runs were planned together and their spread is in the demands' errors;
    # False: the band holds one run's own error only (a second run may land outside it)
    between_runs: bool = False

    draws: int
    peak_cv: float
    seed: int
    links: dict[str, NodeQuantiles]
    total: NodeQuantiles
    p_over_budget: float  # share of draws whose total exceeds the node budget


class LinkIdentification(_Result):
    """How well one link's CPU per request is known, where it comes from, and whether the plan sizes it."""

    link: str
    source: Literal["attributed", "regression", "black-box"]  # attributed: the target's own CPU per link
    cpu_s_per_request: float  # over the link's services
    standard_error_cpu_s: float  # within-run error, plus the between-run spread when several runs
    relative_error: float | None  # standard error / demand (None: no demand)
    regression_cpu_s: float | None = None  # the regression's figure, the cross-check of an attributed one
    regression_se_cpu_s: float | None = None
    agrees: bool | None = None  # attributed and regressed within max(25%, 3 combined standard errors)
    between_runs_sd_cpu_s: float | None = None  # spread of the per-run demands (several runs)
    per_run_cpu_s: dict[str, float] = Field(default_factory=dict)
    identified: bool
    reason: str = ""  # why it is not identified
    fix: str = ""  # the run that would identify it


class Verdict(_Result):
    """within budget, short (naming the links) or inconclusive (the budget lies inside the band, or a link
    could not be sized)."""

    kind: Literal["within budget", "short", "inconclusive"]
    reason: str


class SensitivityRow(_Result):
    """The plan with one assumed figure changed."""

    figure: str
    value: str
    change: str  # "-25%", "+25%"
    total_nodes: int
    verdict: str


class Move(_Result):
    zone: int  # where the nodes go, 1-based (1 when the plan has no zones)
    from_zone: int  # where they come from (the same zone unless a zone had nothing left to give)
    from_link: str  # "spare": nodes of the fleet no link held; "added": beyond the fleet
    to_link: str  # "spare": freed, kept in the fleet
    nodes: int


class Reallocation(_Result):
    """From the allocation in force to the new plan, within the same fleet: the fewest moves, per zone."""

    source: str  # where the allocation in force came from
    fleet_nodes: int
    needed_nodes: int
    moved_nodes: int
    added_nodes: int  # beyond the fleet: what the fleet lacks
    fleet_suffices: bool
    per_link: list[dict]  # link, zone, in force, new, delta
    moves: list[Move]


class PeakMix(_Result):
    """Per-phase, per-link request rates at the peak (what a plan is made for, or held against)."""

    name: str
    source: str  # "measured", "declared", "measured phases: grab", ...
    rate_per_s: dict[str, dict[str, float]]  # phase -> link -> req/s

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rate_per_s).T.fillna(0.0)


class LinkHold(_Result):
    """One link of a plan held against a mix."""

    link: str
    nodes: int
    phases: list[PhaseLoad]
    worst_utilization: float
    worst_latency_ms: float | None  # None: no budget, or unbounded queue
    budget: LatencyBudget | None = None
    overloaded: bool
    reason: str = ""


class WhatIf(_Result):
    """A plan held against another mix: utilization and predicted percentile per link."""

    name: str
    plan_mix: str
    held_against: str
    utilization_ceiling: float
    links: list[LinkHold]

    @property
    def overloaded_links(self) -> list[str]:
        return [h.link for h in self.links if h.overloaded]


class Plan(_Result):
    """Everything a capacity plan says; `plan.json` is its JSON dump."""

    run_ids: list[str]
    links: list[str]
    methods: dict[str, Method]
    peak_rate_per_s: float
    mix: PeakMix
    demand: DemandFit | None = None
    usl: dict[str, USLFit] = Field(default_factory=dict)
    sizing: list[LinkSizing]
    allocation: Allocation
    uncertainty: Uncertainty | None = None
    feb1: WhatIf  # the grab-only plan held against the measured rehearsal mix
    grab_only_allocation: Allocation  # the allocation that grab-only plan made
    assumptions: list[Assumption]
    spec: CapacitySpec
    notes: list[str] = Field(default_factory=list)
    # issue 10: identification per link (refused links are not sized), the verdict, the sensitivity table,
    # and the week's re-allocation from the grab-only plan's allocation to this one
    identification: list[LinkIdentification] = Field(default_factory=list)
    refused: list[str] = Field(default_factory=list)
    verdict: Verdict | None = None
    sensitivity: list[SensitivityRow] = Field(default_factory=list)
    reallocation: Reallocation | None = None

    def nodes_per_link(self) -> dict[str, int]:
        return self.allocation.nodes()

    def sizing_of(self, link: str) -> LinkSizing:
        return next(s for s in self.sizing if s.link == link)

    def headline(self) -> str:
        """One line: nodes per link, total against the budget (what `gala run` prints at the end)."""
        a = self.allocation
        per = ", ".join(f"{x.link} {x.nodes}" for x in a.links)
        verdict = "within budget" if a.feasible else f"SHORT: {', '.join(a.short_links)}"
        if self.verdict is not None:
            verdict = {"short": f"SHORT: {', '.join(a.short_links) or self.verdict.reason}",
                       "inconclusive": "INCONCLUSIVE"}.get(self.verdict.kind, self.verdict.kind)
        refused = "".join(f", {l} NOT SIZED" for l in self.refused)
        return (f"plan: {per}{refused}; total {a.total_nodes} of {a.node_budget} nodes "
                f"(needed {a.required_nodes}; {verdict})")


