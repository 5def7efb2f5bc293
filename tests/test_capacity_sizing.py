"""Sizing: fewest nodes under the ceiling and the latency budget, monotone in every input; redundancy."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from capacity_model.contracts import LatencyBudget, NodeSpec, RedundancySpec
from capacity_model.queueing import wait_quantile
from capacity_model.sizing import nodes_up, size_black_box, size_link, with_redundancy

NONE = RedundancySpec()
NODE = NodeSpec(cores=4)

rates = st.floats(1.0, 1e6)
demands = st.floats(1e-5, 0.05)
budgets_ms = st.floats(1.0, 500.0)
percentiles = st.sampled_from([50.0, 90.0, 95.0, 99.0, 99.9])
SLOW = settings(max_examples=40, deadline=None)


def nodes(rate, d, budget_ms=100.0, pct=99.0, base=5.0, node=NODE, ceiling=0.7, red=NONE, d2=None):
    cpu = {"api": d} if d2 is None else {"api": d, "db": d2}
    return size_link("grab", {"peak": rate, "quiet": rate / 10}, cpu, node, ceiling,
                     LatencyBudget(percentile=pct, latency_ms=budget_ms), base, red)


@SLOW
@given(rate=rates, d=demands, more=st.floats(1.0, 3.0))
def test_more_demand_never_fewer_nodes(rate, d, more):
    assert nodes(rate, d * more).nodes_required >= nodes(rate, d).nodes_required
    assert nodes(rate * more, d).nodes_required >= nodes(rate, d).nodes_required


@SLOW
@given(rate=rates, d=demands, budget=budgets_ms, tighter=st.floats(0.1, 1.0))
def test_tighter_budget_never_fewer_nodes(rate, d, budget, tighter):
    assume(budget * tighter > 5.0)  # above the base latency, so both budgets can be met
    assert nodes(rate, d, budget * tighter).nodes_required >= nodes(rate, d, budget).nodes_required


@SLOW
@given(rate=rates, d=demands, budget=budgets_ms, p=percentiles, q=percentiles)
def test_higher_percentile_never_fewer_nodes(rate, d, budget, p, q):
    assume(budget > 5.0)
    lo, hi = sorted((p, q))
    assert nodes(rate, d, budget, hi).nodes_required >= nodes(rate, d, budget, lo).nodes_required


@SLOW
@given(rate=rates, d=demands, budget=st.floats(6.0, 300.0), p=percentiles, d2=st.one_of(st.none(), demands))
def test_sizing_is_the_fewest_nodes_that_hold(rate, d, budget, p, d2):
    s = nodes(rate, d, budget, p, d2=d2)
    for svc in s.services:
        n = svc.nodes
        stage_q = 1 - (1 - p / 100) / len(s.services)
        allow_ms = (budget - 5.0) / len(s.services)

        def holds(k):
            util = rate * svc.cpu_s_per_request / (k * NODE.cores)
            wait_ms = float(wait_quantile(stage_q, NODE.cores, rate / k, 1 / svc.cpu_s_per_request)) * 1000
            return util <= 0.7 + 1e-12 and wait_ms <= allow_ms * (1 + 1e-9)
        assert holds(n)
        if n > 1:
            assert not holds(n - 1)
    # the predicted percentile is within budget at the sized count (no redundancy spent here)
    assert s.phases[0].latency_ms <= budget * (1 + 1e-9)
    assert s.phases[0].utilization <= 0.7 + 1e-9


def test_latency_binds_when_requests_are_long():
    # 50 ms of CPU per request, 4 cores a node, p99 within 60 ms over a 20 ms base: queueing must be short
    s = size_link("grab", {"peak": 1000.0}, {"api": 0.05}, NODE, 0.99,
                  LatencyBudget(percentile=99, latency_ms=60), 20.0, NONE)
    assert s.binding == "latency"
    assert s.nodes_for_latency > s.nodes_for_utilization
    assert s.nodes_before_redundancy == s.nodes_for_latency


def test_budget_below_base_latency_is_reported_not_met():
    s = size_link("grab", {"peak": 1000.0}, {"api": 0.001}, NODE, 0.7,
                  LatencyBudget(percentile=99, latency_ms=10), 25.0, NONE)
    assert not s.latency_feasible and s.nodes_for_latency is None
    assert s.nodes_required == s.nodes_for_utilization


def test_pooled_queue_never_needs_more_than_per_node():
    budget = LatencyBudget(percentile=99, latency_ms=40)
    per = size_link("g", {"p": 5000.0}, {"api": 0.02}, NodeSpec(cores=2), 0.95, budget, 10.0, NONE)
    pooled = size_link("g", {"p": 5000.0}, {"api": 0.02}, NodeSpec(cores=2, queue="pooled"), 0.95, budget, 10.0, NONE)
    assert pooled.nodes_required <= per.nodes_required


@pytest.mark.parametrize("n,zones,survive,k,total,per_zone", [
    (10, 3, True, 0, 15, 5), (11, 3, True, 0, 18, 6), (10, 3, False, 0, 12, 4),
    (10, 1, False, 2, 12, None), (1, 3, True, 0, 3, 1), (0, 1, False, 2, 0, None),
])
def test_redundancy_arithmetic(n, zones, survive, k, total, per_zone):
    r = RedundancySpec(zones=zones, survive_zone_loss=survive, n_plus=k)
    got_total, got_zone = with_redundancy(np.array([n]), r)
    assert got_total[0] == total
    assert (got_zone is None and per_zone is None) or got_zone[0] == per_zone
    assert nodes_up(got_total, r)[0] >= n  # the redundancy spent, n nodes still stand


def test_zone_redundancy_in_a_link():
    r = RedundancySpec(zones=3, survive_zone_loss=True)
    s = nodes(1e5, 0.001, red=r)
    assert s.nodes_required == 3 * s.nodes_per_zone
    assert 2 * s.nodes_per_zone >= s.nodes_before_redundancy


def test_black_box_link_sized_from_capacity_within_budget():
    budget = LatencyBudget(percentile=99, latency_ms=200)
    s = size_black_box("chat", {"a": 10_000.0, "b": 2_000.0}, capacity_per_node_rps=300.0,
                       x_max_per_node_rps=400.0, ceiling=0.7, budget=budget, redundancy=NONE)
    assert s.method == "black-box"
    assert s.nodes_for_latency == 34  # ceil(10000 / 300)
    assert s.nodes_for_utilization == 36  # ceil(10000 / (0.7 * 400))
    assert s.nodes_required == 36 and s.binding == "utilization"
