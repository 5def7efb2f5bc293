"""`gala run` end to end: a real short rehearsal of feb1 against the built-in target (shared, via the
`short_run` fixture), bad input, and an interrupted run."""

from __future__ import annotations

import hashlib
import json
import signal

import pandas as pd
import pytest
from conftest import gala
from run_helpers import assert_totals_match_locust, start_run

from gala.contract.results import ResultsError, load_run
from loadtests.scenario import DEFAULT_SCENARIO, load_scenario

pytestmark = pytest.mark.timeout(240)


def test_short_run_is_a_complete_readable_folder(short_run):
    run = load_run(short_run)
    info = run.info
    assert info.status == "complete" and not info.interrupted and info.degraded == []
    assert info.scenario.name == "feb1"
    assert info.scenario.sha256 == hashlib.sha256((short_run / "scenario.yaml").read_bytes()).hexdigest()
    assert info.scenario.sha256 == hashlib.sha256(DEFAULT_SCENARIO.read_bytes()).hexdigest()
    assert info.target.builtin and info.target.url.startswith("http://127.0.0.1:")
    assert info.generator.mode == "local" and info.generator.locust_version
    assert info.versions["locust"] == info.generator.locust_version
    assert info.duration_s and info.duration_s > 0 and info.ended_at
    for name in ["locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust_report.html",
                 "locust.log", "target.log", "histograms.json", "timeseries.csv", "cpu.csv", "audit.json"]:
        assert (short_run / name).is_file(), f"{name} missing from {sorted(p.name for p in short_run.iterdir())}"


def test_short_run_every_link_served_and_totals_equal_locust(short_run):
    totals = assert_totals_match_locust(short_run)
    for link in ["grab", "share", "chat"]:
        assert totals.loc[link, "Request Count"] > 0, f"link {link} got no requests"


def test_short_run_phases_ran_in_order(short_run):
    info = load_run(short_run).info
    sc = load_scenario(DEFAULT_SCENARIO, duration_scale=0.2)
    assert [p.name for p in info.phases] == [p.name for p in sc.planned_phases()]
    for rec, plan in zip(info.phases, sc.planned_phases()):
        assert rec.planned_start_s == pytest.approx(plan.start_s) and rec.planned_end_s == pytest.approx(plan.end_s)
        assert rec.intended_rps == pytest.approx(plan.intended_rps)
        assert rec.started_s is not None and rec.ended_s is not None and rec.ended_s > rec.started_s
    starts = [p.started_s for p in info.phases]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


def test_short_run_share_requests_cluster_in_share_phase(short_run):
    run = load_run(short_run)
    st = run.phase_link.set_index(["phase", "link"])["requests"]
    share = st.xs("share", level="link").drop("_all")
    assert share.get("grab", 0) == 0, "no ShareUser runs in the grab phase"
    assert share.sum() == st[("_all", "share")], "per-phase rows add up to the run's"
    # by the clock: every share request falls while the share-burst phase ran (1 s of in-flight tail)
    burst = next(p for p in run.info.phases if p.name == "share-burst")
    ts = run.timeseries[run.timeseries["link"] == "share"]
    inside = ts["t_s"].between(int(burst.started_s), int(burst.ended_s) + 1)
    assert ts.loc[inside, "requests"].sum() == share.sum() > 0, ts.to_string()


def test_short_run_cpu_samples_for_target_and_generator(short_run):
    run = load_run(short_run)
    cpu = run.cpu
    assert set(cpu["role"]) == {"target", "generator"}
    target_pids = set(cpu.loc[cpu["role"] == "target", "pid"])
    assert target_pids and target_pids <= set(run.info.target.pids)
    assert set(cpu.loc[cpu["role"] == "generator", "pid"]) <= set(run.info.generator.pids)
    assert (cpu["cpu_percent"] >= 0).all() and (cpu["t_s"] >= 0).all()
    per_proc = cpu.groupby("pid")
    # one row per second per process, cumulative CPU never going back
    assert per_proc["t_s"].apply(lambda s: s.is_unique and s.is_monotonic_increasing).all()
    assert per_proc["cpu_s"].apply(lambda s: s.is_monotonic_increasing).all()
    # the target did work while the load ran
    busy = cpu[cpu["role"] == "target"].groupby("t_s")["cpu_percent"].sum()
    assert busy.max() > 5
    assert run.info.generator.peak_cpu_percent == pytest.approx(cpu.loc[cpu["role"] == "generator", "cpu_percent"].max())


