"""Reading a scenario file: YAML through the shared reader, `${ENV}` substitution in its values, the
model's validation, then the checks across fields; every error one line `path:LINE: field: what was
expected` (ScenarioError, exit 2). `scenario_faults` returns every fault at once (`gala check`)."""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gala.contract.errors import InputError
from gala.contract.yamlfile import (describe_error, fault, field_path, line_of, parse_marked, pydantic_loc, read_bytes,
                                    validation_faults)
from loadtests.scenario.feeder import feeder_faults
from loadtests.scenario.model import GALA_USERS_MODULE, GalaUserParams, PhaseSpec, Scenario, ScenarioError

# ${NAME} or ${NAME:-default} (the default also when NAME is empty, as in sh); $${ is a literal ${
_ENV_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_BODY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.S)


def _substitute(text: str, env: dict[str, str]) -> tuple[str, str | None]:
    """The text with every reference replaced, and the first problem (None when every name resolved)."""
    problem: list[str] = []

    def one(m: re.Match) -> str:
        if m.group(0) == "$${":
            return "${"
        body = _ENV_BODY.match(m.group(1))
        if body is None:
            problem.append(f"${{{m.group(1)}}} is not a variable reference; expected ${{NAME}} or "
                           "${NAME:-default} (write $${ for a literal ${)")
            return m.group(0)
        name, default = body.group(1), body.group(2)
        value = env.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is None:
            problem.append(f"${{{name}}}: the environment variable {name} is not set; set it, or write "
                           f"${{{name}:-default}}")
        else:
            problem.append(f"${{{name}}}: the environment variable {name} is empty; set it, or write "
                           f"${{{name}:-default}}")
        return m.group(0)

    out = _ENV_REF.sub(one, text)
    return out, (problem[0] if problem else None)


def substitute_env(data: Any, lines: dict, origin: str, env: dict[str, str] | None = None,
                   path: tuple = ()) -> tuple[Any, list[str]]:
    """`${NAME}` / `${NAME:-default}` in every text value (not in keys), and a fault line per unresolved one.

    Done on the parsed data, so a substituted value is text (numeric fields accept "3") and cannot add
    YAML structure. The file's sha256 stays that of its bytes.
    """
    env = os.environ if env is None else env
    faults: list[str] = []
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            out[k], more = substitute_env(v, lines, origin, env, path + (k,))
            faults += more
        return out, faults
    if isinstance(data, list):
        out_list = []
        for i, v in enumerate(data):
            value, more = substitute_env(v, lines, origin, env, path + (i,))
            out_list.append(value)
            faults += more
        return out_list, faults
    if isinstance(data, str) and "$" in data:
        value, problem = _substitute(data, env)
        if problem:
            faults.append(fault(origin, lines, path, problem))
        return value, faults
    return data, faults


def _semantic_errors(sc: Scenario) -> list[tuple[tuple, str]]:
    """Cross-field checks pydantic cannot express field by field: (field path, message), all of them."""
    errs: list[tuple[tuple, str]] = []
    seen: set[str] = set()
    for uname, u in sc.users.items():
        for ri, r in enumerate(u.requests or []):
            if r.link not in sc.links:
                errs.append((("users", uname, "requests", ri, "link"),
                             f"unknown link {r.link!r}; expected one of: {', '.join(sc.links)}"))
        for link in u.link_shares:
            if link not in sc.links:
                errs.append((("users", uname, "link_shares", link),
                             f"unknown link {link!r}; expected one of: {', '.join(sc.links)}"))
        for prefix, link in u.request_links.items():
            if link not in sc.links:
                errs.append((("users", uname, "request_links", prefix),
                             f"unknown link {link!r}; expected one of: {', '.join(sc.links)}"))
        if (u.class_path or "").startswith(GALA_USERS_MODULE + ":"):
            try:
                GalaUserParams.model_validate(u.params)
            except ValidationError as exc:
                errs += [(("users", uname, "params", *pydantic_loc(e)), describe_error(e, GalaUserParams))
                         for e in exc.errors()]
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
        phase_errs = []
        for link in p.arrival_rps or {}:
            if link not in sc.links:
                phase_errs.append((("phases", i, "arrival_rps", link),
                                   f"unknown link {link!r}; expected one of: {', '.join(sc.links)}"))
                continue
            carriers = [u for u, n in p.users.items() if n > 0 and u in sc.users and sc.users[u].shares().get(link)]
            if not carriers:
                phase_errs.append((("phases", i, "arrival_rps", link),
                                   f"no user of this phase makes {link!r} requests; expected users whose requests "
                                   "(or link_shares) include that link"))
        errs += phase_errs
        if p.arrival_rps and not phase_errs and all(u in sc.users for u in p.users):
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


