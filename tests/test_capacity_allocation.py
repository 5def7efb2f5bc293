"""The allocation integer program: exact when the budget covers every link; names the short links when not."""

from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_model.allocation import allocate


def test_feasible_budget_gives_every_link_what_it_needs():
    a = allocate({"grab": 1200, "share": 300, "chat": 100}, 10_000, zones=3)
    assert a.feasible and a.short_links == []
    assert a.nodes() == {"grab": 3600, "share": 900, "chat": 300}
    assert a.total_nodes == a.required_nodes == 4800
    assert a.links[0].nodes_per_zone == [1200, 1200, 1200]
    assert "Optimal" in a.solver_status


def test_infeasible_budget_names_the_short_links_and_by_how_much():
    a = allocate({"grab": 3000, "share": 500, "chat": 200}, 8000, zones=3)
    assert not a.feasible
    assert a.total_nodes == 8000  # no node idles while a link is short
    assert set(a.short_links) == {"grab", "share", "chat"}
    for x in a.links:
        assert x.shortfall_nodes == x.required_nodes - x.nodes > 0
        assert 0.25 < x.shortfall_ratio < 0.31  # min-max: about the same fraction short each
    # priorities move the shortage to the unprotected link
    b = allocate({"grab": 3000, "share": 500, "chat": 200}, 8000, zones=3, priorities={"share": 10, "chat": 10})
    short = {x.link: x.shortfall_ratio for x in b.links}
    assert short["grab"] > 0.3 and short["share"] < 0.05 and short["chat"] < 0.05


def test_one_zone_budget_exactly_met():
    a = allocate({"a": 5, "b": 7}, 12)
    assert a.feasible and a.nodes() == {"a": 5, "b": 7} and a.links[0].nodes_per_zone is None


@settings(max_examples=25, deadline=None)
@given(req=st.lists(st.integers(1, 400), min_size=1, max_size=6), budget=st.integers(1, 2000),
       extra=st.integers(1, 500), zones=st.sampled_from([1, 3]))
def test_larger_budget_is_never_a_worse_plan(req, budget, extra, zones):
    need = {f"l{i}": r for i, r in enumerate(req)}
    small, large = allocate(need, budget, zones=zones), allocate(need, budget + extra, zones=zones)
    assert large.total_nodes >= small.total_nodes or large.feasible
    assert sum(x.shortfall_nodes for x in large.links) <= sum(x.shortfall_nodes for x in small.links)
    assert max(x.shortfall_ratio for x in large.links) <= max(x.shortfall_ratio for x in small.links) + 1e-9
    for a in (small, large):
        assert a.total_nodes <= a.node_budget
        assert all(0 <= x.nodes <= x.required_nodes for x in a.links)
