"""The knee search's decisions, the load-dependent demand fit and the held-out checks, on synthetic
steps whose truth is known (no load, no processes)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from capacity_model.contracts import DemandFit
from capacity_model.contracts.knee import KneeSearch, KneeStep, MixKnee
from capacity_model.anchor import LoadAdjust, adjust_fit, load_adjustment, mix_demand, speed_ratio
from capacity_model.heldout import operating_point
from capacity_model.knee import KneeConfig, generator_saturated, next_rate, summarize
from capacity_model.loaddemand import fit_load_demand


def node(rate: float, *, cores: float = 0.25, cost_ms=lambda u: 0.30, budget_ms: float = 200.0,
         gen: float = 20.0, achieved: float | None = None, index: int = 0) -> KneeStep:
    """A step against a node of `cores` whose CPU per request is cost_ms(utilization): utilization
    solves u = rate·cost(u)/cores; the queue's p99 blows up past saturation."""
    u = 0.0
    for _ in range(50):
        u = min(1.0, rate * cost_ms(u) / 1000.0 / cores)
    carried = achieved if achieved is not None else (rate if u < 1 else cores / (cost_ms(1.0) / 1000.0))
    p99 = 5.0 + (1000.0 if u >= 0.999 else 10.0 * u / (1 - u))
    return KneeStep(mix="grab", index=index, run_id=f"r{index}", intended_rps=rate, achieved_rps=carried,
                    good_rps=carried, link_rps={"grab": carried}, link_latency_ms={"grab": p99},
                    link_error_ratio={"grab": 0.0}, broken_links=["grab"] if p99 > budget_ms else [],
                    target_cpu_cores=u * cores, utilization=u, cpu_ms_per_request=cost_ms(u),
                    generator_cpu_percent=gen, window_s=6.0)


def search(start: float, cfg: KneeConfig, **kw) -> list[KneeStep]:
    steps, rate = [], start
    while rate is not None:
        steps.append(node(rate, index=len(steps), **kw))
        rate, _ = next_rate(steps, cfg)
    return steps


def test_the_search_brackets_the_budget_within_its_tolerance_and_interpolates_the_ceiling():
    cfg = KneeConfig(ceiling=0.7, tolerance=0.1, max_steps=12)
    steps = search(100.0, cfg)  # a constant 0.30 ms on 0.25 core: saturation at 833 req/s, ceiling at 583
    k = summarize("grab", {"grab": 1.0}, steps, cfg, 0.25, "budget")
    assert k.rps_at_ceiling == pytest.approx(0.7 * 0.25 / 0.0003, rel=0.01)
    ok = max(s.intended_rps for s in steps if not s.broken_links)
    bad = min(s.intended_rps for s in steps if s.broken_links and s.intended_rps > ok)
    assert bad / ok <= 1.1 and len(steps) <= 9
    assert k.rps_at_budget is not None and k.rps_at_budget < 833.4 and not k.budget_lower_bound


def test_a_saturated_generator_stops_the_search_at_once():
    cfg = KneeConfig()
    busy = node(300.0, gen=92.0)
    assert generator_saturated(busy, cfg) and next_rate([busy], cfg) == (None, "generator")
    # the target had headroom and every link was within budget, yet a third of the rate was missing
    short = node(300.0, achieved=180.0)
    assert "headroom" in generator_saturated(short, cfg)
    # a full target explains a short rate: that is the node's knee, not the generator's
    full = node(2000.0, achieved=820.0)
    assert full.utilization >= 0.93 and generator_saturated(full, cfg) is None
    # so does one past the ceiling, short of full (queues), while the generator idles
    queued = node(700.0, achieved=400.0)
    assert cfg.ceiling <= queued.utilization < 0.93 and generator_saturated(queued, cfg) is None
    k = summarize("grab", {"grab": 1.0}, [node(100.0), busy], cfg, 0.25, "generator")
    assert k.generator_limited and k.note.startswith("the generator saturated first")


def test_a_budget_broken_from_the_first_step_comes_down():
    cfg = KneeConfig()
    rate, why = next_rate([node(2000.0)], cfg)
    assert why is None and rate == pytest.approx(2000.0 / 3)


