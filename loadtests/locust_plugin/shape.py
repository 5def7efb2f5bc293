"""The load shape that plays a scenario's phases, and the dispatcher that makes its per-class counts exact.

`ScenarioShape.tick()` returns `(total users, spawn rate, [user classes])`, with each class's
`fixed_count` set to the sum of its users over the phases running now (overlapping phases add up).
Locust's own UsersDispatcher cannot honour such stages: on a ramp-down it removes the most recently
spawned users whatever their class (so "grab ends while share goes on" would stop sharers), and a stage
that swaps users between classes at a constant total changes nothing. `PhaseDispatcher` adds and removes
users per class until every class has exactly its `fixed_count` (classes a stage does not name: 0).
"""

from __future__ import annotations

import time
from typing import Callable, ClassVar

import gevent
import numpy as np
from locust import LoadTestShape
from locust.dispatch import UsersDispatcher

from loadtests.scenario import PhasePlan, Scenario


class StageClasses(list):
    """The user-class list of one stage; equal only to a stage with the same counts.

    Locust re-dispatches only when tick()'s tuple changes; a plain class list stays equal when only the
    counts move (e.g. 100 A + 50 B -> 50 A + 100 B), so the counts are part of the comparison.
    """

    def __init__(self, classes, counts: dict[str, int]):
        super().__init__(classes)
        self.counts = dict(counts)

    def __eq__(self, other):
        return list.__eq__(self, other) and self.counts == getattr(other, "counts", None)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = None


