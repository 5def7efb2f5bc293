"""What-if: hold an allocation against another mix and say, per link, how loaded it is and whether
it is overloaded (utilization >= 1, or predicted percentile over the budget).

Each link's allocated nodes are split over its service pools in proportion to what the sizing asked
for (largest remainder). Loads are given with the redundancy spent (a zone lost, k nodes down), as
the sizing promised to hold them. Above the ceiling but below 1 is a warning, not an overload.
"""

from __future__ import annotations

import numpy as np

from capacity_model.contracts import (
    Allocation,
    CapacitySpec,
    LinkHold,
    LinkSizing,
    PeakMix,
    PhaseLoad,
    WhatIf,
    finite_or_none,
)
from capacity_model.sizing import PoolArrays, latency_split, nodes_up, pool_load


def split_nodes(nodes: int, weights: np.ndarray) -> np.ndarray:
    """`nodes` split in proportion to `weights`, in integers that sum to `nodes` (largest remainder)."""
    if weights.size == 0:
        return weights.astype(int)
    share = nodes * weights / weights.sum() if weights.sum() > 0 else np.full(weights.size, nodes / weights.size)
    out = np.floor(share).astype(int)
    out[np.argsort(-(share - out))[: nodes - out.sum()]] += 1
    return out


def _hold_cpu_link(s: LinkSizing, nodes: int, rates: np.ndarray, phases: list[str], spec: CapacitySpec):
    """(link-level PhaseLoads) for a cpu-demand link holding `nodes` against per-phase `rates`."""
    tail, allow = latency_split(s.budget, s.base_latency_ms, len(s.services))
    pools = PoolArrays(link=np.zeros(len(s.services), dtype=int), service=[p.service for p in s.services],
                       cpu_s=np.array([p.cpu_s_per_request for p in s.services]),
                       tail=np.full(len(s.services), tail), allowance_s=np.full(len(s.services), allow))
    per_pool = split_nodes(nodes, np.array([p.nodes_required for p in s.services], dtype=float))
    up = nodes_up(per_pool, spec.redundancy)
    util, wait_ms = pool_load(np.tile(rates, (len(s.services), 1)), up, pools, spec.node)
    lat = (s.base_latency_ms or 0.0) + wait_ms.sum(axis=0)
    if not s.services:  # a link no CPU was measured for: it holds anything
        util, lat = np.zeros((1, len(phases))), np.full(len(phases), s.base_latency_ms or 0.0)
    return [PhaseLoad(phase=ph, rate_per_s=float(rates[k]), utilization=float(util[:, k].max()),
                      latency_ms=finite_or_none(lat[k]) if s.budget else None) for k, ph in enumerate(phases)]


def _hold_black_box(s: LinkSizing, nodes: int, rates: np.ndarray, phases: list[str], spec: CapacitySpec):
    up = float(nodes_up(nodes, spec.redundancy))
    peak = s.peak_per_node_rps or s.capacity_per_node_rps
    return [PhaseLoad(phase=ph, rate_per_s=float(rates[k]),
                      utilization=float(rates[k] / (up * peak)) if up > 0 else float("inf"))
            for k, ph in enumerate(phases)]


def hold(allocation: Allocation, sizing: list[LinkSizing], mix: PeakMix, spec: CapacitySpec, *,
         name: str = "what-if", plan_mix: str = "plan") -> WhatIf:
    """Hold `allocation` (made from `sizing`) against `mix` at the peak."""
    frame = mix.frame()
    phases = list(frame.index)
    nodes = allocation.nodes()
    out = []
    for s in sizing:
        rates = frame[s.link].to_numpy(dtype=float) if s.link in frame else np.zeros(len(phases))
        n = nodes.get(s.link, 0)
        hold_link = _hold_black_box if s.method == "black-box" else _hold_cpu_link
        loads = hold_link(s, n, rates, phases, spec)
        worst = max(loads, key=lambda p: p.utilization)
        lats = [p.latency_ms for p in loads]
        unbounded = any(p.utilization >= 1.0 for p in loads)
        worst_lat = None if (unbounded or s.budget is None) else max((x for x in lats if x is not None), default=None)
        over_budget = [p for p in loads if s.budget and p.latency_ms is not None and p.latency_ms > s.budget.latency_ms]
        if s.method == "black-box" and s.capacity_per_node_rps:
            up = float(nodes_up(n, spec.redundancy))
            over_budget += [p for p in loads if up > 0 and p.rate_per_s / up > s.capacity_per_node_rps]
        if unbounded:
            reason = (f"utilization {worst.utilization:.3g} >= 1 in phase {worst.phase}: "
                      f"requests arrive faster than {n} nodes serve them")
        elif over_budget:
            p = over_budget[0]
            reason = (f"predicted p{s.budget.percentile:g} {p.latency_ms:.4g} ms > budget {s.budget.latency_ms:g} ms "
                      f"in phase {p.phase}" if p.latency_ms is not None else
                      f"{p.rate_per_s / max(float(nodes_up(n, spec.redundancy)), 1e-9):.4g} req/s per node in phase "
                      f"{p.phase} is above the {s.capacity_per_node_rps:.4g} req/s measured within budget")
        elif worst.utilization > spec.utilization_ceiling:
            reason = f"utilization {worst.utilization:.2f} above the ceiling {spec.utilization_ceiling:g} in phase {worst.phase}"
        else:
            reason = ""
        out.append(LinkHold(link=s.link, nodes=n, phases=loads, worst_utilization=worst.utilization,
                            worst_latency_ms=worst_lat, budget=s.budget,
                            overloaded=bool(unbounded or over_budget), reason=reason))
    return WhatIf(name=name, plan_mix=plan_mix, held_against=mix.name,
                  utilization_ceiling=spec.utilization_ceiling, links=out)
