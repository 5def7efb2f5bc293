"""The target's in-memory domain: users, tokens, friends, drops, envelopes, cards, chat, the draw.

Concurrency rule: the service is single-threaded asyncio, and every method here is synchronous
(no await anywhere in this module), so each mutation runs start to finish without another request
interleaving. That is what makes "two taps for the last envelope: exactly one wins" hold.
Every check happens before the first mutation, so a rejected call changes nothing.
The Redis store (lua/*.lua) implements the same rules as scripts: keep the two in step.
"""

from __future__ import annotations

import bisect
import hmac
import itertools
import random
import secrets
import time
from dataclasses import dataclass, field

from . import schedule
from .config import CARD_KINDS, TargetConfig
from .split import envelope_amount, random_split, split_pool_equally
from .store import Rejected, admin_odds, cumulative_card_odds


@dataclass(slots=True)
class User:
    id: int
    name: str
    secret: str
    friends: set[int] = field(default_factory=set)
    envelopes: set[int] = field(default_factory=set)  # held (not yet split) envelope ids
    cards: dict[str, set[int]] = field(default_factory=lambda: {k: set() for k in CARD_KINDS})
    won_drops: set[int] = field(default_factory=set)
    inbox: list = field(default_factory=list)  # Message, ascending message_id
    inbox_ids: list[int] = field(default_factory=list)  # parallel to inbox, for bisect
    winnings_fen: int = 0


@dataclass(slots=True)
class Envelope:
    id: int
    owner: int
    amount_fen: int
    drop_id: int
    parent_id: int | None  # None: grabbed from a drop; else a fission child
    children: tuple[int, ...] = ()  # set once the envelope is split (then no longer held)


@dataclass(slots=True)
class Card:
    id: int
    owner: int
    kind: str


@dataclass(slots=True)
class Message:
    message_id: int
    sender: int
    text: str
    at: float


@dataclass(slots=True)
class Drop:
    id: int
    pool_fen: int
    pool_left_fen: int
    opens_at: float  # monotonic seconds
    closes_at: float
    envelope_odds: float
    card_odds: tuple[tuple[float, str], ...]  # cumulative upper bounds above envelope_odds, per kind
    slot: int | None  # schedule slot, None for an admin drop


@dataclass(slots=True)
class Draw:
    pool_fen: int
    winners: list[int]
    share_fen: int
    remainder_fen: int


