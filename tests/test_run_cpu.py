"""CPU samples onto the run's seconds (cpu.csv), and the generator-saturation rule."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from gala.contract.results import CPU_COLUMNS
from loadtests.orchestrator.cpu import CpuSampler, Sample, cpu_frame, generator_load

T0 = 1_700_000_000.0


def _samples(pid, role, times, cum, created=T0 - 100):
    return [Sample(ts=T0 + t, role=role, pid=pid, name="p", cpu_s=c, rss_mb=10.0, created=created)
            for t, c in zip(times, cum)]


def test_jittered_samples_land_on_whole_seconds_of_the_run():
    # a process using exactly half a core, sampled late and unevenly (a loaded machine)
    times = [-0.7, 0.4, 1.9, 2.35, 3.8, 5.2]
    frame = cpu_frame(_samples(11, "target", times, [50 + 0.5 * t for t in times]), T0, T0 + 5.0)
    assert list(frame.columns) == CPU_COLUMNS
    assert frame["t_s"].tolist() == [0, 1, 2, 3, 4]
    assert frame["cpu_percent"].tolist() == pytest.approx([50.0] * 5)
    # cumulative since the run's start, not since the process's birth
    assert frame["cpu_s"].tolist() == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5])
    assert frame["ts"].tolist() == pytest.approx([T0 + k for k in range(5)])


def test_a_process_born_mid_run_counts_from_birth_and_only_covered_seconds():
    frame = cpu_frame(_samples(12, "generator", [2.5, 3.5, 4.5], [0.1, 1.1, 2.1], created=T0 + 2.4), T0, T0 + 10)
    assert frame["t_s"].tolist() == [3]
    assert frame["cpu_percent"].tolist() == pytest.approx([100.0])
    assert frame["cpu_s"].tolist() == pytest.approx([1.6])


def test_saturation_needs_more_than_a_tenth_of_the_run_above_90_percent():
    rows = lambda pid, hot, n: pd.DataFrame({  # noqa: E731
        "t_s": range(n), "role": "generator", "pid": pid, "cpu_percent": [95.0] * hot + [20.0] * (n - hot)})
    calm = generator_load(pd.concat([rows(1, 10, 100), rows(2, 3, 100)]), run_seconds=100)
    assert not calm.saturated and calm.peak_cpu_percent == 95.0
    hot = generator_load(pd.concat([rows(1, 11, 100), rows(2, 3, 100)]), run_seconds=100)
    assert hot.saturated and hot.saturated_pids == [1]
    assert generator_load(pd.DataFrame(columns=CPU_COLUMNS), 10).peak_cpu_percent is None


def test_sampler_reads_a_real_process_and_its_children():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import subprocess,sys,time;"
                              "p=subprocess.Popen([sys.executable,'-c','import time;time.sleep(30)']);time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        sampler = CpuSampler(interval_s=0.2)
        sampler.watch(child.pid, "target")
        while time.monotonic() < deadline and len(sampler.pids("target")) < 2:
            sampler.sample_once()
            time.sleep(0.2)
        assert child.pid in sampler.pids("target") and len(sampler.pids("target")) == 2
        assert os.getpid() not in sampler.pids("target")
    finally:
        child.kill()
        child.wait(timeout=10)
        for s in sampler.samples:  # the grandchild: ours to stop
            if s.pid != child.pid:
                try:
                    os.kill(s.pid, 9)
                except OSError:
                    pass
