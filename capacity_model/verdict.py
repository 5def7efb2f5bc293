"""The plan's verdict (issue 10): within budget, short, or inconclusive.

- short: the links that could be sized need more nodes than the budget, and even the band's p5 does;
- inconclusive: the budget lies between the band's p5 and p95 (a second run could land on either
  side), or a link could not be sized (its demand is not identified);
- within budget: otherwise. Only `short` makes `gala plan` exit 3.
"""

from __future__ import annotations

from capacity_model.contracts import Allocation, Uncertainty, Verdict


def band_verdict(total: float, budget: int, p5: float | None, p95: float | None) -> str:
    """within budget / short / inconclusive for a total and its band (None: no band)."""
    if p5 is not None and p95 is not None and p5 <= budget <= p95:
        return "inconclusive"
    if total > budget and (p5 is None or p5 > budget):
        return "short"
    if total > budget:  # the point is over, the whole band under: cannot happen with p5 <= total
        return "inconclusive"
    return "within budget"


def plan_verdict(allocation: Allocation, uncertainty: Uncertainty | None, refused: list[str]) -> Verdict:
    a, b = allocation, allocation.node_budget
    p5 = p95 = None
    if uncertainty is not None:
        p5, p95 = uncertainty.total.p5, uncertainty.total.p95
    kind = band_verdict(a.required_nodes, b, p5, p95)
    band = f" (p5–p95 {p5:,.0f}–{p95:,.0f})" if p5 is not None else ""
    sized = f"the sized links need {a.required_nodes:,} of {b:,} nodes{band}"
    if kind == "short":
        short = ", ".join(f"{x.link} by {x.shortfall_nodes:,}" for x in a.links if x.shortfall_nodes > 0)
        return Verdict(kind="short", reason=f"{sized}: short ({short})")
    if kind == "inconclusive":
        return Verdict(kind="inconclusive", reason=f"{sized}: the budget lies inside the band, so runs like these "
                                                   "can land on either side of it")
    if refused:
        return Verdict(kind="inconclusive", reason=f"{sized}, but {', '.join(refused)} could not be sized "
                                                   "(demand not identified): the total is incomplete")
    return Verdict(kind="within budget", reason=f"{sized}; the whole band is within the budget" if band else sized)
