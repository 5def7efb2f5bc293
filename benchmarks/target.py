"""Benchmark: requests/s per core of the built-in target, per link (grab, share, chat), with the
target's own per-link CPU attribution on and off side by side (what the timing itself costs).

Not a test. Starts two `gala target serve` processes (one with `--no-link-cpu`), each pinned to the
same core (taskset), and drives one at a time from this process pinned to the other core (an aiohttp
client with many keep-alive connections), alternating on/off in rounds so drift hits both alike. Per
link and mode: req/s, the target's CPU fraction, CPU-ms per request, req/s per core (= requests /
target CPU seconds); with attribution on, the share of the target's CPU charged to the link's handlers
and to its requests' whole path.
Prints Markdown tables.

    .venv/bin/python benchmarks/target.py [--seconds 8] [--rounds 2] [--connections 64] [--users 200]

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


def start_target(core: int | None, extra: list[str]) -> tuple[subprocess.Popen, str, str]:
    """The built-in target, started the one way gala does (pinned to `core` unless None): (process, URL, admin token)."""
    folder = Path(tempfile.mkdtemp(prefix="gala-bench-"))
    (folder / "bench.yaml").write_text(BENCH_CONFIG)
    pin = ["taskset", "-c", str(core)] if core is not None and shutil.which("taskset") else []
    t = launch.start(folder / "target.log", config=folder / "bench.yaml", extra=extra, prefix=pin, admin_token="bench-admin")
    return t.proc, t.url, t.admin_token


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


def measure(url: str, proc: subprocess.Popen, link: str, seconds: float, connections: int, world, cards) -> dict:
    """One measured round on one link: requests, wall and CPU seconds of the target (and its children)."""
    procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    cpu = lambda: sum(sum(p.cpu_times()[:2]) for p in procs)  # noqa: E731
    cpu0, t0 = cpu(), time.monotonic()
    ok, bad = asyncio.run(drive(url, link, seconds, connections, world, cards))
    return {"ok": ok, "bad": bad, "wall_s": time.monotonic() - t0, "cpu_s": cpu() - cpu0}


def _links_cpu(url: str) -> dict:
    return TargetClient(url, "bench-admin").call("GET", "/admin/cpu")[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per link and mode (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating on/off rounds the seconds are split into (default: %(default)s)")
    ap.add_argument("--connections", type=int, default=64, help="client keep-alive connections (default: %(default)s)")
    ap.add_argument("--users", type=int, default=200, help="simulated users (default: %(default)s)")
    ap.add_argument("--target-core", type=int, default=0)
    ap.add_argument("--client-core", type=int, default=1)
    ap.add_argument("--inject", action="append", default=[], help="passed to the target, e.g. grab:latency=5")
    args = ap.parse_args()

    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > args.client_core:
        os.sched_setaffinity(0, {args.client_core})
    inject = [x for spec in args.inject for x in ("--inject", spec)]
    modes = {"on": start_target(args.target_core, inject), "off": start_target(args.target_core, [*inject, "--no-link-cpu"])}
    totals = {(m, link): {"ok": 0, "bad": 0, "wall_s": 0.0, "cpu_s": 0.0} for m in modes for link in ("grab", "share", "chat")}
    attributed = {}
    try:
        print(f"targets on core {args.target_core} (attribution on: pid {modes['on'][0].pid}, off: pid {modes['off'][0].pid}), "
              f"client on core {args.client_core}; setting up {args.users} users on each…", file=sys.stderr)
        worlds = {m: setup_world(url, args.users) for m, (_, url, _) in modes.items()}
        for link in ("grab", "share", "chat"):
            for m, (proc, url, _) in modes.items():
                asyncio.run(drive(url, link, 1.0, args.connections, *worlds[m]))  # warm-up
            before = _links_cpu(modes["on"][1])
            for r in range(args.rounds):
                for m in (("on", "off") if r % 2 == 0 else ("off", "on")):
                    proc, url, _ = modes[m]
                    got = measure(url, proc, link, args.seconds / args.rounds, args.connections, *worlds[m])
                    for k, v in got.items():
                        totals[(m, link)][k] += v
            after = _links_cpu(modes["on"][1])
            handler_s = after["links"][link]["handler_cpu_s"] - before["links"].get(link, {}).get("handler_cpu_s", 0.0)
            path_s = after["links"][link].get("path_cpu_s", 0.0) - before["links"].get(link, {}).get("path_cpu_s", 0.0)
            attributed[link] = (handler_s / max(totals[("on", link)]["cpu_s"], 1e-9),
                                path_s / max(totals[("on", link)]["cpu_s"], 1e-9))
            on, off = (totals[(m, link)] for m in ("on", "off"))
            print(f"  {link}: on {(on['ok'] + on['bad']) / on['cpu_s']:,.0f}, off {(off['ok'] + off['bad']) / off['cpu_s']:,.0f} "
                  f"req per target CPU second", file=sys.stderr)
        audits = {m: TargetClient(url, "bench-admin").call("GET", "/admin/audit")[1] for m, (_, url, _) in modes.items()}
    finally:
        for proc, _, _ in modes.values():
            proc.terminate()
            proc.wait(timeout=15)

    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith("Model name")), platform.processor())
    try:
        import uvloop  # noqa: F401
        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    passed = all(a["passed"] for a in audits.values())
    print(f"\nMachine: {os.cpu_count()} cores, {model}; load average {os.getloadavg()[0]:.2f}; Python "
          f"{platform.python_version()}, event loop {loop}; {args.connections} connections, {args.seconds:g} s per link "
          f"and mode in {args.rounds} alternating rounds; audits {'passed' if passed else 'FAILED'}\n")
    print("| link | attribution | requests ok | not ok | req/s | target CPU | CPU ms/req | req/s per core |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    per_core = {}
    for (m, link), t in totals.items():
        n = t["ok"] + t["bad"]
        per_core[(m, link)] = n / max(t["cpu_s"], 1e-9)
    for link in ("grab", "share", "chat"):
        for m in ("on", "off"):
            t = totals[(m, link)]
            n = t["ok"] + t["bad"]
            print(f"| {link} | {m} | {t['ok']:,} | {t['bad']:,} | {n / t['wall_s']:,.0f} | {t['cpu_s'] / t['wall_s']:.0%} | "
                  f"{1000 * t['cpu_s'] / max(n, 1):.3f} | {per_core[(m, link)]:,.0f} |")
    print("\n| link | req/s per core, on / off | cost of the timing | target CPU charged to the link: handlers | "
          "whole path |")
    print("|---|---:|---:|---:|---:|")
    for link in ("grab", "share", "chat"):
        ratio = per_core[("on", link)] / per_core[("off", link)]
        print(f"| {link} | {ratio:.3f} | {1 - ratio:+.1%} | {attributed[link][0]:.0%} | {attributed[link][1]:.0%} |")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
