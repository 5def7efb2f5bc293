"""Black-box targets: the knee and the USL from a synthetic step-load run whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from capacity_model.contracts import LatencyBudget
from capacity_model.probe import MAX_ERROR_RATIO, judge_steps, link_steps, probe_link
from capacity_model.runs import measure, phase_steps, read_runs
from capacity_model.spec import load_spec
from gala.contract.errors import InputError
from gala.contract.results import load_run
from synth_runs import FEB1_PHASES, SynthPhase, write_run

CAPACITY_RPS = {"grab": 1200.0, "share": 600.0, "chat": 900.0}  # of the whole target (all its nodes)
STEPS = [0.2, 0.4, 0.6, 0.75, 0.85, 0.92, 0.99]
NODES = 3
BASE_MS = 10.0


def one_link_at_a_time() -> list[SynthPhase]:
    """As probe.yaml does: each link alone, its rate rising in steps; M/M/1-like latency, errors at the top."""
    phases = []
    for link, cap in CAPACITY_RPS.items():
        for i, frac in enumerate(STEPS, start=1):
            phases.append(SynthPhase(
                f"{link}-{i}", 12, {link: cap * frac},
                median_ms={link: BASE_MS / (1.0 - frac)}, error_ratio={link: 0.2 if frac > 0.95 else 0.0},
            ))
    return phases


def expected_knee(budget: LatencyBudget) -> float:
    """The highest step whose p99 (lognormal sigma 0.5 around the median: x3.2) is within the budget."""
    p99 = np.array([BASE_MS / (1.0 - f) * np.exp(2.326 * 0.5) for f in STEPS])
    ok = (p99 <= budget.latency_ms) & (np.array(STEPS) <= 0.95)
    return STEPS[int(np.flatnonzero(ok).max())]


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("probe"), one_link_at_a_time(), scenario="probe",
                     nodes=NODES, with_cpu=False, seed=11)


def test_knee_is_the_highest_step_within_budget(probe_dir):
    spec = load_spec()
    rows = phase_steps([load_run(probe_dir)])
    for link, cap in CAPACITY_RPS.items():
        budget = spec.latency_budgets[link]
        res = probe_link(rows, link, budget)
        frac = expected_knee(budget)
        assert res.knee_phase == f"{link}-{STEPS.index(frac) + 1}"
        assert res.capacity_per_node_rps == pytest.approx(cap * frac / NODES, rel=0.08)
        assert res.nodes == NODES and not res.lower_bound
        # the steps of this link only, judged: every step after the knee broke the budget or errored
        assert list(res.steps["phase"]) == [f"{link}-{i}" for i in range(1, len(STEPS) + 1)]
        after = res.steps[res.steps["rps"] > res.steps.loc[res.steps["phase"] == res.knee_phase, "rps"].iat[0]]
        assert not after["within"].any()
        assert (after["latency_ms"] > budget.latency_ms).any() or (after["error_ratio"] > MAX_ERROR_RATIO).any()


def test_usl_fitted_to_the_steps_peaks_near_capacity(probe_dir):
    rows = phase_steps([load_run(probe_dir)])
    res = probe_link(rows, "grab", load_spec().latency_budgets["grab"])
    usl = res.usl
    assert usl is not None and usl.axis == "concurrency" and usl.n_points == len(STEPS)
    assert usl.sigma >= 0 and usl.kappa >= 0 and usl.lambda_rps > 0
    # the fitted ceiling is near what one node of the synthetic target carries at most
    assert usl.x_max_rps == pytest.approx(CAPACITY_RPS["grab"] / NODES, rel=0.25)
    assert usl.r2 > 0.8


def test_plan_measurements_mark_black_box_links_and_their_runs(tmp_path, probe_dir):
    """A rehearsal without CPU (the mix) plus the probe (the knees): every link black-box, from the probe run."""
    rehearsal = write_run(tmp_path, FEB1_PHASES, seed=12, with_cpu=False)
    m, probes = measure(read_runs([rehearsal, probe_dir]), load_spec())
    assert m.method == {l: "black-box" for l in CAPACITY_RPS}
    # the mix comes from the rehearsal only; the probe's steps are not phases of the night
    assert list(m.phase_rps.index) == [p.name for p in FEB1_PHASES]
    probe_id = load_run(probe_dir).run_id
    for link, res in probes.items():
        assert set(res.steps["run_id"]) == {probe_id}
        assert m.capacity_per_node[link] == res.capacity_per_node_rps
        assert f"link {link}: black-box" in " ".join(m.notes) and probe_id in res.note


def _probes_at_scales(tmp_path, sigma: float) -> list:
    """Probe runs at 1, 2 and 4 nodes of a target whose capacity follows the USL with this sigma."""
    return [write_run(tmp_path, one_link_at_a_time(), scenario="probe", nodes=n, with_cpu=False, seed=20 + n,
                      rate_scale=n / (1 + sigma * (n - 1)) / NODES, run_id=f"20260205-12000{n}-probe-{sigma:.2f}-{n}")
            for n in (1, 2, 4)]


def test_probes_at_several_scales_fit_the_usl_over_nodes(tmp_path):
    """Per-node capacity falling with the node count: the USL over nodes recovers the contention."""
    m, probes = measure(read_runs(_probes_at_scales(tmp_path, sigma=0.15)), load_spec())
    fit = m.scale_usl["chat"]
    assert fit.axis == "nodes" and fit.n_points == 3
    assert fit.sigma == pytest.approx(0.15, abs=0.04) and fit.kappa < 0.01
    # capacity per node is taken from the largest run (nearest to the night)
    assert probes["chat"].nodes == 4


def test_probes_scaling_linearly_keep_linear_scaling(tmp_path):
    """The same per-node capacity at 1, 2 and 4 nodes: no USL over nodes, and the note says why."""
    m, probes = measure(read_runs(_probes_at_scales(tmp_path, sigma=0.0)), load_spec())
    assert m.scale_usl == {}
    assert "scaled linearly" in probes["chat"].note


def test_a_link_never_within_budget_is_one_clear_error(tmp_path):
    hot = [SynthPhase(f"chat-{i}", 10, {"chat": r}, median_ms={"chat": 400.0}) for i, r in enumerate([50, 100, 200])]
    d = write_run(tmp_path, hot, scenario="probe", with_cpu=False, seed=13)
    rows = phase_steps([load_run(d)])
    with pytest.raises(InputError, match=r"link chat: no step .* stayed within its budget .*p99 .* > 300 ms"):
        probe_link(rows, "chat", load_spec().latency_budgets["chat"])


def test_steps_led_by_another_link_are_not_this_links_steps(probe_dir):
    rows = phase_steps([load_run(probe_dir)])
    steps = judge_steps(link_steps(rows, "share"), None)
    assert set(steps["phase"].str.split("-").str[0]) == {"share"}
    assert steps["within"].sum() == sum(f <= 0.95 for f in STEPS)  # without a budget: errors alone