def test_short_run_audit_passes(short_run):
    run = load_run(short_run)
    assert run.audit is not None and run.audit["passed"] is True, json.dumps(run.audit)[:2000]
    assert run.audit["fetched_at"].endswith("Z")
    assert run.info.audit.available and run.info.audit.passed
    # the scenario's after-run draw was made before the audit
    assert [c["path"] for c in run.info.audit.after_run] == ["/admin/draw"]
    assert run.info.audit.after_run[0]["status"] == 200


def _bad(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("args, expect", [
    (["--scenario", "{bad}"], "bad.yaml:4"),
    (["--host", "http://192.0.2.10:8080"], "not a loopback address"),
    (["--abort-on-fail"], "needs --budgets"),
    (["--duration-scale", "0"], "--duration-scale"),
    (["--workers", "2", "--remote-workers", "2"], "one or the other"),
    (["--inject", "grab:bogus=1"], "--inject 'grab:bogus=1'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, expect):
    bad = _bad(tmp_path, "name: bad\nlinks: {a: {}}\nusers:\n  U: {requests: [{path: /x, link: nope}]}\n"
                         "phases: [{name: p, duration_s: 1, users: {U: 1}}]\n")
    out = tmp_path / "out"
    proc = gala("run", "--no-plan", "--out", str(out), *[a.replace("{bad}", str(bad)) for a in args], timeout_s=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert expect in lines[0]
    assert not out.exists() or not any(out.iterdir()), "bad input must not leave a results folder"


def test_sigterm_mid_phase_leaves_an_interrupted_folder_and_no_processes(tmp_path):
    run = start_run(tmp_path / "out", "--duration-scale", "0.3", "--quiet")
    # once the load is in its second phase, stop gala as a CI runner would
    code, _ = run.signal_when(lambda: (run.live() or {}).get("phase") == "share-burst", "the share-burst phase",
                              lambda: run.proc.pid, signal.SIGTERM, timeout_s=120, finish_s=90)
    assert code == 130, run.output()
    assert run.survivors() == []
    folder = run.run_dir()
    r = load_run(folder)
    assert r.info.status == "interrupted" and r.info.interrupted and r.info.interrupt_reason == "SIGTERM"
    for name in ["phase_link_stats.csv", "histograms.json", "timeseries.csv", "cpu.csv", "locust_stats.csv",
                 "locust_report.html", "audit.json"]:
        assert (folder / name).is_file(), name
    phases = {p.name: p for p in r.info.phases}
    assert phases["grab"].started_s is not None and phases["share-burst"].started_s is not None
    assert phases["chat"].started_s is None, "the chat phase never started"
    assert r.phase_link.set_index(["phase", "link"]).loc[("grab", "grab"), "requests"] > 0
    assert_totals_match_locust(folder)
    assert isinstance(r.cpu, pd.DataFrame) and not r.cpu.empty


def test_abort_on_fail_stops_early_and_exits_with_the_gate(tmp_path):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("version: 1\nlinks:\n  grab: {p50_ms: 10}\nabort: {grace_s: 2, min_requests: 50, margin: 0.5}\n")
    # 100 ms injected on every grab: the p50 ceiling of 10 ms is clearly broken within seconds
    proc = gala("run", "--duration-scale", "0.5", "--no-plan", "--quiet", "--out", str(tmp_path / "out"),
                "--budgets", str(budgets), "--abort-on-fail", "--inject", "grab:latency=100", timeout_s=150)
    assert proc.returncode == 99, proc.stdout + proc.stderr
    (folder,) = list((tmp_path / "out").iterdir())
    r = load_run(folder)
    assert r.info.status == "interrupted" and r.info.interrupt_reason.startswith("abort-on-fail: grab p(50)")
    assert r.info.target.injected_faults == ["grab:latency=100"]
    assert r.info.phases[-1].started_s is None, "stopped before the last phase began"
    assert json.loads((folder / "gate" / "gate.json").read_text())["passed"] is False


def test_gala_killed_leaves_a_running_folder_readers_refuse_and_no_processes(tmp_path):
    run = start_run(tmp_path / "out", "--duration-scale", "0.5", "--quiet")
    # SIGKILL: gala gets no chance to clean up
    code, _ = run.signal_when(lambda: run.live() and len(run.note_descendants()) >= 2, "the load to start",
                              lambda: run.proc.pid, signal.SIGKILL)
    assert code == -signal.SIGKILL
    # the children die with their parent (a parent-death signal), within a bound
    assert run.survivors(grace_s=20) == []
    with pytest.raises(ResultsError, match="status is 'running'"):
        load_run(run.run_dir())
