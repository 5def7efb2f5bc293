"""What a run measured against one budget line: the value in the budget's scope (a link, or a link
in one phase), and the verdict of one line (`GateResult`). Pure: reads a `Run`, does no I/O."""

from __future__ import annotations

import math
from typing import Literal

import pandas as pd
from pydantic import BaseModel

from gala.contract.errors import InputError
from gala.contract.histogram import histogram_percentiles
from gala.contract.results import ALL, Run
from gala.gate.budgets import Budget

Status = Literal["pass", "fail", "regressed", "improved", "unchanged"]


class GateResult(BaseModel):
    """One line of the gate: a budget, or a percentile compared with the baseline."""

    kind: Literal["budget", "baseline"]
    name: str
    link: str
    phase: str | None
    metric: str
    op: str | None = None
    threshold: float | None = None
    unit: str = ""
    measured: float | None
    requests: int | None = None          # requests behind the measured value
    margin: float | None = None          # positive: room left before the budget breaks
    margin_ratio: float | None = None
    baseline: float | None = None
    change_ratio: float | None = None    # (measured - baseline) / baseline
    noise: float | None = None           # the difference that counts as beyond noise
    status: Status
    passed: bool
    detail: str = ""
    source: str = ""                     # file:line of the budget



def _row(run: Run, link: str, phase: str | None) -> pd.Series | None:
    df = run.phase_link
    hit = df[(df["phase"] == (phase or ALL)) & (df["link"] == link)]
    return None if hit.empty else hit.iloc[0]


def _achieved_over_run(run: Run, link: str) -> float | None:
    """Achieved/intended over the phases that intended a rate for the link: requests / intended requests."""
    df = run.phase_link
    rows = df[(df["link"] == link) & (df["phase"] != ALL) & df["intended_rps"].notna()]
    intended = float((rows["intended_rps"] * rows["duration_s"]).sum())
    return float(rows["requests"].sum()) / intended if intended > 0 else None


def measure(run: Run, budget: Budget) -> tuple[float | None, int]:
    """The measured value of a budget's metric (None when the link saw no requests) and the request count.

    Raises InputError when the run cannot measure it by design (an achieved ratio where nothing was intended).
    """
    expr = budget.expr
    row = _row(run, budget.link, budget.phase)
    if row is None or int(row["requests"]) == 0:
        if expr.metric == "rps":
            return 0.0, 0
        if expr.metric == "achieved":
            if _intended(run, budget):
                return 0.0, 0
            raise _no_intention(budget)
        return None, 0
    requests = int(row["requests"])
    if expr.metric == "p":
        hist = run.histogram(budget.link, budget.phase)
        column = f"p{expr.quantile:g}_ms"
        if hist:
            return histogram_percentiles(hist, [expr.quantile / 100])[0], requests
        if column in row.index and pd.notna(row[column]):
            return float(row[column]), requests
        raise InputError(f"{budget.source}: {budget.field}: the run has no histogram for {budget.scope}, "
                         f"so only p(50), p(90), p(95) and p(99) can be measured")
    if expr.metric == "achieved":
        value = row["achieved_ratio"] if pd.notna(row["achieved_ratio"]) else None
        if value is None and budget.phase is None:
            value = _achieved_over_run(run, budget.link)
        if value is None:
            raise _no_intention(budget)
        return float(value), requests
    column = {"max": "max_ms", "avg": "mean_ms", "rate": "error_ratio", "rps": "rps"}[expr.metric]
    if expr.metric == "rate" and pd.isna(row[column]):
        return int(row["failures"]) / requests, requests
    return float(row[column]), requests


def _intended(run: Run, budget: Budget) -> bool:
    phases = [p for p in run.info.phases if budget.phase in (None, p.name)]
    return any(budget.link in p.intended_rps for p in phases)


def _no_intention(budget: Budget) -> InputError:
    return InputError(f"{budget.source}: {budget.field}: the run intended no rate for {budget.scope} "
                      "(only arrival-rate or paced phases have one), so an achieved ratio cannot be measured")



def format_value(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "ms":
        return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"
    if unit == "req/s":
        return f"{value:,.1f} req/s"
    return f"{value:.4g}"


def evaluate(budget: Budget, measured: float | None, requests: int | None = None) -> GateResult:
    """Hold one measured value to its budget."""
    expr = budget.expr
    base = dict(kind="budget", name=budget.name, link=budget.link, phase=budget.phase, metric=expr.label,
                op=expr.op, threshold=expr.value, unit=expr.unit, measured=measured, requests=requests,
                source=budget.source)
    if measured is None:
        return GateResult(**base, status="fail", passed=False, detail="no requests measured")
    margin = expr.value - measured if expr.is_ceiling else measured - expr.value
    ok = expr.holds(measured)
    return GateResult(**base, margin=margin, margin_ratio=margin / expr.value if expr.value else None,
                      status="pass" if ok else "fail", passed=ok)
