"""The gate's evaluation on synthetic results folders with known truth: budgets, baseline noise, abort, JUnit, JSON, exit codes."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xmlschema

from conftest import gala
from gala.contract.errors import InputError
from gala.contract.results import load_run
from gala.gate.abort import abort_check
from gala.gate.budgets import load_budgets
from gala.gate.measure import measure
from gala.gate.noise import bucket_resolution_ms, compare_percentile, percentile_noise_ms
from gala.gate.verdict import gate_run
from synth_runs import FEB1_PHASES, SynthPhase, write_run

XSD = Path(__file__).parent / "data" / "junit-10.xsd"

BUDGETS = """\
links:
  grab:
    p99_ms: 200
    error_ratio: 0.01
    min_achieved_ratio: 0.8
  share:
    thresholds: ["p(95) < 150", "rate < 0.01"]
  chat:
    p95_ms: 100
    thresholds: ["p(99) < 200", "rate < 0.01"]
    phases:
      chat: {p99_ms: 200, min_rps: 100}
"""


def slow_chat(factor: float) -> list[SynthPhase]:
    """feb1's synthetic phases with the chat link `factor` times slower (median 20 ms normally)."""
    return [SynthPhase(p.name, p.duration_s, p.rps, median_ms={"chat": 20.0 * factor}) for p in FEB1_PHASES]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate-runs")
    return {
        "clean": write_run(root, seed=11),
        "clean2": write_run(root, seed=12),
        "slow": write_run(root, slow_chat(6.0), seed=13),
    }


