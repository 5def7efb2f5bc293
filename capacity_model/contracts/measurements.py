"""`Measurements`: what the run reader makes of one or more results folders, the model's only input
besides the spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from capacity_model.contracts.base import Method
from gala.contract.errors import InputError

if TYPE_CHECKING:
    from capacity_model.contracts.plan import USLFit

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
    # issue 10. run_id -> service -> cores the target's processes used in a quiet window before the load
    # (subtracted in the demand fit instead of a free intercept); missing: not measured
    idle_cores: dict[str, dict[str, float]] = field(default_factory=dict)
    # run_id -> seconds per demand-fit window: 1 where CPU ticks were aligned to the counting seconds,
    # longer where they were not (a longer window dilutes the interpolation blur between neighbours)
    fit_window_s: dict[str, int] = field(default_factory=dict)
    fit_from_s: dict[str, float] = field(default_factory=dict)  # run_id -> first aligned second (earlier: blurred)
    # run_id -> the target's own cumulative CPU per link (link_cpu.csv) with a `service` column (cpu.csv's name)
    link_cpu: dict[str, pd.DataFrame] = field(default_factory=dict)
    # the core speed (speed-reference units per CPU-second) link_cpu's CPU is expressed at: each interval's
    # CPU is scaled by its own in-run speed over this one (capacity_model.attribution); None: as measured
    speed_units_per_cpu_s: float | None = None

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


