"""The built-in target keeps its invariants when many clients race for the same thing (real processes, real HTTP):
one in-memory process, and two processes sharing their state in Redis (each race's calls spread over both)."""

from __future__ import annotations

import asyncio
import collections
import time

import aiohttp
import pytest

from conftest import STORES, store_args
from loadtests.target.client import TargetClient

QUIET = "seed: 7\ndrops: {count: 0}\n"  # no scheduled drops: the test opens its own with /admin/drop


@pytest.fixture(params=STORES)
def quiet_target(target_factory, tmp_path, request):
    cfg = tmp_path / "quiet.yaml"
    cfg.write_text(QUIET)
    return target_factory("--config", str(cfg), *store_args(request.param, request))


async def _race(url: str, calls: list[tuple[str, str, dict]]) -> list[tuple[int, dict]]:
    """Fire every (token, path, body) POST at once, each on its own connection, and collect the replies."""
    connector = aiohttp.TCPConnector(limit=len(calls), force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        start = asyncio.Event()

        async def one(token, path, body):
            await start.wait()
            async with session.post(url + path, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
                return r.status, await r.json()

        tasks = [asyncio.create_task(one(*c)) for c in calls]
        await asyncio.sleep(0.05)
        start.set()
        return await asyncio.gather(*tasks)


def race(url, calls):
    return asyncio.run(_race(url, calls))


def test_races_keep_every_invariant(quiet_target):
    url = quiet_target.url
    admin = TargetClient(url, quiet_target.admin_token)
    users = [TargetClient(url).register(f"u{i}") for i in range(30)]
    tokens = [c.token for _, c in users]

    # Two (here thirty) taps for the last envelope: a pool of one fen, odds 1.0: exactly one wins.
    assert admin.call("POST", "/admin/drop", {"pool_fen": 1, "duration_s": 60, "envelope_odds": 1.0})[0] == 200
    replies = race(url, [(t, "/grab", {}) for t in tokens])
    assert all(s == 200 for s, _ in replies)
    results = collections.Counter(b["result"] for _, b in replies)
    assert results == {"envelope": 1, "nothing": 29}, results
    assert {b["reason"] for _, b in replies if b["result"] == "nothing"} == {"pool_empty"}

    # Each user taps five times at once in a rich drop: one envelope per user per drop, never two.
    admin.call("POST", "/admin/drop", {"pool_fen": 1_000_000, "duration_s": 60, "envelope_odds": 1.0})
    replies = race(url, [(t, "/grab", {}) for t in tokens[:12] for _ in range(5)])
    won = collections.Counter(b.get("drop_id") for _, b in replies if b["result"] == "envelope")
    assert sum(won.values()) == 12
    assert collections.Counter(b.get("reason") for _, b in replies if b["result"] == "nothing") == {"already_won": 48}

    # Two (here twenty) gifts of the same card to different friends: exactly one succeeds.
    (a_id, a), (b_id, b), (c_id, c) = users[0], users[1], users[2]
    for other in (b_id, c_id):
        assert a.call("POST", "/friends", {"friend_id": other})[0] == 200
    admin.call("POST", "/admin/drop", {"pool_fen": 0, "duration_s": 60, "envelope_odds": 0.0, "card_odds": {"爱国": 1.0}})
    status, card = a.call("POST", "/grab", {})
    assert card["result"] == "card", card
    replies = race(url, [(a.token, "/share/card", {"card_id": card["card_id"], "to": (b_id, c_id)[i % 2]}) for i in range(20)])
    statuses = collections.Counter(s for s, _ in replies)
    assert statuses == {200: 1, 403: 19}, statuses

    # Concurrent fission of the same envelope: exactly one split happens.
    envelope = next(e for e in a.call("GET", "/me")[1]["envelopes"])
    ways = min(2, envelope["amount_fen"])
    replies = race(url, [(a.token, "/share/split", {"envelope_id": envelope["envelope_id"], "to": [b_id, c_id][:ways]})
                         for _ in range(20)])
    statuses = collections.Counter(s for s, _ in replies)
    assert statuses == {200: 1, 409: 19}, statuses
    children = next(body for s, body in replies if s == 200)["envelopes"]
    assert sum(ch["amount_fen"] for ch in children) == envelope["amount_fen"]

    status, report = admin.call("GET", "/admin/audit")
    assert status == 200 and report["passed"], report
    totals = report["totals"]
    assert totals["fen_issued"] == 1 + 1_000_000 + 0
    assert totals["fen_held"] + totals["fen_left_in_pools"] == totals["fen_issued"]
    assert totals["card_gifts"] == 1 and totals["splits"] == 1

    if quiet_target.worker_pids:  # two processes: show the races really were split between them
        time.sleep(1.5)  # each process publishes its CPU report every second
        reports = admin.call("GET", "/admin/cpu")[1]["processes"]
        grabbed = {pid: r["links"].get("grab", {}).get("requests", 0) for pid, r in reports.items()}
        assert sorted(map(int, grabbed)) == sorted(quiet_target.worker_pids), grabbed
        assert all(n > 0 for n in grabbed.values()) and sum(grabbed.values()) == 30 + 60 + 1, grabbed
