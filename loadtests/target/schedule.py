"""The drop schedule as pure arithmetic on elapsed seconds, shared by both stores.

A scheduled drop exists from the moment the clock opens its window, whether or not anyone looked:
a store materialises the slots opened so far (in opening order, so drop ids follow the clock) when
a grab or an admin drop writes, and a reader (`GET /drop`, `/metrics`, the audit) sees the slots
that are open but not yet materialised as *virtual* drops with their full pool. So reading never
changes state, and the state a reader sees is the state the next writer will make.
The Redis store's Lua scripts (lua/prelude.lua) repeat `slots_opened` and `open_slot`: keep them in step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import DropSchedule


def slots_opened(s: DropSchedule, elapsed_s: float) -> int:
    """How many scheduled slots have opened by `elapsed_s` seconds after the start."""
    t = elapsed_s - s.first_at_s
    if t < 0:
        return 0
    k = math.floor(t / s.interval_s) + 1
    return k if s.count is None else min(k, s.count)


def open_slot(s: DropSchedule, elapsed_s: float) -> int | None:
    """The slot whose window contains `elapsed_s`, or None."""
    t = elapsed_s - s.first_at_s
    if t < 0:
        return None
    k = math.floor(t / s.interval_s)
    if (s.count is not None and k >= s.count) or t - k * s.interval_s >= s.duration_s:
        return None
    return k


def next_in_s(s: DropSchedule, elapsed_s: float) -> float | None:
    """Seconds until the next slot opens, or None when no scheduled slot remains."""
    nxt = slots_opened(s, elapsed_s) if elapsed_s >= s.first_at_s else 0
    if s.count is not None and nxt >= s.count:
        return None
    return s.first_at_s + nxt * s.interval_s - elapsed_s


def slot_opens_s(s: DropSchedule, k: int) -> float:
    return s.first_at_s + k * s.interval_s


def slot_pool_fen(s: DropSchedule, k: int) -> int:
    return s.pool_fen[k % len(s.pool_fen)]


@dataclass(frozen=True, slots=True)
class DropSeen:
    """One drop as a store holds it (times in seconds since the store's start)."""

    drop_id: int
    pool_left_fen: int
    closes_s: float


def status_view(s: DropSchedule, elapsed_s: float, admin: DropSeen | None, slot_drop: DropSeen | None,
                slots_done: int, drops_made: int) -> dict:
    """`GET /drop` from what a store read: its admin drop, the open slot's drop if made, and counts.

    An admin drop that is open wins; else the open slot's drop (virtual when not yet made, with
    the id the next writer will give it). A slot an admin drop closed early shows as closed.
    """
    nxt = next_in_s(s, elapsed_s)
    nxt = None if nxt is None else round(nxt, 3)
    seen = None
    if admin is not None and elapsed_s < admin.closes_s:
        seen = admin
    else:
        k = open_slot(s, elapsed_s)
        if k is not None and k < slots_done:
            seen = slot_drop if slot_drop is not None and elapsed_s < slot_drop.closes_s else None
        elif k is not None:
            seen = DropSeen(drops_made + (k - slots_done) + 1, slot_pool_fen(s, k), slot_opens_s(s, k) + s.duration_s)
    if seen is None:
        return {"open": False, "drop_id": None, "pool_left_fen": None, "closes_in_s": None, "next_in_s": nxt}
    return {"open": True, "drop_id": seen.drop_id, "pool_left_fen": seen.pool_left_fen,
            "closes_in_s": round(seen.closes_s - elapsed_s, 3), "next_in_s": nxt}


def virtual_pools(s: DropSchedule, elapsed_s: float, slots_done: int) -> list[int]:
    """Pools of the slots opened by now but not yet made (each still whole), in opening order."""
    return [slot_pool_fen(s, k) for k in range(slots_done, slots_opened(s, elapsed_s))]
