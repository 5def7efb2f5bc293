"""The plan from measurements: sizing, allocation, Monte Carlo, and the 1 February what-if."""

import subprocess
import sys

import pytest

from capacity_model.contracts import GrabOnlySpec, MixSpec, Plan, UncertaintySpec, USLFit
from capacity_model.planner import declared_mix, hold, make_plan, measured_mix
from capacity_model.spec import load_spec
from synth_measurements import synthetic_measurements
from capacity_model.usl import fit_usl
from gala.contract.errors import InputError


@pytest.fixture(scope="module")
def feb1():
    return synthetic_measurements(seconds_per_phase=40, noise_cores=0.005, seed=11)


@pytest.fixture(scope="module")
def plan(feb1):
    return make_plan(load_spec(), feb1)


def small_spec(**fields):
    """The default gala-2016 spec with 200 Monte Carlo draws and the given fields replaced."""
    spec = load_spec()
    spec.uncertainty = UncertaintySpec(draws=200, seed=1)
    for name, value in fields.items():
        setattr(spec, name, value)
    return spec


def test_the_1_february_what_if_shows_share_and_chat_overloaded(plan):
    feb1 = plan.feb1
    assert feb1.held_against == "measured rehearsal mix"
    assert "grab" in feb1.plan_mix
    assert set(feb1.overloaded_links) == {"share", "chat"}
    by = {h.link: h for h in feb1.links}
    assert not by["grab"].overloaded and by["grab"].worst_utilization <= 0.7 + 1e-9
    for link in ("share", "chat"):
        assert by[link].worst_utilization >= 1 and "utilization" in by[link].reason
        # the grab-only plan gave the link the minimum: one node, spread over three zones
        assert plan.grab_only_allocation.nodes()[link] == 3


def test_plan_sizes_every_critical_link_for_every_phase(plan, feb1):
    assert plan.links == ["chat", "grab", "share"]
    assert plan.peak_rate_per_s == pytest.approx(295e6)
    assert set(plan.mix.rate_per_s) == {"grab", "share-burst", "chat"}
    for phase, rates in plan.mix.rate_per_s.items():
        assert sum(rates.values()) == pytest.approx(295e6)  # each phase scaled to the peak
    for s in plan.sizing:
        assert s.method == "cpu-demand" and s.services[0].service == "target"
        assert max(p.utilization for p in s.phases) <= 0.7 + 1e-9
        for p in s.phases:
            assert p.latency_ms is None or p.latency_ms <= s.budget.latency_ms
        assert s.nodes_required == 3 * s.nodes_per_zone
    # the demands found are close to the synthetic truth (0.4, 1.2, 0.6 CPU-ms per request)
    D = plan.demand.demand_frame()["target"]
    assert D["grab"] == pytest.approx(0.0004, rel=0.1)
    assert D["share"] == pytest.approx(0.0012, rel=0.1)
    assert D["chat"] == pytest.approx(0.0006, rel=0.1)


def test_default_budget_is_short_and_says_which_links(plan):
    a = plan.allocation
    assert a.required_nodes == sum(s.nodes_required for s in plan.sizing)
    assert a.required_nodes > 10_000 and not a.feasible  # the synthetic target is slow per request
    assert a.total_nodes == 10_000 and set(a.short_links) == {"grab", "share", "chat"}
    assert "SHORT" in plan.headline() and "of 10000 nodes" in plan.headline()


def test_a_covering_budget_is_feasible_and_holds_its_own_mix(feb1):
    spec = small_spec(node_budget=100_000)
    p = make_plan(spec, feb1)
    assert p.allocation.feasible and p.allocation.short_links == []
    assert p.allocation.nodes() == {s.link: s.nodes_required for s in p.sizing}
    w = hold(p, measured_mix(spec, feb1))
    assert w.overloaded_links == []
    assert all(h.worst_utilization <= 0.7 + 1e-9 for h in w.links)


def test_monte_carlo_bands_bracket_the_plan(feb1):
    p = make_plan(small_spec(), feb1)
    u = p.uncertainty
    assert u.draws == 200
    for s in p.sizing:
        q = u.links[s.link]
        assert q.p5 <= q.p50 <= q.p95
        assert q.p5 <= s.nodes_required <= q.p95
        assert q.p95 > q.p5  # a 10% CV on the peak must spread the counts
    assert u.p_over_budget == 1.0


def test_declared_mix_and_declared_grab_only(feb1):
    spec = small_spec(mix=MixSpec(source="declared", phases={"night": {"grab": 0.5, "share": 0.3, "chat": 0.2}}),
                      grab_only=GrabOnlySpec(declared={"grab": 1.0}))
    p = make_plan(spec, feb1)
    assert p.mix.source == "declared" and list(p.mix.rate_per_s) == ["night"]
    assert p.mix.rate_per_s["night"]["share"] == pytest.approx(0.3 * 295e6)
    assert set(p.feb1.overloaded_links) == {"share", "chat"}