@pytest.fixture
def budgets(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text(BUDGETS)
    return path


def test_a_clean_run_holds_every_budget(runs, budgets):
    out = gate_run(runs["clean"], budgets)
    assert out.exit_code == 0, out.table
    assert len(out.results) == 10 and all(r.status == "pass" for r in out.results)
    grab_p99 = out.results[0]
    assert grab_p99.name == "grab p(99) <= 200 ms" and 30 < grab_p99.measured < 100
    assert grab_p99.margin == pytest.approx(200 - grab_p99.measured)
    assert "PASS: all 10 hold" in out.table


def test_slow_chat_breaks_exactly_the_chat_latency_budgets(runs, budgets):
    out = gate_run(runs["slow"], budgets)
    assert out.exit_code == 99
    broken = {r.name for r in out.broken}
    assert broken == {"chat p(95) <= 100 ms", "chat p(99) < 200 ms", "chat [chat] p(99) <= 200 ms"}, out.table
    for r in out.broken:
        assert r.measured > r.threshold and r.margin < 0
        assert f"{r.name}" in out.table.split("FAIL:")[1]
    assert [ln for ln in out.table.splitlines() if ln.strip().startswith("chat p(95) <= 100 ms")][0].endswith("FAIL")


def test_strict_and_inclusive_ceilings_differ_at_the_boundary(runs, tmp_path):
    b = load_budgets(write_budgets(tmp_path, "links:\n  grab:\n    p95_ms: 1000\n"))
    p95 = measure(load_run(runs["clean"]), b.lines[0])[0]
    path = write_budgets(tmp_path, f"links:\n  grab:\n    thresholds: ['p(95) < {p95:g}', 'p(95) <= {p95:g}']\n")
    out = gate_run(runs["clean"], path)
    assert [r.passed for r in out.results] == [False, True]


def write_budgets(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"b{abs(hash(text))}.yaml"
    path.write_text(text)
    return path


def test_a_link_without_requests_fails_its_latency_budget_and_zero_rps_fails_the_floor(tmp_path):
    run = write_run(tmp_path, [SynthPhase("grab", 10, {"grab": 50, "chat": 0}), SynthPhase("chat", 10, {"grab": 5, "chat": 40})])
    path = write_budgets(tmp_path, "links:\n  chat:\n    phases:\n      grab: {p99_ms: 100, min_rps: 1}\n")
    out = gate_run(run, path)
    assert out.exit_code == 99
    assert [(r.status, r.measured) for r in out.results] == [("fail", None), ("fail", 0.0)]
    assert "no requests measured" in out.table


@pytest.mark.parametrize("text, line, message", [
    ("links:\n  grab: {p99_ms: 100}\n  payments: {p99_ms: 100}\n", 3,
     "links.payments: unknown link; expected one of grab, share, chat"),
    ("links:\n  chat:\n    phases:\n      grab: {p99_ms: 100}\n      night: {p99_ms: 100}\n", 5,
     "links.chat.phases.night: unknown phase; expected one of grab, share burst, chat"),
])
def test_a_link_or_phase_the_run_does_not_have_is_bad_input(runs, tmp_path, text, line, message):
    path = write_budgets(tmp_path, text)
    with pytest.raises(InputError) as info:
        gate_run(runs["clean"], path)
    assert str(info.value) == f"{path}:{line}: {message}"


def test_an_achieved_ratio_where_nothing_was_intended_is_bad_input(tmp_path):
    run = write_run(tmp_path, [SynthPhase("grab", 10, {"grab": 50})], rate_scale=1.0)
    # as a closed-workload phase writes it: no intended rate anywhere
    info = json.loads((run / "run.json").read_text())
    info["phases"][0]["intended_rps"] = {}
    (run / "run.json").write_text(json.dumps(info))
    stats = pd.read_csv(run / "phase_link_stats.csv")
    stats[["intended_rps", "achieved_ratio"]] = np.nan
    stats.to_csv(run / "phase_link_stats.csv", index=False)
    path = write_budgets(tmp_path, "links:\n  grab:\n    min_achieved_ratio: 0.9\n")
    with pytest.raises(InputError, match=r":3: links\.grab\.min_achieved_ratio: the run intended no rate for grab"):
        gate_run(run, path)


# ---------------------------------------------------------------- baseline and noise

def test_noise_is_the_bootstrap_standard_error_of_the_median():
    rng = np.random.default_rng(0)
    x = rng.normal(100.0, 10.0, size=400)
    # asymptotically the median's standard error is sqrt(pi/2) * sigma / sqrt(n)
    assert percentile_noise_ms(x) == pytest.approx(math.sqrt(math.pi / 2) * 10 / math.sqrt(400), rel=0.25)
    assert percentile_noise_ms(np.array([5.0, 7.0])) == math.inf
    assert percentile_noise_ms(np.full(30, 42.0)) == 0.0


def test_noise_is_resampled_within_phases():
    # two steady phases at different levels: no noise within either, a large spread between them
    x = np.r_[np.full(10, 20.0), np.full(12, 200.0)]
    phases = np.array(["grab"] * 10 + ["chat"] * 12)
    assert percentile_noise_ms(x) > 20
    assert percentile_noise_ms(x, phases) == 0.0
    jitter = x + np.random.default_rng(1).normal(0, 5, x.size)
    assert 0 < percentile_noise_ms(jitter, phases) < percentile_noise_ms(jitter)


def test_a_regression_needs_both_the_ratio_and_to_be_beyond_noise():
    # 50% worse and far beyond the noise
    assert compare_percentile(150, 100, 2, 2, 0.1, 3)[0] == "regressed"
    # 50% worse but within the noise of two jittery runs
    status, change, noise = compare_percentile(150, 100, 20, 20, 0.1, 3)
    assert status == "unchanged" and change == pytest.approx(0.5) and noise == pytest.approx(3 * math.hypot(20, 20))
    # beyond noise but within the allowed ratio
    assert compare_percentile(108, 100, 0.1, 0.1, 0.1, 3)[0] == "unchanged"
    # 3 ms to 5 ms is +67% but one latency bucket is 1 ms: beyond it, so regressed; 3 to 4 ms is within one bucket
    assert compare_percentile(5, 3, 0, 0, 0.1, 3)[0] == "regressed"
    assert compare_percentile(4, 3, 0, 0, 0.1, 3)[0] == "unchanged"
    assert compare_percentile(60, 100, 2, 2, 0.1, 3)[0] == "improved"
    # improvements are judged by the same ratio the other way round: 4x faster is beyond 300% allowed
    assert compare_percentile(100, 500, 2, 2, 3.0, 3)[0] == "improved"
    assert compare_percentile(100, 350, 2, 2, 3.0, 3)[0] == "unchanged"
    assert bucket_resolution_ms(50) == 1 and bucket_resolution_ms(450) == 10 and bucket_resolution_ms(4500) == 100


def test_baseline_finds_the_slowed_link_and_nothing_between_two_clean_runs(runs, budgets):
    clean = gate_run(runs["clean"], budgets, baseline_dir=runs["clean2"])
    assert clean.exit_code == 0, clean.table
    lines = [r for r in clean.results if r.kind == "baseline"]
    # one line per budgeted scope (grab, share, chat, chat [chat]) and metric (p95, p99)
    assert len(lines) == 8 and all(r.status == "unchanged" for r in lines)

    slow = gate_run(runs["slow"], budgets, baseline_dir=runs["clean"])
    regressed = {r.name for r in slow.results if r.status == "regressed"}
    assert regressed == {f"{s} p({q}) vs baseline" for s in ("chat", "chat [chat]") for q in (95, 99)}
    assert all(r.change_ratio > 1.0 and r.noise > 0 for r in slow.results if r.status == "regressed")

    better = gate_run(runs["clean"], budgets, baseline_dir=runs["slow"])
    assert {r.name for r in better.results if r.status == "improved"} == regressed
    assert better.exit_code == 0 and "improved: chat p(95)" in better.table


def test_allowed_regression_overrides_the_file(runs, budgets):
    out = gate_run(runs["slow"], budgets, baseline_dir=runs["clean"], allowed_regression=100.0)
    assert not [r for r in out.results if r.status == "regressed"]


# ---------------------------------------------------------------- abort-on-fail

def live(t_s=30.0, phase="chat", requests=1000, p99=900.0, failures=0, phase_requests=None):
    stats = {"rps": 100.0, "requests": requests, "failures": failures, "p50_ms": 20.0, "p95_ms": 40.0, "p99_ms": p99}
    pstats = dict(stats, requests=phase_requests if phase_requests is not None else requests)
    return {"t_s": t_s, "phase": phase, "users": 10, "links": {"chat": stats}, "phase_links": {"chat": pstats}}


def test_abort_only_when_a_ceiling_is_clearly_broken(tmp_path):
    b = load_budgets(write_budgets(tmp_path, "links:\n  chat:\n    p99_ms: 200\n    error_ratio: 0.01\n"))
    reason = abort_check(b, live())
    assert reason.startswith("chat p(99) <= 200 ms: 900 ms after 1,000 requests")
    assert abort_check(b, live(t_s=5.0)) is None            # still in the grace period
    assert abort_check(b, live(requests=150)) is None       # too few requests to judge
    assert abort_check(b, live(p99=290.0)) is None          # broken, but not by more than the 50% margin
    assert abort_check(b, live(p99=50.0)) is None
    # errors: 5% of 1,000 is clearly over a 1% ceiling; 3 failures in 200 requests is not enough to say
    assert "rate <= 0.01" in abort_check(b, live(p99=50.0, failures=50))
    assert abort_check(b, live(p99=50.0, requests=200, failures=3)) is None
    assert abort_check(b, {}) is None


def test_abort_reads_phase_budgets_from_the_current_phase_only(tmp_path):
    b = load_budgets(write_budgets(tmp_path, "links:\n  chat:\n    phases:\n      chat: {p99_ms: 200}\n"))
    assert abort_check(b, live(phase="chat")) is not None
    assert abort_check(b, live(phase="grab")) is None
    assert abort_check(b, live(phase="chat", phase_requests=20)) is None


# ---------------------------------------------------------------- outputs

def test_junit_validates_against_the_jenkins_schema_and_carries_the_measured_value(runs, budgets, tmp_path):
    junit = tmp_path / "out" / "junit.xml"
    out = gate_run(runs["slow"], budgets, baseline_dir=runs["clean"], junit_path=junit)
    xmlschema.XMLSchema(str(XSD)).validate(str(junit))
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(out.results) == int(suite.get("tests"))
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == len(out.broken) == int(suite.get("failures")) == int(root.get("failures"))
    chat = next(c for c in failed if c.get("classname") == "gala.gate.chat" and c.get("name") == "p(95) <= 100 ms")
    measured = next(r for r in out.broken if r.name == "chat p(95) <= 100 ms").measured
    assert f"measured {measured:,.0f} ms" in chat.find("failure").get("message")
    assert f"measured: {measured:,.0f} ms" in chat.find("failure").text
    assert suite.find("system-out").text.startswith("gala gate:")


def test_json_and_out_dir(runs, budgets, tmp_path):
    out = gate_run(runs["slow"], budgets, out_dir=tmp_path / "gate")
    doc = json.loads((tmp_path / "gate" / "gate.json").read_text())
    assert (tmp_path / "gate" / "junit.xml").exists()
    assert doc["passed"] is False and doc["exit_code"] == 99 == out.exit_code
    assert [r["name"] for r in doc["results"]] == [r.name for r in out.results]
    chat = next(r for r in doc["results"] if r["name"] == "chat p(95) <= 100 ms")
    assert chat["status"] == "fail" and chat["measured"] > 100 and chat["source"].endswith(":9")


def test_the_command_line_exit_codes(runs, budgets, tmp_path):
    ok = gala("gate", str(runs["clean"]), "--budgets", str(budgets), "--json", str(tmp_path / "g.json"), timeout_s=60)
    assert ok.returncode == 0, ok.stderr
    assert "PASS: all 10 hold" in ok.stdout and json.loads((tmp_path / "g.json").read_text())["passed"]

    bad = gala("gate", str(runs["slow"]), "--budgets", str(budgets), "--baseline", str(runs["clean"]),
               "--allowed-regression", "0.2", "--junit", str(tmp_path / "j.xml"), timeout_s=60)
    assert bad.returncode == 99, bad.stderr
    assert "FAIL: 7 of 18 broken" in bad.stdout and "more than 20% worse" in bad.stdout

    path = write_budgets(tmp_path, "links:\n  grab:\n    thresholds: ['p(99) = 250']\n")
    wrong = gala("gate", str(runs["clean"]), "--budgets", str(path), timeout_s=60)
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.strip().startswith(f"gala: {path}:3: links.grab.thresholds[0]: 'p(99) = 250' is not a k6-style")
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr

    missing = gala("gate", str(tmp_path / "no-run"), "--budgets", str(budgets), timeout_s=60)
    assert missing.returncode == 2 and "not a results folder" in missing.stderr
