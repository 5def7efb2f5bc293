"""`gala plan`: servers per critical link for the night, from one or more results folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gala.contract.errors import ExitCode, exit_codes_help

DESCRIPTION = """\
Turn what a rehearsal measured into servers per critical link for the night's peak, and write a
report (report.md, report.html, allocation.csv, plan.json).

Several results folders may be combined: runs at different scales, or a rehearsal plus a
step-load probe (loadtests/scenarios/probe.yaml) for a target whose CPU gala cannot read.
--validate does not change the exit code: it is a report (validation.md, validation.json and
a section of report.md).

""" + exit_codes_help(ExitCode.OK, ExitCode.NODE_BUDGET_SHORT, ExitCode.BAD_INPUT,
                      ok="a plan within budget, or inconclusive (the budget inside the band, or a link not sized)",
                      ) + "\n"


def register(sub) -> None:
    p = sub.add_parser(
        "plan", help="capacity plan for the night from results folders",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR",
                   help="a results folder written by `gala run` (results/<run-id>); several are combined")
    p.add_argument("--spec", type=Path, default=None, metavar="FILE",
                   help="capacity spec YAML (default: capacity_model/specs/gala-2016.yaml)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where to write the report (default: RESULTS_DIR/plan of the first folder)")
    p.add_argument("--validate", type=Path, default=None, metavar="RUN_DIR",
                   help="a results folder of a run at a known allocation: predict its per-phase target CPU "
                        "and latency percentiles from the model fitted on RESULTS_DIR and compare with what "
                        "it measured (writes validation.md and validation.json beside the report)")
    p.add_argument("--from", dest="from_allocation", type=Path, default=None, metavar="ALLOCATION_CSV",
                   help="the allocation in force (columns link and nodes_per_zone or nodes, as allocation.csv): the "
                        "week's re-allocation (moves.csv) starts from it (default: the grab-only plan's allocation)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from capacity_model.api import plan_run  # pandas, scipy, matplotlib: only when planning

    def progress(line: str) -> None:
        print(f"gala plan: {line}", file=sys.stderr, flush=True)

    if args.spec is not None:
        _check_spec(args.spec, args.results_dirs)
    outcome = plan_run(args.results_dirs, spec_path=args.spec, out_dir=args.out, progress=progress,
                       validate_dir=args.validate, from_allocation=args.from_allocation)
    for warning in outcome.warnings:
        progress(f"warning: {warning}")
    print(outcome.headline)
    if outcome.validation is not None:
        for warning in outcome.validation.extrapolation:
            progress(f"warning: {warning}")
        print(outcome.validation.headline())
        print(f"validation: {outcome.out_dir / 'validation.md'}")
    print(f"report: {outcome.report_path}")
    return outcome.exit_code


def _check_spec(spec_path: Path, results_dirs: list[Path]) -> None:
    """A spec naming links or phases no run has is bad input before any planning (as `gala check` says)."""
    from capacity_model.spec import load_spec, spec_findings
    from gala.contract.errors import InputError
    from gala.contract.results import load_run_info

    infos = [load_run_info(d) for d in results_dirs]
    links = list(dict.fromkeys(link for i in infos for link in i.links))
    critical = list(dict.fromkeys(link for i in infos for link in i.critical_links))
    phases = list(dict.fromkeys(p.name for i in infos for p in i.phases))
    faults, _ = spec_findings(load_spec(spec_path), links, critical, phases)
    if faults:
        raise InputError(faults[0] + (f" (and {len(faults) - 1} more)" if len(faults) > 1 else ""))
