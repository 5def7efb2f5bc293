"""`gala run --workers 2`: Locust's own master/worker mode on this machine. Histograms merged across
workers give Locust's totals; a worker killed mid-run is recorded (degraded: which, when), and
nothing is left running."""

from __future__ import annotations

import signal
import subprocess

import psutil
import pytest
from run_helpers import assert_totals_match_locust, start_run

from gala.contract.results import load_run, load_run_info
from loadtests.orchestrator.generator import locust_argv
from loadtests.orchestrator.procs import free_port
from loadtests.scenario import DEFAULT_SCENARIO

pytestmark = pytest.mark.timeout(200)


def _workers(run) -> list[psutil.Process]:
    return [p for p in run.note_descendants() if "--worker" in " ".join(_cmdline(p))]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def test_two_workers_totals_equal_locust(tmp_path):
    run = start_run(tmp_path / "out", "--workers", "2", "--duration-scale", "0.15", "--quiet")
    seen_workers = run.wait_for(lambda: len(_workers(run)) == 2 and _workers(run), 60, "two worker processes")
    code = run.finish(timeout_s=150)
    assert code == 0, run.output()
    assert run.survivors() == []
    r = load_run(run.run_dir())
    assert r.info.status == "complete" and r.info.degraded == []
    g = r.info.generator
    assert g.mode == "distributed" and g.workers == 2 and g.processes == 3
    # master and both workers were sampled as the generator
    assert {w.pid for w in seen_workers} <= set(r.cpu.loc[r.cpu["role"] == "generator", "pid"])
    totals = assert_totals_match_locust(r.path)
    assert (totals.loc[["grab", "share", "chat"], "Request Count"] > 0).all()
    assert r.audit is not None and r.audit["passed"] is True


def test_worker_killed_mid_run_is_recorded_as_degraded(tmp_path):
    run = start_run(tmp_path / "out", "--workers", "2", "--duration-scale", "0.15", "--quiet")
    code, victim = run.signal_when(lambda: (run.live() or {}).get("t_s", 0) >= 3 and len(_workers(run)) == 2,
                                   "3 s of load with two workers", lambda: _workers(run)[0].pid, signal.SIGKILL)
    assert code == 0, run.output()
    assert run.survivors() == []
    r = load_run(run.run_dir())
    assert r.info.status == "degraded" and not r.info.interrupted
    (event,) = r.info.degraded
    assert event.what == "worker-exited"
    assert f"pid {victim}" in event.detail and "exit code -9" in event.detail
    assert 2 <= event.t_s <= r.info.duration_s
    # what the dead worker had reported still adds up: gala's totals are Locust's
    assert_totals_match_locust(r.path)
    assert "degraded: worker-exited" in run.output()


def test_master_killed_ends_the_run_as_failed_and_takes_the_workers(tmp_path):
    run = start_run(tmp_path / "out", "--workers", "2", "--duration-scale", "0.3", "--quiet")
    code, _ = run.signal_when(
        lambda: (run.live() or {}).get("t_s", 0) >= 2 and len(_workers(run)) == 2, "2 s of load with two workers",
        lambda: next(p.pid for p in run.note_descendants() if "--master" in _cmdline(p)), signal.SIGKILL)
    assert code == 1, run.output()
    assert run.survivors() == [], "workers must not outlive their master"
    info = load_run_info(run.run_dir())
    assert info.status == "failed" and info.interrupted
    assert info.interrupt_reason == "Locust exited with code -9"
    assert info.generator.exit_code == -9
    # what was measured is kept: CPU samples of the generator up to the kill
    assert (run.run_dir() / "cpu.csv").read_text().count("generator") > 0


def test_remote_workers_master_waits_for_a_worker_from_elsewhere(tmp_path):
    """The Kubernetes master pod's mode: `--remote-workers 1`; here the "remote" worker is a plain
    `locust --worker` started by hand, as a worker pod would run it."""
    port = free_port()
    run = start_run(tmp_path / "out", "--remote-workers", "1", "--master-bind-port", str(port),
                    "--duration-scale", "0.1", "--quiet")
    worker = None
    try:
        run.wait_for(lambda: run.run_dir() and (run.run_dir() / "locust.log").exists(), 60, "the master")
        worker = subprocess.Popen(
            locust_argv(scenario=DEFAULT_SCENARIO, worker=True, master_port=port, duration_scale=0.1,
                        logfile=tmp_path / "w.log"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        code = run.finish(timeout_s=120)
        assert worker.wait(timeout=30) == 0, "the worker ends when its master ends the test"
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        if run.proc.poll() is None:
            run.kill()
    assert code == 0, run.output()
    r = load_run(run.run_dir())
    assert r.info.status == "complete"
    assert r.info.generator.mode == "distributed" and r.info.generator.workers == 1
    assert_totals_match_locust(r.path)


def test_workers_that_never_connect_fail_the_run_with_the_reason(tmp_path):
    run = start_run(tmp_path / "out", "--remote-workers", "1", "--master-bind-port", str(free_port()),
                    "--workers-wait", "2", "--quiet")
    code = run.finish(timeout_s=90)
    assert code == 1, run.output()
    assert run.survivors() == []
    info = load_run_info(run.run_dir())
    assert info.status == "failed" and info.interrupted
    assert info.interrupt_reason == "Locust did not start the test (locust.log: Gave up waiting for workers to connect)"
    assert all(p.started_s is None for p in info.phases)
