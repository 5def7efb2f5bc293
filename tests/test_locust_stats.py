"""gala's statistics as data: worker increments merge exactly, requests belong to the right phase,
and the tables keep their sums (per-phase rows add up to the run's). No Locust process needed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gala.contract.histogram import LatencyStats, histogram_percentiles, merge_table, table_rows
from gala.contract.phases import Timeline
from gala.contract.tables import histograms_doc, phase_link_table, timeseries_table
from loadtests.scenario import PhasePlan


def test_worker_increments_merge_exactly():
    rng = np.random.default_rng(5)
    latencies = rng.lognormal(3.0, 1.2, 5000)  # 1 ms .. seconds: every rounding band
    failed = rng.random(5000) < 0.03
    whole = LatencyStats()
    workers = [{} for _ in range(3)]
    for i, (ms, f) in enumerate(zip(latencies, failed)):
        whole.add(float(ms), bool(f))
        workers[i % 3].setdefault(("grab", "grab"), LatencyStats()).add(float(ms), bool(f))
    master: dict = {}
    for w in workers:  # as shipped over the wire (lists), in any order
        merge_table(master, table_rows(w))
    merged = master[("grab", "grab")]
    assert merged.requests == whole.requests == 5000 and merged.failures == whole.failures == int(failed.sum())
    assert merged.buckets == whole.buckets and merged.max_ms == whole.max_ms
    assert merged.sum_ms == pytest.approx(whole.sum_ms)
    qs = [0.5, 0.95, 0.99]
    assert histogram_percentiles(merged.buckets, qs) == histogram_percentiles(whole.buckets, qs)


def test_a_request_belongs_to_the_most_recently_started_running_phase():
    tl = Timeline(["grab", "share", "chat"])
    tl.reset(1000.0)
    assert tl.owner(0.5) == "grab"                      # nothing started yet: the first phase
    tl.update(["grab"], 0.0)
    tl.update(["grab", "share"], 25.0)
    assert tl.owner(10.0) == "grab" and tl.owner(25.0) == "share" and tl.owner(30.0) == "share"
    tl.update(["share"], 35.0)
    tl.update(["share", "chat"], 50.0)
    tl.update(["chat"], 60.0)
    assert tl.owner(55.0) == "chat" and tl.owner(59.0) == "chat" and tl.owner(45.0) == "share"
    tl.end_all(90.0)
    assert tl.owner(95.0) == "chat"                     # after the end: the last started phase
    assert tl.times == {"grab": [0.0, 35.0], "share": [25.0, 60.0], "chat": [50.0, 90.0]}


def test_tables_add_up_and_carry_intended_rates():
    tl = Timeline(["a", "b"])
    tl.reset(0.0)
    tl.update(["a"], 0.0)
    tl.update(["a", "b"], 5.0)
    tl.end_all(10.0)
    pl, sl = {}, {}
    for t, link, ms in [(1.0, "x", 10), (2.0, "y", 20), (6.0, "x", 30), (7.5, "x", 150), (9.0, "y", 5)]:
        phase = tl.owner(t)
        pl.setdefault((phase, link), LatencyStats()).add(ms, link == "y")
        sl.setdefault((int(t), link), LatencyStats()).add(ms, link == "y")
    plans = {"a": PhasePlan(name="a", start_s=0, end_s=10, users={}, spawn_rate=1, intended_rps={"x": 0.2},
                            user_rate_per_s={}),
             "b": PhasePlan(name="b", start_s=5, end_s=10, users={}, spawn_rate=1, intended_rps={"x": 0.4},
                            user_rate_per_s={})}
    df = phase_link_table(pl, tl, plans, 10.0).set_index(["phase", "link"])
    assert df.loc[("_all", "_all"), "requests"] == 5 and df.loc[("_all", "_all"), "failures"] == 2
    assert df.loc[("a", "x"), "requests"] + df.loc[("b", "x"), "requests"] == df.loc[("_all", "x"), "requests"] == 3
    assert df.loc[("a", "x"), "duration_s"] == 10.0 and df.loc[("b", "x"), "duration_s"] == 5.0
    assert df.loc[("b", "x"), "rps"] == pytest.approx(2 / 5)
    assert df.loc[("b", "x"), "achieved_ratio"] == pytest.approx((2 / 5) / 0.4)
    assert pd.isna(df.loc[("a", "y"), "intended_rps"])           # nothing intended for y
    assert df.loc[("b", "x"), "max_ms"] == 150 and df.loc[("b", "x"), "p50_ms"] == 30
    assert df.loc[("_all", "x"), "intended_rps"] == pytest.approx((0.2 * 10 + 0.4 * 5) / 10)
    hist = histograms_doc(pl)
    assert hist["all"]["x"] == {"10": 1, "30": 1, "150": 1} and hist["phases"]["b"]["y"] == {"5": 1}
    ts = timeseries_table(sl, tl)
    assert ts.requests.sum() == 5 and list(ts.phase) == ["a", "a", "b", "b", "b"]
