"""Pacing spreads users' requests evenly (no synchronized bursts) and is reproducible from the seed."""

from __future__ import annotations

import numpy as np
import pytest

from loadtests.locust_plugin.users.pacing import Pacer, user_rng

USERS, SECONDS, BIN_S = 2000, 10.0, 0.1


def bin_cv(kind: str, rate: float, **kw) -> float:
    """Coefficient of variation of requests per 100 ms bin, 2,000 simulated users spawned at t=0."""
    times = []
    for i in range(USERS):
        pacer = Pacer(user_rng(2016, "U", 0, i), kind, rate, **kw)
        times.extend(pacer.schedule(int(rate * SECONDS * 2)))
    t = np.asarray(times)
    counts, _ = np.histogram(t[(t >= 1.0) & (t < SECONDS)], bins=np.arange(1.0, SECONDS + BIN_S / 2, BIN_S))
    return float(counts.std() / counts.mean())


def synchronized_cv(rate: float) -> float:
    """What constant_throughput does to users spawned together: every user fires on the same beat."""
    t = np.tile(np.arange(0, SECONDS, 1 / rate), USERS)
    counts, _ = np.histogram(t[t >= 1.0], bins=np.arange(1.0, SECONDS + BIN_S / 2, BIN_S))
    return float(counts.std() / counts.mean())


@pytest.mark.parametrize("kind,kw", [("poisson", {}), ("jittered", {"jitter": 0.5}),
                                     ("burst", {"burst_size": 4, "burst_gap_s": 0.15})])
def test_paced_users_spread_requests_evenly(kind, kw):
    cv = bin_cv(kind, 1.0, **kw)
    # 200 requests per bin: a Poisson process gives CV ~ 1/sqrt(200) = 0.07; lockstep gives ~3.
    assert cv < 0.2, f"{kind}: CV {cv:.3f} per 100 ms bin"
    assert synchronized_cv(1.0) > 2.0


@pytest.mark.parametrize("kind,kw", [("poisson", {}), ("jittered", {"jitter": 0.3}),
                                     ("burst", {"burst_size": 4, "burst_gap_s": 0.1})])
def test_mean_rate_is_the_configured_rate(kind, kw):
    pacer = Pacer(user_rng(1, "U", 0, 0), kind, 4.0, **kw)
    gaps = np.diff(pacer.schedule(20_000))
    assert gaps.mean() == pytest.approx(0.25, rel=0.03)
    if kind == "burst":
        assert np.count_nonzero(np.isclose(gaps, 0.1)) == pytest.approx(len(gaps) * 3 / 4, rel=0.01)


def test_schedules_are_reproducible_per_user_and_differ_between_users():
    a = Pacer(user_rng(2016, "GrabUser", 1, 5), "poisson", 3.0).schedule(50)
    b = Pacer(user_rng(2016, "GrabUser", 1, 5), "poisson", 3.0).schedule(50)
    c = Pacer(user_rng(2016, "GrabUser", 1, 6), "poisson", 3.0).schedule(50)
    d = Pacer(user_rng(2017, "GrabUser", 1, 5), "poisson", 3.0).schedule(50)
    assert a == b and a != c and a != d


def test_first_offset_is_spread_over_one_cycle():
    offsets = np.array([Pacer(user_rng(3, "U", 0, i), "burst", 2.0, burst_size=4).first_offset() for i in range(4000)])
    assert offsets.min() >= 0 and offsets.max() <= 2.0  # one burst cycle = 4 / 2.0 s
    counts, _ = np.histogram(offsets, bins=20, range=(0, 2.0))
    assert counts.min() > 0.6 * counts.mean()
