"""Typed contracts of the capacity model: the spec, the measurements, and every result a plan holds.

Units are in the field names (`rate_per_s`, `cpu_s_per_request`, `latency_ms`, `nodes`). The numeric
modules (demand, queueing, usl, sizing, allocation, uncertainty, whatif, planner) take and return
these; the run reader builds `Measurements`; the report and `plan.json` read `Plan`.
Nothing here does I/O: `capacity_model.spec` reads the YAML. One place, three files:
`spec.py` (the capacity spec), `measurements.py` (the model's input), `plan.py` (its results).
"""

from capacity_model.contracts.base import (BASELINE, PERCENTILE_COLUMNS, Method, Source, finite_or_none,
                                           percentile_column)
from capacity_model.contracts.measurements import Measurements
from capacity_model.contracts.plan import (Allocation, DemandFit, LinkAllocation, LinkHold, LinkSizing,
                                           NodeQuantiles, PeakMix, PhaseLoad, Plan, ServiceSizing, Uncertainty,
                                           USLFit, WhatIf)
from capacity_model.contracts.spec import (Assumption, CapacitySpec, GrabOnlySpec, LatencyBudget, MixSpec, NodeSpec,
                                           PeakSpec, RedundancySpec, UncertaintySpec)

__all__ = [
    "BASELINE", "PERCENTILE_COLUMNS", "Method", "Source", "finite_or_none", "percentile_column", "Measurements",
    "Allocation", "DemandFit", "LinkAllocation", "LinkHold", "LinkSizing", "NodeQuantiles", "PeakMix", "PhaseLoad",
    "Plan", "ServiceSizing", "Uncertainty", "USLFit", "WhatIf", "Assumption", "CapacitySpec", "GrabOnlySpec",
    "LatencyBudget", "MixSpec", "NodeSpec", "PeakSpec", "RedundancySpec", "UncertaintySpec",
]
