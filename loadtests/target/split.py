"""Pure money arithmetic in whole fen: the five-card draw's equal split and the fission split.

No I/O and no state, so property tests can call these directly. A split never creates or loses a fen.
"""

from __future__ import annotations

import random


def split_pool_equally(pool_fen: int, winners: int) -> tuple[int, int]:
    """Share per winner and the remainder: share * winners + remainder == pool_fen, 0 <= remainder < winners.

    With no winners the whole pool is the remainder (recorded, never lost).
    """
    if pool_fen < 0 or winners < 0:
        raise ValueError("pool_fen and winners must be >= 0")
    if winners == 0:
        return 0, pool_fen
    return divmod(pool_fen, winners)


def random_split(amount_fen: int, ways: int, rng: random.Random) -> list[int]:
    """Split amount_fen into `ways` random whole-fen parts, each >= 1, summing exactly to amount_fen."""
    if ways < 1 or amount_fen < ways:
        raise ValueError(f"cannot split {amount_fen} fen {ways} ways with at least 1 fen each")
    # ways-1 distinct cut points in 1..amount-1 give parts >= 1 that telescope to the amount.
    cuts = sorted(rng.sample(range(1, amount_fen), ways - 1))
    edges = [0, *cuts, amount_fen]
    return [b - a for a, b in zip(edges, edges[1:])]


def envelope_amount(pool_left_fen: int, max_envelope_fen: int, rng: random.Random) -> int:
    """One grabbed envelope: uniform in 1..min(max, pool left); never more than the pool holds."""
    return rng.randint(1, min(max_envelope_fen, pool_left_fen))
