"""Soak: a million mixed requests against two target processes sharing Redis, races built in, then the audit.

Not a test (it runs for many minutes; run it alone, under the load lock). Starts
`gala target serve --processes 2 --store URL`, registers users in a friendship web and drives
grabs, card gifts, envelope splits, chat (send and inbox) and friend adds on many keep-alive
connections while a director opens a drop every few seconds (alternately rich and small, so pools
run empty under load) and stages races: the last envelope (a one-fen drop, many taps at once), the
same card gifted to two friends at once, the same envelope split twice at once. Then the five-card
draw and the audit, and every acknowledged holding checked against each user's /me.

    .venv/bin/python benchmarks/soak.py [--requests 1000000] [--store redis://127.0.0.1:6379/0] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from loadtests.target import launch  # noqa: E402
from loadtests.target.client import TargetClient  # noqa: E402

CONFIG = "seed: 11\ndrops: {count: 0}\ncard_caps: {敬业: 400}\nenvelope_odds: 0.3\n"
MIX = (("grab", 0.40), ("gift", 0.15), ("split", 0.10), ("send", 0.22), ("inbox", 0.08), ("friend", 0.05))
RACE_EVERY_S = 3.0
RACERS = 12
PROGRESS_EVERY_S = 15.0


class Soak:
    def __init__(self, url: str, admin_token: str, users: list[tuple[int, str]], friends: dict[int, list[int]], seed: int):
        self.url, self.admin_token, self.users, self.friends = url, admin_token, users, friends
        self.token = dict(users)
        self.rng = random.Random(seed)
        self.requests = collections.Counter()  # (kind, status)
        self.envelopes: dict[int, dict[int, int]] = collections.defaultdict(dict)  # acknowledged: user -> {id: amount}
        self.cards: dict[int, set[int]] = collections.defaultdict(set)
        self.won_per_drop: collections.Counter = collections.Counter()
        self.races = collections.Counter()  # (race, "one winner" | "other")
        self.race_details: list[str] = []
        self.total = 0

    async def call(self, session, kind: str, method: str, path: str, token: str | None, body: dict | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with session.request(method, self.url + path, json=body, headers=headers) as r:
                status, reply = r.status, await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            status, reply = -1, None
        self.requests[(kind, status)] += 1
        self.total += 1
        return status, reply

    def _grabbed(self, uid: int, reply: dict) -> None:
        if reply["result"] == "envelope":
            self.envelopes[uid][reply["envelope_id"]] = reply["amount_fen"]
            self.won_per_drop[reply["drop_id"]] += 1
        elif reply["result"] == "card":
            self.cards[uid].add(reply["card_id"])

    async def one(self, session) -> None:
        uid, token = self.users[self.rng.randrange(len(self.users))]
        kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        friend = self.rng.choice(self.friends[uid])
        if kind == "gift" and self.cards[uid]:
            card = self.cards[uid].pop()  # off the books while in flight: only staged races reuse an item
            status, _ = await self.call(session, kind, "POST", "/share/card", token, {"card_id": card, "to": friend})
            if status == 200:
                self.cards[friend].add(card)
            elif status not in (-1, 503, 409):
                self.cards[uid].add(card)
        elif kind == "split" and self.envelopes[uid]:
            env, amount = self.envelopes[uid].popitem()
            to = self.rng.sample(self.friends[uid], min(len(self.friends[uid]), amount, self.rng.randint(1, 3)))
            status, reply = await self.call(session, kind, "POST", "/share/split", token, {"envelope_id": env, "to": to})
            if status == 200:
                for child in reply["envelopes"]:
                    self.envelopes[child["owner"]][child["envelope_id"]] = child["amount_fen"]
        elif kind == "send":
            await self.call(session, kind, "POST", "/chat/send", token, {"to": friend, "text": "新年快乐，恭喜发财"})
        elif kind == "inbox":
            await self.call(session, kind, "GET", "/chat/inbox?limit=20", token)
        elif kind == "friend":
            await self.call(session, kind, "POST", "/friends", token, {"friend_id": self.rng.choice(self.users)[0]})
        else:
            status, reply = await self.call(session, "grab", "POST", "/grab", token, {})
            if status == 200:
                self._grabbed(uid, reply)

    async def traffic(self, session, until: int) -> None:
        while self.total < until:
            await self.one(session)

    async def race(self, session, name: str, calls: list[tuple[str, str, dict]], winners_ok) -> list:
        """Fire calls at once on separate connections; winners_ok(replies) says whether exactly one won."""
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                         timeout=aiohttp.ClientTimeout(total=30)) as fresh:
            replies = await asyncio.gather(*(self.call(fresh, f"race:{name}", "POST", p, t, b) for t, p, b in calls))
        verdict = "one winner" if winners_ok(replies) else "other"
        self.races[(name, verdict)] += 1
        if verdict == "other" and len(self.race_details) < 10:
            self.race_details.append(f"{name}: {[s for s, _ in replies]}")
        return replies

    async def director(self, session, until: int) -> None:
        """Open drops (rich and small in turn) and stage the three races, until the traffic is done."""
        admin = self.admin_token
        n = 0
        while self.total < until:
            pool = 2_000_000 if n % 2 == 0 else 60_000
            await self.call(session, "admin", "POST", "/admin/drop", admin, {"pool_fen": pool, "duration_s": 60})
            await asyncio.sleep(RACE_EVERY_S)
            n += 1
            racers = self.rng.sample(self.users, RACERS)
            status, drop = await self.call(session, "admin", "POST", "/admin/drop", admin,
                                           {"pool_fen": 1, "duration_s": 60, "envelope_odds": 1.0})
            if status == 200:  # the last envelope: one fen, many taps; traffic may tap it too, so count every answer
                replies = await self.race(session, "last envelope", [(t, "/grab", {}) for _, t in racers], lambda r: True)
                for (uid, _), (s, reply) in zip(racers, replies):
                    if s == 200:
                        self._grabbed(uid, reply)
                self.races[("last envelope", "pending")] += 1
                self.last_drops = getattr(self, "last_drops", []) + [drop["drop_id"]]
            holders = [u for u in self.users if self.cards[u[0]] and len(self.friends[u[0]]) >= 2]
            if holders:
                uid, token = self.rng.choice(holders)
                card, (f1, f2) = self.cards[uid].pop(), self.rng.sample(self.friends[uid], 2)
                replies = await self.race(session, "same card gifted twice",
                                          [(token, "/share/card", {"card_id": card, "to": (f1, f2)[i % 2]}) for i in range(RACERS)],
                                          lambda r: sorted(s for s, _ in r) == [200] + [403] * (RACERS - 1))
                winner = next((f for (s, _), f in zip(replies, [(f1, f2)[i % 2] for i in range(RACERS)]) if s == 200), None)
                if winner:
                    self.cards[winner].add(card)
            owners = [u for u in self.users if any(a >= 2 for a in self.envelopes[u[0]].values())]
            if owners:
                uid, token = self.rng.choice(owners)
                env = next(e for e, a in self.envelopes[uid].items() if a >= 2)
                del self.envelopes[uid][env]
                to = self.rng.sample(self.friends[uid], min(2, len(self.friends[uid])))
                replies = await self.race(session, "same envelope split twice",
                                          [(token, "/share/split", {"envelope_id": env, "to": to}) for _ in range(RACERS)],
                                          lambda r: sorted(s for s, _ in r) == [200] + [409] * (RACERS - 1))
                for s, reply in replies:
                    if s == 200:
                        for child in reply["envelopes"]:
                            self.envelopes[child["owner"]][child["envelope_id"]] = child["amount_fen"]


def start(store: str, processes: int) -> tuple[subprocess.Popen, str, str]:
    folder = Path(tempfile.mkdtemp(prefix="gala-soak-"))
    (folder / "soak.yaml").write_text(CONFIG)
    t = launch.start(folder / "target.log", config=folder / "soak.yaml", extra=["--processes", str(processes), "--store", store])
    return t.proc, t.url, t.admin_token


def make_users(url: str, n: int, rng: random.Random) -> tuple[list[tuple[int, str]], dict[int, list[int]]]:
    base = TargetClient(url)
    users = [base.register(f"u{i}") for i in range(n)]
    friends: dict[int, set[int]] = collections.defaultdict(set)
    for i, (uid, c) in enumerate(users):
        for j in {(i + 1) % n, rng.randrange(n)} - {i}:
            other = users[j][0]
            assert c.call("POST", "/friends", {"friend_id": other})[0] == 200
            friends[uid].add(other)
            friends[other].add(uid)
    return [(uid, c.token) for uid, c in users], {u: sorted(f) for u, f in friends.items()}


async def drive(soak: Soak, target: int, connections: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def progress():
            t0, n0 = time.monotonic(), soak.total
            while soak.total < target:
                await asyncio.sleep(PROGRESS_EVERY_S)
                t1, n1 = time.monotonic(), soak.total
                print(f"  {n1:,} requests, {(n1 - n0) / (t1 - t0):,.0f} req/s lately", file=sys.stderr)
                t0, n0 = t1, n1

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as own:  # the director never queues behind traffic
            await asyncio.gather(soak.director(own, target), progress(),
                                 *(soak.traffic(session, target) for _ in range(connections)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1_000_000, help="requests to send in all (default: %(default)s)")
    ap.add_argument("--store", default="redis://127.0.0.1:6379/0", help="the Redis to share state in (default: %(default)s)")
    ap.add_argument("--processes", type=int, default=2, help="target processes (default: %(default)s)")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    rng = random.Random(3)
    proc, url, token = start(args.store, args.processes)
    try:
        users, friends = make_users(url, args.users, rng)
        soak = Soak(url, token, users, friends, seed=4)
        soak.total = len(users) + sum(len(f) for f in friends.values()) // 2  # setup requests count too
        t0, load0 = time.monotonic(), os.getloadavg()[0]
        asyncio.run(drive(soak, args.requests, args.connections))
        wall_s = time.monotonic() - t0
        admin = TargetClient(url, token, timeout_s=120)
        status_d, draw = admin.call("POST", "/admin/draw", {})
        status_a, report = admin.call("GET", "/admin/audit")
        if status_d != 200 or status_a != 200:
            raise SystemExit(f"the draw answered {status_d} {draw}; the audit answered {status_a} {str(report)[:500]}")
        lost = 0
        for uid, tok in users:  # every acknowledged holding is where the acknowledgement said
            me = TargetClient(url, tok).call("GET", "/me")[1]
            lost += len(set(soak.envelopes[uid]) - {e["envelope_id"] for e in me["envelopes"]})
            lost += len(soak.cards[uid] - {c["card_id"] for c in me["cards"]})
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    one_fen = [d for d in getattr(soak, "last_drops", [])]
    soak.races[("last envelope", "one winner")] = sum(soak.won_per_drop[d] == 1 for d in one_fen)
    soak.races[("last envelope", "other")] = sum(soak.won_per_drop[d] != 1 for d in one_fen)
    del soak.races[("last envelope", "pending")]
    statuses = collections.Counter()
    for (_, status), n in soak.requests.items():
        statuses[status] += n
    t = report["totals"]
    figures = {"requests": soak.total, "wall_s": round(wall_s, 1), "req_per_s": round(soak.total / wall_s),
               "statuses": {str(k): v for k, v in sorted(statuses.items())}, "by_kind": {f"{k} {s}": n for (k, s), n in sorted(soak.requests.items())},
               "races": {f"{k}: {v}": n for (k, v), n in sorted(soak.races.items())}, "race_details": soak.race_details,
               "audit_passed": report["passed"], "failed_invariants": [i["name"] for i in report["invariants"] if not i["passed"]],
               "fen_drift": t["fen_drift"], "cards_over_cap": t["cards_over_cap"], "double_wins": t["double_wins"],
               "cards_issued": t["cards_issued"], "cards_held": t["cards_held"], "card_gifts": t["card_gifts"],
               "fen_issued": t["fen_issued"], "fen_held": t["fen_held"], "fen_left_in_pools": t["fen_left_in_pools"],
               "draw": {k: v for k, v in draw.items() if k != "winner_ids"}, "draw_paid_fen": t["draw_paid_fen"], "envelopes": t["envelopes"], "splits": t["splits"],
               "messages": t["messages"], "friendships": t["friendships"], "acknowledged_but_missing": lost,
               "load_average_at_start": load0, "load_average_at_end": os.getloadavg()[0]}
    model = next((x.split(":", 1)[1].strip() for x in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if x.startswith("Model name")), platform.processor())
    print(f"\nMachine: {os.cpu_count()} cores, {model}; load average {load0:.2f} at start, {figures['load_average_at_end']:.2f} at end; "
          f"{args.processes} target processes over {args.store}, {args.connections} connections, {args.users:,} users\n")
    print(json.dumps(figures, indent=1, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, ensure_ascii=False))
    clean = (report["passed"] and lost == 0 and not any(k == "other" for _, k in soak.races)
             and not any(s >= 500 for s in statuses))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
