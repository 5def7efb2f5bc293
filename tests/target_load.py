"""A small bounded load on the built-in target for fault tests: users in a friendship ring grab,
gift cards and chat on many keep-alive connections, and every acknowledged grab is recorded."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from dataclasses import dataclass, field

import aiohttp

from loadtests.target.client import TargetClient


@dataclass
class LoadLog:
    statuses: collections.Counter = field(default_factory=collections.Counter)
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, status or -1 for no answer)
    envelopes: dict[int, set[int]] = field(default_factory=lambda: collections.defaultdict(set))  # acknowledged, by user
    cards: dict[int, set[int]] = field(default_factory=lambda: collections.defaultdict(set))  # acknowledged grabs then gifts
    bad_bodies: int = 0  # answers that were not a JSON object

    def after(self, t: float) -> collections.Counter:
        return collections.Counter(s for at, s in self.timeline if at >= t)

    def between(self, t0: float, t1: float) -> collections.Counter:
        return collections.Counter(s for at, s in self.timeline if t0 <= at < t1)


def make_users(url: str, n: int) -> list[tuple[int, str]]:
    """n users, each a friend of the next (a ring)."""
    base = TargetClient(url)
    users = [base.register(f"load{i}") for i in range(n)]
    for i, (_, c) in enumerate(users):
        assert c.call("POST", "/friends", {"friend_id": users[(i + 1) % n][0]})[0] == 200
    return [(uid, c.token) for uid, c in users]


async def _drive(url: str, users, seconds: float, connections: int, log: LoadLog, seed: int) -> None:
    ring = {uid: users[(i + 1) % len(users)][0] for i, (uid, _) in enumerate(users)}
    deadline = time.monotonic() + seconds
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=5)

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            uid, token = users[rng.randrange(len(users))]
            headers = {"Authorization": f"Bearer {token}"}
            roll, card = rng.random(), None
            if roll < 0.2 and log.cards[uid]:
                card = log.cards[uid].pop()  # in flight: no other worker can gift it meanwhile
                path, body = "/share/card", {"card_id": card, "to": ring[uid]}
            elif roll < 0.6:
                path, body = "/grab", {}
            else:
                path, body = "/chat/send", {"to": ring[uid], "text": "新年快乐"}
            try:
                async with session.post(url + path, json=body, headers=headers) as r:
                    status, reply = r.status, await r.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                status, reply = -1, None
                await asyncio.sleep(0.01)
            log.statuses[status] += 1
            log.timeline.append((time.monotonic(), status))
            if status != -1 and not isinstance(reply, dict):
                log.bad_bodies += 1
            if card is not None:  # a gift that got no clear answer is settled by /me later; keep it off the books
                if status == 200:
                    log.cards[ring[uid]].add(card)
                elif status in (403, 404, 409):
                    pass
                elif status != -1 and status != 503:
                    log.cards[uid].add(card)
            if status == 200 and path == "/grab":
                if reply["result"] == "envelope":
                    log.envelopes[uid].add(reply["envelope_id"])
                elif reply["result"] == "card":
                    log.cards[uid].add(reply["card_id"])

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))


def run_load(url: str, users, seconds: float, log: LoadLog, connections: int = 16, seed: int = 0) -> LoadLog:
    asyncio.run(_drive(url, users, seconds, connections, log, seed))
    return log


def held_by_users(url: str, users) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    """Each user's envelopes and cards as the target reports them now."""
    envs, cards = {}, {}
    for uid, token in users:
        status, me = TargetClient(url, token).call("GET", "/me")
        assert status == 200, me
        envs[uid] = {e["envelope_id"] for e in me["envelopes"]}
        cards[uid] = {c["card_id"] for c in me["cards"]}
    return envs, cards
