"""The audit: every invariant the target promises, checked over a store's snapshot, pass/fail each.

Written once for both stores: `Store.snapshot()` reads the whole state at one instant (in memory:
synchronously; in Redis: one Lua script) and everything here is numpy over those arrays.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .config import CARD_KINDS
from .store import Snapshot


def _check(name: str, passed: bool, detail: str) -> dict:
    return {"name": name, "passed": bool(passed), "detail": detail}


def _digest(s: Snapshot) -> str:
    """A fingerprint of who owns what: equal before and after a rejected request or a read, different after any change."""
    h = hashlib.sha256()
    for arr in (s.env_amount, s.env_owner, s.env_split.astype(np.int64), s.card_owner, s.drop_left):
        h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
        h.update(b"|")
    h.update(f"{s.users}:{s.friend_links}:{s.messages}:{s.card_gifts}:{s.draw is not None}".encode())
    return h.hexdigest()[:16]


def _pairs_agree(pairs: tuple[np.ndarray, np.ndarray], owner: np.ndarray, wanted: np.ndarray) -> bool:
    """Users' holding indexes list exactly the items each one owns (`wanted` masks the holdable items)."""
    users, items = pairs
    if items.size and (items.min() < 0 or items.max() >= owner.size):
        return False
    listed = np.zeros(owner.size, dtype=np.int64)
    np.add.at(listed, items, 1)
    return bool(np.array_equal(listed, wanted.astype(np.int64)) and np.array_equal(owner[items], users))


def audit(s: Snapshot) -> dict:
    cfg = s.config
    amounts, parents = s.env_amount, s.env_parent
    is_root = parents < 0
    held = ~s.env_split
    fen_issued, fen_left = int(s.drop_pool.sum()), int(s.drop_left.sum())
    fen_held = int(amounts[held].sum())

    # Money from each drop: what it gave out as grabbed envelopes plus what is left is its pool.
    n_drops = s.drop_pool.size
    root_drops = s.env_drop[is_root]
    drops_known = bool(((root_drops >= 1) & (root_drops <= n_drops)).all())
    given = np.bincount(root_drops.clip(0, n_drops), weights=amounts[is_root], minlength=n_drops + 1)[1:n_drops + 1]
    per_drop_ok = drops_known and bool(np.array_equal(given.astype(np.int64) + s.drop_left, s.drop_pool))

    # A split envelope's children (those naming it as parent) sum to it; an unsplit one has none.
    child_of = parents[~is_root]
    parents_known = bool(((child_of >= 0) & (child_of < amounts.size)).all())
    kids_sum = np.bincount(child_of.clip(0), weights=amounts[~is_root], minlength=amounts.size)[:amounts.size].astype(np.int64)
    kids_n = np.bincount(child_of.clip(0), minlength=amounts.size)[:amounts.size]
    bad_splits = np.flatnonzero((s.env_split & (kids_sum != amounts)) | (~s.env_split & (kids_n > 0)))
    root_amounts = amounts[is_root]
    bounds_ok = bool(((root_amounts >= 1) & (root_amounts <= cfg.max_envelope_fen)).all() and (amounts >= 1).all())

    # One grabbed envelope per (winner, drop): a root envelope's owner is its winner (splits make new envelopes).
    pairs = s.env_owner[is_root] * (n_drops + 2) + root_drops
    doubles = int(pairs.size - np.unique(pairs).size)

    issued = {k: int(s.cards_issued.get(k, 0)) for k in CARD_KINDS}
    by_kind = np.bincount(s.card_kind, minlength=len(CARD_KINDS))
    cards_exist = {k: int(by_kind[i]) for i, k in enumerate(CARD_KINDS)}
    listed = s.held_cards[1]
    listed = listed[(listed >= 0) & (listed < s.card_kind.size)]
    held_cards_kind = np.bincount(s.card_kind[listed], minlength=len(CARD_KINDS))
    held_cards = {k: int(held_cards_kind[i]) for i, k in enumerate(CARD_KINDS)}
    over_cap = {k: n for k, n in cards_exist.items() if k in cfg.card_caps and n > cfg.card_caps[k]}
    cards_ok = held_cards == issued == cards_exist and _pairs_agree(s.held_cards, s.card_owner, np.ones(s.card_owner.size, bool))
    envelopes_indexed = _pairs_agree(s.held_envelopes, s.env_owner, held)

    draw, paid = s.draw, int(s.winnings.sum())
    if draw is None:
        draw_check = _check("draw_split_equals_pool", paid == 0, f"no draw made yet; paid {paid}")
    else:
        n = len(draw["winners"])
        ok = (draw["share_fen"] * n + draw["remainder_fen"] == draw["pool_fen"] == cfg.blessing_pool_fen
              and paid == draw["share_fen"] * n and 0 <= draw["remainder_fen"] and (n == 0 or draw["remainder_fen"] < n))
        draw_check = _check("draw_split_equals_pool", ok,
                            f"{n} winners x {draw['share_fen']} fen + remainder {draw['remainder_fen']} = {draw['pool_fen']} fen; paid {paid}")

    invariants = [
        _check("fen_issued_equals_held_plus_pools", fen_issued == fen_held + fen_left and per_drop_ok,
               f"issued {fen_issued} = held {fen_held} + left in pools {fen_left}; per drop {'ok' if per_drop_ok else 'MISMATCH'}"),
        _check("pools_never_negative", bool((s.drop_left >= 0).all()), f"{int((s.drop_left < 0).sum())} negative pools"),
        _check("envelope_amounts_in_bounds", bounds_ok, f"grabbed envelopes within 1..{cfg.max_envelope_fen} fen, every envelope >= 1 fen"),
        _check("fission_sums_to_parent", parents_known and bad_splits.size == 0,
               f"{int(s.env_split.sum())} splits, mismatched: {bad_splits[:10].tolist()}"),
        _check("one_envelope_per_user_per_drop", doubles == 0, f"{doubles} users with a second envelope from one drop"),
        _check("card_caps_respected", not over_cap, f"issued {cards_exist}, caps {dict(cfg.card_caps)}; over: {over_cap}"),
        _check("cards_conserved_by_gifts", cards_ok,
               f"held {held_cards} vs issued {issued} (cards existing {cards_exist}) after {s.card_gifts} gifts"),
        _check("holdings_indexed", envelopes_indexed, "every user's held envelopes are exactly the unsplit ones they own"),
        _check("no_half_applied_steps", s.ids_dense, "every id a counter handed out has its whole record"),
        draw_check,
    ]
    totals = {
        "fen_issued": fen_issued, "fen_held": fen_held, "fen_left_in_pools": fen_left,
        "fen_drift": fen_issued - fen_held - fen_left,
        "envelopes": int(amounts.size), "envelopes_held": int(held.sum()), "splits": int(s.env_split.sum()),
        "drops": int(n_drops), "cards_issued": issued, "cards_held": held_cards,
        "cards_over_cap": int(sum(n - cfg.card_caps[k] for k, n in over_cap.items())), "double_wins": doubles,
        "card_gifts": s.card_gifts, "users": s.users, "friendships": s.friend_links // 2, "messages": s.messages,
        "blessing_pool_fen": cfg.blessing_pool_fen, "drawn": draw is not None,
        "draw_winners": len(draw["winners"]) if draw else 0, "draw_share_fen": draw["share_fen"] if draw else 0,
        "draw_remainder_fen": draw["remainder_fen"] if draw else 0, "draw_paid_fen": paid,
        "state_digest": _digest(s),
    }
    return {"passed": all(i["passed"] for i in invariants), "invariants": invariants, "totals": totals}
