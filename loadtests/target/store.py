"""The one interface the HTTP layer and the audit talk to, with two implementations behind it.

`memory.MemoryStore` (one process, the default) and `redis_store.RedisStore` (N processes sharing
state, each state change one Lua script). Users are named by id once authenticated; every method
either completes its state change whole or raises `Rejected` (a 4xx, nothing changed) or
`StoreUnavailable` (a 503: the store could not be reached, and the step ran whole or not at all).
`snapshot()` returns the whole state as arrays, read at one instant, from which `audit.py` checks
every invariant the same way for both stores.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from .config import CARD_KINDS, TargetConfig


class Rejected(Exception):
    """A request the domain refuses; becomes a 4xx `{"error", "field"}` with no state change."""

    def __init__(self, status: int, error: str, field: str | None = None):
        super().__init__(error)
        self.status, self.error, self.field = status, error, field


class StoreUnavailable(Exception):
    """The shared store did not answer: the request gets a 503 and changed nothing it did not finish."""


def _ints(values=()) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


@dataclass
class Snapshot:
    """Everything the audit needs, read at one instant. Arrays are indexed by id (envelopes and cards
    from 0, drops from 1 at index 0); -1 marks "none" (a root envelope's parent)."""

    config: TargetConfig
    env_amount: np.ndarray = field(default_factory=_ints)
    env_owner: np.ndarray = field(default_factory=_ints)
    env_drop: np.ndarray = field(default_factory=_ints)
    env_parent: np.ndarray = field(default_factory=_ints)
    env_split: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # recorded as split
    drop_pool: np.ndarray = field(default_factory=_ints)  # made drops, then virtual ones (schedule.py)
    drop_left: np.ndarray = field(default_factory=_ints)
    card_owner: np.ndarray = field(default_factory=_ints)
    card_kind: np.ndarray = field(default_factory=_ints)  # index into CARD_KINDS
    cards_issued: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CARD_KINDS, 0))
    held_envelopes: tuple[np.ndarray, np.ndarray] = (_ints(), _ints())  # (user, envelope) pairs of users' indexes
    held_cards: tuple[np.ndarray, np.ndarray] = (_ints(), _ints())  # (user, card) pairs
    winnings: np.ndarray = field(default_factory=_ints)  # per user id (index 0 unused)
    users: int = 0
    friend_links: int = 0  # directed friend entries (2 per friendship)
    messages: int = 0
    card_gifts: int = 0
    draw: dict | None = None  # {"pool_fen", "winners": [ids], "share_fen", "remainder_fen"}
    ids_dense: bool = True  # every id up to each counter has its record (a half-applied step would break this)


class Store(abc.ABC):
    """All state and every operation on it; see the module docstring for the contract."""

    config: TargetConfig
    kind: str  # "memory" or "redis"

    async def start(self) -> None:
        """Open connections (called in the serving process, inside its event loop)."""

    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def authenticate(self, token: str) -> int: ...

    @abc.abstractmethod
    async def add_user(self, name: str) -> tuple[int, str]: ...

    @abc.abstractmethod
    async def add_friend(self, uid: int, friend_id: int) -> None: ...

    @abc.abstractmethod
    async def grab(self, uid: int) -> dict: ...

    @abc.abstractmethod
    async def drop_status(self) -> dict: ...

    @abc.abstractmethod
    async def admin_open_drop(self, pool_fen: int, duration_s: float, envelope_odds: float,
                              card_bounds: tuple[tuple[float, str], ...]) -> dict: ...

    @abc.abstractmethod
    async def give_card(self, uid: int, card_id: int, to: int) -> None: ...

    @abc.abstractmethod
    async def split_envelope(self, uid: int, envelope_id: int, to: list[int], amounts: list[int] | None) -> list[dict]: ...

    @abc.abstractmethod
    async def send_message(self, uid: int, to: int, text: str) -> int: ...

    @abc.abstractmethod
    async def inbox(self, uid: int, since: int, limit: int) -> tuple[list[dict], int]: ...

    @abc.abstractmethod
    async def make_draw(self) -> dict: ...

    @abc.abstractmethod
    async def me_view(self, uid: int) -> dict: ...

    @abc.abstractmethod
    async def counts(self) -> dict: ...

    @abc.abstractmethod
    async def snapshot(self) -> Snapshot: ...

    async def publish_cpu(self, pid: int, report: dict) -> None:
        """Share this process's CPU report with the others (a no-op for one process)."""

    async def cpu_reports(self) -> dict[int, dict]:
        """Every process's last published CPU report, by pid (empty for one process)."""
        return {}


def cumulative_card_odds(envelope_odds: float, card_odds: dict[str, float]) -> tuple[tuple[float, str], ...]:
    """Upper bounds of each card kind's slice of a tap, after the envelope slice."""
    acc, out = envelope_odds, []
    for kind in CARD_KINDS:
        p = card_odds.get(kind, 0.0)
        if p > 0:
            acc += p
            out.append((acc, kind))
    return tuple(out)


def admin_odds(config: TargetConfig, envelope_odds: float | None,
               card_odds: dict[str, float] | None) -> tuple[float, tuple[tuple[float, str], ...]]:
    """An admin drop's odds: the given ones, else the configured ones (shrunk to fit beside a given envelope_odds)."""
    odds = config.envelope_odds if envelope_odds is None else envelope_odds
    cards = config.card_odds if card_odds is None else card_odds
    if card_odds is None and odds + sum(cards.values()) > 1:
        scale = (1 - odds) / sum(cards.values())
        cards = {k: p * scale for k, p in cards.items()}
    if odds + sum(cards.values()) > 1 + 1e-9:
        raise Rejected(400, "envelope_odds + card_odds must add up to <= 1", "card_odds")
    return odds, cumulative_card_odds(odds, cards)
