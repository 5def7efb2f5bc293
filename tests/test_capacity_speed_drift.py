"""The core's speed moving within a run (issue 10): link_cpu.csv's `_speed` rows let the plan read every
interval's CPU at one speed. Pure: hand-built polls with a known cost in work units per request."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capacity_model.anchor import node_speed
from capacity_model.attribution import attributed_demand, busy_at_speed, in_run_speed
from capacity_model.spec import load_spec
from gala.contract.results import LINK_CPU_COLUMNS, PROCESS_ROW, SPEED_ROW

UNITS_PER_REQUEST = {"grab": 10.0, "share": 25.0}  # work per request, whatever the core's speed
FAST, SLOW = 40_000.0, 20_000.0                     # units per CPU-second: the core halves its speed mid-run
SAMPLED_UNITS = 400                                  # the target's speed samples: one batch a second


def polls(n: int = 120, speed_rows: bool = True, seed: int = 7) -> pd.DataFrame:
    """Cumulative polls of one process, a second apart; the core is FAST for the first half, SLOW after."""
    rng = np.random.default_rng(seed)
    speed = np.where(np.arange(n) < n // 2, FAST, SLOW)
    req = {"grab": rng.integers(200, 600, n), "share": rng.integers(20, 120, n)}
    cpu = {l: req[l] * u / speed for l, u in UNITS_PER_REQUEST.items()}
    overhead = 0.05 * (req["grab"] + req["share"]) / speed  # 0.05 units a request that no link is charged for
    sampled = SAMPLED_UNITS / speed
    rows = []
    cum = {l: [0.0, 0] for l in [*UNITS_PER_REQUEST, PROCESS_ROW, SPEED_ROW]}
    for i in range(n + 1):
        ts = 1000.0 + i
        if i:
            for l in UNITS_PER_REQUEST:
                cum[l][0] += cpu[l][i - 1]
                cum[l][1] += int(req[l][i - 1])
            cum[SPEED_ROW][0] += sampled[i - 1]
            cum[SPEED_ROW][1] += SAMPLED_UNITS
            cum[PROCESS_ROW][0] += sum(cpu[l][i - 1] for l in UNITS_PER_REQUEST) + overhead[i - 1] + sampled[i - 1]
            cum[PROCESS_ROW][1] += int(req["grab"][i - 1] + req["share"][i - 1])
        for l, (c, r) in cum.items():
            if l == SPEED_ROW and not speed_rows:
                continue
            rows.append([ts - 1000.0, ts, 100, l, r, c])
    frame = pd.DataFrame(rows, columns=LINK_CPU_COLUMNS)
    frame["service"] = "target"
    return frame


def test_each_interval_is_read_at_its_own_speed():
    got = attributed_demand({"r": polls()}, {}, speed=FAST).cpu_s["target"]
    for link, units in UNITS_PER_REQUEST.items():
        # at the FAST core's speed, whenever the requests ran; the overhead (0.05 units) regressed per link
        assert got[link] == pytest.approx((units + 0.05) / FAST, rel=0.02), link


def test_without_the_speed_samples_the_slow_half_inflates_every_demand():
    got = attributed_demand({"r": polls(speed_rows=False)}, {}).cpu_s["target"]
    for link, units in UNITS_PER_REQUEST.items():
        assert got[link] > 1.25 * (units + 0.05) / FAST, link  # half the requests cost twice: ~1.5x


def test_the_in_run_speed_pools_every_sample():
    # 60 s at each speed, 400 units a second: 48,000 units over 60 * (0.01 + 0.02) CPU-seconds
    assert in_run_speed({"r": polls()}) == pytest.approx(48_000 / 1.8)
    assert in_run_speed({"r": polls(speed_rows=False)}) is None


def test_the_nodes_loaded_rating_is_held_against_the_in_run_speed():
    spec = load_spec(None)
    loaded = spec.node.loaded_speed_units_per_cpu_s
    assert loaded is not None  # the packaged spec declares the night's core while serving
    note = node_speed(spec, model_speed=90_000.0, in_run_speed=loaded / 2)
    assert spec.node.speed_vs_measured == pytest.approx(2.0) and "while serving" in note
    spec = load_spec(None)
    node_speed(spec, model_speed=45_000.0, in_run_speed=None)  # no in-run samples: the quiet rating at the ends
    assert spec.node.speed_vs_measured == pytest.approx(spec.node.speed_units_per_cpu_s / 45_000.0)


def test_the_regressions_busy_cores_are_read_at_the_same_speed():
    n = 120
    speed = np.where(np.arange(n) < n // 2, FAST, SLOW)
    index = pd.MultiIndex.from_product([["r"], range(n)], names=["run_id", "t_s"])
    busy = pd.DataFrame({"target": 1000.0 / speed, "redis": 0.1}, index=index)  # 1,000 units of work a second
    got = busy_at_speed(busy, {"r": polls(n)}, FAST)
    assert np.allclose(got["target"], 1000.0 / FAST)  # the slow half no longer looks twice as busy
    assert (got["redis"] == 0.1).all()                # a service that sampled no speed: as measured
    assert busy_at_speed(busy, {"r": polls(n, speed_rows=False)}, FAST).equals(busy)
