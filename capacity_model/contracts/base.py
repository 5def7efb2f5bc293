"""Shared pieces of the capacity model's contracts: base models, literals and column names."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

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
