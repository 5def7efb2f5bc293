"""Monte Carlo node counts: p5/p50/p95 nodes per link, vectorised over draws.

Each draw takes the demands D[link, service] from normals with the fit's bootstrap standard errors,
truncated at zero; the peak from a lognormal with mean 1 and the spec's coefficient of variation;
and each link's rate from a uniform factor in its declared interval, if any. Every pool is sized for
every draw at once (the same sizing as the plan), then redundancy, then summed per link.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import truncnorm

from capacity_model.contracts import NodeQuantiles, NodeSpec, RedundancySpec, Uncertainty, UncertaintySpec
from capacity_model.sizing import PoolArrays, black_box_nodes, size_pools, with_redundancy

QUANTILES = (5, 50, 95)


def _quantiles(x: np.ndarray) -> NodeQuantiles:
    p5, p50, p95 = np.percentile(x, QUANTILES)
    return NodeQuantiles(p5=float(p5), p50=float(p50), p95=float(p95))


def draw_factors(spec: UncertaintySpec, links: list[str], rng: np.random.Generator) -> np.ndarray:
    """(draws, links) multipliers of each link's peak rate: the peak's lognormal times the link's uniform."""
    k = spec.draws
    s2 = np.log1p(spec.peak_cv ** 2)
    peak = rng.lognormal(-s2 / 2.0, np.sqrt(s2), size=(k, 1))  # mean exactly 1
    lo = np.array([spec.link_rate_intervals.get(l, (1.0, 1.0))[0] for l in links])
    hi = np.array([spec.link_rate_intervals.get(l, (1.0, 1.0))[1] for l in links])
    return peak * rng.uniform(lo, hi, size=(k, len(links)))


def draw_demands(cpu_s: np.ndarray, se_cpu_s: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, P) demands from normals truncated at zero (a pool without a standard error keeps its D)."""
    se = np.where(se_cpu_s > 0, se_cpu_s, 1.0)
    a = np.where(se_cpu_s > 0, -cpu_s / se, -np.inf)
    z = truncnorm.rvs(a, np.inf, size=(draws, cpu_s.size), random_state=rng)
    return np.where(se_cpu_s > 0, cpu_s + z * se, cpu_s)


def node_quantiles(*, links: list[str], link_rates: np.ndarray, pools: PoolArrays, se_cpu_s: np.ndarray,
                   black_box: dict[int, tuple[float, float | None]], node: NodeSpec, ceiling: float,
                   redundancy: RedundancySpec, spec: UncertaintySpec, node_budget: int, scale=None) -> Uncertainty:
    """Monte Carlo over `spec.draws` draws. `link_rates` (L, phases) at the peak; `black_box` maps a
    link index to (capacity per node within budget, USL peak per node), both for the night's node."""
    rng = np.random.default_rng(spec.seed)
    factors = draw_factors(spec, links, rng)  # (K, L)
    rates = factors[:, :, None] * link_rates[None, :, :]  # (K, L, phases)
    counts = np.zeros((spec.draws, len(links)))
    if pools.cpu_s.size:
        cpu = draw_demands(pools.cpu_s, se_cpu_s, spec.draws, rng)
        _, _, _, total, _ = size_pools(rates[:, pools.link, :], pools, node, ceiling, redundancy,
                                       exact_latency=False, cpu_s=cpu, scale=scale)
        # sum the pools of each link (not a matmul with the incidence: an unreachable pool's inf times 0 is NaN)
        np.add.at(counts.T, pools.link, total.T)
    for i, (cap, peak) in black_box.items():
        nu, nl = black_box_nodes(rates[:, i, :], cap, peak, ceiling)
        counts[:, i] = with_redundancy(np.maximum(np.maximum(nu, nl).max(axis=-1), 1.0), redundancy)[0]
    # a planned link with neither pools nor a black-box capacity still gets its one node
    empty = np.setdiff1d(np.arange(len(links)), np.concatenate([pools.link, list(black_box)]).astype(int))
    counts[:, empty] = with_redundancy(np.ones(1), redundancy)[0]
    totals = counts.sum(axis=1)
    return Uncertainty(draws=spec.draws, peak_cv=spec.peak_cv, seed=spec.seed,
                       links={l: _quantiles(counts[:, i]) for i, l in enumerate(links)},
                       total=_quantiles(totals), p_over_budget=float((totals > node_budget).mean()))
