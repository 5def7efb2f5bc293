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
