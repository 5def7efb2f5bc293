"""What a valid scenario cannot do: checks that need the phases as they will run, not one field.

A scenario can be well-formed and still not work: an arrival rate its users cannot carry, a phase to
which no request will ever be attributed. `plan_findings` finds them before any load (`gala check`,
and `gala run` before it starts anything): faults (the run would not measure what the file asks) and
notes (worth knowing, harmless). Pure: reads a loaded `Scenario`.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from gala.contract.yamlfile import fault, shown_path
from loadtests.scenario.model import GALA_USERS_MODULE, Scenario
from loadtests.scenario.timing import phase_times, segments

# A user makes one request at a time and waits for each reply before its next action, so its rate is at
# most 1 / (reply time + its own overhead). 50 actions/s leaves 20 ms per action: already more than a
# loopback target answers under load (feb1's chat-phase median on a busy 2-core machine: 1-31 ms), and
# above it Locust's own per-request cost starts to count. Above this, add users instead.
MAX_USER_RATE_PER_S = 50.0


@dataclass
class Findings:
    faults: list[str] = field(default_factory=list)   # the run would not do what the file asks: exit 2
    notes: list[str] = field(default_factory=list)    # worth knowing; the run is fine
    # user -> class_path whose module was found and names the class, but only an import can tell whether it
    # is a Locust User class (done in a child process: loadtests.locust_plugin.classcheck, via gala check)
    to_import: dict[str, str] = field(default_factory=dict)


def owned_seconds(sc: Scenario) -> list[float]:
    """Per phase, the seconds of the run it owns (the requests made then are attributed to it)."""
    times = phase_times(sc)
    owned = [0.0] * len(times)
    for t0, t1, own, _active in segments(times):
        owned[own] += t1 - t0
    return owned


def _origin(sc: Scenario) -> str:
    """The scenario's file as a person gave it: relative to the working directory when inside it."""
    return sc.name if sc.source_path is None else shown_path(sc.source_path)


def _where(sc: Scenario, loc: tuple, message: str) -> str:
    return fault(_origin(sc), sc.lines, loc, message)


def class_path_fault(sc: Scenario, user: str, message: str) -> str:
    """A fault of a user's `class_path`, on its line of the scenario."""
    return _where(sc, ("users", user, "class_path"), message)


def plan_findings(sc: Scenario) -> Findings:
    """Every fault and note of the scenario's plan (`MAX_USER_RATE_PER_S`, phases owning no time, gaps)."""
    out = Findings()
    plans = sc.planned_phases()
    owned = owned_seconds(sc)
    for i, (p, plan) in enumerate(zip(sc.phases, plans)):
        if owned[i] <= 0:
            out.faults.append(_where(sc, ("phases", i), (
                f"phase {p.name!r} owns no time: from {plan.start_s:g} to {plan.end_s:g} s a later-started phase "
                "is always running, so no request is attributed to it; expected it to start after, or end "
                "later than, the phases that cover it")))
        for u, n in p.users.items():
            rate = plan.user_rate_per_s.get(u)
            if not n or rate is None or sc.users[u].pacing == "none" or rate <= MAX_USER_RATE_PER_S:
                continue
            arrival = [link for link in (p.arrival_rps or {}) if sc.users[u].shares().get(link)]
            loc = ("phases", i, "arrival_rps", arrival[0]) if arrival else ("users", u, "rate_per_s")
            need = n * rate / MAX_USER_RATE_PER_S
            out.faults.append(_where(sc, loc, (
                f"phase {p.name!r} asks each of its {n} {u} users for {rate:,.1f} actions/s, more than the "
                f"{MAX_USER_RATE_PER_S:g}/s one user can make (it waits for each reply); expected at least "
                f"{int(need) + 1} {u} users in phases[{i}].users, or a lower rate")))
    out.notes += _gaps(sc, plans) + _idle(sc)
    out.faults += _class_paths(sc, out.to_import)
    return out


