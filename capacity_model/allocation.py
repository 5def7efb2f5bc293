"""Allocation of the global node budget over the links: one integer program (scipy.optimize.milp, HiGHS).

Variables: integer nodes x[l, z] per link and zone (one zone without zone redundancy) and the
shortfall s[l, z] >= required[l, z] - x[l, z], s >= 0, sum x <= budget.
- When the budget covers every link, the program gives each link exactly what it needs (minimise sum x).
- When it cannot, it minimises the largest weighted relative shortfall max_l w_l * s_l / required_l
  (so the short links are short by about the same fraction, weighted by priority), then, with a
  small weight, the sum of relative shortfalls, then uses every node left (no node idles while a link
  is short). The plan names the short links and by how much.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from capacity_model.contracts import Allocation, LinkAllocation


def allocate(required_per_zone: dict[str, int], node_budget: int, *, zones: int = 1,
             priorities: dict[str, float] | None = None) -> Allocation:
    """Allocate `node_budget` nodes: `required_per_zone[link]` nodes in each of `zones` zones."""
    links = list(required_per_zone)
    L, Z = len(links), zones
    req = np.repeat(np.array([required_per_zone[l] for l in links], dtype=float), Z)  # (L*Z,) link-major
    need = float(req.sum())
    w = np.repeat(np.array([(priorities or {}).get(l, 1.0) for l in links], dtype=float), Z)
    LZ = L * Z
    if need <= node_budget:
        # x = required is optimal; the program states it and proves nothing smaller fits the constraints
        c = np.ones(LZ)
        cons = [LinearConstraint(np.ones((1, LZ)), -np.inf, node_budget)]
        res = milp(c, constraints=cons, integrality=np.ones(LZ), bounds=Bounds(req, np.inf))
        x = np.round(res.x) if res.success else req
        status = res.message
    else:
        # variables [x (LZ), s (LZ), t]; relative shortfall per variable r = w s / (req_link_total)
        rel = w / np.maximum(req * Z, 1.0)
        eps = 1e-3 / max(LZ, 1)
        tiny = 1e-6 / max(node_budget, 1)
        c = np.concatenate([-tiny * np.ones(LZ), eps * rel, [1.0]])
        eye = np.eye(LZ)
        A = np.vstack([
            np.hstack([eye, eye, np.zeros((LZ, 1))]),  # x + s >= req
            np.hstack([np.zeros((LZ, LZ)), np.diag(rel * Z), -np.ones((LZ, 1))]),  # w s / req_l <= t (per zone)
            np.concatenate([np.ones(LZ), np.zeros(LZ), [0.0]])[None, :],  # sum x <= budget
        ])
        lo = np.concatenate([req, -np.inf * np.ones(LZ), [0.0]])
        hi = np.concatenate([np.inf * np.ones(LZ), np.zeros(LZ), [node_budget]])
        integrality = np.concatenate([np.ones(LZ), np.zeros(LZ), [0]])
        bounds = Bounds(np.zeros(2 * LZ + 1), np.concatenate([req, req, [np.inf]]))
        res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=integrality, bounds=bounds,
                   options={"mip_rel_gap": 1e-9})
        x = np.round(res.x[:LZ]) if res.success else np.floor(req * node_budget / need)
        status = res.message
    xz = x.reshape(L, Z).astype(int)
    rz = req.reshape(L, Z).astype(int)
    out = []
    for i, link in enumerate(links):
        got, want = int(xz[i].sum()), int(rz[i].sum())
        short = max(want - got, 0)
        out.append(LinkAllocation(link=link, required_nodes=want, nodes=got, shortfall_nodes=short,
                                  shortfall_ratio=short / want if want else 0.0,
                                  nodes_per_zone=[int(v) for v in xz[i]] if Z > 1 else None))
    total = int(xz.sum())
    return Allocation(links=out, total_nodes=total, required_nodes=int(need), node_budget=int(node_budget),
                      feasible=need <= node_budget, zones=Z, solver_status=str(status))