def test_black_box_link_uses_the_probe_capacity(feb1):
    m = synthetic_measurements(seconds_per_phase=40, noise_cores=0.005, seed=11)
    m.method = {"chat": "black-box"}
    m.capacity_per_node = {"chat": 300.0}
    m.usl = {"chat": fit_usl([1, 2, 4, 8], [100.0, 190.0, 330.0, 420.0], axis="concurrency")}
    p = make_plan(small_spec(), m)
    chat = p.sizing_of("chat")
    assert p.methods["chat"] == "black-box" and chat.method == "black-box"
    # the night's node: 32 cores against the measured 2, same speed
    assert chat.capacity_per_node_rps == pytest.approx(300.0 * 16)
    peak_chat = max(p.mix.rate_per_s[ph].get("chat", 0.0) for ph in p.mix.rate_per_s)
    assert chat.nodes_for_latency == pytest.approx(peak_chat / (300.0 * 16), abs=1)
    assert p.uncertainty.links["chat"].p5 <= chat.nodes_required <= p.uncertainty.links["chat"].p95
    assert "chat" in p.feb1.overloaded_links


def test_usl_over_nodes_replaces_linear_scaling():
    m = synthetic_measurements(seconds_per_phase=40, noise_cores=0.005, seed=11)
    linear = make_plan(small_spec(), m)
    n_lin = linear.sizing_of("grab").services[0].nodes
    m.scale_usl = {"grab": USLFit(sigma=1e-5, kappa=0.0, lambda_rps=1000.0, r2=1.0, n_points=3)}
    p = make_plan(small_spec(), m)
    # n (1 - sigma) / (1 - n sigma) real nodes do the work of n linear ones
    assert p.sizing_of("grab").services[0].nodes == pytest.approx(n_lin * (1 - 1e-5) / (1 - n_lin * 1e-5), abs=1)
    assert p.sizing_of("chat").nodes_required == linear.sizing_of("chat").nodes_required
    assert any("grab: node counts from the USL over nodes" in n for n in p.notes)
    # a USL that peaks below the night's need: sized linearly, and the plan says the link must be split
    m.scale_usl = {"*": fit_usl([1, 2, 4], [1000.0, 1990.0, 3900.0])}
    p = make_plan(small_spec(), m)
    assert p.sizing_of("grab").nodes_required == linear.sizing_of("grab").nodes_required
    assert any("independent cells" in n for n in p.notes)


def test_spec_naming_unknown_links_fails_with_its_line(feb1, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("node_budget: 100\nlinks: [grab, teleport]\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"^{path}:2: links: expected links the run measured .*teleport"):
        make_plan(load_spec(path), feb1)
    path.write_text("grab_only: {phases: [lunch]}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"grab_only.phases: expected phases of the run .*lunch"):
        make_plan(load_spec(path), feb1)


def test_another_system_under_the_default_spec():
    # a shop with search and checkout: no grab link, none of the gala's budgets apply
    m = synthetic_measurements({"browse": {"search": 400.0}, "buy": {"search": 100.0, "checkout": 150.0}},
                               {"search": {"web": 0.0005}, "checkout": {"web": 0.002, "db": 0.001}},
                               low_load_ms={"search": 5.0, "checkout": 20.0}, seconds_per_phase=40, seed=4)
    p = make_plan(small_spec(), m)
    assert p.links == ["checkout", "search"]
    assert all(s.budget is None for s in p.sizing)
    assert any("latency budgets for grab, share, chat are not used" in n for n in p.notes)
    assert any("'checkout' alone stands in" in n for n in p.notes)
    assert "buy" in p.feb1.plan_mix  # checkout's busiest phase
    assert {s.service for s in p.sizing_of("checkout").services} == {"web", "db"}


def test_plan_json_round_trip(plan):
    again = Plan.model_validate_json(plan.model_dump_json())
    assert again.headline() == plan.headline()
    assert again.feb1.overloaded_links == plan.feb1.overloaded_links
    figures = {a.figure: a.source for a in plan.assumptions}
    assert figures["peak.requests_per_min"] == "seed" and figures["demand.grab"] == "run"


def test_hold_against_a_declared_mix(plan):
    chat_heavy = declared_mix({"talk": {"chat": 0.9, "grab": 0.1}}, plan.spec, "all talk")
    w = hold(plan, chat_heavy)
    assert w.held_against == "all talk"
    by = {h.link: h for h in w.links}
    assert by["chat"].overloaded and by["chat"].phases[0].rate_per_s == pytest.approx(0.9 * 295e6)


def test_capacity_model_never_imports_locust_or_gevent():
    code = ("import sys, capacity_model.api, capacity_model.planner, capacity_model.spec; "
            "bad = [m for m in ('locust', 'gevent') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_budget_far_too_small_leaves_links_without_nodes(feb1):
    p = make_plan(small_spec(node_budget=4), feb1)
    a = p.allocation
    assert not a.feasible and a.total_nodes <= 4
    starved = [x.link for x in a.links if x.nodes == 0]
    assert starved and all(x.shortfall_ratio == 1.0 for x in a.links if x.nodes == 0)
    w = hold(p, measured_mix(p.spec, feb1))
    by = {h.link: h for h in w.links}
    for link in starved:
        assert by[link].overloaded and by[link].worst_utilization == float("inf")
    again = Plan.model_validate_json(p.model_dump_json())
    assert again.allocation.short_links == a.short_links
