"""The phases of a scenario as they will run: each phase's times after duration_scale, the phase that
owns each stretch of time (`gala.contract.phases.owner`, the one rule), the users running, and the
requests/s each link is asked to carry. Pure functions of a `Scenario`; no I/O, no Locust.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import BaseModel

from gala.contract.phases import owner

if TYPE_CHECKING:  # the model imports this module: only the annotations need it
    from loadtests.scenario.model import PhaseSpec, Scenario


class PhasePlan(BaseModel):
    """A phase as it will run: times after duration_scale, and what each link is asked to carry."""

    name: str
    start_s: float
    end_s: float
    users: dict[str, int]
    spawn_rate: float
    intended_rps: dict[str, float]
    # Per-user action rate of each user class in this phase (arrival phases change it).
    user_rate_per_s: dict[str, float]


def phase_times(sc: Scenario) -> list[tuple[float, float]]:
    """Each phase's (start, end) in run seconds, after duration_scale; a phase without start_s follows the last."""
    out, prev_end = [], 0.0
    for p in sc.phases:
        start = prev_end if p.start_s is None else p.start_s * sc.duration_scale
        prev_end = start + p.duration_s * sc.duration_scale
        out.append((start, prev_end))
    return out


def segments(times: list[tuple[float, float]]) -> Iterator[tuple[float, float, int, list[int]]]:
    """Yield (t0, t1, owning phase index, active phase indexes) between consecutive phase edges."""
    edges = sorted({t for se in times for t in se})
    starts, ends = [s for s, _ in times], [e for _, e in times]
    for t0, t1 in zip(edges, edges[1:]):
        active = [i for i, (s, e) in enumerate(times) if s <= t0 and e >= t1]
        if active:
            yield t0, t1, owner(starts, ends, t0), sorted(active, key=lambda i: (times[i][0], i))


def phase_user_rates(sc: Scenario, p: PhaseSpec) -> dict[str, float]:
    """Per-user rate of each user class in phase p: its own rate, or the one its arrival_rps asks."""
    rates = {u: sc.users[u].rate_per_s for u in p.users}
    for link, rps in (p.arrival_rps or {}).items():
        carriers = [u for u, n in p.users.items() if n > 0 and sc.users[u].shares().get(link)]
        for u in carriers:
            share = sc.users[u].shares()[link]
            rates[u] = rps / (len(carriers) * p.users[u] * share)
    return rates


def planned_phases(sc: Scenario) -> list[PhasePlan]:
    """The phases' times after duration_scale, users, and intended requests/s per link.

    A request belongs to the most recently started phase still running, so a phase's intended
    rate counts every user running during the time attributed to it (overlapping phases' users
    included), divided by the phase's whole duration, exactly as its achieved rps is measured.
    """
    times, rates = phase_times(sc), [phase_user_rates(sc, p) for p in sc.phases]
    expected: list[dict[str, float]] = [{} for _ in sc.phases]
    for t0, t1, own, active in segments(times):
        counts: dict[str, int] = {}
        rate_now: dict[str, float] = {}
        for i in active:  # later-started phases override a class's pace
            for u, n in sc.phases[i].users.items():
                counts[u] = counts.get(u, 0) + n
                if n:
                    rate_now[u] = rates[i][u]
        for u, n in counts.items():
            spec = sc.users[u]
            if not n or spec.pacing == "none":
                continue
            for link, share in spec.shares().items():
                expected[own][link] = expected[own].get(link, 0.0) + n * rate_now[u] * share * (t1 - t0)
    plans = []
    for i, p in enumerate(sc.phases):
        start, end = times[i]
        total_users = sum(p.users.values())
        # Ramp within ~10% of the phase (at least 1 s) unless the file says otherwise.
        spawn = p.spawn_rate or max(1.0, total_users / max(1.0, 0.1 * (end - start)))
        plans.append(PhasePlan(
            name=p.name, start_s=start, end_s=end, users=dict(p.users), spawn_rate=spawn,
            intended_rps={k: round(v / (end - start), 6) for k, v in expected[i].items() if v > 0},
            user_rate_per_s=rates[i],
        ))
    return plans


def user_rates_at(sc: Scenario, t_s: float) -> dict[str, float]:
    """Per-user action rate of each user class at run time t_s (the most recently started phase wins)."""
    out = {name: u.rate_per_s for name, u in sc.users.items()}
    times = phase_times(sc)
    for i in sorted(range(len(times)), key=lambda i: (times[i][0], i)):
        if times[i][0] <= t_s:
            out.update({k: v for k, v in phase_user_rates(sc, sc.phases[i]).items() if sc.phases[i].users.get(k)})
    return out


def peak_users(plans: list[PhasePlan]) -> int:
    """The most users running at once (overlapping phases add up)."""
    return max((sum(sum(q.users.values()) for q in plans if q.start_s <= p.start_s < q.end_s) for p in plans),
               default=0)
