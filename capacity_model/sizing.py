"""Sizing: the fewest nodes per (link, service) pool that keep every phase under the utilization
ceiling and within the link's latency budget, then redundancy. Vectorised over pools, phases and
(for Monte Carlo) draws.

A pool is the set of nodes that runs one service for one link (each critical link gets its own
nodes, as the night's links were isolated). A request of link l costs D[l, s] CPU-seconds on
service s; on the night a core does it in D / speed. Per node (`node.queue: per-node`) a pool is
M/M/cores with the link's rate split evenly over its nodes; `pooled` is one M/M/(nodes*cores).

The latency budget of a link with m services is split by the union bound: each service's waiting
time must exceed (budget - base) / m with probability at most (1 - q) / m, so that the sum of the
waits exceeds budget - base with probability at most 1 - q. `base` is the link's measured low-load
percentile, which already holds the service times. The predicted percentile is base + the sum of
the services' waiting-time quantiles at q_stage = 1 - (1 - q) / m: a bound, not an estimate.

Node counts are searched by doubling then bisection over the monotone predicate, elementwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capacity_model.contracts import (
    LatencyBudget,
    LinkSizing,
    NodeSpec,
    PhaseLoad,
    RedundancySpec,
    ServiceSizing,
    finite_or_none,
)
from capacity_model.queueing import wait_quantile, wait_tail

MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class PoolArrays:
    """P pools as flat arrays: link index, demand, and each pool's share of its link's latency budget."""

    link: np.ndarray  # (P,) int: index into the planned links
    service: list[str]  # (P,)
    cpu_s: np.ndarray  # (P,) CPU-seconds per request on the measuring machine (> 0)
    tail: np.ndarray  # (P,) allowed P(wait > allowance); nan: the link has no budget
    allowance_s: np.ndarray  # (P,) waiting time allowed at this service; < 0: budget below base latency


def latency_split(budget: LatencyBudget | None, base_latency_ms: float | None, services: int) -> tuple[float, float]:
    """(tail, allowance_s) of each of a link's `services` stages under the union-bound split."""
    if budget is None or services == 0:
        return np.nan, np.nan
    base = base_latency_ms or 0.0
    return (1.0 - budget.quantile) / services, (budget.latency_ms - base) / 1000.0 / services


def _queue(n, rate, cpu_s, node: NodeSpec):
    """(servers, arrival rate, service rate per server) of a pool of n nodes."""
    mu = node.speed_vs_measured / cpu_s
    if node.queue == "pooled":
        return n * node.cores, rate, mu
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.full_like(n, node.cores, dtype=float), rate / n, mu


def _smallest(pred, lo, hi):
    """Elementwise smallest integer n in (lo, ...] with pred(n, sel) true, given pred(lo) false and
    pred monotone; `hi` is a first guess (doubled until it holds). inf where it never holds."""
    lo, hi = lo.astype(float).copy(), hi.astype(float).copy()
    sel = np.arange(lo.size)
    ok = pred(hi, sel)
    for _ in range(MAX_DOUBLINGS):
        bad = sel[~ok]
        if bad.size == 0:
            break
        lo[bad] = hi[bad]
        hi[bad] *= 2.0
        ok[~ok] = pred(hi[bad], bad)
    hi[~ok] = np.inf
    live = np.flatnonzero((hi - lo > 1) & np.isfinite(hi))
    while live.size:
        mid = np.floor((lo[live] + hi[live]) / 2.0)
        m = pred(mid, live)
        hi[live[m]] = mid[m]
        lo[live[~m]] = mid[~m]
        live = live[hi[live] - lo[live] > 1]
    return hi


