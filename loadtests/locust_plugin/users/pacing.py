"""Pacing: when each user acts, without synchronizing thousands of users.

Locust's `constant_throughput(1)` makes users spawned together fire together: measured here, 2,000
users firing in bursts ~300 ms wide each second, adding ~300 ms of p99 by themselves. Here each user
starts at a random phase offset and draws its gaps (Poisson, jittered-constant or bursts) from its own
RNG, seeded from the scenario seed and the user's identity so that runs are reproducible.

`Pacer` is pure (no gevent): the unit test and the benchmark simulate schedules with it; `paced()`
turns it into a Locust `wait_time` callable.
"""

from __future__ import annotations

import random
import time
from typing import Callable

MAX_LAG_GAPS = 2.0  # a user further behind its schedule than this many gaps restarts it (no catch-up burst)


class Pacer:
    """The schedule of one user: a random first offset, then gaps whose mean is 1/rate.

    kind: `poisson` (exponential gaps), `jittered` (1/rate × (1 ± jitter)), `burst` (`burst_size`
    actions `burst_gap_s` apart, then a pause keeping the mean rate), `none` (no wait).
    """

    def __init__(self, rng: random.Random, kind: str, rate_per_s: float, *, jitter: float = 0.5,
                 burst_size: int = 4, burst_gap_s: float = 0.15) -> None:
        self.rng, self.kind, self.rate_per_s = rng, kind, rate_per_s
        self.jitter, self.burst_size, self.burst_gap_s = jitter, burst_size, burst_gap_s
        self._in_burst = 0  # actions already made in the current burst

    def cycle_s(self, rate_per_s: float | None = None) -> float:
        """Mean time of one pacing cycle (one action, or one burst)."""
        rate = rate_per_s or self.rate_per_s
        return (self.burst_size if self.kind == "burst" else 1) / rate

    def first_offset(self, rate_per_s: float | None = None) -> float:
        """A uniform random offset within one cycle: users spawned together do not act together."""
        if self.kind == "none":
            return 0.0
        return self.rng.uniform(0.0, self.cycle_s(rate_per_s))

    def next_gap(self, rate_per_s: float | None = None) -> float:
        """Seconds from this action's scheduled start to the next one's."""
        rate = rate_per_s or self.rate_per_s
        if self.kind == "none":
            return 0.0
        if self.kind == "poisson":
            return self.rng.expovariate(rate)
        if self.kind == "jittered":
            return (1.0 + self.jitter * self.rng.uniform(-1.0, 1.0)) / rate
        # burst: short gaps inside a burst, then a jittered pause so the mean stays 1/rate
        self._in_burst += 1
        if self._in_burst < self.burst_size:
            return self.burst_gap_s
        self._in_burst = 0
        pause = self.burst_size / rate - (self.burst_size - 1) * self.burst_gap_s
        return pause * (1.0 + self.jitter * self.rng.uniform(-1.0, 1.0))

    def schedule(self, n_actions: int, start_s: float = 0.0) -> list[float]:
        """Start times of n actions from start_s (used to simulate many users without gevent)."""
        t = start_s + self.first_offset()
        out = []
        for _ in range(n_actions):
            out.append(t)
            t += self.next_gap()
        return out


def user_rng(seed: int, class_name: str, worker_index: int, user_index: int) -> random.Random:
    """A user's own RNG; str seeds hash with sha512, so this is stable across processes and runs."""
    return random.Random(f"{seed}:{class_name}:{worker_index}:{user_index}")


def paced(rate_fn: Callable[[object], float] | None = None) -> Callable[[object], float]:
    """A Locust `wait_time` that follows the user's `pacer` on an absolute schedule.

    Gaps count from one action's scheduled start to the next (like constant_throughput), so response
    time does not lower the rate; a user far behind restarts its schedule instead of bursting to catch up.
    `rate_fn(user)` may give the current per-user rate (arrival-rate phases); None keeps the pacer's.
    """

    def wait_time(user) -> float:
        pacer: Pacer = user.pacer
        rate = rate_fn(user) if rate_fn else None
        now = time.monotonic()
        nxt = getattr(user, "_next_action_at", None)
        if nxt is None:
            nxt = now
        gap = pacer.next_gap(rate)
        nxt += gap
        if nxt < now - MAX_LAG_GAPS * pacer.cycle_s(rate):
            nxt = now
        user._next_action_at = nxt
        return max(0.0, nxt - now)

    return wait_time


def start_offset(user, rate_per_s: float | None = None) -> float:
    """Pick the user's first offset and start its schedule there; returns seconds to sleep now."""
    offset = user.pacer.first_offset(rate_per_s)
    user._next_action_at = time.monotonic() + offset
    return offset
