"""The speed reference: repeatable on this machine within its own spread, and counted per CPU-second,
so a process held to half a core by a cgroup gets the same figure as an unlimited one.

Measuring tests: run them under the load lock (a concurrent load test takes the core they measure).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from loadtests.orchestrator.cpulimit import CpuLimit, CpuLimitError
from loadtests.orchestrator.speed import BENCHMARK, REPEATS, UNITS, BatchChild, SpeedRef, measure

TURNS, TURN_UNITS = 12, 10_000  # 75-110 ms of CPU a turn at 90,000-134,000 units per CPU-second
PERIOD_S, TICK_S = 0.020, 0.010  # the limit's CFS period; the longest scheduler tick (HZ=100)


def _measure_in_child() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "loadtests.orchestrator.speed"], stdout=subprocess.PIPE, text=True)


def test_two_measurements_agree_within_their_own_spread():
    """Two measurements at once in two processes sharing one core: each sees the same spells of this
    machine's speed (which would part two measurements taken one after the other, up to 1.8x) and
    half the core's time; per CPU-second neither shows."""
    procs = [_measure_in_child() for _ in range(2)]
    for proc in procs:
        os.sched_setaffinity(proc.pid, {max(os.sched_getaffinity(0))})
    a, b = (SpeedRef(**json.loads(proc.communicate(timeout=60)[0])) for proc in procs)
    print(f"\n{a}\n{b}")
    for r in (a, b):
        assert r.benchmark == BENCHMARK and r.repeats == REPEATS and r.units_per_repeat == UNITS
        assert r.min_units_per_cpu_s <= r.units_per_cpu_s <= r.max_units_per_cpu_s
        assert 0 < r.cpu_s <= r.wall_s * 1.01 and r.cpu_share < 0.8  # time-sliced with the other
    assert a.checksum == b.checksum  # the same work, all of it, both times
    # the spread each reports covers the other's median: it says honestly how repeatable it is
    widest = max(a.max_units_per_cpu_s - a.min_units_per_cpu_s, b.max_units_per_cpu_s - b.min_units_per_cpu_s)
    assert abs(a.units_per_cpu_s - b.units_per_cpu_s) <= widest


def test_half_a_core_does_the_same_work_per_cpu_second():
    """Two children on one core take turns, one under a 0.5-core cgroup, so both see the same spells
    of this machine's speed. Each turn (~75-110 ms of CPU) spans several of the limit's 20 ms periods
    (so the quota binds in every turn) and is short enough that few pairs of turns straddle a change
    of speed (so the median pair does not)."""
    cpu = {max(os.sched_getaffinity(0))}
    try:
        with CpuLimit(0.5, period_us=round(PERIOD_S * 1e6)) as limit, BatchChild(cpu) as held, BatchChild(cpu) as free:
            limit.apply(held.pid)
            turns = [(held.run(TURN_UNITS), free.run(TURN_UNITS)) for _ in range(TURNS)]
            record = limit.record()
    except CpuLimitError as exc:
        pytest.skip(f"no CPU cgroup can be made here: {exc}")
    (held_cpu, held_wall), (free_cpu, free_wall) = (np.array(x).T for x in zip(*turns))
    per_cpu = float(np.median(free_cpu / held_cpu))      # units per CPU-second, limited / unlimited
    per_wall = float(np.median(free_wall / held_wall))   # units per wall second, limited / unlimited
    print(f"\nunder 0.5 core vs unlimited, {TURNS} turns of {TURN_UNITS} units each: {per_cpu:.3f} per CPU-second, "
          f"{per_wall:.3f} per wall second; limited {TURN_UNITS / np.median(held_cpu):.0f} units/CPU-s, unlimited "
          f"{TURN_UNITS / np.median(free_cpu):.0f}; throttled in {record.throttled_periods} periods, "
          f"{record.throttled_s:.2f} s")
    assert 0.8 <= per_cpu <= 1.25                    # per CPU-second the limit does not show ...
    assert record.throttled_periods >= TURNS         # ... though it held the process back
    # ... and it never had more than its half core per wall second (a bound another process's load cannot
    # break, unlike comparing with the free child, which shares its core with whatever else runs there).
    # A turn may open on a period's unspent quota (half of 20 ms) and overrun by up to a scheduler tick
    # (10 ms at HZ=100) before the throttle lands: a ratio bound (<= 0.6) failed in CI at 0.606 for that.
    overshoot_s = held_cpu - 0.5 * held_wall
    assert float(np.median(overshoot_s)) <= 0.5 * PERIOD_S + TICK_S
    assert len(held.checksums | free.checksums) == 1


def test_the_record_for_run_json_has_every_field():
    ref = measure(repeats=3, units=50)
    row = ref.as_run_json()
    assert row["benchmark"] == BENCHMARK and row["repeats"] == 3 and row["units_per_repeat"] == 50
    assert SpeedRef(**row) == ref


@pytest.mark.parametrize("repeats, units", [(0, 100), (3, 0)])
def test_nonsense_sizes_are_refused(repeats, units):
    with pytest.raises(ValueError, match="must be >= 1"):
        measure(repeats=repeats, units=units)
