"""The speed reference's work: the fixed piece of interpreter work whose units per CPU-second are the
results' speed unit (run.json `machine.speed_ref_*`, link_cpu.csv's `_speed` rows, the spec's
`node.speed_units_per_cpu_s`).

It lives in the contract because two parts measure it and their figures must compare: the gala
process measures it at a run's start and end (`loadtests.orchestrator.speed`), the built-in target
measures it in slices through the run on its own core (`loadtests.target.speedtrack`). What a unit
is: one interpreter-bound request's worth (parse a JSON body, update a few dicts, split a sum in
whole fen, encode a reply), pure Python and the standard library, deterministic, checked by a sum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

BENCHMARK = "gala-speed-1"  # change the name whenever the work changes: only like compares with like
UNITS = 400                 # work units per batch (~6 ms of CPU on a 2.8 GHz Xeon core)
ACCOUNTS = 997              # distinct users the work touches (a prime: every residue is visited)


def unit(i: int, accounts: dict) -> int:
    """One request's worth of interpreter work; returns a number for the checksum."""
    body = json.dumps({"user": f"u{i % ACCOUNTS}", "drop": i % 7, "taps": 1 + i % 13, "token": f"{i:016x}"})
    req = json.loads(body)
    acct = accounts[req["user"]]
    # a deterministic split of an 8.80-yuan cap in whole fen (an LCG: no random module state)
    x = (i * 1103515245 + 12345) & 0x7FFFFFFF
    shares = [1 + (x >> s) % 88 for s in range(0, 20, 2)][: req["taps"]]
    fen = sum(shares)
    acct["fen"] += fen
    acct["cards"][x % 5] += 1
    recent = acct["recent"]
    recent.append(fen)
    if len(recent) > 8:
        del recent[0]
    query = "&".join(f"{k}={v}" for k, v in sorted(req.items()))
    reply = json.dumps({"ok": True, "fen": fen, "balance": acct["fen"], "top": max(recent), "echo": query})
    return len(reply) + fen


def fresh_accounts() -> dict:
    # every batch starts from the same state, so every unit does the same work whatever the batch size
    return {f"u{k}": {"fen": 0, "cards": [0, 0, 0, 0, 0], "recent": []} for k in range(ACCOUNTS)}


def batch(units: int = UNITS) -> int:
    """One whole batch; returns its checksum."""
    accounts = fresh_accounts()
    return sum(unit(i, accounts) for i in range(units))


def batch_in_slices(units: int = UNITS, per_slice: int = 50) -> Iterator[int]:
    """The same batch as `batch(units)`, cut into slices of `per_slice` units: each `next()` does one
    slice (the first also builds the batch's state) and yields the units it did. The generator's return
    value is the batch's checksum, equal to `batch(units)`'s."""
    accounts, total = fresh_accounts(), 0
    for start in range(0, units, per_slice):
        stop = min(start + per_slice, units)
        total += sum(unit(i, accounts) for i in range(start, stop))
        yield stop - start
    return total
