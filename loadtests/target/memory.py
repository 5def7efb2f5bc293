"""The in-memory store: `state.State` behind the `Store` interface (one process, the default).

Every method is `async` for the interface's sake but never awaits, so each runs whole between two
awaits of the event loop: the single-process concurrency rule of state.py still holds.
"""

from __future__ import annotations

import numpy as np

from . import schedule
from .config import CARD_KINDS, TargetConfig
from .state import State
from .store import Snapshot, Store

_KIND_INDEX = {k: i for i, k in enumerate(CARD_KINDS)}


def snapshot_of(state: State) -> Snapshot:
    """The audit's view of an in-memory State (synchronous: nothing interleaves)."""
    envs, users = state.envelopes, state.users[1:]
    n = len(envs)
    elapsed = state.clock() - state.started_at
    virtual = schedule.virtual_pools(state.config.drops, elapsed, state.slots_done)
    env_pairs = [(u.id, e) for u in users for e in u.envelopes]
    card_pairs = [(u.id, c) for u in users for kind in CARD_KINDS for c in u.cards[kind]]
    pairs = lambda p: (np.array([a for a, _ in p], dtype=np.int64), np.array([b for _, b in p], dtype=np.int64))  # noqa: E731
    draw = state.draw
    return Snapshot(
        config=state.config,
        env_amount=np.fromiter((e.amount_fen for e in envs), dtype=np.int64, count=n),
        env_owner=np.fromiter((e.owner for e in envs), dtype=np.int64, count=n),
        env_drop=np.fromiter((e.drop_id for e in envs), dtype=np.int64, count=n),
        env_parent=np.fromiter((-1 if e.parent_id is None else e.parent_id for e in envs), dtype=np.int64, count=n),
        env_split=np.fromiter((bool(e.children) for e in envs), dtype=bool, count=n),
        drop_pool=np.array([d.pool_fen for d in state.drops] + virtual, dtype=np.int64),
        drop_left=np.array([d.pool_left_fen for d in state.drops] + virtual, dtype=np.int64),
        card_owner=np.fromiter((c.owner for c in state.cards), dtype=np.int64, count=len(state.cards)),
        card_kind=np.fromiter((_KIND_INDEX[c.kind] for c in state.cards), dtype=np.int64, count=len(state.cards)),
        cards_issued=dict(state.cards_issued),
        held_envelopes=pairs(env_pairs),
        held_cards=pairs(card_pairs),
        winnings=np.array([0] + [u.winnings_fen for u in users], dtype=np.int64),
        users=len(users),
        friend_links=sum(len(u.friends) for u in users),
        messages=state.messages,
        card_gifts=state.card_gifts,
        draw=None if draw is None else {"pool_fen": draw.pool_fen, "winners": list(draw.winners),
                                        "share_fen": draw.share_fen, "remainder_fen": draw.remainder_fen},
    )


class MemoryStore(Store):
    kind = "memory"

    def __init__(self, config: TargetConfig, state: State | None = None):
        self.config = config
        self.state = state or State(config)

    async def authenticate(self, token: str) -> int:
        return self.state.authenticate(token).id

    async def add_user(self, name: str) -> tuple[int, str]:
        return self.state.add_user(name)

    async def add_friend(self, uid: int, friend_id: int) -> None:
        self.state.add_friend(self.state.users[uid], friend_id)

    async def grab(self, uid: int) -> dict:
        return self.state.grab(self.state.users[uid])

    async def drop_status(self) -> dict:
        return self.state.drop_status()

    async def admin_open_drop(self, pool_fen, duration_s, envelope_odds, card_odds) -> dict:
        drop = self.state.admin_open_drop(pool_fen, duration_s, envelope_odds, card_odds)
        return {"drop_id": drop.id, "pool_fen": drop.pool_fen, "closes_in_s": round(drop.closes_at - drop.opens_at, 3)}

    async def give_card(self, uid: int, card_id: int, to: int) -> None:
        self.state.give_card(self.state.users[uid], card_id, to)

    async def split_envelope(self, uid: int, envelope_id: int, to: list[int], amounts: list[int] | None) -> list[dict]:
        children = self.state.split_envelope(self.state.users[uid], envelope_id, to, amounts)
        return [{"envelope_id": c.id, "owner": c.owner, "amount_fen": c.amount_fen} for c in children]

    async def send_message(self, uid: int, to: int, text: str) -> int:
        return self.state.send_message(self.state.users[uid], to, text)

    async def inbox(self, uid: int, since: int, limit: int) -> tuple[list[dict], int]:
        page, cursor = self.state.inbox(self.state.users[uid], since, limit)
        return [{"message_id": m.message_id, "from": m.sender, "text": m.text, "at": m.at} for m in page], cursor

    async def make_draw(self) -> dict:
        d = self.state.make_draw()
        return {"winners": len(d.winners), "winner_ids": d.winners, "share_fen": d.share_fen,
                "remainder_fen": d.remainder_fen, "pool_fen": d.pool_fen}

    async def me_view(self, uid: int) -> dict:
        return self.state.me_view(self.state.users[uid])

    async def counts(self) -> dict:
        s = self.state
        return {"users": len(s.users) - 1, "envelopes": len(s.envelopes), "messages": s.messages}

    async def snapshot(self) -> Snapshot:
        return snapshot_of(self.state)
