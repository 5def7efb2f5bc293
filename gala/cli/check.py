"""`gala check`: hold a scenario (and budgets, a capacity spec) to every check `gala run` makes, without
sending load: every fault at once, the planned phases, users and intended req/s per link, exit 0 or 2.

The checks live in the parts they belong to (`loadtests.scenario` for the scenario, `gala.gate.budgets`
for budgets against it, `capacity_model.spec` for the spec against it); this module composes them, and
`gala run` and `gala swarm` call `check_inputs` before they start anything. Kept fast: no pandas, scipy or
Locust here (a user's own Locust class is imported in a child process: loadtests/locust_plugin/classcheck.py).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gala.contract.errors import ExitCode, InputError, exit_codes_help

EPILOG = """\
what it checks:
  the scenario: every field (all faults at once, FILE:LINE: field: what was expected), unset ${ENV}
    variables, feeder CSVs (1 MiB, 100,000 rows, 100 columns; ragged rows, NUL, not UTF-8), links and users
    named across fields; then what cannot work: a per-user rate above 50 actions/s (an arrival_rps its users
    cannot carry), a phase that owns no time, a class_path that is no Locust User class (imported in a
    child process: the gala process stays out of Locust)
  --budgets: every budget's link and phase exist in the scenario; achieved-ratio budgets have an intended rate
  --spec: the capacity spec's planned links and what-if phases exist in the scenario

""" + exit_codes_help(ExitCode.OK, ExitCode.BAD_INPUT, ok="every check passes (notes may be printed)") + """

examples:
  gala check loadtests/scenarios/feb1.yaml --budgets loadtests/scenarios/feb1.budgets.yaml
  gala check my-system.yaml --duration-scale 0.3 -u 100
"""


@dataclass
class CheckReport:
    """What the checks found: the scenario as it would run (None when it cannot be read), faults, notes."""

    scenario: object | None
    faults: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    budgets: object | None = None


def users_scale_for(scenario_path: Path, users: int | None) -> float | None:
    """`-u N`: the factor that makes the scenario's busiest moment run N users in all."""
    if users is None:
        return None
    if users < 1:
        raise InputError(f"-u/--users: expected a count >= 1, got {users}")
    from loadtests.scenario.load import scenario_faults

    sc, faults = scenario_faults(scenario_path)
    if faults:
        return None  # the checks list every fault of the file; there is nothing to scale yet
    peak = sc.peak_users
    if peak < 1:
        raise InputError(f"-u/--users: {scenario_path} runs no users to scale")
    return users / peak


def check_inputs(scenario_path: Path, budgets_path: Path | None = None, spec_path: Path | None = None, *,
                 duration_scale: float = 1.0, users_scale: float | None = None, spec: bool = True) -> CheckReport:
    """Every check on the inputs of a run, composed from the parts; nothing is started."""
    from loadtests.scenario.check import plan_findings
    from loadtests.scenario.load import scenario_faults

    sc, faults = scenario_faults(scenario_path, duration_scale=duration_scale, users_scale=users_scale)
    report = CheckReport(scenario=sc, faults=list(faults))
    if sc is not None:
        found = plan_findings(sc)
        report.faults += found.faults
        report.notes += found.notes
        if found.to_import:  # a user's own class: only importing it (in a child process) tells what it is
            from loadtests.locust_plugin.classcheck import import_faults
            from loadtests.scenario.check import class_path_fault

            search_dir = sc.source_path.parent if sc.source_path else None
            report.faults += [class_path_fault(sc, user, message)
                              for user, message in import_faults(found.to_import, search_dir).items()]
    if budgets_path is not None:
        from gala.gate.budgets import budget_faults, read_budgets

        budgets, faults = read_budgets(budgets_path)
        report.faults += faults
        report.budgets = budgets
        if budgets is not None and sc is not None:
            intended = {p.name: set(p.intended_rps) for p in sc.planned_phases()}
            report.faults += budget_faults(budgets, list(sc.links), [p.name for p in sc.phases], intended)
    if spec:
        from capacity_model.spec import load_spec, spec_findings

        try:
            capacity_spec = load_spec(spec_path)
        except InputError as exc:
            report.faults.append(str(exc))
        else:
            if sc is not None:
                faults, notes = spec_findings(capacity_spec, list(sc.links), sc.critical_links,
                                              [p.name for p in sc.phases])
                report.faults += faults
                report.notes += notes if spec_path is not None else []
    return report