class ScenarioShape(LoadTestShape):
    """Plays `scenario`'s phases; the locustfile makes a concrete subclass setting the class attributes."""

    abstract = True
    # --run-time caps the shape (a safety bound); Locust would otherwise ignore it for shapes.
    use_common_options = True
    scenario: ClassVar[Scenario]
    user_classes_by_name: ClassVar[dict[str, type]] = {}
    # Called with the names of the phases running now whenever that set changes (the stats plugin
    # records actual phase times from it).
    on_phases: ClassVar[Callable[[list[str]], None] | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.plans: list[PhasePlan] = self.scenario.planned_phases()
        self.total_duration_s = max(p.end_s for p in self.plans)
        self._edges = sorted({e for p in self.plans for e in (p.start_s, p.end_s)})
        self.finished = False
        self.end_reason: str | None = None  # "shape" (all phases played) or "run-time" (--run-time cap)
        self._active: list[str] | None = None
        self._last_counts: dict[str, int] | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self.finished, self.end_reason, self._active, self._last_counts = False, None, None, None

    def _applied_counts(self) -> dict[str, int] | None:
        """The per-class counts Locust applied last (its own record survives the master's second
        reset_time at test start, which would otherwise make the first edge a second late)."""
        last = getattr(self.runner, "shape_last_tick", None) if self.runner else None
        if last is not None and len(last) == 3 and hasattr(last[2], "counts"):
            return last[2].counts
        return self._last_counts

    def _sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def current_phases(self) -> list[str]:
        return [p.name for p in self.active_phases(self.get_run_time())]

    def active_phases(self, t_s: float) -> list[PhasePlan]:
        return [p for p in self.plans if p.start_s <= t_s < p.end_s]

    def stage(self, t_s: float) -> tuple[dict[str, int], float]:
        """Users per class (summed over running phases) and the spawn rate at run time t_s."""
        active = self.active_phases(t_s)
        counts: dict[str, int] = {}
        for p in active:
            for name, n in p.users.items():
                counts[name] = counts.get(name, 0) + n
        # The most recently started phase's ramp speed governs (it is the one adding users).
        rate = max(active, key=lambda p: p.start_s).spawn_rate if active else 1.0
        return {k: v for k, v in counts.items() if v > 0}, rate

    def tick(self):
        t = self.get_run_time()
        # Locust ticks about once a second; wait for a phase edge due before the next tick so that
        # phases start and end on time (short overlaps would otherwise shift or vanish).
        # (Only when nothing changed at t itself, else that change would be skipped.)
        upcoming = [e for e in self._edges if e > t]
        if upcoming and min(upcoming) - t < 1.0 and self.stage(t)[0] == self._applied_counts():
            self._sleep(min(upcoming) - t + 0.001)
            t = self.get_run_time()
        active = [p.name for p in self.active_phases(t)]
        if active != self._active:
            self._active = active
            if self.on_phases:
                type(self).on_phases(active)
        run_time = getattr(self.runner.environment.parsed_options, "run_time", None) if self.runner else None
        if t >= self.total_duration_s or (run_time and t >= run_time):
            self.finished = True
            self.end_reason = "shape" if t >= self.total_duration_s else "run-time"
            if self.on_phases and self._active:
                self._active = []
                type(self).on_phases([])
            return None
        counts, rate = self.stage(t)
        self._last_counts = counts
        classes = []
        for name, n in counts.items():
            cls = self.user_classes_by_name[name]
            cls.fixed_count = n
            classes.append(cls)
        return sum(counts.values()), rate, StageClasses(classes, counts)


class PhaseDispatcher(UsersDispatcher):
    """Dispatch exactly each named class's `fixed_count` (others: 0), adding and removing per class."""

    def new_dispatch(self, target_user_count: int, spawn_rate: float, user_classes=None) -> None:
        super().new_dispatch(target_user_count, spawn_rate, user_classes)
        self._target_user_count = sum(self._targets().values())
        self._user_generator = self._user_gen()

    def _targets(self) -> dict[str, int]:
        named = {u.__name__: int(u.fixed_count) for u in self._user_classes}
        return {u.__name__: named.get(u.__name__, 0) for u in self._original_user_classes}

    def _diff(self) -> dict[str, int]:
        """Target minus current users per class (positive: to add, negative: to remove)."""
        return {name: n - self._get_user_current_count(name) for name, n in self._targets().items()}

    def _settled(self) -> bool:
        return not any(self._diff().values())

    @staticmethod
    def _interleave(deficits: dict[str, int]) -> list[str]:
        """Class names, each as many times as its deficit, spread evenly (A B A B A rather than A A A B B)."""
        names = list(deficits)
        at = np.concatenate([(np.arange(d) + 0.5) / d for d in deficits.values()]) if names else np.array([])
        who = np.repeat(np.arange(len(names)), list(deficits.values()))
        return [names[i] for i in who[np.argsort(at, kind="stable")]]

    def _user_gen(self):
        # Used by Locust's rebalance (worker added/lost): yields each class's missing users, interleaved.
        while True:
            deficits = {n: d for n, d in self._diff().items() if d > 0}
            if not deficits:
                yield None
                continue
            yield from self._interleave(deficits)

    def _add_users_on_workers(self) -> dict[str, dict[str, int]]:
        deficits = {n: d for n, d in self._diff().items() if d > 0}
        for name in self._interleave(deficits)[: self._user_count_per_dispatch_iteration]:
            worker_node = next(self._worker_node_generator)
            self._users_on_workers[worker_node.id][name] += 1
            self._current_user_count += 1
            self._active_users.append((worker_node, name))
        return self._users_on_workers

    def _remove_users_from_workers(self) -> dict[str, dict[str, int]]:
        excess = {n: -d for n, d in self._diff().items() if d < 0}
        budget = self._user_count_per_dispatch_iteration
        keep = []
        for worker_node, name in reversed(self._active_users):  # newest first, as Locust does
            if budget and excess.get(name, 0) > 0:
                excess[name] -= 1
                budget -= 1
                self._users_on_workers[worker_node.id][name] -= 1
                self._current_user_count -= 1
            else:
                keep.append((worker_node, name))
        self._active_users = keep[::-1]
        return self._users_on_workers

    def _dispatcher(self):
        self._dispatch_in_progress = True
        if self._rebalance:
            self._rebalance = False
            yield self._users_on_workers
        if self._settled():
            yield self._users_on_workers
            self._dispatch_in_progress = False
            return
        while not self._settled():
            started = time.perf_counter()
            if any(d < 0 for d in self._diff().values()):
                self._remove_users_from_workers()
            if any(d > 0 for d in self._diff().values()):
                self._add_users_on_workers()
            yield self._users_on_workers
            if self._rebalance:
                self._rebalance = False
                yield self._users_on_workers
            if self._settled():
                break
            gevent.sleep(max(0.0, self._wait_between_dispatch - (time.perf_counter() - started)))
        self._dispatch_in_progress = False
