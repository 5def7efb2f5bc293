"""The sensitivity table (issue 10): the plan's total and verdict with each assumed figure at ±25%.

Changing one figure (node.cores 32 -> 48) turned "short" into "6,714 of 10,000" in issue 10's runs,
and the report showed no such sensitivity. Each row re-sizes and re-allocates with the demands held;
its band is the plan's band scaled by the row's total (the relative width kept).
"""

from __future__ import annotations

from typing import Callable

from capacity_model.contracts import CapacitySpec, SensitivityRow
from capacity_model.verdict import band_verdict

CHANGE = 0.25


def _variants(spec: CapacitySpec) -> list[tuple[str, str, str, CapacitySpec]]:
    out = []
    for sign, label in ((-1, f"-{CHANGE:.0%}"), (1, f"+{CHANGE:.0%}")):
        f = 1 + sign * CHANGE
        cores = max(1, round(spec.node.cores * f))
        out.append(("node.cores", str(cores), label,
                    spec.model_copy(update={"node": spec.node.model_copy(update={"cores": cores})})))
        speed = spec.node.speed_vs_measured * f
        out.append(("node.speed_vs_measured", f"{speed:g}", label,
                    spec.model_copy(update={"node": spec.node.model_copy(update={"speed_vs_measured": speed})})))
        ceiling = min(spec.utilization_ceiling * f, 1.0)
        out.append(("utilization_ceiling", f"{ceiling:g}", label, spec.model_copy(update={"utilization_ceiling": ceiling})))
        peak = spec.peak.requests_per_min * f
        out.append(("peak.requests_per_min", f"{peak:.4g}", label,
                    spec.model_copy(update={"peak": spec.peak.model_copy(update={"requests_per_min": peak})})))
        if spec.redundancy.zones > 1:
            zones = max(2 if spec.redundancy.survive_zone_loss else 1, round(spec.redundancy.zones * f))
            if zones != spec.redundancy.zones:
                out.append(("redundancy.zones", str(zones), label,
                            spec.model_copy(update={"redundancy": spec.redundancy.model_copy(update={"zones": zones})})))
    order = ["node.cores", "node.speed_vs_measured", "utilization_ceiling", "peak.requests_per_min", "redundancy.zones"]
    return sorted(out, key=lambda r: (order.index(r[0]), r[2]))


def sensitivity(spec: CapacitySpec, replan: Callable[[CapacitySpec], int], total: int,
                p5: float | None, p95: float | None, incomplete: bool = False) -> list[SensitivityRow]:
    """`replan(spec)` -> required nodes; the band (p5, p95) of the plan at `total` is scaled per row."""
    rows = []
    for figure, value, change, variant in _variants(spec):
        n = int(replan(variant))
        r = n / total if total else 1.0
        kind = band_verdict(n, spec.node_budget, None if p5 is None else p5 * r, None if p95 is None else p95 * r)
        if incomplete and kind == "within budget":
            kind = "inconclusive"
        rows.append(SensitivityRow(figure=figure, value=value, change=change, total_nodes=n, verdict=kind))
    return rows
