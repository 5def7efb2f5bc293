"""The default config exercises everything in a ~90 s rehearsal of a few hundred users (in-process, simulated clock).

The traffic follows the default scenario's outline (loadtests/scenarios/feb1.yaml): 250 grabbers
tapping 3/s for 35 s, 200 sharers from 25 s to 60 s, at full length and shortened to a fifth (the
suite's short rehearsal uses `--duration-scale 0.2`). The domain runs on a fake clock, so the test
takes a second or two and says whether the defaults are sized right: pools run empty, 敬业 reaches
its cap, envelopes get split, and the draw has winners.
"""

from __future__ import annotations

import collections
import random

import pytest

from loadtests.target.audit import audit
from loadtests.target.memory import snapshot_of
from loadtests.target.config import TargetConfig
from loadtests.target.state import State


@pytest.mark.parametrize("scale", [1.0, 0.2])
def test_defaults_exercise_every_path_in_a_90s_rehearsal(scale):
    now = [0.0]
    state = State(TargetConfig(seed=1), clock=lambda: now[0])
    rng = random.Random(2)
    grabbers = [state.users[state.add_user(f"g{i}")[0]] for i in range(250)]
    sharers = [state.users[state.add_user(f"s{i}")[0]] for i in range(200)]
    everyone = grabbers + sharers
    for u in everyone:
        for f in rng.sample(everyone, 4):
            if f is not u:
                state.add_friend(u, f.id)
    answers, gifts, splits, step = collections.Counter(), 0, 0, 0.05
    while now[0] < 90 * scale:
        t = now[0] / scale  # the scenario's clock
        active = [(u, 3.0) for u in grabbers[: 250 if t < 35 else 60 if t < 60 else 0]]
        active += [(u, 2.0) for u in sharers] if 25 <= t < 60 else []
        for u, rate_per_s in active:
            if rng.random() >= rate_per_s * step:
                continue
            if rate_per_s == 2.0 and rng.random() < 0.7 and u.friends:
                cards = [c for kind in u.cards.values() for c in kind]
                if cards:
                    state.give_card(u, cards[0], rng.choice(sorted(u.friends)))
                    gifts += 1
                    continue
                if u.envelopes:
                    env = state.envelopes[min(u.envelopes)]
                    state.split_envelope(u, env.id, sorted(u.friends)[: min(3, env.amount_fen)], None)
                    splits += 1
                    continue
            reply = state.grab(u)
            answers[reply.get("reason", reply["result"])] += 1
        now[0] += step

    assert len(state.drops) >= 2 and state.drops[0].opens_at - state.started_at <= 2
    assert any(d.pool_left_fen == 0 for d in state.drops), [(d.pool_fen, d.pool_left_fen) for d in state.drops]
    assert answers["pool_empty"] > 0 and answers["envelope"] > 0 and answers["card"] > 0
    assert state.cards_issued["敬业"] == state.config.card_caps["敬业"]
    assert gifts > 0 and splits > 0
    draw = state.make_draw()
    assert len(draw.winners) > 0
    assert audit(snapshot_of(state))["passed"]
