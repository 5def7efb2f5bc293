"""The audit: every invariant the target promises, checked over the whole state, pass/fail each.

Called synchronously from the handler, so it sees one consistent snapshot (nothing interleaves).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .config import CARD_KINDS
from .state import State


def _check(name: str, passed: bool, detail: str) -> dict:
    return {"name": name, "passed": bool(passed), "detail": detail}


def _digest(state: State, amounts: np.ndarray, owners: np.ndarray, split: np.ndarray, card_owners: np.ndarray) -> str:
    """A fingerprint of who owns what: equal before and after a rejected request, different after any change."""
    h = hashlib.sha256()
    for arr in (amounts, owners, split, card_owners, np.array([d.pool_left_fen for d in state.drops], dtype=np.int64)):
        h.update(arr.tobytes())
        h.update(b"|")
    friendships = sum(len(u.friends) for u in state.users[1:])
    h.update(f"{len(state.users)}:{friendships}:{state.messages}:{state.card_gifts}:{state.draw is not None}".encode())
    return h.hexdigest()[:16]


def audit(state: State) -> dict:
    cfg = state.config
    envs = state.envelopes
    amounts = np.fromiter((e.amount_fen for e in envs), dtype=np.int64, count=len(envs))
    owners = np.fromiter((e.owner for e in envs), dtype=np.int64, count=len(envs))
    drop_ids = np.fromiter((e.drop_id for e in envs), dtype=np.int64, count=len(envs))
    is_root = np.fromiter((e.parent_id is None for e in envs), dtype=bool, count=len(envs))
    is_split = np.fromiter((bool(e.children) for e in envs), dtype=bool, count=len(envs))
    held = ~is_split

    pools = np.array([d.pool_fen for d in state.drops], dtype=np.int64)
    left = np.array([d.pool_left_fen for d in state.drops], dtype=np.int64)
    fen_issued, fen_left = int(pools.sum()), int(left.sum())
    fen_held = int(amounts[held].sum())

    # Money from each drop: what it gave out as grabbed envelopes plus what is left is its pool.
    given = np.bincount(drop_ids[is_root], weights=amounts[is_root], minlength=len(pools) + 1)[1:].astype(np.int64)
    per_drop_ok = bool(np.array_equal(given + left, pools))

    bad_splits = [e.id for e in envs if e.children and sum(envs[c].amount_fen for c in e.children) != e.amount_fen]
    root_amounts = amounts[is_root]
    bounds_ok = bool(((root_amounts >= 1) & (root_amounts <= cfg.max_envelope_fen)).all() and (amounts >= 1).all())

    # One grabbed envelope per (winner, drop): a root envelope's owner is its winner (splits make new envelopes).
    pairs = owners[is_root] * (len(state.drops) + 2) + drop_ids[is_root]
    doubles = int(len(pairs) - len(np.unique(pairs)))

    card_owners = np.fromiter((c.owner for c in state.cards), dtype=np.int64, count=len(state.cards))
    held_cards = {k: sum(len(u.cards[k]) for u in state.users[1:]) for k in CARD_KINDS}
    owners_agree = all(c.id in state.users[c.owner].cards[c.kind] for c in state.cards)
    over_cap = {k: n for k, n in state.cards_issued.items() if k in cfg.card_caps and n > cfg.card_caps[k]}

    draw = state.draw
    if draw is None:
        draw_check = _check("draw_split_equals_pool", True, "no draw made yet")
        paid = 0
    else:
        paid = sum(u.winnings_fen for u in state.users[1:])
        ok = (draw.share_fen * len(draw.winners) + draw.remainder_fen == draw.pool_fen == cfg.blessing_pool_fen
              and paid == draw.share_fen * len(draw.winners) and 0 <= draw.remainder_fen)
        draw_check = _check("draw_split_equals_pool", ok,
                            f"{len(draw.winners)} winners x {draw.share_fen} fen + remainder {draw.remainder_fen} = {draw.pool_fen} fen; paid {paid}")

    invariants = [
        _check("fen_issued_equals_held_plus_pools", fen_issued == fen_held + fen_left and per_drop_ok,
               f"issued {fen_issued} = held {fen_held} + left in pools {fen_left}; per drop {'ok' if per_drop_ok else 'MISMATCH'}"),
        _check("pools_never_negative", bool((left >= 0).all()), f"{int((left < 0).sum())} negative pools"),
        _check("envelope_amounts_in_bounds", bounds_ok, f"grabbed envelopes within 1..{cfg.max_envelope_fen} fen, every envelope >= 1 fen"),
        _check("fission_sums_to_parent", not bad_splits, f"{int(is_split.sum())} splits, mismatched: {bad_splits[:10]}"),
        _check("one_envelope_per_user_per_drop", doubles == 0, f"{doubles} users with a second envelope from one drop"),
        _check("card_caps_respected", not over_cap, f"issued {state.cards_issued}, caps {dict(cfg.card_caps)}; over: {over_cap}"),
        _check("cards_conserved_by_gifts", held_cards == state.cards_issued and owners_agree,
               f"held {held_cards} vs issued {state.cards_issued} after {state.card_gifts} gifts"),
        draw_check,
    ]
    totals = {
        "fen_issued": fen_issued, "fen_held": fen_held, "fen_left_in_pools": fen_left,
        "envelopes": len(envs), "envelopes_held": int(held.sum()), "splits": int(is_split.sum()),
        "drops": len(state.drops), "cards_issued": dict(state.cards_issued), "cards_held": held_cards,
        "card_gifts": state.card_gifts, "users": len(state.users) - 1,
        "friendships": sum(len(u.friends) for u in state.users[1:]) // 2, "messages": state.messages,
        "blessing_pool_fen": cfg.blessing_pool_fen, "drawn": draw is not None,
        "draw_winners": len(draw.winners) if draw else 0, "draw_share_fen": draw.share_fen if draw else 0,
        "draw_remainder_fen": draw.remainder_fen if draw else 0, "draw_paid_fen": paid,
        "state_digest": _digest(state, amounts, owners, is_split, card_owners),
    }
    return {"passed": all(i["passed"] for i in invariants), "invariants": invariants, "totals": totals}
