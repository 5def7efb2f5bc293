"""Reading results folders into Measurements: one run, two runs at different scales, and refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from capacity_model.runs import measure, read_runs
from capacity_model.spec import load_spec
from gala.contract.errors import InputError
from synth_runs import DEMAND_S, FEB1_PHASES, LINKS, write_run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    return write_run(d, seed=1), write_run(d, seed=2, rate_scale=0.5, nodes=2)


def test_one_run_becomes_aligned_frames(two_runs):
    m, probes = measure(read_runs([two_runs[0]]), load_spec())
    assert probes == {}
    assert list(m.throughput.columns) == LINKS
    assert m.throughput.index.names == ["run_id", "t_s"]
    assert len(m.throughput) == sum(p.duration_s for p in FEB1_PHASES)
    assert m.throughput.index.equals(m.busy_cores.index) and m.throughput.index.equals(m.window_phase.index)
    assert sorted(m.busy_cores.columns) == sorted(DEMAND_S)
    # each phase's measured rate is its Poisson mean within a few percent
    for ph in FEB1_PHASES:
        for link, rps in ph.rps.items():
            assert m.phase_rps.loc[ph.name, link] == pytest.approx(rps, rel=0.12)
    assert list(m.phase_rps.index) == [p.name for p in FEB1_PHASES]
    assert m.window_phase.value_counts().to_dict() == {p.name: p.duration_s for p in FEB1_PHASES}
    assert set(m.phase_latency_ms.columns) >= {"p50", "p95", "p99"}
    assert m.phase_latency_ms.index.names == ["phase", "link"]
    assert m.method == {l: "cpu-demand" for l in LINKS}
    assert m.links == LINKS and m.notes == []


def test_two_runs_at_different_scales_combine(two_runs):
    m, _ = measure(read_runs(list(two_runs)), load_spec())
    ids = [json.loads((p / "run.json").read_text())["run_id"] for p in two_runs]
    assert m.run_ids == ids
    assert list(m.throughput.index.get_level_values("run_id").unique()) == ids
    assert len(m.throughput) == 2 * sum(p.duration_s for p in FEB1_PHASES)
    # the phase's rate is requests over the summed duration: the mean of 1x and 0.5x
    grab = FEB1_PHASES[0]
    assert m.phase_rps.loc[grab.name, "grab"] == pytest.approx(0.75 * grab.rps["grab"], rel=0.1)
    # busy cores add U = U0 + sum X D in both runs: a linear fit over both recovers D
    x = m.throughput.to_numpy()
    u = m.busy_cores["api"].to_numpy()
    coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(x)), x]), u, rcond=None)
    assert coef[1:] == pytest.approx([DEMAND_S["api"][l] for l in LINKS], rel=0.08)
    assert any("different scales" in n for n in m.notes)


def test_interrupted_and_saturated_runs_are_read_with_a_warning(tmp_path):
    a = write_run(tmp_path, seed=3, status="interrupted")
    b = write_run(tmp_path, seed=4, saturated=True)
    m, _ = measure(read_runs([a, b]), load_spec())
    text = "\n".join(m.notes)
    assert "interrupted (SIGTERM)" in text
    assert "saturated" in text and "not trustworthy" in text


def test_a_failed_run_is_refused(tmp_path):
    a = write_run(tmp_path, seed=5, status="failed")
    with pytest.raises(InputError, match=r"run\.json: status is 'failed'"):
        read_runs([a])


def test_the_same_run_twice_is_refused(tmp_path):
    a = write_run(tmp_path, seed=6)
    with pytest.raises(InputError, match="given twice"):
        read_runs([a, a])


def test_a_run_without_target_cpu_and_without_steps_is_black_box(tmp_path):
    """No CPU: each link's capacity comes from the phases' knees (here every phase is within budget)."""
    a = write_run(tmp_path, seed=9, with_cpu=False)
    m, probes = measure(read_runs([a]), load_spec())
    assert m.busy_cores.shape[1] == 0
    assert m.method == {l: "black-box" for l in LINKS}
    assert set(probes) == set(LINKS)
    # the budget never broke: the capacity is the highest phase's rate, a lower bound
    assert all(p.lower_bound for p in probes.values())
    busiest = max(ph.rps["chat"] for ph in FEB1_PHASES)
    assert m.capacity_per_node["chat"] == pytest.approx(busiest, rel=0.12)
    assert isinstance(m.phase_rps, pd.DataFrame)
