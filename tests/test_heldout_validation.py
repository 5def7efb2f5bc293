"""A held-out validation can fail: a linear model fitted at low load, held against the measured knee
of a target whose cost per request grows with the requests in flight (the costed target, growth 0.3,
held to half a core), promises more than the node carries (at the ceiling by more than the 10% it
allows, or at saturation, where that target collapses); `gala plan A --validate KNEE` says FAILED and
writes heldout.json."""

from __future__ import annotations

import json

import pytest
from conftest import gala
from costed import costed_target, grab_scenario

pytestmark = pytest.mark.timeout(180)


def test_a_linear_model_fails_against_the_knee_of_a_target_whose_cost_grows_with_load(tmp_path):
    low = grab_scenario(tmp_path / "low.yaml", [("calm", 4, 8), ("grab", 4, 16)])
    knee_scenario = grab_scenario(tmp_path / "knee.yaml", [("grab", 5, 30)])
    spec = tmp_path / "spec.yaml"
    # a 10-second rehearsal's demand may be less certain than the plan's 25% rule: it is the model under test here
    # the ceiling at 50%: this target collapses somewhere past 55% busy on a slow core (measured on a VM whose speed
    # reference read 40,000: stable at 55%, collapsed at 66 req/s), and the search must bracket its ceiling
    spec.write_text("latency_budgets:\n  grab: {percentile: 99, latency_ms: 3000}\n"
                    "identification: {max_relative_error: 1.0}\nutilization_ceiling: 0.5\n")
    with costed_target("/grab=4.0", growth=0.3) as (url, pid):
        target = ["--host", url, "--target-pid", str(pid), "--target-cpu-limit", "0.5"]
        run = gala("run", "--scenario", str(low), *target, "--no-plan", "--quiet", "--out", str(tmp_path / "runs"),
                   timeout_s=60)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        probe = gala("probe", "--scenario", str(knee_scenario), *target, "--spec", str(spec), "--start-rps", "40",
                     "--warm-s", "1", "--step-s", "3", "--max-steps", "4", "--out", str(tmp_path / "knees"),
                     timeout_s=100)
        assert probe.returncode == 0, probe.stdout[-2000:] + probe.stderr[-2000:]
    (a,) = (tmp_path / "runs").iterdir()
    (k,) = (tmp_path / "knees").iterdir()
    plan = gala("plan", str(a), "--validate", str(k), "--spec", str(spec), "--out", str(tmp_path / "plan"), timeout_s=60)
    assert plan.returncode in (0, 3), plan.stderr[-2000:]  # 3: a 4 ms request at the night's peak is short
    held = json.loads((tmp_path / "plan" / "heldout.json").read_text())
    (mix,) = held["mixes"]
    assert mix["measured_rps_per_node_at_ceiling"], (held, probe.stdout)
    # the linear model over-promises: req/s at the ceiling beyond the 10% allowed, or what the node carries at
    # saturation (its cost grows with the queue: past the ceiling it collapses, measured 6-12 req/s carried of 80)
    assert not mix["passed"] and not held["passed"], (held, probe.stdout)
    assert mix["error"] > 0.10 or mix["overpromised"], held
    assert "FAILED" in plan.stdout and "held-out validation against" in plan.stdout
    assert held["source"] == "linear"
    knee = json.loads((k / "knee.json").read_text())
    costs = [s["cpu_ms_per_request"] for s in sorted(knee["mixes"][0]["steps"], key=lambda s: s["utilization"])]
    assert costs[-1] > costs[0] * 1.15  # the growth the linear model missed, as the steps measured it
    # the same plan anchored at the ceiling by that knee search (`gala plan A KNEE`) reproduces it, and says so
    anchored = gala("plan", str(a), str(k), "--validate", str(k), "--spec", str(spec), "--out", str(tmp_path / "p2"),
                    timeout_s=60)
    assert anchored.returncode in (0, 3), anchored.stderr[-2000:]
    held2 = json.loads((tmp_path / "p2" / "heldout.json").read_text())
    assert held2["source"] == "load-dependent" and abs(held2["mixes"][0]["error"]) < 0.10, held2
    plan = json.loads((tmp_path / "p2" / "plan.json").read_text())
    assert plan["operating_points"] and plan["operating_points"][0]["source"] == "load-dependent"
    assert any(a["figure"] == "demand_at_ceiling.grab" and a["source"] == "run" for a in plan["assumptions"])