def scale_users(sc: Scenario, scale: float) -> None:
    """Multiply every phase's user counts by `scale` (a class with users keeps at least one)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ScenarioError(f"users scale: expected a number > 0, got {scale}")
    for p in sc.phases:
        p.users = {k: (max(1, round(n * scale)) if n > 0 else 0) for k, n in p.users.items()}
    sc._users_scale = scale


def scenario_faults(path: str | Path, *, duration_scale: float = 1.0, seed: int | None = None,
                    users_scale: float | None = None, spawn_rate: float | None = None,
                    env: dict[str, str] | None = None) -> tuple[Scenario | None, list[str]]:
    """Read a scenario file: (the scenario, []) or (None, every fault found, one line each).

    A file that cannot be read or parsed gives one fault; otherwise every unresolved `${ENV}`, every
    field the model rejects, and every cross-field fault are listed.
    """
    path = Path(path)
    if not (duration_scale > 0 and math.isfinite(duration_scale)):
        return None, [f"--duration-scale: expected a number > 0, got {duration_scale}"]
    try:
        data_bytes = read_bytes(path, "scenario")
        raw, lines = parse_marked(data_bytes.decode("utf-8"), str(path))
    except UnicodeDecodeError as exc:
        line = data_bytes[:exc.start].count(b"\n") + 1
        return None, [f"{path}:{line}: not UTF-8 text; expected a YAML scenario"]
    except InputError as exc:
        return None, [str(exc)]
    if not isinstance(raw, dict):
        return None, [f"{path}:1: expected a mapping with name, links, users, phases (see loadtests/scenarios/feb1.yaml)"]
    raw, faults = substitute_env(raw, lines, str(path), env)
    sc, more = validation_faults(Scenario, raw, lines, str(path))
    faults += more
    if sc is None or faults:
        return None, faults
    sc._duration_scale = duration_scale
    sc._source_path = path.resolve()
    sc._sha256 = hashlib.sha256(data_bytes).hexdigest()
    sc._lines = lines
    faults = [f"{path}:{line_of(lines, loc)}: {field_path(loc)}: {msg}" for loc, msg in _semantic_errors(sc)]
    faults += feeder_faults(sc, str(path))
    if faults:
        return None, faults
    if seed is not None:
        sc.seed = seed
    if users_scale is not None and users_scale != 1.0:
        try:
            scale_users(sc, users_scale)
        except ScenarioError as exc:
            return None, [str(exc)]
    if spawn_rate is not None:
        if not (spawn_rate > 0 and math.isfinite(spawn_rate)):
            return None, [f"-r/--spawn-rate: expected users per second > 0, got {spawn_rate}"]
        for p in sc.phases:
            p.spawn_rate = spawn_rate
    return sc, []


def load_scenario(path: str | Path, *, duration_scale: float = 1.0, seed: int | None = None,
                  users_scale: float | None = None, spawn_rate: float | None = None) -> Scenario:
    """Read and validate a scenario file; raise ScenarioError (one line: `path:LINE: field: expected`).

    `users_scale` multiplies every phase's users (`gala run -u`); `spawn_rate` sets every phase's ramp (`-r`).
    """
    sc, faults = scenario_faults(path, duration_scale=duration_scale, seed=seed, users_scale=users_scale,
                                 spawn_rate=spawn_rate)
    if faults:
        raise ScenarioError(faults[0])
    return sc
