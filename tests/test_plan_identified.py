"""Issue 10 on synthetic runs with known truth (no load, no lock): demands recovered through a blurring
sampler, links refused when not identified, the verdict and its exit codes, the band across runs,
the sensitivity table, the week's moves, and --validate per link."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capacity_model.api import plan_run
from capacity_model.moves import reallocate
from gala.cli import main
from synth_runs import DEMAND_S, SynthPhase, write_run
from test_plan_cli import FAST_SPEC

# the CLI tests' spec, with more draws: the band's width is part of what these tests read
SPEC = FAST_SPEC.replace("draws: 50", "draws: 200")

# a rehearsal whose rates ramp and overlap (what the default scenario does), 20 links' worth of
# structure is not needed: three links, two services, a sampler 0.42 s into each second
RAMPS = [
    SynthPhase("grab", 20, {"grab": 3000, "share": 150, "chat": 80}),
    SynthPhase("grab-tail", 15, {"grab": 1800, "share": 900, "chat": 200}),
    SynthPhase("share-burst", 20, {"grab": 700, "share": 1700, "chat": 500}),
    SynthPhase("share-chat", 15, {"grab": 400, "share": 1000, "chat": 1500}),
    SynthPhase("chat", 20, {"grab": 300, "share": 300, "chat": 2400}),
]


def spec_file(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC + extra)
    return p


def true_total(link: str) -> float:
    return sum(d[link] for d in DEMAND_S.values())


def test_blurred_sampler_known_demands_recovered_within_5_percent(tmp_path):
    run = write_run(tmp_path, RAMPS, seed=11, sampler_offset_s=0.42)
    plan = plan_run([run], spec_path=spec_file(tmp_path), out_dir=tmp_path / "plan").plan
    d = plan.demand
    errors = {}
    for svc, links in DEMAND_S.items():
        for link, truth in links.items():
            errors[(link, svc)] = d.cpu_s_per_request[link][svc] / truth - 1
    print("relative errors:", {f"{l}/{s}": f"{e:+.1%}" for (l, s), e in errors.items()})
    assert max(abs(e) for e in errors.values()) < 0.05, errors
    # the idle was measured, not fitted: it is the truth, and no intercept stole load
    assert d.idle_measured == {"api": True, "store": True}
    assert d.baseline_busy_cores["api"] == pytest.approx(0.04)
    # relative errors are reported, per link, in plan.json and the report
    rows = {r.link: r for r in plan.identification}
    for link in ("grab", "share", "chat"):
        assert rows[link].identified and 0 < rows[link].relative_error < 0.05
        assert rows[link].cpu_s_per_request == pytest.approx(true_total(link), rel=0.05)
    report = (tmp_path / "plan" / "report.md").read_text()
    assert "relative error" in report


def test_attributed_demand_is_used_and_cross_checked(tmp_path):
    run = write_run(tmp_path, RAMPS, seed=12, sampler_offset_s=0.42, link_cpu="api")
    plan = plan_run([run], spec_path=spec_file(tmp_path), out_dir=tmp_path / "plan").plan
    rows = {r.link: r for r in plan.identification}
    for link, truth in DEMAND_S["api"].items():
        assert rows[link].source == "attributed"
        assert plan.demand.cpu_s_per_request[link]["api"] == pytest.approx(truth, rel=0.05)
        assert rows[link].agrees  # the regression says the same


def test_a_link_too_rare_to_measure_is_refused_and_named(tmp_path):
    # share at a handful of requests a second: its CPU drowns in the noise
    phases = [SynthPhase(p.name, p.duration_s, {**p.rps, "share": 3.0}) for p in RAMPS]
    run = write_run(tmp_path, phases, seed=13, cpu_noise_cores=0.02)
    outcome = plan_run([run], spec_path=spec_file(tmp_path), out_dir=tmp_path / "plan")
    plan = outcome.plan
    assert plan.refused == ["share"]
    row = next(r for r in plan.identification if r.link == "share")
    assert not row.identified and "relative error" in row.reason and row.relative_error > 0.25
    assert "calibration" in row.fix
    assert "share" not in plan.allocation.nodes()  # never sized
    assert plan.verdict.kind == "inconclusive" and outcome.exit_code == 0
    assert "share NOT SIZED" in outcome.headline
    report = (tmp_path / "plan" / "report.md").read_text()
    assert "share" in report.split("## ")[1] and "NOT SIZED" in report.split("## ")[1]  # said at the top


def test_two_links_that_always_move_together_are_refused(tmp_path):
    # share is always a tenth of grab: no run can tell their CPU apart
    phases = [SynthPhase(p.name, p.duration_s, {**p.rps, "share": p.rps["grab"] / 10}) for p in RAMPS]
    run = write_run(tmp_path, phases, seed=14)
    plan = plan_run([run], spec_path=spec_file(tmp_path), out_dir=tmp_path / "plan").plan
    assert set(plan.refused) == {"grab", "share"}
    row = next(r for r in plan.identification if r.link == "share")
    assert "grab" in row.reason and "move" in row.reason
    assert "alone" in row.fix and "ratio" in row.fix
    assert plan.nodes_per_link().keys() == {"chat"}


@pytest.mark.parametrize("budget,kind,code", [(100_000, "within budget", 0), (300, "short", 3), (None, "inconclusive", 0)])
def test_exit_code_per_verdict(tmp_path, capsys, budget, kind, code):
    run = write_run(tmp_path, RAMPS, seed=15)
    if budget is None:  # the budget at the point estimate: inside the band
        budget = plan_run([run], spec_path=spec_file(tmp_path), out_dir=tmp_path / "probe").plan.allocation.required_nodes
    got = main(["plan", str(run), "--spec", str(spec_file(tmp_path, f"node_budget: {budget}\n")),
                "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["verdict"]["kind"] == kind and got == code, out
    assert {"within budget": "within budget", "short": "SHORT", "inconclusive": "INCONCLUSIVE"}[kind] in out


def test_one_run_band_is_within_run_several_runs_widen_it(tmp_path):
    spec = spec_file(tmp_path)
    a = write_run(tmp_path / "a", RAMPS, seed=21, link_cpu="api")
    # the same system measured again, but the CPU per request moved by 20% (a VM core's speed, another day)
    moved = {s: {l: v * 1.2 for l, v in d.items()} for s, d in DEMAND_S.items()}
    b = write_run(tmp_path / "b", RAMPS, seed=22, demand_s=moved, link_cpu="api")
    one = plan_run([a], spec_path=spec, out_dir=tmp_path / "one").plan
    both = plan_run([a, b], spec_path=spec, out_dir=tmp_path / "both").plan
    assert not one.uncertainty.between_runs and both.uncertainty.between_runs
    report = (tmp_path / "one" / "report.md").read_text()
    assert "within-run only" in report
    ta = one.allocation.required_nodes
    tb = plan_run([b], spec_path=spec, out_dir=tmp_path / "b-only").plan.allocation.required_nodes
    # the band of the two runs planned together covers both runs' own totals
    assert both.uncertainty.total.p5 <= min(ta, tb) and max(ta, tb) <= both.uncertainty.total.p95
    assert (both.uncertainty.total.p95 - both.uncertainty.total.p5) > (one.uncertainty.total.p95 - one.uncertainty.total.p5)


def test_sensitivity_table_moves_the_total_the_right_way(tmp_path):
    run = write_run(tmp_path, RAMPS, seed=16)
    plan = plan_run([run], spec_path=spec_file(tmp_path), out_dir=tmp_path / "plan").plan
    rows = {(r.figure, r.change): r.total_nodes for r in plan.sensitivity}
    total = plan.allocation.required_nodes
    assert rows[("node.cores", "+25%")] < total < rows[("node.cores", "-25%")]
    assert rows[("peak.requests_per_min", "-25%")] < total < rows[("peak.requests_per_min", "+25%")]
    assert rows[("utilization_ceiling", "+25%")] < total
    assert ("redundancy.zones", "+25%") in rows
    assert "Sensitivity" in (tmp_path / "plan" / "report.md").read_text()


def test_fewest_moves_within_the_fleet():
    in_force = {"grab": [10, 10], "share": [1, 1], "chat": [1, 1]}
    new = {"grab": [6, 7], "share": [4, 3], "chat": [3, 2]}
    r = reallocate(in_force, new, node_budget=26, source="test")
    # grab frees 4 + 3; share needs 3 + 2 and chat 2 + 1: 8 needed, 7 freed, 1 spare per zone
    assert r.moved_nodes == 8 and r.added_nodes == 0 and r.fleet_suffices
    assert sum(m.nodes for m in r.moves if m.from_link == "spare") == 1
    # a plan beyond the fleet: what no surplus covers is added
    big = reallocate(in_force, {"grab": [10, 10], "share": [5, 5], "chat": [5, 5]}, node_budget=26, source="t")
    assert big.added_nodes == 16 - 2 and not big.fleet_suffices


def test_moves_csv_from_an_allocation_file(tmp_path, capsys):
    run = write_run(tmp_path, RAMPS, seed=17)
    alloc = tmp_path / "in-force.csv"
    pd.DataFrame({"link": ["grab", "share", "chat"], "nodes": [3000, 30, 30]}).to_csv(alloc, index=False)
    code = main(["plan", str(run), "--spec", str(spec_file(tmp_path)), "--from", str(alloc),
                 "--out", str(tmp_path / "out")])
    assert code == 0
    moves = pd.read_csv(tmp_path / "out" / "moves.csv")
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    r = plan["reallocation"]
    assert r["source"].endswith("in-force.csv") and moves["nodes"].sum() >= r["moved_nodes"] > 0
    new = plan_nodes = {a["link"]: a["nodes"] for a in plan["allocation"]["links"]}
    assert set(moves["to_link"]) - {"spare"} <= set(plan_nodes) and new
    assert "re-allocation" in (tmp_path / "out" / "report.md").read_text().lower()
    capsys.readouterr()
    for value in ("lots", "inf", "1e30", "-3"):  # inf once escaped as an OverflowError traceback
        bad = tmp_path / "bad.csv"
        bad.write_text(f"link,nodes\ngrab,{value}\n")
        assert main(["plan", str(run), "--spec", str(spec_file(tmp_path)), "--from", str(bad),
                     "--out", str(tmp_path / "o2")]) == 2, value
        assert "bad.csv:2" in capsys.readouterr().err, value


def test_validate_per_link_fails_a_wrong_split(tmp_path):
    spec = spec_file(tmp_path)
    model = write_run(tmp_path / "m", RAMPS, seed=31, link_cpu="api")
    same = write_run(tmp_path / "s", RAMPS, seed=32, link_cpu="api")
    # the same total CPU, split differently: share costs half, grab and chat make up for it
    swapped = {s: dict(d) for s, d in DEMAND_S.items()}
    swapped["api"].update(share=DEMAND_S["api"]["share"] / 2, grab=DEMAND_S["api"]["grab"] * 2.5,
                          chat=DEMAND_S["api"]["chat"] * 1.3)
    other = write_run(tmp_path / "o", RAMPS, seed=33, demand_s=swapped, link_cpu="api")
    ok = plan_run([model], spec_path=spec, out_dir=tmp_path / "ok", validate_dir=same).validation
    assert ok.links and all(c.passed for c in ok.links)
    bad = plan_run([model], spec_path=spec, out_dir=tmp_path / "bad", validate_dir=other).validation
    failed = {c.link for c in bad.links if not c.passed}
    assert {"share", "grab"} <= failed and not bad.passed
    # and the other way round: two runs whose plans differ by more than the band do not both pass
    back = plan_run([other], spec_path=spec, out_dir=tmp_path / "back", validate_dir=model).validation
    assert not back.passed


@pytest.mark.parametrize("budget,fail_on_short,code", [
    (300, False, 0),       # short, but gala run's plan is a report
    (300, True, 3),        # short, and asked to fail on it
    (None, True, 0),       # inconclusive is not short
    (100_000, True, 0),    # within budget
])
def test_gala_run_exit_code_per_verdict(tmp_path, capsys, budget, fail_on_short, code):
    """`gala run` after its rehearsal (here a synthetic folder written by gala's own writers) exits 0
    whatever the plan says, 3 only with --fail-on-short and a verdict of short."""
    from gala.cli import build_parser
    from gala.cli.run import after_run
    from gala.contract.results import load_run_info
    from loadtests.orchestrator.options import RunOutcome

    run = write_run(tmp_path, RAMPS, seed=15)
    if budget is None:
        budget = plan_run([run], spec_path=spec_file(tmp_path), out_dir=tmp_path / "probe").plan.allocation.required_nodes
    spec = spec_file(tmp_path, f"node_budget: {budget}\n")
    args = build_parser().parse_args(["run", "--quiet", "--spec", str(spec), *(["--fail-on-short"] if fail_on_short else [])])
    got = after_run(RunOutcome(run_dir=run, info=load_run_info(run), exit_code=0), args)
    assert got == code, capsys.readouterr().out


def test_the_calibration_scenario_moves_every_critical_link_independently():
    """loadtests/scenarios/calibrate.yaml (what a refused link's fix names): its phases' intended rates
    give a design in which no two critical links move together and each is alone at 3+ rates or paired
    at 2+ ratios."""
    from capacity_model.demand import COLLINEAR_CORR, ILL_CONDITIONED
    from loadtests.scenario import load_scenario

    sc = load_scenario(Path(__file__).resolve().parent.parent / "loadtests" / "scenarios" / "calibrate.yaml")
    rates = pd.DataFrame([p.intended_rps for p in sc.planned_phases()]).fillna(0.0)
    critical = [l for l in sc.critical_links]
    X = rates[critical].to_numpy()
    corr = np.corrcoef(X, rowvar=False)
    assert np.abs(corr[np.triu_indices(len(critical), 1)]).max() < COLLINEAR_CORR
    scaled = X / np.linalg.norm(X, axis=0)
    assert np.linalg.cond(scaled) < ILL_CONDITIONED / 3
    for link in ("grab", "chat"):
        alone = rates[(rates[link] > 0) & (rates.drop(columns=link).sum(axis=1) == 0)][link]
        assert alone.nunique() >= 3, link
    share = rates[rates["share"] > 0]
    assert (share["grab"] / share["share"]).round(2).nunique() >= 2


def test_cpu_sampler_ticks_on_the_run_clock_once_aligned():
    """After align(t0), the sampler reads just after each whole second of the run's clock, so cpu.csv's
    seconds hold that second's CPU and not a blend of its neighbours (issue 10's blur)."""
    import os
    import time

    from loadtests.orchestrator.cpu import CpuSampler

    sampler = CpuSampler(interval_s=0.5)
    sampler.watch(os.getpid(), "target")
    t0 = time.time() - 0.37  # a run clock 0.37 s out of phase with the sampler's start
    sampler.start()
    sampler.align(t0)
    time.sleep(2.8)
    sampler.stop()
    assert sampler.aligned_at is not None
    late = [s.ts for s in sampler.samples if s.ts >= sampler.aligned_at - 1e-6]
    phase = [((ts - t0) % 0.5) for ts in late[:-1]]  # the last one is the stop's own read
    assert len(phase) >= 3 and max(phase) < 0.1, phase


def test_a_run_too_short_to_regress_is_planned_from_the_targets_own_attribution(tmp_path):
    phases = [SynthPhase("grab", 2, {"grab": 3000, "share": 300, "chat": 100}),
              SynthPhase("share", 2, {"grab": 800, "share": 1500, "chat": 600})]
    # one service, which attributes its CPU per link; four seconds: too few windows for 3 links
    run = write_run(tmp_path, phases, seed=41, link_cpu="api", demand_s={"api": DEMAND_S["api"]},
                    idle_cores={"api": 0.04})
    plan = plan_run([run], spec_path=spec_file(tmp_path), out_dir=tmp_path / "plan").plan
    assert any("no regression cross-check" in n for n in plan.notes)
    for link, truth in DEMAND_S["api"].items():
        assert plan.demand.cpu_s_per_request[link]["api"] == pytest.approx(truth, rel=0.05)
    assert not plan.refused and set(plan.nodes_per_link()) == {"grab", "share", "chat"}


def test_a_calibration_run_serves_the_fit_not_the_nights_mix(tmp_path):
    from capacity_model.runs import service_name

    rehearsal = write_run(tmp_path / "r", RAMPS, seed=51, link_cpu="api")
    calibration = write_run(tmp_path / "c", [SynthPhase("chat-alone", 20, {"chat": 2000}),
                                             SynthPhase("grab-alone", 20, {"grab": 3000})],
                            seed=52, scenario="calibrate", link_cpu="api")
    plan = plan_run([rehearsal, calibration], spec_path=spec_file(tmp_path), out_dir=tmp_path / "plan").plan
    assert set(plan.mix.rate_per_s) == {p.name for p in RAMPS}  # the calibration's phases are not the night
    assert plan.demand.windows > 90  # but its seconds are in the fit
    # one program started as python3 in one run and python in another is one service
    assert service_name("python3") == service_name("python3.11") == service_name("python") == "python"
    assert service_name("redis-server") == "redis-server"
