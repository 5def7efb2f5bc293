"""Typed contracts of the capacity model: the spec, the measurements, and every result a plan holds.

Units are in the field names (`rate_per_s`, `cpu_s_per_request`, `latency_ms`, `nodes`). The numeric
modules (demand, queueing, usl, sizing, allocation, uncertainty, whatif, planner) take and return
these; the run reader builds `Measurements`; the report and `plan.json` read `Plan`.
Nothing here does I/O: `capacity_model.spec` reads the YAML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from gala.contract.errors import InputError

Method = Literal["cpu-demand", "black-box"]
Source = Literal["seed", "run", "assumed", "spec"]
# Column names for latency percentiles, as results/README.md writes them.
PERCENTILE_COLUMNS = {50.0: "p50", 90.0: "p90", 95.0: "p95", 99.0: "p99"}
# The name used in `DemandFit.unidentifiable` for the constant (baseline) column of the design.
BASELINE = "U0"


class _Spec(BaseModel):
    """Spec models refuse unknown fields, so a typo in the YAML is an error with a line number."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class _Result(BaseModel):
    # an unbounded utilization (a link given no node) survives plan.json as "Infinity"
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")


# ======================================================================== the capacity spec

class PeakSpec(_Spec):
    """The night's peak demand, all links together."""

    requests_per_min: float = Field(17.7e9, gt=0)  # seed: 177亿次/分钟

    @property
    def rate_per_s(self) -> float:
        return self.requests_per_min / 60.0


class MixSpec(_Spec):
    """The mix of links at the peak, per phase.

    `measured`: each phase's per-link rates as the run measured them, scaled so that the phase's
    total over the night's links (the run's critical links, plus any `links` the spec plans) equals
    the peak; non-critical links (the rehearsal's set-up traffic) are not part of the night. The
    night is assumed to peak in any one of the phases, so every phase is sized for. `declared`: `phases` gives, per phase,
    each link's fraction of the peak (fractions in [0, 1], summing to at most 1; the rest goes to
    links that are not planned).
    """

    source: Literal["measured", "declared"] = "measured"
    phases: dict[str, dict[str, float]] | None = None

    @model_validator(mode="after")
    def _check(self) -> "MixSpec":
        if self.source == "declared":
            if not self.phases:
                raise ValueError("expected `phases: {phase: {link: fraction}}` for a declared mix")
            for phase, shares in self.phases.items():
                if not shares:
                    raise ValueError(f"expected at least one link in phase {phase!r}")
                bad = {k: v for k, v in shares.items() if not (0.0 <= v <= 1.0)}
                if bad:
                    raise ValueError(f"expected fractions in [0, 1] in phase {phase!r}, got {bad}")
                if sum(shares.values()) > 1.0 + 1e-9 or sum(shares.values()) <= 0:
                    raise ValueError(f"expected phase {phase!r}'s fractions to sum to more than 0 and "
                                     f"at most 1, got {sum(shares.values()):g}")
        return self


class NodeSpec(_Spec):
    """The shape of one node on the night, relative to the machine that measured the run."""

    cores: int = Field(32, gt=0)  # assumed: the account gives no server shape
    speed_vs_measured: float = Field(1.0, gt=0)  # 2.0 = a core does a request in half the CPU-seconds
    # per-node: a balancer spreads a link's requests evenly; each node queues on its own cores (M/M/cores).
    # pooled: one queue over every core of the pool (M/M/(nodes*cores)), an optimistic bound.
    queue: Literal["per-node", "pooled"] = "per-node"


class LatencyBudget(_Spec):
    """A link's latency budget: the `percentile` (in percent, e.g. 99) must stay within `latency_ms`."""

    percentile: float = Field(gt=0, lt=100)
    latency_ms: float = Field(gt=0)

    @property
    def quantile(self) -> float:
        return self.percentile / 100.0


class RedundancySpec(_Spec):
    """Spare capacity: `n_plus: k` adds k nodes to each pool; or `zones: Z` spreads each pool over Z
    zones, and with `survive_zone_loss` the other Z-1 zones alone must carry the peak
    (nodes per zone = ceil(n / (Z-1)), total = Z * that)."""

    n_plus: int = Field(0, ge=0)
    zones: int = Field(1, ge=1)
    survive_zone_loss: bool = False

    @model_validator(mode="after")
    def _check(self) -> "RedundancySpec":
        if self.survive_zone_loss and self.zones < 2:
            raise ValueError("expected zones >= 2 with survive_zone_loss")
        if self.n_plus and self.zones > 1:
            raise ValueError("expected either n_plus or zones, not both")
        return self


