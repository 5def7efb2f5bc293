"""The week's re-allocation (issue 10): from the allocation in force to the new plan, within one fleet.

After 1 February the team moved nearly 10,000 servers in a week. Given the allocation in force (the
grab-only plan's, or an allocation.csv) and the new plan's nodes per link and zone, the fewest moves:
every moved node goes from a link (or the fleet's spare nodes) that has more than the new plan needs
to one that has less, in the same zone first, then across zones; what no surplus covers must be added.
No move is wasted, so the count is the least possible: the sum of the deficits the surplus can cover.
The fleet is the node budget when the allocation in force fits within it (the rest is spare), else
the allocation in force itself. Pure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from capacity_model.contracts import Allocation, Move, Reallocation
from capacity_model.contracts.spec import MAX_NODES
from gala.contract.errors import InputError

SPARE, ADDED = "spare", "added"


def per_zone(allocation: Allocation) -> dict[str, list[int]]:
    return {a.link: list(a.nodes_per_zone) if a.nodes_per_zone else [a.nodes] for a in allocation.links}


def read_allocation(path: Path, zones: int) -> dict[str, list[int]]:
    """An allocation.csv (gala plan's, or one of yours): `link` and `nodes_per_zone` ("a b c") or `nodes`."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable allocation CSV ({exc})") from None
    if "link" not in frame.columns or not ({"nodes_per_zone", "nodes"} & set(frame.columns)):
        raise InputError(f"{path}: expected columns link and nodes_per_zone (space-separated, one per zone) or nodes")
    out = {}
    for i, row in frame.iterrows():
        line = f"{path}:{i + 2}"
        per = str(row.get("nodes_per_zone", "")) if "nodes_per_zone" in frame.columns else ""
        try:
            if per.strip() and per != "nan":
                values = [int(float(v)) for v in per.split()]
            else:
                n = int(float(row["nodes"]))
                values = [n // zones + (1 if z < n % zones else 0) for z in range(zones)]
        except (ValueError, KeyError, OverflowError):
            raise InputError(f"{line}: expected whole node counts for link {row['link']!r}") from None
        if len(values) != zones or min(values) < 0 or sum(values) > MAX_NODES:
            raise InputError(f"{line}: expected {zones} node counts (one per zone), each >= 0 and {MAX_NODES:,} in "
                             f"all at most, for {row['link']!r}, got {per or row.get('nodes')}")
        out[str(row["link"])] = values
    return out


def reallocate(in_force: dict[str, list[int]], new: dict[str, list[int]], *, node_budget: int,
               source: str, keep: list[str] | None = None) -> Reallocation:
    """The fewest moves from `in_force` to `new` (link -> nodes per zone). Links in `keep` (not sized by
    the new plan) keep what they hold."""
    zones = max([len(v) for v in [*in_force.values(), *new.values()]] or [1])
    links = list(dict.fromkeys([*new, *in_force]))
    old = {l: np.array(in_force.get(l, [0] * zones), dtype=int) for l in links}
    want = {l: (old[l].copy() if l in (keep or []) or l not in new else np.array(new[l], dtype=int)) for l in links}
    held = int(sum(v.sum() for v in old.values()))
    fleet = max(node_budget, held)
    spare_total = fleet - held
    spare = np.array([spare_total // zones + (1 if z < spare_total % zones else 0) for z in range(zones)])
    surplus = {(l, z): int(max(old[l][z] - want[l][z], 0)) for l in links for z in range(zones)}
    deficit = {(l, z): int(max(want[l][z] - old[l][z], 0)) for l in links for z in range(zones)}
    for z in range(zones):
        surplus[(SPARE, z)] = int(spare[z])
    moves: list[Move] = []

    def give(to: tuple[str, int], sources: list[tuple[str, int]]) -> None:
        for src in sources:
            n = min(deficit[to], surplus[src])
            if n > 0:
                moves.append(Move(zone=to[1] + 1, from_zone=src[1] + 1, from_link=src[0], to_link=to[0], nodes=n))
                deficit[to] -= n
                surplus[src] -= n

    order = sorted(deficit, key=lambda k: -deficit[k])
    for to in order:  # the same zone first: links with surplus, then the zone's spare nodes
        give(to, sorted([(l, to[1]) for l in links if surplus[(l, to[1])] > 0], key=lambda k: -surplus[k])
             + [(SPARE, to[1])])
    for to in order:  # then across zones
        give(to, sorted([k for k in surplus if surplus[k] > 0 and k[1] != to[1]], key=lambda k: -surplus[k]))
    added = 0
    for to in order:
        if deficit[to] > 0:
            moves.append(Move(zone=to[1] + 1, from_zone=to[1] + 1, from_link=ADDED, to_link=to[0], nodes=deficit[to]))
            added += deficit[to]
            deficit[to] = 0
    for (l, z), n in surplus.items():
        if n > 0 and l != SPARE:
            moves.append(Move(zone=z + 1, from_zone=z + 1, from_link=l, to_link=SPARE, nodes=n))
    rows = [{"link": l, "zone": z + 1, "in_force": int(old[l][z]), "new": int(want[l][z]),
             "delta": int(want[l][z] - old[l][z])} for l in links for z in range(zones)]
    moved = sum(m.nodes for m in moves if m.from_link not in (ADDED,) and m.to_link != SPARE)
    need = int(sum(v.sum() for v in want.values()))
    return Reallocation(source=source, fleet_nodes=fleet, needed_nodes=need, moved_nodes=moved, added_nodes=added,
                        fleet_suffices=added == 0, per_link=rows, moves=moves)


def moves_frame(r: Reallocation) -> pd.DataFrame:
    """moves.csv: one row per move."""
    return pd.DataFrame([m.model_dump() for m in r.moves],
                        columns=["zone", "from_zone", "from_link", "to_link", "nodes"])
