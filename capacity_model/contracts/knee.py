"""Contracts of the knee search (`gala probe`): one measured step, one phase mix's knee, and the
whole search as `knee.json` holds it (results/README.md). Units are in the field names."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from capacity_model.contracts.base import _Result

MAX_CORES = 4096.0  # the largest node a spec may declare (node.cores)
StopReason = Literal["budget", "ceiling", "saturated", "generator", "time", "max-rate", "target-exited"]


class KneeStep(_Result):
    """One step of the search: the mix offered at one rate, measured over its steady window."""

    mix: str
    index: int = Field(ge=0)
    run_id: str                         # the step's own results folder (steps/<run_id>/)
    intended_rps: float = Field(ge=0)   # the mix's critical links together, as offered
    achieved_rps: float = Field(ge=0)   # ... as carried (good and failed)
    good_rps: float = Field(ge=0)       # ... answered without error
    link_rps: dict[str, float]          # per critical link, achieved
    other_link_rps: dict[str, float] = Field(default_factory=dict)  # the mix's other links (set-up), achieved
    link_latency_ms: dict[str, float]   # per critical link, the budget's percentile (p99 without a budget)
    link_error_ratio: dict[str, float]
    broken_links: list[str]             # over their latency budget or above the error ceiling
    target_cpu_cores: float | None = Field(None, ge=0, le=MAX_CORES)   # mean busy cores of the target's processes (None: unknown)
    utilization: float | None = Field(None, ge=0, le=100)        # target_cpu_cores / node cores (the CPU limit)
    cpu_ms_per_request: float | None = Field(None, ge=0, le=1e6)  # target CPU per achieved critical request (other links' cost included)
    generator_cpu_percent: float = 0.0      # the busiest generator process, mean over the window
    speed_units_per_cpu_s: float | None = None  # the machine's speed reference around the step
    window_s: float = Field(ge=0)

    @property
    def achieved_ratio(self) -> float:
        return self.achieved_rps / self.intended_rps if self.intended_rps > 0 else 1.0


class MixKnee(_Result):
    """A phase mix's operating points per node (the target as measured: one CPU-limited node)."""

    mix: str
    fractions: dict[str, float]         # each critical link's share of the mix's requests
    node_cores: float | None = Field(gt=0, le=MAX_CORES)  # cores of the node measured (the CPU limit), None if unknown
    ceiling: float = Field(gt=0, le=1)
    steps: list[KneeStep]
    stop_reason: StopReason
    rps_at_ceiling: float | None = Field(None, ge=0)     # total critical req/s per node where CPU reaches the ceiling
    ceiling_interpolated: bool = False      # between two measured steps (linear in utilization)
    rps_at_budget: float | None = None      # the highest measured rate with every link within budget
    budget_lower_bound: bool = False        # no step broke a budget: the figure is at least this
    rps_at_saturation: float | None = Field(None, ge=0)  # the most the node carried (utilization near 1, or the top step)
    cpu_ms_at_ceiling: float | None = Field(None, ge=0)  # CPU per request at the ceiling (interpolated like the rate)
    link_rps_at_ceiling: dict[str, float] = Field(default_factory=dict)
    link_rps_at_budget: dict[str, float] = Field(default_factory=dict)
    link_latency_ms_at_ceiling: dict[str, float] = Field(default_factory=dict)  # from the step nearest it
    generator_limited: bool = False
    note: str = ""


class KneeSearch(_Result):
    """The whole search: `results/<id>/knee.json`."""

    format_version: int = 1
    kind: Literal["knee-search"] = "knee-search"
    search_id: str
    scenario: str
    target: str                               # "builtin", "costed", or the URL
    target_processes: int = 1
    cpu_limit_cores: float | None = Field(None, gt=0, le=MAX_CORES)
    node_cores: float | None = Field(None, gt=0, le=MAX_CORES)
    ceiling: float = Field(gt=0, le=1)
    budgets: dict[str, dict[str, float]]      # link -> {percentile, latency_ms}
    started_at: str
    ended_at: str
    wall_s: float = Field(ge=0)
    speed_units_per_cpu_s: float | None = Field(None, gt=0, le=1e9)  # median of the steps' speed references
    mixes: list[MixKnee]
    stopped: str | None = None                # why the whole search stopped early (a generator's knee, a signal)


class OperatingPoint(_Result):
    """What a plan predicts one node carries in one phase's mix: at the utilization ceiling and at
    saturation, per link and in all (so that any later run or knee search can be held against it)."""

    phase: str
    node_cores: float                       # cores of the node the figures are for (speed included)
    cpu_ms_per_request: float               # the mix's CPU per critical request, at the ceiling
    idle_cores: float = 0.0
    rps_per_node_at_ceiling: float
    rps_per_node_at_saturation: float
    cpu_cores_at_ceiling: float
    link_rps_per_node_at_ceiling: dict[str, float]
    link_rps_per_node_at_saturation: dict[str, float]
    source: Literal["linear", "load-dependent"] = "linear"
    note: str = ""
