"""`gala diff RUN_A RUN_B`: two runs side by side per phase and link, each change against run-to-run
noise (the gate's noise model), as Markdown and HTML with a chart of both runs' per-second p95."""

from __future__ import annotations

import argparse

from gala.contract.errors import ExitCode, exit_codes_help

EPILOG = """\
what it shows, per phase and link (and _all, the whole run):
  latency   whole-phase p50/p95/p99 of A and B; the median per-second p95 of each, its change, the noise
            threshold and a verdict: slower / faster (beyond noise) or within noise
  rates     requests, req/s and error ratios of A and B, whether the error ratio moved beyond noise
writes diff.md, diff.html (self-contained) and charts/p95.png into --out (default: RUN_B/diff/)

""" + exit_codes_help(ExitCode.OK, ExitCode.BAD_INPUT, ok="compared (whatever changed: use gala gate "
                      "--baseline to fail a pipeline on a regression)") + """

example:
  gala diff results/<yesterday> results/<today>
"""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "diff", help="compare two runs per phase and link, against run-to-run noise (Markdown + HTML)",
        description="Compare run B against run A per phase and link: rates, error ratios and percentiles side "
                    "by side, the change, and whether it exceeds run-to-run noise (the gate's noise model).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_a", metavar="RUN_A", help="the reference run's folder (results/<run-id>)")
    p.add_argument("run_b", metavar="RUN_B", help="the run to compare with it")
    p.add_argument("--out", metavar="DIR", help="where to write diff.md, diff.html, charts/ (default: RUN_B/diff/)")
    p.add_argument("--noise-z", type=_positive, default=3.0, metavar="Z",
                   help="standard errors a change must exceed to count as beyond noise (default 3, as the gate)")
    p.set_defaults(func=main)


def main(args) -> int:
    from gala.gate.diff import diff_folders  # lazily: pandas and matplotlib stay out of `gala --help`

    outcome = diff_folders(args.run_a, args.run_b, args.out, noise_z=args.noise_z)
    print(outcome.markdown.split("## Per-second p95")[0].rstrip())
    print(f"\nwritten: {outcome.out_dir / 'diff.md'}, {outcome.out_dir / 'diff.html'}")
    return int(ExitCode.OK)