def test_the_load_dependent_fit_recovers_a_known_curve_and_says_when_it_extrapolates():
    rng = np.random.default_rng(1)
    u = np.array([0.1, 0.25, 0.4, 0.55, 0.65, 0.99])  # the saturated step is left out of the fit
    d = 0.40 - 0.15 * u + rng.normal(0, 0.002, len(u))
    fit = fit_load_demand(u, d)
    assert fit.n == 5 and fit.slope_ms == pytest.approx(-0.15, abs=0.02) and fit.intercept_ms == pytest.approx(0.40, abs=0.01)
    at = fit.at(0.7)
    assert not at.extrapolated and at.cpu_ms == pytest.approx(0.295, abs=0.005)
    low = fit_load_demand(u[:2], d[:2])
    far = low.at(0.7)
    assert far.extrapolated and far.rel_error >= 0.05 * (0.7 - 0.25) / 0.1 and "extrapolated from 25%" in far.note
    one = fit_load_demand(np.array([0.2]), np.array([0.3]))
    assert one.slope_ms == 0 and one.at(0.7).extrapolated


def _fit(grab_ms: float, setup_ms: float = 0.0) -> DemandFit:
    return DemandFit(links=["grab", "setup"], services=["target"],
                     cpu_s_per_request={"grab": {"target": grab_ms / 1000}, "setup": {"target": setup_ms / 1000}},
                     standard_error_cpu_s={"grab": {"target": 1e-6}, "setup": {"target": 1e-6}},
                     baseline_busy_cores={"target": 0.0}, r2={"target": 0.99}, residual_std_cores={"target": 0.01},
                     condition_number=3.0, windows=60, bootstrap_draws=100)


def test_an_operating_point_prices_the_mixs_other_links_and_converts_speed():
    fit = _fit(0.30, setup_ms=1.0)
    rates = pd.Series({"grab": 100.0, "setup": 10.0})  # set-up adds 0.1 ms to each grab
    assert mix_demand(fit, rates, ["grab"]) == pytest.approx(0.40e-3)
    p = operating_point(fit, "grab", rates, ["grab"], 0.25, 0.7)
    assert p.rps_per_node_at_ceiling == pytest.approx(0.7 * 0.25 / 0.4e-3)
    assert p.rps_per_node_at_saturation == pytest.approx(0.25 / 0.4e-3)
    # a knee machine twice as fast does the same work in half the CPU-seconds
    assert speed_ratio(50_000.0, 100_000.0) == 0.5 and speed_ratio(None, 1.0) == 1.0
    assert speed_ratio(100_000.0, 95_000.0) == 1.0  # within one machine's noise: not converted


def _knee(cost_at_ceiling_ms: float) -> KneeSearch:
    cost = lambda u: cost_at_ceiling_ms * (1 + 0.5 * (u - 0.7))  # noqa: E731 (rises with load)
    steps = [node(r, cost_ms=cost, index=i) for i, r in enumerate([100.0, 300.0, 500.0, 600.0])]
    mix = MixKnee(mix="grab", fractions={"grab": 1.0}, node_cores=0.25, ceiling=0.7, steps=steps, stop_reason="budget")
    return KneeSearch(search_id="k", scenario="s", target="t", ceiling=0.7, budgets={}, started_at="", ended_at="",
                      wall_s=1.0, speed_units_per_cpu_s=None, mixes=[mix], node_cores=0.25)


def test_a_knee_anchors_the_demand_at_the_ceiling_and_without_one_the_band_widens():
    phase = pd.Series(["grab"] * 4, index=range(4))
    from capacity_model.contracts import Measurements
    m = Measurements(run_ids=["a"], links=["grab"], throughput=pd.DataFrame({"grab": [60.0] * 4}),
                     busy_cores=pd.DataFrame({"target": [0.05] * 4}), phase_rps=pd.DataFrame({"grab": [60.0]}, index=["grab"]),
                     phase_latency_ms=pd.DataFrame(), window_phase=phase)
    fit = _fit(0.30)  # measured at 20% of a quarter core
    anchored = load_adjustment(m, ["grab"], 0.25, 0.7, [_knee(0.45)])
    moved = adjust_fit(fit, anchored)
    assert anchored.source == "load-dependent" and anchored.home == {"grab": "grab"}
    assert moved.cpu_s_per_request["grab"]["target"] == pytest.approx(0.45e-3, rel=0.02)
    assert any("anchored on the knee search's mix grab" in n for n in anchored.notes)
    bare = load_adjustment(m, ["grab"], 0.25, 0.7, [])
    widened = adjust_fit(fit, bare)
    assert bare.source == "linear" and bare.rel_error["grab"] == pytest.approx(0.05 * 5)
    assert widened.cpu_s_per_request["grab"]["target"] == fit.cpu_s_per_request["grab"]["target"]
    assert widened.standard_error_cpu_s["grab"]["target"] > 0.2 * 0.3e-3
    assert any("extrapolated linearly from 20% utilization" in n for n in bare.notes)
    assert adjust_fit(fit, LoadAdjust()) is fit and math.isfinite(moved.standard_error_cpu_s["grab"]["target"])


