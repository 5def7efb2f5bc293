"""The core's speed through a run, measured by the target on its own core (link_cpu.csv's `_speed` rows).

A core of this machine kind switches between speeds ~1.8x apart for seconds at a time, and the CPU a
request costs follows it: within one 40 s phase a link's handler CPU per request moved 0.070 -> 0.112
ms while the speed reference at the run's two ends saw neither. So the target runs the speed
reference's own batch (`gala.contract.speed_work`) once a second, in slices small enough not to hold
up requests (50 units, 0.4-2.5 ms), and counts the units done and the thread CPU they took. Over any
interval, units / CPU is the speed the target's requests ran at; the plan reads each interval's
CPU at one speed with it (CPU x its speed / the runs' speed). Its CPU is reported apart, charged to no link.
"""

from __future__ import annotations

import asyncio
import time

from gala.contract.speed_work import BENCHMARK, UNITS, batch_in_slices

PER_SLICE = 50         # units per slice: 8 slices make the reference's batch of 400
SLICE_EVERY_S = 0.125  # a whole batch a second: ~1-2% of a core (in-run speeds of 20,000-50,000 units)


class SpeedTrack:
    """Cumulative work units and thread CPU seconds of the in-run speed samples, for this process."""

    def __init__(self):
        self.units = 0
        self.cpu_s = 0.0
        self.checksum: int | None = None  # the last whole batch's: equal to the reference's
        self._slices = batch_in_slices(UNITS, PER_SLICE)

    def step(self) -> None:
        """One slice, timed in this thread's CPU (a batch's state is built inside its first slice)."""
        t0 = time.thread_time()
        try:
            done = next(self._slices)
        except StopIteration as end:
            self.checksum = end.value
            self._slices = batch_in_slices(UNITS, PER_SLICE)
            done = next(self._slices)
        self.cpu_s += time.thread_time() - t0
        self.units += done

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SLICE_EVERY_S)
            self.step()

    def report(self) -> dict:
        return {"benchmark": BENCHMARK, "units": self.units, "cpu_s": round(self.cpu_s, 6)}