class UncertaintySpec(_Spec):
    """Monte Carlo over the fitted demands (their standard errors), the peak and declared link intervals."""

    draws: int = Field(1000, ge=0)  # 0: no Monte Carlo
    peak_cv: float = Field(0.1, ge=0)  # assumed: coefficient of variation of the peak (lognormal)
    # link -> [low, high]: that link's peak rate is multiplied by a factor drawn uniformly in it.
    link_rate_intervals: dict[str, tuple[float, float]] = Field(default_factory=dict)
    seed: int = 2016

    @model_validator(mode="after")
    def _check(self) -> "UncertaintySpec":
        for link, (lo, hi) in self.link_rate_intervals.items():
            if not (0 <= lo <= hi):
                raise ValueError(f"expected 0 <= low <= high in link_rate_intervals.{link}, got [{lo}, {hi}]")
        return self


class GrabOnlySpec(_Spec):
    """The 1 February what-if: a plan made for a grab-only mix, held against the measured mix.

    The grab-only mix is `declared` (link -> fraction of the peak) if given, else the measured mix of
    `phases` (default: the phase in which `link` has its largest share of the traffic)."""

    link: str = "grab"
    phases: list[str] | None = None
    declared: dict[str, float] | None = None


# Seed and assumption notes for the defaults; `CapacitySpec.assumptions()` reports them.
_DEFAULT_SOURCES: dict[str, tuple[Source, str]] = {
    "peak.requests_per_min": ("seed", "17.7 billion interaction requests per minute (295e6/s)"),
    "node_budget": ("seed", "about 10,000 servers re-allocated within a week"),
    "node.cores": ("assumed", "the account gives no server shape"),
    "node.speed_vs_measured": ("assumed", "a night-time core is as fast as the measuring machine's"),
    "utilization_ceiling": ("assumed", "headroom for bursts inside a second"),
    "latency_budgets": ("assumed", "the account gives no latency figures"),
    "redundancy": ("assumed", "the account gives no redundancy scheme"),
    "uncertainty.peak_cv": ("assumed", "spread of the night's peak around its estimate"),
}


class CapacitySpec(_Spec):
    """The capacity spec (`capacity_model/specs/gala-2016.yaml` is the default)."""

    peak: PeakSpec = Field(default_factory=PeakSpec)
    mix: MixSpec = Field(default_factory=MixSpec)
    node: NodeSpec = Field(default_factory=NodeSpec)
    utilization_ceiling: float = Field(0.7, gt=0, le=1)
    latency_budgets: dict[str, LatencyBudget] = Field(default_factory=dict)
    redundancy: RedundancySpec = Field(default_factory=RedundancySpec)
    node_budget: int = Field(10_000, gt=0)
    # link -> the services (CPU-measured processes) it passes through; None: those with a fitted demand.
    services: dict[str, list[str]] | None = None
    uncertainty: UncertaintySpec = Field(default_factory=UncertaintySpec)
    grab_only: GrabOnlySpec = Field(default_factory=GrabOnlySpec)
    # which links to plan; None: the run's critical links.
    links: list[str] | None = None
    # link -> weight of its relative shortfall when the budget cannot cover every link (default 1).
    priorities: dict[str, float] = Field(default_factory=dict)
    # field path -> where its figure comes from, overriding the defaults' notes.
    sources: dict[str, Source] = Field(default_factory=dict)

    _origin: str | None = PrivateAttr(default=None)
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)

    def where(self, *path: str | int) -> str:
        """`file:LINE: a.b.c` for a field of this spec (as precise as the YAML allows), for error messages."""
        dotted = ".".join(str(p) for p in path)
        if not self._origin:
            return f"spec: {dotted}"
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in self._lines:
                return f"{self._origin}:{self._lines[tuple(path[:n])]}: {dotted}"
        return f"{self._origin}: {dotted}"

    def error(self, *path: str | int, expected: str) -> InputError:
        return InputError(f"{self.where(*path)}: expected {expected}")

    def assumptions(self) -> list["Assumption"]:
        """Every figure of the spec with where it comes from: seed, assumed, or this spec's author."""
        default = CapacitySpec()
        rows = [
            ("peak.requests_per_min", f"{self.peak.requests_per_min:.4g} req/min "
                                      f"({self.peak.rate_per_s:.4g} req/s)", self.peak == default.peak),
            ("mix.source", self.mix.source, None),
            ("node.cores", str(self.node.cores), self.node.cores == default.node.cores),
            ("node.speed_vs_measured", f"{self.node.speed_vs_measured:g}",
             self.node.speed_vs_measured == default.node.speed_vs_measured),
            ("node.queue", self.node.queue, None),
            ("utilization_ceiling", f"{self.utilization_ceiling:g}",
             self.utilization_ceiling == default.utilization_ceiling),
            ("latency_budgets", ", ".join(f"{k} p{b.percentile:g} <= {b.latency_ms:g} ms"
                                          for k, b in self.latency_budgets.items()) or "none", True),
            ("redundancy", _describe_redundancy(self.redundancy), True),
            ("node_budget", f"{self.node_budget} nodes", self.node_budget == default.node_budget),
            ("uncertainty.peak_cv", f"{self.uncertainty.peak_cv:g}", True),
        ]
        out = []
        for name, value, is_default in rows:
            if name in self.sources:
                src, note = self.sources[name], ""
            elif name == "mix.source":
                src, note = ("run", "per-phase rates measured by the run, scaled to the peak") \
                    if self.mix.source == "measured" else ("spec", "declared per-phase fractions")
            elif name in _DEFAULT_SOURCES and is_default:
                src, note = _DEFAULT_SOURCES[name]
            else:
                src, note = "spec", "set in the capacity spec"
            out.append(Assumption(figure=name, value=value, source=src, note=note))
        return out


