"""The one phase-owner rule (gala.contract.phases): the most recently started phase still running;
outside every running phase, the most recently started one; before any start, the first."""

from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from gala.contract.phases import owner, owners


def test_overlaps_tails_and_gaps():
    starts, ends = [0, 5, 20], [10, 15, 30]        # a: 0-10, b: 5-15 (overlaps a), c: 20-30
    t = [-1, 0, 4.9, 5, 9, 10, 14.9, 15, 17, 20, 31]
    assert owners(starts, ends, t).tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2]


def test_not_started_phases_own_nothing_and_equal_starts_go_to_the_later_phase():
    assert owner([0, None], [None, None], 3) == 0
    assert owner([None, None], [None, None], 3) == 0
    assert owner([0, 0], [10, 10], 1) == 1


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.1, 50)), min_size=1, max_size=6), st.floats(-5, 200))
def test_the_owner_is_running_when_any_phase_is(phases, t):
    starts = [s for s, _ in phases]
    ends = [s + d for s, d in phases]
    i = owner(starts, ends, t)
    running = [j for j in range(len(phases)) if starts[j] <= t < ends[j]]
    if running:
        assert i in running and starts[i] == max(starts[j] for j in running)
    elif any(s <= t for s in starts):
        assert starts[i] == max(s for s in starts if s <= t)
    else:
        assert i == 0
    assert owners(starts, ends, np.array([t])).tolist() == [i]
