"""The speed reference: a short fixed CPU benchmark of the machine a run measures on (issue 11).

CPU per request measured on one machine is not the night's CPU per request: the same benchmark
differed 2.8x between two machines of one kind. Each run therefore records how much fixed work
this machine's core does per CPU-second, so that a plan can express demand in reference units
(CPU-seconds x units per CPU-second = work units per request) and two machines' runs plan alike.

The work (`gala.contract.speed_work`, which the target's in-run sampler shares) is what an
interpreter-bound request handler does (parse a JSON body, update a few dicts, split a sum in whole
fen, encode a reply), deterministic, checked by a checksum. It is timed in CPU time of the measuring
thread (`time.thread_time`), not wall time: a busy machine's time slicing and a cgroup quota do not
count (a process held to half a core does the same work per CPU-second), while what makes a core
really slower does (a slower model or clock, a neighbour sharing its caches or its SMT sibling).
The median of many short repeats after a warm-up, with their spread, in about 0.2 s.

A measurement is a snapshot: each core of this kind of machine switches between two speeds about
1.8x apart for one to a few seconds at a time (its host's other tenants; it shows in no counter
here). A 0.2 s measurement lands in one or straddles both (then its spread says so); the built-in
target therefore also measures the same work through the run on its own core (link_cpu.csv's
`_speed` rows), which is what the plan normalises each interval by. `serve()` runs batch by batch
on request, for comparisons that must interleave two conditions on one core (tests, benchmarks).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from gala.contract.speed_work import BENCHMARK, UNITS, batch as _batch

REPEATS = 25                # many short repeats: their median rides over a brief slow spell


@dataclass(frozen=True)
class SpeedRef:
    """Work units per CPU-second of this machine's core, and how the measurement went."""

    benchmark: str
    units_per_cpu_s: float      # median over the repeats: the speed the core gave, noisy host and all
    min_units_per_cpu_s: float
    max_units_per_cpu_s: float  # the fastest repeat: the core's speed when nothing got in its way
    spread_rel: float           # (max - min) / median
    repeats: int
    units_per_repeat: int
    cpu_s: float                # CPU time of the timed repeats
    wall_s: float               # ... and their wall time
    cpu_share: float            # cpu_s / wall_s: below 1 when the measuring thread waited for a core
    checksum: int               # the same for every run of this benchmark: the work was done, all of it
    python: str
    cpu_model: str
    load_avg_1m: float | None

    def as_run_json(self) -> dict:
        """For run.json's `machine.speed_ref`."""
        return asdict(self)


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_batch(units: int = UNITS) -> tuple[float, float, int]:
    """One batch in this thread: (CPU seconds, wall seconds, checksum)."""
    w0, c0 = time.perf_counter(), time.thread_time()
    checksum = _batch(units)
    return time.thread_time() - c0, time.perf_counter() - w0, checksum


def measure(repeats: int = REPEATS, units: int = UNITS) -> SpeedRef:
    """Run the benchmark in this thread: a warm-up, then `repeats` timed batches of `units`."""
    if repeats < 1 or units < 1:
        raise ValueError("speed reference: repeats and units must be >= 1")
    gc.collect()
    gc.freeze()  # the host process's heap is not the benchmark's: collections scan only its own objects
    try:
        checksum = _batch(units)  # warm-up: allocators, caches, the json module's first calls
        cpu, wall = np.zeros(repeats), np.zeros(repeats)
        for k in range(repeats):
            cpu[k], wall[k], check = time_batch(units)
            if check != checksum:
                raise RuntimeError("speed reference: the benchmark's checksum changed between repeats")
    finally:
        gc.unfreeze()
    rates = units / cpu
    median = float(np.median(rates))
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return SpeedRef(
        benchmark=BENCHMARK, units_per_cpu_s=round(median, 1), min_units_per_cpu_s=round(float(rates.min()), 1),
        max_units_per_cpu_s=round(float(rates.max()), 1), spread_rel=round(float(np.ptp(rates)) / median, 4),
        repeats=repeats, units_per_repeat=units, cpu_s=round(float(cpu.sum()), 4), wall_s=round(float(wall.sum()), 4),
        cpu_share=round(float(cpu.sum() / wall.sum()), 3) if wall.sum() > 0 else 1.0, checksum=checksum,
        python=f"{platform.python_implementation()} {platform.python_version()}", cpu_model=_cpu_model(),
        load_avg_1m=load,
    )


def serve(lines=sys.stdin, out=sys.stdout) -> None:
    """Batch by batch on request: each line `UNITS` runs one batch and is answered with a line
    `cpu_s wall_s checksum`; an empty line or the end of input stops."""
    _batch(UNITS)  # the warm-up
    for line in lines:
        if not line.strip():
            break
        cpu, wall, checksum = time_batch(int(line))
        print(f"{cpu:.6f} {wall:.6f} {checksum}", file=out, flush=True)


class BatchChild:
    """A `serve()` child process, pinned to `cpus` if given: `run(units)` -> (cpu_s, wall_s). For
    comparisons that interleave two conditions batch by batch (a cgroup limit, a busy neighbour)."""

    def __init__(self, cpus: set[int] | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "loadtests.orchestrator.speed", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if cpus is not None:
            os.sched_setaffinity(self.proc.pid, cpus)
        self.checksums: set[int] = set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self, units: int) -> tuple[float, float]:
        self.proc.stdin.write(f"{units}\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().split()
        if len(reply) != 3:
            raise RuntimeError(f"speed reference child {self.pid} answered {reply!r}")
        self.checksums.add(int(reply[2]))
        return float(reply[0]), float(reply[1])

    def close(self) -> None:
        try:
            self.proc.communicate("\n", timeout=10)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self) -> "BatchChild":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":  # a child process's measurement as JSON, or `--serve` for batch-by-batch
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        print(json.dumps(measure().as_run_json()))
