"""Reading a scenario file: YAML through the shared reader, the model's validation, then the checks
across fields; every error one line `path:LINE: field: what was expected` (ScenarioError, exit 2)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from gala.contract.errors import InputError
from gala.contract.yamlfile import field_path, line_of, parse_marked, read_bytes, validate_marked
from loadtests.scenario.model import PhaseSpec, Scenario, ScenarioError

def _semantic_errors(sc: Scenario) -> list[tuple[tuple, str]]:
    """Cross-field checks pydantic cannot express field by field: (field path, message)."""
    errs: list[tuple[tuple, str]] = []
    seen: set[str] = set()
    for ui, (uname, u) in enumerate(sc.users.items()):
        for ri, r in enumerate(u.requests or []):
            if r.link not in sc.links:
                errs.append((("users", uname, "requests", ri, "link"),
                             f"unknown link {r.link!r}; expected one of: {', '.join(sc.links)}"))
        for link in u.link_shares:
            if link not in sc.links:
                errs.append((("users", uname, "link_shares", link),
                             f"unknown link {link!r}; expected one of: {', '.join(sc.links)}"))
    for i, p in enumerate(sc.phases):
        if p.name in seen:
            errs.append((("phases", i, "name"), f"duplicate phase name {p.name!r}; expected unique names"))
        seen.add(p.name)
        for uname in p.users:
            if uname not in sc.users:
                errs.append((("phases", i, "users", uname),
                             f"unknown user {uname!r}; expected one of: {', '.join(sc.users)}"))
        if not p.users and not p.arrival_rps:
            errs.append((("phases", i), "expected users (a count per user class) or arrival_rps"))
        for link in p.arrival_rps or {}:
            if link not in sc.links:
                errs.append((("phases", i, "arrival_rps", link),
                             f"unknown link {link!r}; expected one of: {', '.join(sc.links)}"))
                continue
            carriers = [u for u, n in p.users.items() if n > 0 and u in sc.users and sc.users[u].shares().get(link)]
            if not carriers:
                errs.append((("phases", i, "arrival_rps", link),
                             f"no user of this phase makes {link!r} requests; expected users whose requests "
                             "(or link_shares) include that link"))
        if p.arrival_rps and not errs:
            errs.extend(_arrival_conflicts(sc, i, p))
    return errs


def _arrival_conflicts(sc: Scenario, i: int, p: PhaseSpec) -> list[tuple[tuple, str]]:
    """A user class carrying two arrival links must be asked consistent rates (one pace serves both)."""
    errs = []
    for u, n in p.users.items():
        shares = sc.users[u].shares()
        asked = [(link, rps / shares[link]) for link, rps in p.arrival_rps.items() if shares.get(link)]
        if len(asked) > 1:
            lo, hi = min(a[1] for a in asked), max(a[1] for a in asked)
            if hi > lo * 1.01:
                errs.append((("phases", i, "arrival_rps"),
                             f"user {u!r} carries links {', '.join(a[0] for a in asked)} whose rates disagree with "
                             "its request weights; expected rates in the proportion of its weights"))
    return errs


def load_scenario(path: str | Path, *, duration_scale: float = 1.0, seed: int | None = None) -> Scenario:
    """Read and validate a scenario file; raise ScenarioError (one line: `path:LINE: field: expected`)."""
    path = Path(path)
    if not (duration_scale > 0 and math.isfinite(duration_scale)):
        raise ScenarioError(f"--duration-scale: expected a number > 0, got {duration_scale}")
    try:
        data_bytes = read_bytes(path, "scenario")
        raw, lines = parse_marked(data_bytes.decode("utf-8"), str(path))
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}:1: not UTF-8 text; expected a YAML scenario") from None
    except InputError as exc:
        raise ScenarioError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}:1: expected a mapping with name, links, users, phases (see loadtests/scenarios/feb1.yaml)")
    sc = validate_marked(Scenario, raw, lines, str(path), error=ScenarioError)
    errs = _semantic_errors(sc)
    if errs:
        loc, msg = errs[0]
        raise ScenarioError(f"{path}:{line_of(lines, loc)}: {field_path(loc)}: {msg}")
    sc._duration_scale = duration_scale
    sc._source_path = path.resolve()
    sc._sha256 = hashlib.sha256(data_bytes).hexdigest()
    if seed is not None:
        sc.seed = seed
    return sc