def test_scale_out_follows_a_known_usl_and_flags_its_extrapolation():
    from capacity_model.scaleout import scale_out

    sigma, kappa, lam = 0.05, 0.002, 100.0
    usl = lambda n: lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))  # noqa: E731
    sizes = [0.25, 0.5, 1.0, 2.0]  # cores; the USL's N = 1 is the smallest
    so = scale_out(sizes, [usl(s / 0.25) for s in sizes], 8.0)
    truth = usl(32) / (32 * usl(1))
    assert so.fit is not None and so.efficiency == pytest.approx(truth, rel=0.02)
    assert so.extrapolated and so.rel_error >= 0.5 * (1 - truth) - 1e-9 and "extrapolated beyond 2" in so.note
    inside = scale_out(sizes, [usl(s / 0.25) for s in sizes], 1.0, measured_at=0.25)
    assert not inside.extrapolated and inside.efficiency == pytest.approx(usl(4) / (4 * usl(1)), rel=0.02)
    single = scale_out([0.5, 0.5], [100.0, 110.0], 32.0)
    assert single.fit is None and single.efficiency == 1.0 and single.capacity_rps == pytest.approx(64 * 105.0)
    assert single.rel_error == 0.25 and "scaled linearly" in single.note


def test_two_machines_runs_plan_the_same_service_alike_in_speed_units(tmp_path):
    """The same service measured on a core half as fast (twice the CPU-seconds per request, half the
    speed reference) plans the same nodes once the night's node is declared in speed units."""
    import json as _json

    from capacity_model.api import plan_run
    from synth_runs import DEMAND_S, IDLE_CORES, write_run

    spec = tmp_path / "spec.yaml"
    spec.write_text("node: {cores: 32, speed_units_per_cpu_s: 100000}\nuncertainty: {draws: 0}\n")
    plans = {}
    for name, speed, factor in (("fast", 100_000.0, 1.0), ("slow", 50_000.0, 2.0)):
        demand = {s: {l: d * factor for l, d in v.items()} for s, v in DEMAND_S.items()}
        # the slow core spends twice the CPU on everything, its idle work and its noise included
        folder = write_run(tmp_path / name, seed=5, demand_s=demand, run_id=f"20260205-120000-feb1-{name}",
                           idle_cores={s: c * factor for s, c in IDLE_CORES.items()}, cpu_noise_cores=0.004 * factor)
        info = _json.loads((folder / "run.json").read_text())
        ref = {"benchmark": "gala-speed-1", "units_per_cpu_s": speed}
        info["machine"] = {**info.get("machine", {}), "speed_ref_start": ref, "speed_ref_end": ref}
        (folder / "run.json").write_text(_json.dumps(info))
        plans[name] = plan_run([folder], spec_path=spec, out_dir=tmp_path / f"plan-{name}").plan
    fast, slow = plans["fast"], plans["slow"]
    assert slow.spec.node.speed_vs_measured == pytest.approx(2.0) and fast.spec.node.speed_vs_measured == pytest.approx(1.0)
    for link in fast.links:
        a, b = fast.sizing_of(link).nodes_for_utilization, slow.sizing_of(link).nodes_for_utilization
        assert abs(a - b) <= max(1, 0.01 * a), (link, a, b)
    assert any("speed units" in n for n in slow.notes)
    # without the rating, the slow machine's CPU-seconds are taken for the night's: twice the nodes
    bare = tmp_path / "bare.yaml"
    bare.write_text("node: {cores: 32}\nuncertainty: {draws: 0}\n")
    naive = plan_run([tmp_path / "slow" / "20260205-120000-feb1-slow"], spec_path=bare, out_dir=tmp_path / "naive").plan
    assert naive.sizing_of("grab").nodes_for_utilization == pytest.approx(2 * fast.sizing_of("grab").nodes_for_utilization,
                                                                           rel=0.02)


