"""Which phase owns a moment: the one rule the scenario, the stats plugin and the readers share.

A request (or a second of a run) belongs to the most recently started phase still running at that
moment; outside every running phase (the ramp-down tail after a phase ended), to the most recently
started one; before any phase started, to the first. Equal starts: the later-listed phase wins.
`Timeline` keeps the actual start and end of each phase as a run goes and applies the same rule.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def owner(starts: Sequence[float | None], ends: Sequence[float | None], t: float) -> int:
    """Index of the phase that owns moment `t`, by the rule above.

    `starts[i]` None: phase i has not started (it owns nothing); `ends[i]` None: still running.
    Plain Python on purpose: the stats plugin calls it for every request.
    """
    best = last = None
    for i, s in enumerate(starts):
        if s is None or s > t:
            continue
        if last is None or s >= starts[last]:
            last = i
        e = ends[i]
        if (e is None or t < e) and (best is None or s >= starts[best]):
            best = i
    return best if best is not None else (last if last is not None else 0)


def owners(starts: Sequence[float | None], ends: Sequence[float | None], t) -> np.ndarray:
    """`owner` for each moment of an array."""
    t = np.atleast_1d(np.asarray(t, dtype=float))
    return np.fromiter((owner(starts, ends, x) for x in t), dtype=int, count=t.size)


class Timeline:
    """Actual phase times (seconds since `epoch0`) as a run goes, and the phase that owns a moment."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.epoch0: float | None = None
        self.times: dict[str, list[float | None]] = {n: [None, None] for n in order}

    def reset(self, epoch0: float) -> None:
        self.epoch0 = epoch0
        self.times = {n: [None, None] for n in self.order}

    def update(self, active: list[str], t_s: float) -> bool:
        """Start phases newly active, end phases no longer active; True when something changed."""
        changed = False
        for name, se in self.times.items():
            if name in active and se[0] is None:
                se[0], changed = t_s, True
            elif name not in active and se[0] is not None and se[1] is None:
                se[1], changed = t_s, True
        return changed

    def end_all(self, t_s: float) -> None:
        for se in self.times.values():
            if se[0] is not None and se[1] is None:
                se[1] = t_s

    def owner(self, t_s: float) -> str:
        names = list(self.times)
        return names[owner([se[0] for se in self.times.values()], [se[1] for se in self.times.values()], t_s)]

    def as_wire(self) -> dict:
        return {"epoch0": self.epoch0, "times": self.times}

    def load_wire(self, data: dict) -> None:
        self.epoch0 = data["epoch0"]
        self.times = {n: list(v) for n, v in data["times"].items()}
