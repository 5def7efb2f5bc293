"""Typed contracts of the capacity model: the spec, the measurements, and every result a plan holds.

Units are in the field names (`rate_per_s`, `cpu_s_per_request`, `latency_ms`, `nodes`). The numeric
modules (demand, queueing, usl, sizing, allocation, uncertainty, whatif, planner) take and return
these; the run reader builds `Measurements`; the report and `plan.json` read `Plan`.
Nothing here does I/O: `capacity_model.spec` reads the YAML. One place, three files:
`spec.py` (the capacity spec), `measurements.py` (the model's input), `plan.py` (its results).
"""

import importlib

from capacity_model.contracts.base import (BASELINE, PERCENTILE_COLUMNS, Method, Source, finite_or_none,
                                           percentile_column)
from capacity_model.contracts.spec import (Assumption, CapacitySpec, GrabOnlySpec, IdentificationSpec, LatencyBudget,
                                           MixSpec, NodeSpec, PeakSpec, RedundancySpec, UncertaintySpec)

__all__ = [
    "BASELINE", "PERCENTILE_COLUMNS", "Method", "Source", "finite_or_none", "percentile_column", "Measurements",
    "Allocation", "DemandFit", "LinkAllocation", "LinkHold", "LinkSizing", "NodeQuantiles", "PeakMix", "PhaseLoad",
    "Plan", "ServiceSizing", "Uncertainty", "USLFit", "WhatIf", "Assumption", "CapacitySpec", "GrabOnlySpec",
    "LatencyBudget", "MixSpec", "NodeSpec", "PeakSpec", "RedundancySpec", "UncertaintySpec", "IdentificationSpec",
    "LinkIdentification", "Verdict", "SensitivityRow", "Move", "Reallocation",
]

# The measurements and the plan hold pandas frames: imported on first use, so that reading a spec
# (`gala check`, `gala run`'s checks before any load) does not pay for pandas.
_LAZY = {"Measurements": "measurements", **{name: "plan" for name in (
    "Allocation", "DemandFit", "LinkAllocation", "LinkHold", "LinkSizing", "NodeQuantiles", "PeakMix", "PhaseLoad",
    "Plan", "ServiceSizing", "Uncertainty", "USLFit", "WhatIf", "LinkIdentification", "Verdict", "SensitivityRow",
    "Move", "Reallocation")}}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"capacity_model.contracts.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
