"""`gala gate`: hold a finished run to latency budgets (and a baseline run) for CI; exit 0, 99 or 2."""

from __future__ import annotations

import argparse

from gala.contract.errors import ExitCode, exit_codes_help

EPILOG = exit_codes_help(ExitCode.OK, ExitCode.BUDGET_BROKEN, ExitCode.BAD_INPUT, ok="every budget holds") + """

budgets file (YAML), per link and optionally per phase:
  links:
    chat:
      p99_ms: 800              # ceilings: p50_ms p90_ms p95_ms p99_ms max_ms mean_ms error_ratio
      min_rps: 50              # floors: min_rps min_achieved_ratio
      thresholds: ["p(95) < 400", "rate < 0.01"]   # k6-style expressions
      phases:
        chat: {p95_ms: 300}
  baseline: {allowed_regression: 0.1, metrics: [p95_ms, p99_ms], noise_z: 3}

default budgets for the built-in target: loadtests/scenarios/feb1.budgets.yaml

budgets from clean runs (printed, YAML; docs/gate.md explains the noise model):
  gala gate --suggest results/<clean-run> [results/<another-clean-run> ...] [--headroom 3] > my.budgets.yaml
"""


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a ratio like 0.1 (10% worse), got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a ratio >= 0, got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "gate", help="hold a run to latency budgets (CI): exit 0 pass, 99 a budget broken, 2 bad input",
        description="Hold a results folder to a budgets file, and optionally to a baseline run;\n"
                    "print a table (budget, measured, margin, result) and write JUnit XML and JSON for pipelines.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR",
                   help="a finished run's folder, results/<run-id> (with --suggest: one or more clean runs)")
    p.add_argument("--budgets", metavar="FILE", help="the budgets file (YAML); required unless --suggest")
    p.add_argument("--suggest", action="store_true",
                   help="print a budgets file derived from clean runs: the worst run's p50/p95/p99 per critical "
                        "link x --headroom (at least + --floor-ms), rounded up")
    p.add_argument("--headroom", type=float, default=3.0, metavar="X",
                   help="with --suggest: ceilings are the worst clean run x X (default: %(default)s)")
    p.add_argument("--floor-ms", type=float, default=25.0, metavar="MS",
                   help="with --suggest: and at least the worst clean run + MS (default: %(default)s)")
    p.add_argument("--baseline", metavar="RESULTS_DIR",
                   help="an earlier run of the same scenario: percentiles worse than it beyond noise fail")
    p.add_argument("--allowed-regression", type=_ratio, metavar="RATIO",
                   help="how much worse than the baseline a percentile may be (default: the budgets "
                        "file's baseline.allowed_regression, else 0.1 = 10%%)")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML here (one testcase per budget)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    p.add_argument("--summary", metavar="FILE",
                   help="write a Markdown summary here (it is also appended to $GITHUB_STEP_SUMMARY when set)")
    p.add_argument("--out", metavar="DIR", help="also write gate.json, junit.xml and summary.md into DIR")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from gala.contract.errors import InputError

    if args.suggest:
        from gala.contract.results import load_run
        from gala.gate.suggest import suggest_budgets

        print(suggest_budgets([load_run(d) for d in args.results_dirs], args.headroom, args.floor_ms), end="")
        return int(ExitCode.OK)
    if args.budgets is None:
        raise InputError("--budgets FILE: required (or --suggest to derive budgets from clean runs)")
    if len(args.results_dirs) != 1:
        raise InputError(f"RESULTS_DIR: expected one run to gate, got {len(args.results_dirs)} "
                         "(several only with --suggest)")
    from gala.gate.verdict import gate_run  # lazily: pandas stays out of `gala --help`

    outcome = gate_run(args.results_dirs[0], args.budgets, baseline_dir=args.baseline, junit_path=args.junit,
                       json_path=args.json, out_dir=args.out, allowed_regression=args.allowed_regression,
                       summary_path=args.summary)
    print(outcome.table)
    return outcome.exit_code
