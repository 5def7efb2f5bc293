"""`gala`: the command line. A thin layer over the parts; nothing imports it.

Each subcommand lives in its own module here with a `register(subparsers)` that adds its parser
and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gala import __version__
from gala.contract.errors import InputError

# Modules are imported lazily by name so that `gala target serve` does not pay for pandas and
# `gala plan` never imports Locust.
SUBCOMMANDS = ["run", "probe", "check", "plan", "gate", "diff", "swarm", "target"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gala",
        description="Rehearse the 2016 Spring Festival Gala red-envelope night and plan its capacity.",
        epilog="Start with `gala run`: a rehearsal against the built-in target, then a capacity plan.",
    )
    parser.add_argument("--version", action="version", version=f"gala {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"gala.cli.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"gala: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gala: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