def _describe_redundancy(r: RedundancySpec) -> str:
    if r.zones > 1:
        return f"{r.zones} zones" + (", survive the loss of one" if r.survive_zone_loss else "")
    return f"N+{r.n_plus}"


class Assumption(_Result):
    """One figure a plan rests on, and where it comes from."""

    figure: str
    value: str
    source: Source
    note: str = ""


# ======================================================================== measurements

@dataclass
class Measurements:
    """What the run reader produces from one or more results folders (the model's only input besides the spec).

    Frames are aligned row by row: `throughput`, `busy_cores` and `window_phase` share one index, one
    row per measured window (1 s), across runs (a MultiIndex (run_id, t_s) is recommended).
    """

    run_ids: list[str]
    links: list[str]  # the links to plan by default (the runs' critical links)
    throughput: pd.DataFrame  # windows x links, req/s (0 where a link saw nothing)
    busy_cores: pd.DataFrame  # windows x services, CPU cores busy (cpu_percent / 100 of the target's processes)
    phase_rps: pd.DataFrame  # phase x link, req/s over the phase (rows in run order; all links the run saw)
    phase_latency_ms: pd.DataFrame  # rows MultiIndex (phase, link), columns p50, p95, p99 (ms)
    window_phase: pd.Series  # phase of each window (same index as throughput)
    measured_nodes: int = 1  # target nodes (processes) behind the measured throughput
    measured_cores_per_node: float = 1.0  # cores of one measured node
    # black-box links: req/s one measured node sustains within the link's budget, and the USL fit behind it.
    capacity_per_node: dict[str, float] = field(default_factory=dict)
    usl: dict[str, "USLFit"] = field(default_factory=dict)
    # optional: USL over the number of nodes/processes (runs at several scales), per link or "*" for all.
    scale_usl: dict[str, "USLFit"] = field(default_factory=dict)
    method: dict[str, Method] = field(default_factory=dict)  # per link; missing -> cpu-demand
    notes: list[str] = field(default_factory=list)

    def method_of(self, link: str) -> Method:
        return self.method.get(link, "cpu-demand")

    def validate(self) -> "Measurements":
        """Raise InputError when the frames do not line up (a reader bug or an empty run)."""
        if not self.throughput.index.equals(self.busy_cores.index) and len(self.busy_cores):
            raise InputError("measurements: throughput and busy_cores windows differ")
        if not self.throughput.index.equals(self.window_phase.index):
            raise InputError("measurements: throughput and window_phase windows differ")
        if self.phase_rps.empty:
            raise InputError(f"runs {', '.join(self.run_ids)}: no phase measured any request")
        for link, m in self.method.items():
            if m == "black-box" and link not in self.capacity_per_node:
                raise InputError(f"measurements: link {link!r} is black-box but has no capacity_per_node")
        return self


# ======================================================================== results of the model

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

    draws: int
    peak_cv: float
    seed: int
    links: dict[str, NodeQuantiles]
    total: NodeQuantiles
    p_over_budget: float  # share of draws whose total exceeds the node budget


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

    def nodes_per_link(self) -> dict[str, int]:
        return self.allocation.nodes()

    def sizing_of(self, link: str) -> LinkSizing:
        return next(s for s in self.sizing if s.link == link)

    def headline(self) -> str:
        """One line: nodes per link, total against the budget (what `gala run` prints at the end)."""
        a = self.allocation
        per = ", ".join(f"{x.link} {x.nodes}" for x in a.links)
        verdict = "within budget" if a.feasible else f"SHORT: {', '.join(a.short_links)}"
        return (f"plan: {per}; total {a.total_nodes} of {a.node_budget} nodes "
                f"(needed {a.required_nodes}; {verdict})")


def percentile_column(percentile: float, available: list[str]) -> str:
    """The latency column (p50/p90/p95/p99) for a percentile: exact, else the next higher one measured,
    else the highest (a budget at p99.9 is compared with the measured p99: say so in notes)."""
    cols = sorted((p, c) for p, c in PERCENTILE_COLUMNS.items() if c in available)
    if not cols:
        raise InputError(f"measurements: no latency percentile column (expected one of "
                         f"{', '.join(PERCENTILE_COLUMNS.values())})")
    for p, c in cols:
        if p >= percentile - 1e-9:
            return c
    return cols[-1][1]


def finite_or_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
