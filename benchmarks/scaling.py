"""Benchmark: the built-in target scaled out, measured side by side in one run, and a USL fit.

Not a test. Runs, one after another in alternating rounds, the single in-memory process and N = 1, 2
(and up to --max-processes) target processes sharing Redis, each driven by the same aiohttp client
(this process) through the same link mix (grab, card gifts, chat: benchmarks/target.py's drive, one
third of the time each). Per configuration: req/s, req/s per process, the target's CPU (supervisor
and workers), req/s per target core, Redis's CPU per request and the client's CPU. Then the
Universal Scalability Law (capacity_model/usl.py) fitted to throughput over N for the Redis runs.

    .venv/bin/python benchmarks/scaling.py [--seconds 9] [--rounds 2] [--max-processes 2] [--store redis://127.0.0.1:6379/0]

Nothing is pinned: with N workers, Redis and the client all on this machine's cores, what the
figures can and cannot show depends on the core count (printed with the results).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from capacity_model.usl import fit_usl  # noqa: E402
from target import drive, setup_world, start_target  # noqa: E402

LINKS = ("grab", "share", "chat")


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += sum(psutil.Process(pid).cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def _redis_pid(url: str) -> int | None:
    try:
        return int(redis.Redis.from_url(url).info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=9.0, help="measured seconds per configuration and round (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: %(default)s)")
    ap.add_argument("--max-processes", type=int, default=2, help="largest N over Redis (default: %(default)s)")
    ap.add_argument("--connections", type=int, default=64, help="client keep-alive connections (default: %(default)s)")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--store", default="redis://127.0.0.1:6379/0", help="the Redis to share state in (default: %(default)s)")
    args = ap.parse_args()

    configs = {"memory": []} | {f"redis N={n}": ["--processes", str(n), "--store", args.store]
                                for n in range(1, args.max_processes + 1)}
    started = {name: start_target(None, extra) for name, extra in configs.items()}
    redis_pid = _redis_pid(args.store)
    rows = {name: {"requests": 0, "wall_s": 0.0, "target_cpu_s": 0.0, "redis_cpu_s": 0.0, "client_cpu_s": 0.0} for name in configs}
    try:
        worlds = {name: setup_world(url, args.users) for name, (_, url, _) in started.items()}
        pids = {name: [p.pid, *(c.pid for c in psutil.Process(p.pid).children(recursive=True))] for name, (p, _, _) in started.items()}
        for name, (_, url, _) in started.items():
            for link in LINKS:
                asyncio.run(drive(url, link, 0.5, args.connections, *worlds[name]))  # warm-up
        order = list(configs)
        for r in range(args.rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                url = started[name][1]
                t_cpu, r_cpu, c_cpu, t0 = _cpu(pids[name]), _cpu([redis_pid] if redis_pid else []), time.process_time(), time.monotonic()
                n = 0
                for link in LINKS:
                    ok, bad = asyncio.run(drive(url, link, args.seconds / len(LINKS), args.connections, *worlds[name]))
                    n += ok + bad
                row = rows[name]
                row["requests"] += n
                row["wall_s"] += time.monotonic() - t0
                row["target_cpu_s"] += _cpu(pids[name]) - t_cpu
                row["redis_cpu_s"] += _cpu([redis_pid] if redis_pid else []) - r_cpu
                row["client_cpu_s"] += time.process_time() - c_cpu
                print(f"  round {r + 1} {name}: {n / (time.monotonic() - t0):,.0f} req/s", file=sys.stderr)
        from loadtests.target.client import TargetClient

        audits = {name: TargetClient(url, "bench-admin").call("GET", "/admin/audit")[1]["passed"] for name, (_, url, _) in started.items()}
    finally:
        for proc, _, _ in started.values():
            proc.terminate()
            proc.wait(timeout=20)

    model = next((x.split(":", 1)[1].strip() for x in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if x.startswith("Model name")), platform.processor())
    print(f"\nMachine: {os.cpu_count()} cores, {model}; load average {os.getloadavg()[0]:.2f}; {args.connections} connections, "
          f"{args.rounds} alternating rounds of {args.seconds:g} s per configuration (grab, gifts, chat a third each); "
          f"audits {'all passed' if all(audits.values()) else audits}\n")
    print("| target | processes | req/s | req/s per process | target CPU (cores) | req/s per target core | Redis CPU ms/req | client CPU (cores) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    xs = {}
    for name, row in rows.items():
        procs = 1 if name == "memory" else int(name.split("=")[1])
        x = row["requests"] / row["wall_s"]
        xs[name] = (procs, x)
        redis_ms = f"{1000 * row['redis_cpu_s'] / row['requests']:.3f}" if name != "memory" else "–"
        print(f"| {name} | {procs} | {x:,.0f} | {x / procs:,.0f} | {row['target_cpu_s'] / row['wall_s']:.2f} | "
              f"{row['requests'] / max(row['target_cpu_s'], 1e-9):,.0f} | {redis_ms} | {row['client_cpu_s'] / row['wall_s']:.2f} |")
    n, x = zip(*[v for k, v in xs.items() if k != "memory"])
    if len(set(n)) >= 2:
        fit = fit_usl(n, x, axis="nodes")  # processes are the nodes being scaled
        print(f"\nUSL over the Redis runs (N = {', '.join(map(str, n))}): lambda {fit.lambda_rps:,.0f} req/s, sigma {fit.sigma:.3f}, "
              f"kappa {fit.kappa:.4f}, R² {fit.r2:.3f}; X(2)/X(1) = {x[1] / x[0]:.2f}; "
              f"memory / Redis N=1 = {xs['memory'][1] / x[0]:.2f}")
    return 0 if all(audits.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
