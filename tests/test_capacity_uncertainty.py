"""Monte Carlo node counts: the draws' distributions, and no spread when nothing is uncertain."""

import numpy as np
import pytest

from capacity_model.contracts import LatencyBudget, NodeSpec, RedundancySpec, UncertaintySpec
from capacity_model.sizing import PoolArrays, latency_split, size_link
from capacity_model.uncertainty import draw_demands, draw_factors, node_quantiles
from capacity_model.whatif import split_nodes

ZONES = RedundancySpec(zones=3, survive_zone_loss=True)


def test_peak_factor_is_lognormal_with_mean_one_and_the_spec_cv():
    spec = UncertaintySpec(draws=20_000, peak_cv=0.1, link_rate_intervals={"chat": (1.0, 2.0)}, seed=3)
    f = draw_factors(spec, ["grab", "chat"], np.random.default_rng(spec.seed))
    assert f.shape == (20_000, 2)
    assert f[:, 0].mean() == pytest.approx(1.0, abs=0.005)
    assert f[:, 0].std() / f[:, 0].mean() == pytest.approx(0.1, rel=0.05)
    ratio = f[:, 1] / f[:, 0]  # chat's own factor, uniform in [1, 2]
    assert ratio.min() >= 1.0 and ratio.max() <= 2.0 and ratio.mean() == pytest.approx(1.5, abs=0.01)


def test_demand_draws_are_truncated_at_zero():
    d = draw_demands(np.array([1e-4, 1e-4, 5e-4]), np.array([2e-4, 0.0, 1e-5]), 5000, np.random.default_rng(0))
    assert (d >= 0).all()
    assert (d[:, 1] == 1e-4).all()  # no standard error: the demand stays put
    assert d[:, 2].mean() == pytest.approx(5e-4, rel=0.01)


def test_no_uncertainty_gives_the_plan_itself():
    budget = LatencyBudget(percentile=99, latency_ms=50)
    rates = {"grab": 2e6, "share-burst": 5e5}
    cpu = {"api": 4e-4, "db": 1e-4}
    point = size_link("grab", rates, cpu, NodeSpec(), 0.7, budget, 8.0, ZONES)
    tail, allow = latency_split(budget, 8.0, 2)
    pools = PoolArrays(link=np.zeros(2, dtype=int), service=list(cpu), cpu_s=np.array(list(cpu.values())),
                       tail=np.full(2, tail), allowance_s=np.full(2, allow))
    u = node_quantiles(links=["grab"], link_rates=np.array([list(rates.values())]), pools=pools,
                       se_cpu_s=np.zeros(2), black_box={}, node=NodeSpec(), ceiling=0.7, redundancy=ZONES,
                       spec=UncertaintySpec(draws=50, peak_cv=0.0), node_budget=10_000)
    q = u.links["grab"]
    assert q.p5 == q.p50 == q.p95 == point.nodes_required
    assert u.p_over_budget == 0.0


def test_split_nodes_keeps_every_node():
    out = split_nodes(10, np.array([3.0, 3.0, 3.0]))
    assert out.sum() == 10 and sorted(out) == [3, 3, 4]
    assert split_nodes(0, np.array([1.0, 2.0])).tolist() == [0, 0]


def test_a_link_that_needs_unbounded_nodes_leaves_the_other_links_counts_whole():
    """One link's demand is unbounded (an infinite CPU per request): its own count is inf, and the other
    link's stays the finite count it has alone (an incidence matmul made every other link NaN: inf x 0)."""
    loose = LatencyBudget(percentile=99, latency_ms=50)
    rates = np.array([[2e6, 5e5], [1e6, 1e6]])  # (links grab, chat) x phases
    tail, allow = latency_split(loose, 8.0, 1)
    pools = PoolArrays(link=np.array([0, 1]), service=["api", "api"], cpu_s=np.array([np.inf, 2e-4]),
                       tail=np.full(2, tail), allowance_s=np.full(2, allow))
    spec = UncertaintySpec(draws=50, peak_cv=0.0)
    with np.errstate(invalid="ignore", over="ignore"):  # the unbounded pool's own arithmetic is not the point
        both = node_quantiles(links=["grab", "chat"], link_rates=rates, pools=pools, se_cpu_s=np.zeros(2),
                              black_box={}, node=NodeSpec(), ceiling=0.7, redundancy=ZONES, spec=spec,
                              node_budget=10_000)
    alone = size_link("chat", {"a": 1e6, "b": 1e6}, {"api": 2e-4}, NodeSpec(), 0.7, loose, 8.0, ZONES)
    assert not np.isfinite(both.links["grab"].p50)  # its own count: unbounded (inf or NaN from inf - inf)
    assert both.links["chat"].p5 == both.links["chat"].p95 == alone.nodes_required
