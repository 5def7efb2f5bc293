"""The report's section on the operating point: per phase mix what the night's node carries at the
ceiling and at saturation (plan.json `operating_points`), the curve of CPU per request against
utilization each knee search measured (table and chart), and a held-out validation's result."""

from __future__ import annotations

import numpy as np
import pandas as pd

from capacity_model.charts import _figure, _png
from capacity_model.contracts import Plan
from capacity_model.anchor import LoadAdjust
from capacity_model.heldout import HeldOut
from gala.contract.document import Block, Bullets, Chart, Heading, Para, Table


def curve_chart(adjust: LoadAdjust, ceiling: float) -> bytes | None:
    if not adjust.curves:
        return None
    fig, ax = _figure()
    grid = np.linspace(0.0, 1.0, 41)
    for mix, curve in adjust.curves.items():
        u, d = zip(*curve.points)
        line = ax.plot(grid, curve.cpu_ms(grid), label=f"{mix} (fit)")[0]
        ax.scatter(u, d, color=line.get_color(), s=14)
    ax.axvline(ceiling, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("utilization of the node")
    ax.set_ylabel("CPU-ms per request")
    ax.legend(fontsize=8)
    return _png(fig)


def operating_blocks(plan: Plan, adjust: LoadAdjust, heldout: HeldOut | None = None) -> list[Block]:
    blocks: list[Block] = [Heading("Operating point: a node at the ceiling")]
    if plan.operating_points:
        blocks += [Para(f"What one node of the night ({plan.spec.node.cores} cores × speed "
                        f"{plan.spec.node.speed_vs_measured:.3g}) carries per phase mix, with the demand "
                        f"{'anchored at the ceiling by a knee search' if adjust.source == 'load-dependent' else 'as the rehearsal measured it (linear)'}:"),
                   Table(pd.DataFrame([{
                       "phase": p.phase, "CPU-ms per request": round(p.cpu_ms_per_request, 4),
                       "req/s per node at ceiling": round(p.rps_per_node_at_ceiling),
                       "req/s per node at saturation": round(p.rps_per_node_at_saturation),
                       "per link at ceiling": ", ".join(f"{l} {v:,.0f}" for l, v in p.link_rps_per_node_at_ceiling.items()),
                   } for p in plan.operating_points]))]
    if adjust.curves:
        rows = []
        for mix, c in adjust.curves.items():
            rows.append({"mix": mix, **{f"{u:.0%}": round(float(c.cpu_ms(u)), 4) for u in (0.1, 0.3, 0.5, 0.7, 0.9)},
                         "points": c.n, "measured up to": f"{c.u_max:.0%}"})
        blocks += [Para("CPU per request against utilization, fitted over each knee search's steps "
                        "(CPU-ms per request at each utilization):"), Table(pd.DataFrame(rows))]
        png = curve_chart(adjust, plan.spec.utilization_ceiling)
        if png is not None:
            blocks.append(Chart("load_demand", "CPU per request against utilization (dashed: the ceiling)", png))
    elif adjust.rel_error:
        blocks.append(Para("No knee search was given: the demands are the rehearsal's, extrapolated linearly to the "
                           "ceiling (see the notes and the assumptions); `gala probe` measures them there."))
    if heldout is not None:
        blocks += [Para(heldout.headline() + "."), Bullets([f"details: heldout.md; {n}" for n in heldout.notes] or
                                                           ["details: heldout.md"])]
    return blocks
