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
                      ok="the node budget covers every link") + "\n"


def register(sub) -> None:
    p = sub.add_parser(
        "plan", help="capacity plan for the night from results folders",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR",
                   help="a results folder written by `gala run` (results/<run-id>); several are combined; a knee "
                        "search's folder (gala probe) among them anchors each link's demand at the ceiling")
    p.add_argument("--spec", type=Path, default=None, metavar="FILE",
                   help="capacity spec YAML (default: capacity_model/specs/gala-2016.yaml)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where to write the report (default: RESULTS_DIR/plan of the first folder)")
    p.add_argument("--validate", type=Path, default=None, metavar="RUN_DIR",
                   help="a results folder of a run at a known allocation: predict its per-phase target CPU "
                        "and latency percentiles from the model fitted on RESULTS_DIR and compare with what "
                        "it measured (writes validation.md and validation.json beside the report); or a knee "
                        "search (gala probe): predict its req/s per node at the ceiling and p99 there "
                        "(heldout.md, heldout.json)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from capacity_model.api import plan_run  # pandas, scipy, matplotlib: only when planning

    def progress(line: str) -> None:
        print(f"gala plan: {line}", file=sys.stderr, flush=True)

    outcome = plan_run(args.results_dirs, spec_path=args.spec, out_dir=args.out, progress=progress,
                       validate_dir=args.validate)
    for warning in outcome.warnings:
        progress(f"warning: {warning}")
    print(outcome.headline)
    if outcome.heldout is not None:
        print(outcome.heldout.headline())
        print(f"held-out validation: {outcome.out_dir / 'heldout.md'}")
    if outcome.validation is not None:
        for warning in outcome.validation.extrapolation:
            progress(f"warning: {warning}")
        print(outcome.validation.headline())
        print(f"validation: {outcome.out_dir / 'validation.md'}")
    print(f"report: {outcome.report_path}")
    return outcome.exit_code
