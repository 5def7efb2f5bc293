"""CPU sampling of a run's processes: a psutil thread in the `gala` process, written out as `cpu.csv`.

The thread reads each watched process (and its descendants) about once a second: cumulative
CPU-seconds, resident memory. At the end the raw samples are interpolated onto whole seconds of
the run's clock, so a `cpu.csv` row `t_s = k` is the CPU used over [k, k+1): the same second as
the `timeseries.csv` row `t_s = k`.

Interpolation alone blurs: a sampler ticking 0.42 s into each second spreads one second's CPU over
its neighbours (weights ~0.24/0.51/0.24) while request counts stay exact per second, which biased
demand fits by up to 50% (issue 10). So once the run's clock is known (`align(t0)`), the ticks are
moved onto its whole seconds and interpolation only absorbs jitter. `idle_cores` measures the
target's CPU in a quiet window before the load, so the demand fit subtracts a measured idle instead
of fitting a free intercept that soaks up load.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psutil

from gala.contract.results import CPU_COLUMNS

SATURATED_CPU_PERCENT = 90.0  # a generator process above this is not measuring, it is queueing
SATURATED_SHARE = 0.10        # ... for more than this share of the run's seconds
ALIGN_LAG_S = 0.002           # an aligned tick reads just after the second's edge (time.time() jitter)
IDLE_WINDOW_S = 2.0           # the quiet window before the load in which the target's idle CPU is measured


@dataclass(frozen=True)
class Sample:
    ts: float
    role: str
    pid: int
    name: str
    cpu_s: float
    rss_mb: float
    created: float


class CpuSampler(threading.Thread):
    """Samples the processes of each role (and their children) every `interval_s` until stopped."""

    def __init__(self, interval_s: float = 1.0):
        super().__init__(name="gala-cpu-sampler", daemon=True)
        self.interval_s = interval_s
        self._roots: dict[int, str] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._t0: float | None = None  # the run's clock, once known: ticks fall on its whole seconds
        self.aligned_at: float | None = None  # epoch of the first tick on the run's clock
        self.samples: list[Sample] = []

    def align(self, t0: float) -> None:
        """Tick on t0 + k * interval from now on (t0: the run's clock, phases.json's started_at_epoch)."""
        self._t0 = t0

    def watch(self, pid: int, role: str) -> None:
        """Sample `pid` and every process below it under `role` ("target" or "generator")."""
        with self._lock:
            self._roots[pid] = role

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)

    def run(self) -> None:
        next_at = time.time()
        while not self._halt.is_set():
            self.sample_once()
            next_at += self.interval_s
            # a late tick is not made up for: interpolation in to_frame() absorbs jitter
            next_at = max(next_at, time.time())
            if self._t0 is not None:
                # onto the run's next whole tick, a hair after it so the reading falls inside the new second
                # (less a millisecond: epoch floats carry ~1e-7 s of error, and a tick exactly due must not
                # be pushed a whole interval on)
                k = np.ceil((next_at - self._t0 - ALIGN_LAG_S) / self.interval_s - 1e-3)
                tick = self._t0 + k * self.interval_s + ALIGN_LAG_S
                next_at = float(tick)
                if self.aligned_at is None:
                    self.aligned_at = tick
            self._halt.wait(next_at - time.time())
        self.sample_once()

    def _tree(self) -> list[tuple[str, psutil.Process]]:
        with self._lock:
            roots = dict(self._roots)
        found: list[tuple[str, psutil.Process]] = []
        for pid, role in roots.items():
            proc = self._process(pid)
            if proc is None:
                continue
            found.append((role, proc))
            try:
                found.extend((role, self._process(c.pid) or c) for c in proc.children(recursive=True))
            except psutil.Error:
                pass
        return found

    def _process(self, pid: int) -> psutil.Process | None:
        # keep one Process object per pid so psutil can tell a recycled pid from the same process
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = self._procs[pid] = psutil.Process(pid)
            except psutil.Error:
                return None
        return proc

    def sample_once(self) -> None:
        for role, proc in self._tree():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    sample = Sample(
                        ts=time.time(), role=role, pid=proc.pid, name=proc.name(),
                        cpu_s=times.user + times.system, rss_mb=proc.memory_info().rss / 2**20,
                        created=proc.create_time(),
                    )
            except psutil.Error:
                continue  # the process ended between listing and reading: nothing to record
            self.samples.append(sample)

    def pids(self, role: str) -> list[int]:
        return sorted({s.pid for s in self.samples if s.role == role})

    def to_frame(self, t0: float, t_end: float) -> pd.DataFrame:
        return cpu_frame(self.samples, t0, t_end)


def cpu_frame(samples: list[Sample], t0: float, t_end: float) -> pd.DataFrame:
    """Per-second rows of `cpu.csv` for the run [t0, t_end] (epoch seconds), from raw samples."""
    if not samples:
        return pd.DataFrame(columns=CPU_COLUMNS)
    raw = pd.DataFrame([s.__dict__ for s in samples]).sort_values("ts")
    frames = []
    for (role, pid), g in raw.groupby(["role", "pid"], sort=True):
        ts, cum, rss = g["ts"].to_numpy(), g["cpu_s"].to_numpy(), g["rss_mb"].to_numpy()
        # whole seconds k whose interval [t0+k, t0+k+1] lies within what was sampled of this process
        first = max(0, int(np.ceil(ts[0] - t0 - 1e-9)))
        last = int(np.floor(min(ts[-1], t_end) - t0 + 1e-9)) - 1
        if last < first:
            continue
        k = np.arange(first, last + 1)
        edges = t0 + np.arange(first, last + 2)
        cum_at = np.interp(edges, ts, cum)
        # CPU since the run began: a process born before t0 counts from t0, a later one from birth
        base = np.interp(t0, ts, cum) if g["created"].iloc[0] < t0 else 0.0
        frames.append(pd.DataFrame({
            "t_s": k,
            "ts": np.round(t0 + k, 3),
            "role": role,
            "pid": pid,
            "name": g["name"].iloc[-1],
            "cpu_percent": np.round(np.diff(cum_at) * 100.0, 2),
            "cpu_s": np.round(cum_at[1:] - base, 3),
            "rss_mb": np.round(np.interp(edges[1:], ts, rss), 1),
        }))
    if not frames:
        return pd.DataFrame(columns=CPU_COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values(["t_s", "role", "pid"])[CPU_COLUMNS]


def idle_cores(pids: list[int], window_s: float = IDLE_WINDOW_S) -> dict[str, float]:
    """Cores busy in each process name (pids and their descendants, summed per name) over a quiet window
    of `window_s` seconds: the target's idle CPU before any load. Processes that vanish are skipped."""
    def tree() -> dict[int, psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in pids:
            try:
                root = psutil.Process(pid)
                found[pid] = root
                found.update({c.pid: c for c in root.children(recursive=True)})
            except psutil.Error:
                continue
        return found

    def read(procs: dict[int, psutil.Process]) -> dict[int, tuple[str, float]]:
        out = {}
        for pid, p in procs.items():
            try:
                t = p.cpu_times()
                out[pid] = (p.name(), t.user + t.system)
            except psutil.Error:
                continue
        return out

    procs = tree()
    t_a, before = time.monotonic(), read(procs)
    time.sleep(window_s)
    after, t_b = read(procs), time.monotonic()
    cores: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        if pid in before:
            cores[name] = cores.get(name, 0.0) + max(cpu - before[pid][1], 0.0) / max(t_b - t_a, 1e-9)
    return {k: round(v, 5) for k, v in cores.items()}


@dataclass(frozen=True)
class GeneratorLoad:
    peak_cpu_percent: float | None
    saturated: bool
    saturated_pids: list[int]


def generator_load(frame: pd.DataFrame, run_seconds: float) -> GeneratorLoad:
    """Peak generator CPU, and whether any generator process was saturated (see results/README.md)."""
    gen = frame[frame["role"] == "generator"]
    if gen.empty:
        return GeneratorLoad(None, False, [])
    hot = gen[gen["cpu_percent"] > SATURATED_CPU_PERCENT].groupby("pid").size()
    limit = SATURATED_SHARE * max(run_seconds, 1.0)
    pids = sorted(int(p) for p in hot[hot > limit].index)
    return GeneratorLoad(float(gen["cpu_percent"].max()), bool(pids), pids)


def latest_percent(samples: list[Sample], role: str) -> float | None:
    """The summed CPU% of a role's processes over the last two samples of each (for the live line)."""
    by_pid: dict[int, list[Sample]] = {}
    for s in reversed(samples[-200:]):
        lst = by_pid.setdefault(s.pid, [])
        if s.role == role and len(lst) < 2:
            lst.append(s)
    rates = [(a.cpu_s - b.cpu_s) / (a.ts - b.ts) * 100 for a, b in
             (v for v in by_pid.values() if len(v) == 2) if a.ts > b.ts]
    return sum(rates) if rates else None