def pool_nodes(rate_per_s, pools: PoolArrays, node: NodeSpec, ceiling: float, *, exact_latency: bool = True,
               cpu_s=None):
    """Nodes each pool needs in each phase: (for utilization, for latency), arrays shaped like rate_per_s
    (..., P, phases). For latency: nan where the link has no budget, inf where no node count meets it.
    With exact_latency False the latency count is only searched above the utilization count (enough
    for max(), and much faster for Monte Carlo)."""
    rate = np.asarray(rate_per_s, dtype=float)
    shape = rate.shape
    n_pools, n_phases = shape[-2], shape[-1]
    cpu_p = pools.cpu_s if cpu_s is None else np.asarray(cpu_s, dtype=float)  # (P,) or (..., P)
    work = rate * cpu_p[..., None] / node.speed_vs_measured  # cores busy at the peak
    n_util = np.ceil(work / (node.cores * ceiling) * (1 - 1e-12))
    n_lat = np.full(shape, np.nan)
    tail, allow = pools.tail[:, None], pools.allowance_s[:, None]  # broadcast views, no copies
    has = np.isfinite(tail)
    n_lat[np.broadcast_to(has, shape) & (rate <= 0)] = 0.0
    n_lat[np.broadcast_to(has & (allow < 0), shape) & (rate > 0)] = np.inf
    todo = np.flatnonzero(np.broadcast_to(has & (allow >= 0), shape) & (rate > 0))
    if todo.size:
        # flat index -> (pool, leading index) without materialising the broadcast arrays
        pool = (todo // n_phases) % n_pools
        r, t, w = rate.ravel()[todo], pools.tail[pool], pools.allowance_s[pool]
        d = pools.cpu_s[pool] if cpu_s is None else cpu_p.ravel()[todo // n_phases]
        stable = np.floor(r * d / node.speed_vs_measured / node.cores) + 1.0  # fewest nodes with rho < 1

        def meets(n, sel):
            c, lam, mu = _queue(n, r[sel], d[sel], node)
            # C <= 1, so exp(-(c mu - lam) w) <= tail settles most pools without Erlang C
            with np.errstate(over="ignore", invalid="ignore"):
                surely = np.exp(-(c * mu - lam) * w[sel]) <= t[sel]
            out = surely.copy()
            rest = np.flatnonzero(~surely)
            if rest.size:
                out[rest] = wait_tail(w[sel][rest], c[rest], lam[rest], mu[rest]) <= t[sel][rest]
            return out

        start = stable if exact_latency else np.maximum(stable, n_util.ravel()[todo])
        ok = meets(start, np.arange(todo.size))
        found = start.copy()
        if (~ok).any():
            bad = np.flatnonzero(~ok)
            sub = lambda n, sel: meets(n, bad[sel])  # noqa: E731
            found[bad] = _smallest(sub, start[bad], np.maximum(start[bad] * 2.0, start[bad] + 1.0))
        n_lat.ravel()[todo] = found
    return n_util, n_lat


def pool_load(rate_per_s, nodes, pools: PoolArrays, node: NodeSpec):
    """Utilization and waiting-time quantile (ms, at each pool's stage quantile) of pools holding
    `nodes` (..., P) against rates (..., P, phases). inf latency where the queue is unstable."""
    rate = np.asarray(rate_per_s, dtype=float)
    n = np.broadcast_to(np.asarray(nodes, dtype=float)[..., None], rate.shape)
    pidx = np.broadcast_to(np.arange(rate.shape[-2])[:, None], rate.shape)
    cpu = pools.cpu_s[pidx]
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(rate > 0, rate * cpu / node.speed_vs_measured / (n * node.cores), 0.0)
        c, lam, mu = _queue(n, rate, cpu, node)
        q = 1.0 - np.where(np.isfinite(pools.tail[pidx]), pools.tail[pidx], 0.01)
        wait_ms = np.where(rate > 0, wait_quantile(q, c, lam, mu) * 1000.0, 0.0)
    return util, wait_ms


def with_redundancy(n, redundancy: RedundancySpec):
    """(total nodes, nodes per zone or None) after redundancy, for an array of pool sizes."""
    n = np.asarray(n, dtype=float)
    z = redundancy.zones
    if z > 1:
        per_zone = np.ceil(n / (z - 1 if redundancy.survive_zone_loss else z))
        return per_zone * z, per_zone
    return np.where(n > 0, n + redundancy.n_plus, 0.0), None


def nodes_up(total, redundancy: RedundancySpec):
    """Nodes that carry the peak in the worst case the redundancy covers (a zone lost, k nodes down)."""
    total = np.asarray(total, dtype=float)
    z = redundancy.zones
    if z > 1 and redundancy.survive_zone_loss:
        return total * (z - 1) / z
    if z == 1:
        return np.maximum(total - redundancy.n_plus, np.minimum(total, 1.0))
    return total


def _int(x) -> int | None:
    return None if x is None or not np.isfinite(x) else int(x)


def size_pools(rate_per_s: np.ndarray, pools: PoolArrays, node: NodeSpec, ceiling: float,
               redundancy: RedundancySpec, *, scale=None, exact_latency: bool = True, cpu_s=None):
    """Per pool (..., P): nodes for utilization, for latency (nan/inf as in pool_nodes), before and
    after redundancy, per zone. `rate_per_s` is (..., P, phases). Each pool gets at least one node.
    `scale(n)` maps linearly scaled node counts to real ones (the USL over nodes), when given."""
    n_util, n_lat = pool_nodes(rate_per_s, pools, node, ceiling, exact_latency=exact_latency, cpu_s=cpu_s)
    nu = n_util.max(axis=-1)
    nl = np.where(np.isnan(n_lat), -np.inf, n_lat).max(axis=-1)
    nl = np.where(np.isneginf(nl), np.nan, nl)
    need = np.fmax(nu, np.where(np.isfinite(nl), nl, np.nan))
    n = np.maximum(np.nan_to_num(need, nan=0.0), 1.0)
    if scale is not None:
        n = scale(n)
    total, per_zone = with_redundancy(n, redundancy)
    return nu, nl, n, total, per_zone


def size_link(link: str, rate_per_s: dict[str, float], cpu_s_per_request: dict[str, float], node: NodeSpec,
              ceiling: float, budget: LatencyBudget | None, base_latency_ms: float | None,
              redundancy: RedundancySpec) -> LinkSizing:
    """Size one link: `rate_per_s` per phase at the peak, `cpu_s_per_request` per service it uses."""
    services = [s for s, d in cpu_s_per_request.items() if d > 0]
    tail, allow = latency_split(budget, base_latency_ms, len(services))
    pools = PoolArrays(link=np.zeros(len(services), dtype=int), service=services,
                       cpu_s=np.array([cpu_s_per_request[s] for s in services], dtype=float),
                       tail=np.full(len(services), tail), allowance_s=np.full(len(services), allow))
    phases = list(rate_per_s)
    rates = np.array([[rate_per_s[p] for p in phases]], dtype=float)
    return assemble_links([link], pools, rates, phases, node, ceiling, {link: budget},
                          {link: base_latency_ms}, redundancy)[0]


def assemble_links(links: list[str], pools: PoolArrays, link_rates: np.ndarray, phases: list[str], node: NodeSpec,
                   ceiling: float, budgets: dict[str, LatencyBudget | None],
                   base_latency_ms: dict[str, float | None], redundancy: RedundancySpec, *,
                   scale=None) -> list[LinkSizing]:
    """Size every pool at once and gather them into one LinkSizing per link (link_rates: (L, phases))."""
    rates = link_rates[pools.link]  # (P, phases): a pool sees its link's rate
    nu, nl, n, total, per_zone = size_pools(rates, pools, node, ceiling, redundancy, scale=scale)
    util, wait_ms = pool_load(rates, nodes_up(total, redundancy), pools, node)
    one_total, one_zone = with_redundancy(np.ones(1), redundancy)
    out = []
    for i, link in enumerate(links):
        idx = np.flatnonzero(pools.link == i)
        budget, base = budgets.get(link), base_latency_ms.get(link)
        services = [
            ServiceSizing(
                service=pools.service[p], cpu_s_per_request=float(pools.cpu_s[p]),
                nodes_for_utilization=int(nu[p]), nodes_for_latency=_int(nl[p]), nodes=int(n[p]),
                nodes_required=int(total[p]),
                phases=[PhaseLoad(phase=ph, rate_per_s=float(rates[p, k]), utilization=float(util[p, k]),
                                  latency_ms=finite_or_none(wait_ms[p, k]) if budget else None)
                        for k, ph in enumerate(phases)],
            )
            for p in idx
        ]
        feasible = not np.isinf(nl[idx]).any()
        if idx.size:
            n_b, n_total = int(n[idx].sum()), int(total[idx].sum())
            zone = int(per_zone[idx].sum()) if per_zone is not None else None
        else:  # no CPU measured for this link: the minimum, one node before redundancy
            n_b, n_total = 1, int(one_total[0])
            zone = int(one_zone[0]) if one_zone is not None else None
        n_l = None if (budget is None or not feasible or not idx.size) else int(np.nansum(nl[idx]))
        lat_bound = np.isfinite(nl[idx]) & (nl[idx] > nu[idx]) & (nl[idx] >= 1)
        binding = "latency" if lat_bound.any() else ("utilization" if (nu[idx] >= 1).any() else "minimum")
        # link level: the busiest pool's utilization; latency: base + every service's waiting quantile
        lat = (base or 0.0) + wait_ms[idx].sum(axis=0)
        busiest = util[idx].max(axis=0) if idx.size else np.zeros(len(phases))
        out.append(LinkSizing(
            link=link, method="cpu-demand", budget=budget, base_latency_ms=base,
            nodes_for_utilization=int(nu[idx].sum()), nodes_for_latency=n_l, nodes_before_redundancy=n_b,
            nodes_required=n_total, nodes_per_zone=zone, binding=binding, latency_feasible=feasible,
            phases=[PhaseLoad(phase=ph, rate_per_s=float(link_rates[i, k]), utilization=float(busiest[k]),
                              latency_ms=finite_or_none(lat[k]) if budget else None)
                    for k, ph in enumerate(phases)],
            services=services,
        ))
    return out


def black_box_nodes(rate_per_s, capacity_per_node_rps: float, x_max_per_node_rps: float | None, ceiling: float):
    """Nodes for a black-box link per phase: (for utilization, for latency). Latency: the per-node
    throughput measured within the budget; utilization: the ceiling times the USL's peak per node."""
    rate = np.asarray(rate_per_s, dtype=float)
    n_lat = np.ceil(rate / capacity_per_node_rps * (1 - 1e-12))
    n_util = np.ceil(rate / (ceiling * x_max_per_node_rps) * (1 - 1e-12)) if x_max_per_node_rps else np.zeros_like(rate)
    return n_util, n_lat


def size_black_box(link: str, rate_per_s: dict[str, float], capacity_per_node_rps: float,
                   x_max_per_node_rps: float | None, ceiling: float, budget: LatencyBudget | None,
                   redundancy: RedundancySpec) -> LinkSizing:
    """Size a link whose CPU cannot be read, from the per-node throughput it sustains within budget
    (already scaled to the night's node)."""
    phases = list(rate_per_s)
    rates = np.array([rate_per_s[p] for p in phases], dtype=float)
    n_util, n_lat = black_box_nodes(rates, capacity_per_node_rps, x_max_per_node_rps, ceiling)
    nu, nl = int(n_util.max(initial=0)), int(n_lat.max(initial=0))
    n = max(nu, nl, 1)
    total, per_zone = with_redundancy(np.array([n]), redundancy)
    up = float(nodes_up(total, redundancy)[0])
    peak_rps = x_max_per_node_rps or capacity_per_node_rps
    binding = "minimum" if n > max(nu, nl) else ("latency" if nl >= nu else "utilization")
    return LinkSizing(
        link=link, method="black-box", budget=budget, base_latency_ms=None,
        nodes_for_utilization=nu, nodes_for_latency=nl, nodes_before_redundancy=n,
        nodes_required=int(total[0]), nodes_per_zone=None if per_zone is None else int(per_zone[0]),
        binding=binding, latency_feasible=True,
        capacity_per_node_rps=capacity_per_node_rps, peak_per_node_rps=x_max_per_node_rps,
        phases=[PhaseLoad(phase=p, rate_per_s=float(rates[k]), utilization=float(rates[k] / (up * peak_rps)))
                for k, p in enumerate(phases)],
    )
