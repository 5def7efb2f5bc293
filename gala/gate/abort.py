"""Stopping a live run early once a budget is clearly broken (`gala run --abort-on-fail`), from the
stats plugin's live.json. Pure: a function of the budgets and one live view."""

from __future__ import annotations

from gala.gate.budgets import Budgets, Expression
from gala.gate.measure import format_value

def abort_check(budgets: Budgets, live: dict) -> str | None:
    """The reason to stop a running rehearsal now, or None. Conservative, like k6's abortOnFail with a delay.

    Only ceilings on p(50)/p(95)/p(99) and the error ratio are checked (the rest need the finished run);
    only after `abort.grace_s`, with at least `abort.min_requests` requests in the budget's scope, and only
    when the measured value is over the ceiling by more than `abort.margin` (50% by default).
    `live` is the stats plugin's live.json: whole-run figures per link under "links", the current
    phase's under "phase_links".
    """
    policy = budgets.abort
    if float(live.get("t_s") or 0.0) < policy.grace_s:
        return None
    for b in budgets.lines:
        if b.phase is None:
            stats = (live.get("links") or {}).get(b.link)
        elif b.phase == live.get("phase"):
            stats = (live.get("phase_links") or {}).get(b.link)
        else:
            continue
        if not stats or int(stats.get("requests") or 0) < policy.min_requests:
            continue
        measured = _live_value(b.expr, stats)
        if measured is None or not b.expr.is_ceiling:
            continue
        if measured > b.expr.value * (1 + policy.margin) and not b.expr.holds(measured):
            return (f"{b.name}: {format_value(measured, b.expr.unit)} after {int(stats['requests']):,} requests "
                    f"(over the budget by more than {policy.margin:.0%}; {b.source})")
    return None


def _live_value(expr: Expression, stats: dict) -> float | None:
    if expr.metric == "rate":
        failures = int(stats.get("failures") or 0)
        # a handful of failures is not "clearly broken", whatever the ratio
        return failures / int(stats["requests"]) if failures >= 10 else None
    if expr.metric == "p" and expr.quantile in (50.0, 95.0, 99.0):
        value = stats.get(f"p{expr.quantile:g}_ms")
        return None if value is None else float(value)
    return None