class State:
    """All of the target's state and every operation on it (synchronous; see the module docstring)."""

    def __init__(self, config: TargetConfig, clock=time.monotonic):
        self.config = config
        self.clock = clock
        self.started_at = clock()
        self.rng = random.Random(config.seed)
        self.users: list[User | None] = [None]  # user id == index; ids start at 1
        self.envelopes: list[Envelope] = []  # envelope id == index
        self.cards: list[Card] = []  # card id == index
        self.drops: list[Drop] = []  # drop id == index + 1
        self.slot_drops: dict[int, Drop] = {}
        self.slots_done = 0  # scheduled slots made into drops so far (schedule.py)
        self.admin_drop: Drop | None = None
        self.cards_issued = dict.fromkeys(CARD_KINDS, 0)
        self.card_gifts = 0
        self.message_ids = itertools.count(1)
        self.messages = 0
        self.draw: Draw | None = None
        self._scheduled_cards = cumulative_card_odds(config.envelope_odds, config.card_odds)

    # ---- users, tokens, friends -------------------------------------------------------------
    def add_user(self, name: str) -> tuple[int, str]:
        uid = len(self.users)
        secret = secrets.token_urlsafe(24)
        self.users.append(User(uid, name, secret))
        # The id in the token lets us look the user up, then compare the secret in constant time.
        return uid, f"{uid}.{secret}"

    def authenticate(self, token: str) -> User:
        uid_text, _, secret = token.partition(".")
        user = None
        if uid_text.isascii() and uid_text.isdigit() and len(uid_text) <= 12 and 0 < int(uid_text) < len(self.users):
            user = self.users[int(uid_text)]
        expected = user.secret if user else "x" * 32
        # surrogateescape: a header with undecodable bytes must fail the compare, not raise.
        if not hmac.compare_digest(secret.encode("utf-8", "surrogateescape"), expected.encode()) or user is None:
            raise Rejected(401, "invalid token", "Authorization")
        return user

    def user(self, uid: int, field: str) -> User:
        if 0 < uid < len(self.users):
            return self.users[uid]
        raise Rejected(404, "unknown user", field)

    def friend(self, me: User, uid: int, field: str) -> User:
        other = self.user(uid, field)
        if uid not in me.friends:
            raise Rejected(403, "not a friend", field)
        return other

    def add_friend(self, me: User, uid: int) -> None:
        other = self.user(uid, "friend_id")
        if other is me:
            raise Rejected(400, "cannot befriend oneself", "friend_id")
        me.friends.add(other.id)
        other.friends.add(me.id)

    # ---- drops and the grab link ------------------------------------------------------------
    def _new_drop(self, pool_fen: int, opens_at: float, closes_at: float, envelope_odds: float,
                  card_odds: tuple[tuple[float, str], ...], slot: int | None) -> Drop:
        drop = Drop(len(self.drops) + 1, pool_fen, pool_fen, opens_at, closes_at, envelope_odds, card_odds, slot)
        self.drops.append(drop)
        return drop

    def _catch_up(self, now: float) -> None:
        """Make every scheduled slot opened by `now` into a drop, in opening order (ids follow the clock)."""
        s = self.config.drops
        for k in range(self.slots_done, schedule.slots_opened(s, now - self.started_at)):
            opens = self.started_at + schedule.slot_opens_s(s, k)
            self.slot_drops[k] = self._new_drop(schedule.slot_pool_fen(s, k), opens, opens + s.duration_s,
                                                self.config.envelope_odds, self._scheduled_cards, k)
            self.slots_done = k + 1

    def open_drop(self, now: float | None = None) -> Drop | None:
        """The drop open now (for a writer): an admin drop wins over the schedule."""
        now = self.clock() if now is None else now
        self._catch_up(now)
        if self.admin_drop is not None and now < self.admin_drop.closes_at:
            return self.admin_drop
        slot = schedule.open_slot(self.config.drops, now - self.started_at)
        drop = self.slot_drops.get(slot) if slot is not None else None
        return drop if drop is not None and now < drop.closes_at else None  # an admin drop may have closed it early

    def _seen(self, drop: Drop | None) -> schedule.DropSeen | None:
        return None if drop is None else schedule.DropSeen(drop.id, drop.pool_left_fen, drop.closes_at - self.started_at)

    def drop_status(self) -> dict:
        """`GET /drop`, read without changing anything (schedule.status_view)."""
        elapsed = self.clock() - self.started_at
        slot = schedule.open_slot(self.config.drops, elapsed)
        return schedule.status_view(self.config.drops, elapsed, self._seen(self.admin_drop),
                                    self._seen(self.slot_drops.get(slot)) if slot is not None else None,
                                    self.slots_done, len(self.drops))

    def admin_open_drop(self, pool_fen: int, duration_s: float, envelope_odds: float | None,
                        card_odds: dict[str, float] | None) -> Drop:
        odds, bounds = admin_odds(self.config, envelope_odds, card_odds)
        now = self.clock()
        current = self.open_drop(now)
        if current is not None:
            current.closes_at = now  # the new drop supersedes; the old pool's leftover stays accounted
        self.admin_drop = self._new_drop(pool_fen, now, now + duration_s, odds, bounds, None)
        return self.admin_drop

    def grab(self, me: User) -> dict:
        drop = self.open_drop()
        if drop is None:
            return {"result": "nothing", "reason": "no_drop_open"}
        r = self.rng.random()
        if r < drop.envelope_odds:
            if drop.pool_left_fen <= 0:
                return {"result": "nothing", "reason": "pool_empty"}
            if drop.id in me.won_drops:
                return {"result": "nothing", "reason": "already_won"}
            amount = envelope_amount(drop.pool_left_fen, self.config.max_envelope_fen, self.rng)
            env = Envelope(len(self.envelopes), me.id, amount, drop.id, None)
            drop.pool_left_fen -= amount
            self.envelopes.append(env)
            me.envelopes.add(env.id)
            me.won_drops.add(drop.id)
            return {"result": "envelope", "envelope_id": env.id, "amount_fen": amount, "drop_id": drop.id}
        for bound, kind in drop.card_odds:
            if r < bound:
                if self.draw is not None:
                    return {"result": "nothing", "reason": "game_closed"}
                cap = self.config.card_caps.get(kind)
                if cap is not None and self.cards_issued[kind] >= cap:
                    return {"result": "nothing", "reason": "no_luck"}
                card = Card(len(self.cards), me.id, kind)
                self.cards.append(card)
                self.cards_issued[kind] += 1
                me.cards[kind].add(card.id)
                return {"result": "card", "card_id": card.id, "kind": kind}
        return {"result": "nothing", "reason": "no_luck"}

    # ---- the share link ---------------------------------------------------------------------
    def give_card(self, me: User, card_id: int, to: int) -> None:
        if self.draw is not None:
            raise Rejected(409, "the game is closed: the five-card draw has been made", "card_id")
        if not 0 <= card_id < len(self.cards):
            raise Rejected(404, "unknown card", "card_id")
        card = self.cards[card_id]
        if card.owner != me.id:
            raise Rejected(403, "not your card", "card_id")
        friend = self.friend(me, to, "to")
        me.cards[card.kind].discard(card_id)
        friend.cards[card.kind].add(card_id)
        card.owner = friend.id
        self.card_gifts += 1

    def split_envelope(self, me: User, envelope_id: int, to: list[int], amounts: list[int] | None) -> list[Envelope]:
        if not 0 <= envelope_id < len(self.envelopes):
            raise Rejected(404, "unknown envelope", "envelope_id")
        parent = self.envelopes[envelope_id]
        if parent.owner != me.id:
            raise Rejected(403, "not your envelope", "envelope_id")
        if parent.children:
            raise Rejected(409, "envelope already split", "envelope_id")
        if not 1 <= len(to) <= self.config.max_split_ways:
            raise Rejected(400, f"to must list 1..{self.config.max_split_ways} friends", "to")
        friends = [self.friend(me, uid, "to") for uid in to]
        if amounts is None:
            if parent.amount_fen < len(to):
                raise Rejected(400, f"cannot split {parent.amount_fen} fen {len(to)} ways", "to")
            amounts = random_split(parent.amount_fen, len(to), self.rng)
        elif len(amounts) != len(to):
            raise Rejected(400, "amounts_fen must have one amount per friend in to", "amounts_fen")
        elif any(a < 1 for a in amounts):
            raise Rejected(400, "every amount must be >= 1 fen", "amounts_fen")
        elif sum(amounts) != parent.amount_fen:
            raise Rejected(400, f"amounts must sum exactly to the envelope's {parent.amount_fen} fen", "amounts_fen")
        children = []
        for friend, amount in zip(friends, amounts):
            child = Envelope(len(self.envelopes), friend.id, amount, parent.drop_id, parent.id)
            self.envelopes.append(child)
            friend.envelopes.add(child.id)
            children.append(child)
        parent.children = tuple(c.id for c in children)
        me.envelopes.discard(parent.id)
        return children

    # ---- the chat link ----------------------------------------------------------------------
    def send_message(self, me: User, to: int, text: str) -> int:
        friend = self.friend(me, to, "to")
        msg = Message(next(self.message_ids), me.id, text, time.time())
        friend.inbox.append(msg)
        friend.inbox_ids.append(msg.message_id)
        self.messages += 1
        return msg.message_id

    def inbox(self, me: User, since: int, limit: int) -> tuple[list[Message], int]:
        start = bisect.bisect_right(me.inbox_ids, since)
        page = me.inbox[start:start + limit]
        return page, (page[-1].message_id if page else since)

    # ---- the five-card draw -----------------------------------------------------------------
    def make_draw(self) -> Draw:
        if self.draw is not None:
            raise Rejected(409, "the five-card draw has already been made")
        winners = [u.id for u in self.users[1:] if all(u.cards[k] for k in CARD_KINDS)]
        share, remainder = split_pool_equally(self.config.blessing_pool_fen, len(winners))
        for uid in winners:
            self.users[uid].winnings_fen += share
        self.draw = Draw(self.config.blessing_pool_fen, winners, share, remainder)
        return self.draw

    # ---- views ------------------------------------------------------------------------------
    def me_view(self, me: User) -> dict:
        envs = [self.envelopes[i] for i in sorted(me.envelopes)]
        return {
            "user_id": me.id, "name": me.name,
            "balance_fen": sum(e.amount_fen for e in envs) + me.winnings_fen,
            "winnings_fen": me.winnings_fen,
            "envelopes": [{"envelope_id": e.id, "amount_fen": e.amount_fen, "drop_id": e.drop_id,
                           "parent_id": e.parent_id} for e in envs],
            "cards": [{"card_id": cid, "kind": kind} for kind in CARD_KINDS for cid in sorted(me.cards[kind])],
            "friends": sorted(me.friends),
        }
