"""The Redis store: the target's state shared by N processes, every state change one Lua script.

A Lua script runs whole with nothing interleaved, across every process and connection, so the
single-process guarantees hold as they are ("two taps for the last envelope: one wins"). Keys
carry the run's prefix `gala:{RUN}:` (runs never see each other's data; the braces keep a run in
one cluster slot). The clock is Redis's own (TIME, inside the scripts) and the run's start is
stored once in the prefix's `meta`, so every process agrees when a scheduled drop opens.
The key layout is in lua/prelude.lua and API.md. Connection failures become `StoreUnavailable`
(503); redis-py's retries are off, so a script is never sent twice. The supervisor's lease on the
run and the sweep of dead runs' keys are in lease.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import secrets
from importlib import resources

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gala.contract.errors import InputError

from .config import CARD_KINDS, TargetConfig
from .launch import check_store_url
from .lease import DEFAULT_LEASE_S, client_for, delete_run, holder, lease_key, store_error
from .split import random_split
from .store import Rejected, Snapshot, Store, StoreUnavailable

log = logging.getLogger("gala.target")
SCRIPTS = ("grab", "admin_drop", "give_card", "split", "send", "friend", "user", "me", "draw", "status", "snapshot")
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError, OSError)
_KIND_INDEX = {k: str(i + 1) for i, k in enumerate(CARD_KINDS)}
_MAX_CACHED_SECRETS = 500_000
SLOW_TIMEOUT_S = 120.0


def prefix_for(run_id: str) -> str:
    return f"gala:{{{run_id}}}:"


def script_text(name: str) -> str:
    lua = resources.files("loadtests.target") / "lua"
    return (lua / "prelude.lua").read_text(encoding="utf-8") + "\n" + (lua / f"{name}.lua").read_text(encoding="utf-8")


def _codds(bounds: tuple[tuple[float, str], ...]) -> str:
    return ";".join(f"{b!r},{_KIND_INDEX[k]}" for b, k in bounds) or "-"


def _meta(config: TargetConfig, started: float, config_hash: str) -> dict:
    from .store import cumulative_card_odds

    s = config.drops
    meta = {"started": f"{started:.6f}", "first": repr(s.first_at_s), "dur": repr(s.duration_s), "intv": repr(s.interval_s),
            "count": -1 if s.count is None else s.count, "pools": ",".join(map(str, s.pool_fen)),
            "eodds": repr(config.envelope_odds), "codds": _codds(cumulative_card_odds(config.envelope_odds, config.card_odds)),
            "maxenv": config.max_envelope_fen, "bpool": config.blessing_pool_fen, "config": config_hash}
    meta.update({f"cap{_KIND_INDEX[k]}": config.card_caps.get(k, -1) for k in CARD_KINDS})
    return meta


def prepare(url: str, run_id: str, config: TargetConfig, lease_s: int = DEFAULT_LEASE_S) -> str:
    """Check the store answers, take the run's lease and write its meta once (its start is Redis's clock now).

    Synchronous, in the supervisor before the workers start. Raises InputError (exit 2) naming the
    URL when Redis cannot be reached, or when the run id already holds a run with another config.
    The lease (lease.py) is written with the meta in one transaction, so no sweep sees the run without it.
    """
    check_store_url(url)
    prefix = prefix_for(run_id)
    config_hash = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]
    client = client_for(url, timeout_s=5)
    try:
        client.ping()
        existing = client.hget(prefix + "meta", "config")
        if existing is not None and existing.decode() != config_hash:
            raise InputError(f"--store {url}: run id {run_id!r} already holds a run with another config; pick another --run-id")
        pipe = client.pipeline(transaction=True)
        pipe.set(lease_key(prefix), holder(), ex=lease_s)
        if existing is None:
            sec, usec = client.time()
            pipe.hset(prefix + "meta", mapping=_meta(config, sec + usec / 1e6, config_hash))
        pipe.hset(prefix + "meta", "lease_s", lease_s)
        pipe.execute()
        for name in SCRIPTS:
            client.script_load(script_text(name))
    except RedisError as exc:
        raise store_error(url, exc) from None
    finally:
        client.close()
    return prefix


def cleanup(url: str, prefix: str) -> int:
    """Delete the run's keys (on a clean stop), its meta and lease last; returns how many. Errors are the caller's to report."""
    client = client_for(url)
    try:
        return delete_run(client, prefix, guarded=False)[0]
    finally:
        client.close()


def _hash_ints(flat: list, n: int, default: int = -1) -> tuple[np.ndarray, bool]:
    """A HGETALL of id -> int as an array indexed 0..n-1 (missing ids get `default`), and whether ids were exactly 0..n-1."""
    out = np.full(n, default, dtype=np.int64)
    if not flat:
        return out, n == 0
    ids = np.asarray(flat[0::2], dtype=np.int64)
    ok = ids.size == n and bool(((ids >= 0) & (ids < n)).all())
    inside = (ids >= 0) & (ids < n)
    out[ids[inside]] = np.asarray(flat[1::2], dtype=np.int64)[inside]
    return out, ok


class RedisStore(Store):
    kind = "redis"

    def __init__(self, config: TargetConfig, url: str, prefix: str, seed: int | None = None, max_connections: int = 64):
        self.config, self.url, self.prefix = config, url, prefix
        self.rng = random.Random(seed)
        self.max_connections = max_connections
        self.client: aioredis.Redis | None = None
        self._secrets: dict[int, str] = {}

    async def start(self) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=self.max_connections, timeout=2, socket_connect_timeout=1, socket_timeout=3,
            decode_responses=True, retry=AsyncRetry(NoBackoff(), 0))
        self.client = aioredis.Redis(connection_pool=pool)
        self.scripts = {name: self.client.register_script(script_text(name)) for name in SCRIPTS}
        # The audit's snapshot and the draw read the whole state: on a soak's state that takes seconds,
        # longer than a request's socket timeout, so they get a connection of their own.
        self.slow = aioredis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=SLOW_TIMEOUT_S,
                                            decode_responses=True, retry=AsyncRetry(NoBackoff(), 0), max_connections=2)
        self.slow_scripts = {name: self.slow.register_script(script_text(name)) for name in ("snapshot", "draw")}

    async def close(self) -> None:
        if self.client is not None:
            for client in (self.client, self.slow):
                await client.aclose()
                await client.connection_pool.disconnect()

    async def _call(self, coro):
        try:
            return await coro
        except _UNAVAILABLE as exc:
            # The idle pooled connections are as dead as this one: drop them, so that once Redis is
            # back each request opens a fresh one instead of failing once on a stale socket.
            try:
                await self.client.connection_pool.disconnect(inuse_connections=False)
            except Exception:  # noqa: BLE001 - best effort; the 503 below is the answer either way
                pass
            raise StoreUnavailable(f"the store did not answer ({type(exc).__name__})") from None
        except ResponseError as exc:
            if str(exc).startswith(("LOADING", "MASTERDOWN", "MISCONF", "BUSY")):
                raise StoreUnavailable(f"the store is not ready ({str(exc).split()[0]})") from None
            raise

    async def _run(self, name: str, *args) -> list:
        script = self.slow_scripts.get(name) or self.scripts[name]
        res = await self._call(script(args=[self.prefix, *args]))
        if res[0] == "!":
            if res[1] == 503:
                raise StoreUnavailable(res[2])
            raise Rejected(int(res[1]), res[2], res[3] or None)
        return res

    # ---- users and tokens -------------------------------------------------------------------
    async def authenticate(self, token: str) -> int:
        uid_text, _, secret = token.partition(".")
        digest = None
        if uid_text.isascii() and uid_text.isdigit() and len(uid_text) <= 12:
            uid = int(uid_text)
            digest = self._secrets.get(uid)
            if digest is None:  # secrets never change, so a cached one stays right
                digest = await self._call(self.client.hget(f"{self.prefix}u:{uid}", "sec"))
                if digest is not None:
                    if len(self._secrets) >= _MAX_CACHED_SECRETS:
                        self._secrets.clear()
                    self._secrets[uid] = digest
        given = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()
        if not hmac.compare_digest(given, digest or "x" * 64) or digest is None:
            raise Rejected(401, "invalid token", "Authorization")
        return uid

    async def add_user(self, name: str) -> tuple[int, str]:
        secret = secrets.token_urlsafe(24)
        res = await self._run("user", name, hashlib.sha256(secret.encode()).hexdigest())
        return res[1], f"{res[1]}.{secret}"

    async def add_friend(self, uid: int, friend_id: int) -> None:
        await self._run("friend", uid, friend_id)

    # ---- the grab link ----------------------------------------------------------------------
    async def grab(self, uid: int) -> dict:
        res = await self._run("grab", uid, repr(self.rng.random()), repr(self.rng.random()))
        if res[1] == "envelope":
            return {"result": "envelope", "envelope_id": res[2], "amount_fen": res[3], "drop_id": res[4]}
        if res[1] == "card":
            return {"result": "card", "card_id": res[2], "kind": CARD_KINDS[int(res[3]) - 1]}
        return {"result": "nothing", "reason": res[2]}

    async def _status(self) -> list:
        return await self._run("status")

    async def drop_status(self) -> dict:
        from . import schedule

        res = await self._status()
        seen = [None if d[0] < 0 else schedule.DropSeen(d[0], d[1], float(d[2])) for d in (res[4], res[5])]
        return schedule.status_view(self.config.drops, float(res[1]), seen[0], seen[1], res[2], res[3])

    async def admin_open_drop(self, pool_fen, duration_s, envelope_odds, card_odds) -> dict:
        from .store import admin_odds

        odds, bounds = admin_odds(self.config, envelope_odds, card_odds)
        res = await self._run("admin_drop", pool_fen, repr(duration_s), repr(odds), _codds(bounds))
        return {"drop_id": res[1], "pool_fen": pool_fen, "closes_in_s": round(duration_s, 3)}

    # ---- the share link ---------------------------------------------------------------------
    async def give_card(self, uid: int, card_id: int, to: int) -> None:
        await self._run("give_card", uid, card_id, to)

    async def split_envelope(self, uid: int, envelope_id: int, to: list[int], amounts: list[int] | None) -> list[dict]:
        drawn = amounts is None
        if drawn:  # an envelope's amount never changes, so drawing the parts before the script is safe
            amount = await self._call(self.client.hget(f"{self.prefix}ea", envelope_id))
            amounts = random_split(int(amount), len(to), self.rng) if amount is not None and int(amount) >= len(to) else []
        res = await self._run("split", uid, envelope_id, self.config.max_split_ways, int(drawn), len(to), *to, *amounts)
        return [{"envelope_id": res[i], "owner": res[i + 1], "amount_fen": res[i + 2]} for i in range(1, len(res), 3)]

    # ---- the chat link ----------------------------------------------------------------------
    async def send_message(self, uid: int, to: int, text: str) -> int:
        return (await self._run("send", uid, to, text))[1]

    async def inbox(self, uid: int, since: int, limit: int) -> tuple[list[dict], int]:
        rows = await self._call(self.client.zrangebyscore(f"{self.prefix}in:{uid}", f"({since}", "+inf", start=0, num=limit))
        page = []
        for row in rows:
            mid, sender, at, text = row.split(":", 3)
            page.append({"message_id": int(mid), "from": int(sender), "text": text, "at": float(at)})
        return page, (page[-1]["message_id"] if page else since)

    # ---- the draw and views -----------------------------------------------------------------
    async def make_draw(self) -> dict:
        res = await self._run("draw")
        winners = [int(w) for w in res[4]]
        return {"winners": len(winners), "winner_ids": winners, "share_fen": res[2], "remainder_fen": res[3], "pool_fen": res[1]}

    async def me_view(self, uid: int) -> dict:
        res = await self._run("me", uid)
        name, win, envs, cards, friends = res[1:6]
        rows = sorted(zip(envs[0::4], envs[1::4], envs[2::4], envs[3::4]))
        envelopes = [{"envelope_id": i, "amount_fen": a, "drop_id": d, "parent_id": None if p < 0 else p} for i, a, d, p in rows]
        held = sorted(zip(cards[1::2], cards[0::2]))  # by kind, then id, as the memory store lists them
        return {"user_id": uid, "name": name, "balance_fen": sum(a for _, a, _, _ in rows) + win, "winnings_fen": win,
                "envelopes": envelopes, "cards": [{"card_id": c, "kind": CARD_KINDS[k - 1]} for k, c in held],
                "friends": sorted(int(f) for f in friends)}

    async def counts(self) -> dict:
        res = await self._status()
        return {"users": res[6], "envelopes": res[7], "messages": res[8]}

    async def snapshot(self) -> Snapshot:
        from . import schedule

        res = await self._run("snapshot")
        elapsed, c, drops = float(res[1]), res[2], res[3]
        n_user, n_env, n_card, _, n_msg, gifts, slots_done = c
        ea, ok_a = _hash_ints(res[4], n_env)
        eo, ok_o = _hash_ints(res[5], n_env)
        ed, ok_d = _hash_ints(res[6], n_env)
        ep, _ = _hash_ints(res[7], n_env)
        split = np.zeros(n_env, dtype=bool)
        split_ids = np.asarray(res[8][0::2], dtype=np.int64)
        split[split_ids[(split_ids >= 0) & (split_ids < n_env)]] = True
        ck, ok_k = _hash_ints(res[9], n_card)
        co, ok_c = _hash_ints(res[10], n_card)
        issued = {CARD_KINDS[int(k) - 1]: int(v) for k, v in zip(res[11][0::2], res[11][1::2])}
        virtual = schedule.virtual_pools(self.config.drops, elapsed, slots_done)
        pairs = lambda flat: (np.asarray(flat[0::2], dtype=np.int64), np.asarray(flat[1::2], dtype=np.int64))  # noqa: E731
        draw_h = dict(zip(res[17][0::2], res[17][1::2]))
        draw = None if not draw_h else {"pool_fen": int(draw_h["pool"]), "share_fen": int(draw_h["share"]),
                                        "remainder_fen": int(draw_h["rem"]), "winners": [int(w) for w in res[18]]}
        return Snapshot(
            config=self.config, env_amount=ea, env_owner=eo, env_drop=ed, env_parent=ep, env_split=split,
            drop_pool=np.asarray(drops[0::2] + virtual, dtype=np.int64), drop_left=np.asarray(drops[1::2] + virtual, dtype=np.int64),
            card_owner=co, card_kind=np.maximum(ck - 1, 0),
            cards_issued={k: issued.get(k, 0) for k in CARD_KINDS},
            held_envelopes=pairs(res[12]), held_cards=pairs(res[13]),
            winnings=np.asarray([0, *res[14]], dtype=np.int64), users=n_user, friend_links=res[15], messages=n_msg,
            card_gifts=gifts, draw=draw,
            ids_dense=all((ok_a, ok_o, ok_d, ok_k, ok_c)) and res[16] == 0 and min(drops or [0]) >= 0)

    # ---- per-process CPU reports, shared so one call sees every process ---------------------
    async def publish_cpu(self, pid: int, report: dict) -> None:
        await self._call(self.client.hset(f"{self.prefix}cpu", str(pid), json.dumps(report)))

    async def cpu_reports(self) -> dict[int, dict]:
        raw = await self._call(self.client.hgetall(f"{self.prefix}cpu"))
        return {int(pid): json.loads(v) for pid, v in raw.items()}
