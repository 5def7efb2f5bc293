"""Benchmark (not a test): how much a busy neighbour changes a "core", as the speed reference sees it.

The speed reference's work (loadtests/orchestrator/speed.py) runs batch by batch in a child pinned
to one core, under three conditions taken in turn, round after round (so this machine's spells of
speed, per core and seconds long, fall on every condition alike):

- `idle`: the other core idle;
- `other core busy`: `python3 -c 'while True: pass'` pinned to the other core (taskset);
- `same core busy`: the same busy loop pinned to the benchmark's own core (time slicing).

A busy loop is started once per condition and paused (SIGSTOP) while it is not its turn. Per
condition: median work units per CPU-second and per wall second, the CPU share the benchmark got,
and the median over rounds of its ratio to `idle` in the same round. Per CPU-second, time slicing
should not show (same core ~1.0) and a neighbour sharing caches or an SMT sibling should. Run it
alone: `flock /work/load.lock python benchmarks/speed_ref.py [--rounds 30] [--units 2000]`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtests.orchestrator.speed import BENCHMARK, BatchChild, measure  # noqa: E402

CONDITIONS = ["idle", "other core busy", "same core busy"]
SETTLE_S = 0.02  # a resumed neighbour is running again well within this


def _busy_loop(cpu: int) -> subprocess.Popen:
    proc = subprocess.Popen(["taskset", "-c", str(cpu), "python3", "-c", "while True: pass"])
    proc.send_signal(signal.SIGSTOP)
    return proc


def _machine() -> str:
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return f"{model}, {os.cpu_count()} CPUs"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run(rounds: int, units: int) -> pd.DataFrame:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("speed_ref: needs two CPUs (one for the benchmark, one for its neighbour)")
    mine, other = cpus[0], cpus[1]
    neighbours = {"other core busy": _busy_loop(other), "same core busy": _busy_loop(mine)}
    rows = []
    try:
        with BatchChild({mine}) as child:
            for r in range(rounds):
                order = CONDITIONS[r % 3:] + CONDITIONS[:r % 3]  # no condition always first
                for cond in order:
                    for name, proc in neighbours.items():
                        proc.send_signal(signal.SIGCONT if name == cond else signal.SIGSTOP)
                    time.sleep(SETTLE_S)
                    cpu_s, wall_s = child.run(units)
                    rows.append({"round": r, "condition": cond, "cpu_s": cpu_s, "wall_s": wall_s})
                for proc in neighbours.values():
                    proc.send_signal(signal.SIGSTOP)
    finally:
        for proc in neighbours.values():
            proc.kill()  # a stopped process dies of SIGKILL too
            proc.wait(timeout=5)
    return pd.DataFrame(rows).assign(per_cpu=lambda d: units / d["cpu_s"], per_wall=lambda d: units / d["wall_s"])


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    idle = frame[frame["condition"] == "idle"].set_index("round")["per_cpu"]
    out = []
    for cond in CONDITIONS:
        d = frame[frame["condition"] == cond].set_index("round")
        out.append({
            "condition": cond,
            "units per CPU-s": round(d["per_cpu"].median()),
            "ratio to idle (per CPU-s)": round(float(np.median(d["per_cpu"] / idle)), 3),
            "units per wall s": round(d["per_wall"].median()),
            "CPU share": round(d["cpu_s"].sum() / d["wall_s"].sum(), 2),
        })
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--units", type=int, default=2000, help="work units per batch (~30 ms of CPU here)")
    args = ap.parse_args()
    before = _uptime()
    snapshot = measure()
    frame = run(args.rounds, args.units)
    print(f"speed reference {BENCHMARK}: {args.rounds} rounds x 3 conditions x {args.units} units, on {_machine()}")
    print(f"snapshot in this process first: {snapshot.units_per_cpu_s:.0f} units/CPU-s median "
          f"({snapshot.min_units_per_cpu_s:.0f}-{snapshot.max_units_per_cpu_s:.0f})")
    print(summarise(frame).to_string(index=False))
    print(f"load before: {before}\nload after:  {_uptime()}")


if __name__ == "__main__":
    main()