def refuse(faults: list[str], prog: str = "gala") -> None:
    """Faults found before anything starts: every one but the first on stderr, the first raised as InputError
    (exit 2, one line, saying how many more are above)."""
    if faults:
        for f in faults[1:]:
            print(f"{prog}: {f}", file=sys.stderr)
        more = f" (and {len(faults) - 1} more above)" if len(faults) > 1 else ""
        raise InputError(faults[0] + more)


def checked_scenario(scenario_path: Path, prog: str = "gala"):
    """The scenario after every check `gala check` makes on it alone, or InputError (see `refuse`)."""
    report = check_inputs(scenario_path, spec=False)
    refuse(report.faults, prog)
    return report.scenario


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt = lambda cells: "  ".join(c.rjust(w) if i in right else c.ljust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [fmt(rows[0]), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows[1:])]


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def describe_plan(sc) -> str:
    """The phases as they will run: times, seconds owned, users, per-user pace, intended req/s per link."""
    from loadtests.scenario.check import owned_seconds

    plans, owned = sc.planned_phases(), owned_seconds(sc)
    links = list(sc.links)
    head = ["phase", "runs (s)", "owns (s)", "users", "pace /user/s", *links, "total req/s"]
    rows = [head]
    for plan, own in zip(plans, owned):
        users = ", ".join(f"{u} {n}" for u, n in plan.users.items() if n) or "-"
        pace = ", ".join(f"{plan.user_rate_per_s[u]:.3g}" for u, n in plan.users.items() if n) or "-"
        rates = [_rate(plan.intended_rps[link]) if link in plan.intended_rps else "-" for link in links]
        rows.append([plan.name, f"{plan.start_s:g}-{plan.end_s:g}", f"{own:g}", users, pace, *rates,
                     _rate(sum(plan.intended_rps.values()))])
    scale = f", users x{sc.users_scale:.3g} (-u)" if sc.users_scale != 1 else ""
    title = (f"{sc.name}: {len(sc.links)} links, {len(sc.users)} user classes, {len(plans)} phases, "
             f"{sc.total_duration_s:g} s, at most {sc.peak_users:,} users at once{scale}")
    lines = [title, "intended req/s per link: every user running in the time a phase owns, over its duration", ""]
    return "\n".join(lines + _table(rows, right={2, 5 + len(links)} | set(range(5, 5 + len(links)))))


def register(sub) -> None:
    p = sub.add_parser(
        "check", help="check a scenario (and budgets, a spec) without sending load: exit 0 or 2",
        description="Check a scenario, and optionally budgets and a capacity spec against it, as `gala run` "
                    "does before it starts: every fault at once (FILE:LINE: field: what was expected), then "
                    "the planned phases, users and intended req/s per link. Sends no load, starts nothing.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", type=Path, metavar="SCENARIO", help="the scenario YAML")
    p.add_argument("--budgets", type=Path, metavar="FILE", help="a budgets file to hold against the scenario")
    p.add_argument("--spec", type=Path, metavar="FILE", help="a capacity spec to hold against the scenario")
    p.add_argument("--duration-scale", type=float, default=1.0, metavar="X", help="as for gala run (default 1)")
    p.add_argument("-u", "--users", type=int, metavar="N", help="as for gala run: scale the users so the busiest "
                                                                "moment runs N users")
    p.add_argument("--quiet", action="store_true", help="print only faults")
    p.set_defaults(func=main)


def main(args) -> int:
    scale = users_scale_for(args.scenario, args.users) if args.users is not None else None
    report = check_inputs(args.scenario, args.budgets, args.spec, duration_scale=args.duration_scale,
                          users_scale=scale, spec=args.spec is not None)
    if report.scenario is not None and not args.quiet:
        print(describe_plan(report.scenario))
    if not args.quiet:
        for note in report.notes:
            print(f"note: {note}")
    for f in report.faults:
        print(f"gala check: {f}", file=sys.stderr)
    if report.faults:
        print(f"gala check: {len(report.faults)} fault(s); nothing was run", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    if not args.quiet:
        checked = [str(args.scenario), *(str(x) for x in (args.budgets, args.spec) if x is not None)]
        print(f"gala check: OK ({', '.join(checked)})")
    return int(ExitCode.OK)