def _module_source(dotted: str, dirs: list[str]) -> Path | None:
    """The file of a module, found without importing it (a user's locustfile would bring Locust in):
    beside the scenario or in the working directory (Locust's process has both on its path), else through
    Python's own finders for the top-level package (an installed or editable package), then its folders."""
    parts = dotted.split(".")

    def within(roots: list[str], names: list[str]) -> Path | None:
        for root in roots:
            base = Path(root or ".").joinpath(*names)
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                try:
                    if candidate.is_file():
                        return candidate
                except OSError:  # a name too long for the filesystem: not there
                    continue
        return None

    found = within(dirs, parts)
    if found is not None:
        return found
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: found, not imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    return within(list(spec.submodule_search_locations or []), parts[1:])


def _class_paths(sc: Scenario, to_import: dict[str, str]) -> list[str]:
    """A `class_path` whose module cannot be found (beside the scenario or on sys.path), or whose module
    neither defines nor imports the class: a fault now, not a Locust that fails to start. The others of
    gala's own users module are its classes (each a user); any other goes into `to_import`."""
    dirs = [str(sc.source_path.parent)] if sc.source_path else []
    dirs.append(str(Path.cwd()))
    faults = []
    for name, u in sc.users.items():
        if u.class_path is None:
            continue
        module, _, cls = u.class_path.partition(":")
        if "" in module.split("."):
            faults.append(class_path_fault(sc, name, f"{module!r} is not a module name; expected module:Class, the "
                                                     "module dotted like package.module"))
            continue
        source = _module_source(module, dirs)
        if source is None:
            faults.append(class_path_fault(sc, name, f"cannot find module {module!r} (looked beside the scenario "
                                                     "and on the Python path); expected module:Class"))
            continue
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL byte
            faults.append(class_path_fault(sc, name, f"cannot read {source} ({exc}); expected a Python module"))
            continue
        classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
        defined = classes | {a.asname or a.name for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                             for a in n.names}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        if module == GALA_USERS_MODULE and cls not in classes:
            faults.append(class_path_fault(sc, name, f"{source} has no user class {cls!r}; expected one of: "
                                                     f"{', '.join(sorted(classes))}"))
        elif cls not in classes and cls in {n.name for n in tree.body
                                            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}:
            faults.append(class_path_fault(sc, name, f"{cls!r} in {source} is a function; expected a Locust User "
                                                     "class (a subclass of HttpUser, FastHttpUser or locust.User)"))
        elif cls not in defined:
            faults.append(class_path_fault(sc, name, f"{source} has no class {cls!r}"))
        elif module != GALA_USERS_MODULE:
            to_import[name] = u.class_path
    return faults


def _gaps(sc: Scenario, plans) -> list[str]:
    """Stretches of the run with no phase running (its users stop), said as notes."""
    notes, covered_to = [], 0.0
    for p in sorted(plans, key=lambda q: q.start_s):
        if p.start_s > covered_to + 1e-9:
            notes.append(f"{_origin(sc)}: no phase runs from {covered_to:g} to {p.start_s:g} s: no users then")
        covered_to = max(covered_to, p.end_s)
    return notes


def _idle(sc: Scenario) -> list[str]:
    """Users no phase runs, links no user is known to load, users with no pace (intended rate unknown)."""
    notes = []
    running = {u for p in sc.phases for u, n in p.users.items() if n}
    for u in sc.users:
        if u not in running:
            notes.append(_where(sc, ("users", u), f"user {u!r} runs in no phase"))
        elif sc.users[u].pacing == "none":
            notes.append(_where(sc, ("users", u, "pacing"), f"user {u!r} has pacing: none (as fast as the target "
                                                             "answers): its intended rate is unknown"))
        elif not sc.users[u].shares():
            notes.append(_where(sc, ("users", u), f"user {u!r} has no link_shares: its requests count, but "
                                                  "no intended rate per link can be given"))
    known = {link for u in sc.users.values() for link in u.shares()}
    for link in sc.links:
        if link not in known:
            notes.append(_where(sc, ("links", link), f"no user's requests or link_shares name link {link!r}: "
                                                     "its intended rate is unknown"))
    return notes
