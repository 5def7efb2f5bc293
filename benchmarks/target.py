"""Benchmark: requests/s per core of the built-in target, per link (grab, share, chat).

Not a test. Starts `gala target serve` pinned to one core (taskset), drives it from this process
pinned to the other core (an aiohttp client with many keep-alive connections), and reports per link
the achieved req/s, the target's CPU fraction, CPU-ms per request, and req/s per core
(= req/s / target CPU fraction). Prints a Markdown table.

    .venv/bin/python benchmarks/target.py [--seconds 8] [--connections 64] [--users 200]

The client is Python too, so on 2 cores it may saturate before the target does: the per-core figure
normalises by the target's measured CPU so it stays meaningful either way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from loadtests.target import launch  # noqa: E402
from loadtests.target.client import TargetClient  # noqa: E402

BENCH_CONFIG = """\
seed: 1
drops: {first_at_s: 0, duration_s: 3600, interval_s: 3600, count: 1, pool_fen: 1000000000}
card_caps: {}
"""


def start_target(core: int, inject: list[str]) -> launch.RunningTarget:
    """The built-in target, started the one way gala does, pinned to `core`."""
    folder = Path(tempfile.mkdtemp(prefix="gala-bench-"))
    (folder / "bench.yaml").write_text(BENCH_CONFIG)
    pin = ["taskset", "-c", str(core)] if shutil.which("taskset") else []
    return launch.start(folder / "target.log", config=folder / "bench.yaml", inject=inject, prefix=pin)


def setup_world(url: str, users: int) -> tuple[list[tuple[int, str]], dict[int, list[int]]]:
    """Users in a friendship ring, each holding a few cards (for the share link)."""
    base = TargetClient(url)
    world = [base.register(f"bench{i}") for i in range(users)]
    for i, (_, c) in enumerate(world):
        c.call("POST", "/friends", {"friend_id": world[(i + 1) % users][0]})
    cards: dict[int, list[int]] = {uid: [] for uid, _ in world}
    for uid, c in world:
        while len(cards[uid]) < 4:
            reply = c.call("POST", "/grab", {})[1]
            if reply["result"] == "card":
                cards[uid].append(reply["card_id"])
    return [(uid, c.token) for uid, c in world], cards


async def drive(url: str, link: str, seconds: float, connections: int, world, cards) -> tuple[int, int]:
    """Hammer one link for `seconds`; returns (requests answered 2xx, other answers)."""
    ok = bad = 0
    ring = {uid: world[(i + 1) % len(world)][0] for i, (uid, _) in enumerate(world)}
    deadline = time.monotonic() + seconds
    rng = random.Random(0)

    async def worker(session: aiohttp.ClientSession):
        nonlocal ok, bad
        while time.monotonic() < deadline:
            uid, token = world[rng.randrange(len(world))]
            headers = {"Authorization": f"Bearer {token}"}
            if link == "grab":
                req = session.post(url + "/grab", json={}, headers=headers)
            elif link == "share":
                if not cards[uid]:
                    await asyncio.sleep(0)  # this user's cards are all in flight
                    continue
                # The card is in nobody's list while in flight, so no other worker can gift it meanwhile.
                card, friend = cards[uid].pop(), ring[uid]
                req = session.post(url + "/share/card", json={"card_id": card, "to": friend}, headers=headers)
            elif rng.random() < 0.75:
                req = session.post(url + "/chat/send", json={"to": ring[uid], "text": "新年快乐"}, headers=headers)
            else:
                req = session.get(url + "/chat/inbox?since=0&limit=20", headers=headers)
            async with req as r:
                await r.read()
                if r.status < 300:
                    ok += 1
                else:
                    bad += 1
            if link == "share":
                cards[friend if r.status < 300 else uid].append(card)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return ok, bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per link (default: %(default)s)")
    ap.add_argument("--connections", type=int, default=64, help="client keep-alive connections (default: %(default)s)")
    ap.add_argument("--users", type=int, default=200, help="simulated users (default: %(default)s)")
    ap.add_argument("--target-core", type=int, default=0)
    ap.add_argument("--client-core", type=int, default=1)
    ap.add_argument("--inject", action="append", default=[], help="passed to the target, e.g. grab:latency=5")
    args = ap.parse_args()

    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > args.client_core:
        os.sched_setaffinity(0, {args.client_core})
    running = start_target(args.target_core, args.inject)
    proc, url = running.proc, running.url
    try:
        target = psutil.Process(proc.pid)
        print(f"target pid {proc.pid} on core {args.target_core}, client on core {args.client_core}; setting up "
              f"{args.users} users…", file=sys.stderr)
        world, cards = setup_world(url, args.users)
        rows = []
        for link in ("grab", "share", "chat"):
            asyncio.run(drive(url, link, 1.0, args.connections, world, cards))  # warm-up
            cpu0, t0 = sum(target.cpu_times()[:2]), time.monotonic()
            ok, bad = asyncio.run(drive(url, link, args.seconds, args.connections, world, cards))
            cpu_s, wall_s = sum(target.cpu_times()[:2]) - cpu0, time.monotonic() - t0
            rps, cpu_frac = (ok + bad) / wall_s, cpu_s / wall_s
            rows.append((link, ok, bad, rps, cpu_frac, 1000 * cpu_s / max(ok + bad, 1), rps / max(cpu_frac, 1e-9)))
            print(f"  {link}: {rps:,.0f} req/s at {cpu_frac:.0%} target CPU", file=sys.stderr)
        audit = TargetClient(url, "bench-admin").call("GET", "/admin/audit")[1]
    finally:
        running.stop(grace_s=15)

    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith("Model name")), platform.processor())
    try:
        import uvloop  # noqa: F401
        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    print(f"\nMachine: {os.cpu_count()} cores, {model}; Python {platform.python_version()}, event loop {loop}; "
          f"{args.connections} connections, {args.seconds:g} s per link; audit {'passed' if audit['passed'] else 'FAILED'}\n")
    print("| link | requests ok | not ok | req/s | target CPU | CPU ms/req | req/s per core |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for link, ok, bad, rps, frac, ms, per_core in rows:
        print(f"| {link} | {ok:,} | {bad:,} | {rps:,.0f} | {frac:.0%} | {ms:.3f} | {per_core:,.0f} |")
    return 0 if audit["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
