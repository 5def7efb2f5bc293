"""Property tests of the target's money arithmetic and of the draw on random populations (in-process)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.target.audit import audit
from loadtests.target.memory import snapshot_of
from loadtests.target.config import CARD_KINDS, TargetConfig
from loadtests.target.split import envelope_amount, random_split, split_pool_equally
from loadtests.target.state import State


@given(pool=st.integers(0, 10**15), winners=st.integers(0, 10**7))
def test_equal_split_sums_exactly_to_the_pool(pool, winners):
    share, remainder = split_pool_equally(pool, winners)
    assert share * winners + remainder == pool
    assert 0 <= remainder < max(winners, 1) or winners == 0
    if winners == 0:
        assert (share, remainder) == (0, pool)


def test_the_nights_draw():
    share, remainder = split_pool_equally(21_500_000_000, 791_430)
    assert share == 27_166 and share * 791_430 + remainder == 21_500_000_000  # 271.66 yuan each


@given(amount=st.integers(1, 10**6), ways=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_fission_split_sums_to_the_parent(amount, ways, seed):
    if ways > amount:
        return
    parts = random_split(amount, ways, random.Random(seed))
    assert len(parts) == ways and sum(parts) == amount and min(parts) >= 1


@given(left=st.integers(1, 10**9), cap=st.integers(1, 880), seed=st.integers(0, 2**32))
def test_envelope_never_exceeds_pool_or_cap(left, cap, seed):
    assert 1 <= envelope_amount(left, cap, random.Random(seed)) <= min(left, cap)


@settings(max_examples=60, deadline=None)
@given(holdings=st.lists(st.sets(st.sampled_from(CARD_KINDS)), max_size=40), pool=st.integers(0, 10**9))
def test_draw_on_random_populations(holdings, pool):
    state = State(TargetConfig(seed=1, drops={"count": 0}, blessing_pool_fen=pool))
    users = [state.users[state.add_user(f"u{i}")[0]] for i in range(len(holdings))]
    for kind in CARD_KINDS:
        state.admin_open_drop(0, 60, 0.0, {kind: 1.0})
        for user, kinds in zip(users, holdings):
            if kind in kinds:
                assert state.grab(user)["kind"] == kind
    draw = state.make_draw()
    expected = [u.id for u, kinds in zip(users, holdings) if len(kinds) == 5]
    assert draw.winners == expected
    assert draw.share_fen * len(expected) + draw.remainder_fen == pool
    assert sum(u.winnings_fen for u in users) == draw.share_fen * len(expected)
    assert audit(snapshot_of(state))["passed"]