@pytest.mark.parametrize("field, value, says", [
    ("node_cores", -1, "node_cores: expected a number > 0"),
    ("ceiling", 7, "ceiling: expected a number <= 1"),
    ("wall_s", "soon", "wall_s:"),
])
def test_a_hand_edited_knee_json_is_refused_with_its_field(tmp_path, field, value, says):
    """knee.json is read back by `gala plan RUN KNEE`: a number out of range is one line naming the field."""
    import json

    from capacity_model.knee_report import KNEE_FILE, load_knee
    from gala.contract.errors import InputError

    doc = json.loads(_knee(0.3).model_dump_json())
    doc[field] = value
    (tmp_path / KNEE_FILE).write_text(json.dumps(doc))
    with pytest.raises(InputError, match=rf"knee.json: {says}"):
        load_knee(tmp_path)
    (tmp_path / KNEE_FILE).write_text('{"mixes": [')
    with pytest.raises(InputError, match="not valid JSON"):
        load_knee(tmp_path)


def test_a_falling_cost_is_held_at_its_last_step_and_a_rising_one_followed_beyond_the_steps():
    """Three quick steps whose CPU per request fell 0.38 -> 0.15 ms from 17% to 47% of the node: a line through
    them reaches zero before the 70% ceiling, which sized a link at one node per zone. Beyond the steps the
    line is followed only where cost rises (the safe side)."""
    falling = fit_load_demand(np.array([0.17, 0.32, 0.469]), np.array([0.382, 0.239, 0.150]))
    assert falling.cpu_ms(0.7) < 0                              # the straight line would say "free"
    at = falling.at(0.7)
    assert at.extrapolated and at.cpu_ms > 0 and at.cpu_ms == pytest.approx(float(falling.cpu_ms(0.469 + 0.05)), rel=1e-9)
    assert math.isfinite(at.rel_error) and at.rel_error >= 0.05 * (0.7 - 0.469) / 0.1
    rising = fit_load_demand(np.array([0.1, 0.2, 0.3]), np.array([0.20, 0.25, 0.30]))
    assert rising.at(0.7).cpu_ms == pytest.approx(0.50, rel=1e-6)   # followed: the dangerous direction is kept
    assert rising.at(0.0).cpu_ms == pytest.approx(0.175, rel=1e-6)  # below the steps: held (at 5% less), not cheaper


def test_a_knee_whose_cost_falls_to_zero_before_the_ceiling_anchors_nothing():
    """Two low steps whose CPU per request falls so fast that even the held value (the last step plus the
    margin that counts as measured) is not positive: that mix anchors no link, the note says why, and the
    link keeps the rehearsal's demand with the linear extrapolation's wider band."""
    phase = pd.Series(["grab"] * 4, index=range(4))
    from capacity_model.contracts import Measurements
    m = Measurements(run_ids=["a"], links=["grab"], throughput=pd.DataFrame({"grab": [60.0] * 4}),
                     busy_cores=pd.DataFrame({"target": [0.05] * 4}), phase_rps=pd.DataFrame({"grab": [60.0]}, index=["grab"]),
                     phase_latency_ms=pd.DataFrame(), window_phase=phase)
    steps = [node(r, index=i).model_copy(update={"utilization": u, "cpu_ms_per_request": d, "target_cpu_cores": u * 0.25})
             for i, (r, u, d) in enumerate([(100.0, 0.10, 0.30), (200.0, 0.20, 0.08)])]
    mix = MixKnee(mix="grab", fractions={"grab": 1.0}, node_cores=0.25, ceiling=0.7, steps=steps, stop_reason="budget")
    knee = KneeSearch(search_id="k", scenario="s", target="t", ceiling=0.7, budgets={}, started_at="", ended_at="",
                      wall_s=1.0, speed_units_per_cpu_s=None, mixes=[mix], node_cores=0.25)
    adjust = load_adjustment(m, ["grab"], 0.25, 0.7, [knee])
    assert adjust.anchors == {} and adjust.home == {}
    assert any("knee mix grab: its steps give no positive CPU per request" in n for n in adjust.notes)
    assert adjust.rel_error["grab"] == pytest.approx(0.05 * 5)   # the rehearsal's demand, band widened
