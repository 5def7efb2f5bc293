"""The error type every part raises for bad input, and the one exit-code table of every command.

`InputError`'s message is one line naming the file (and line) or the option, and what was
expected; the CLI prints it and exits with `ExitCode.BAD_INPUT`. docs/exit-codes.md explains each code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a `gala` command's exit status means; the same table for every command."""

    OK = 0               # done (a run complete or degraded; a plan within budget or inconclusive; a gate passed)
    RUN_FAILED = 1       # the run could not measure: Locust or the target died, or most requests failed
    BAD_INPUT = 2        # a file, field or option is wrong: one line says where and what was expected
    NODE_BUDGET_SHORT = 3  # the plan's verdict is short: even its band's p5 needs more nodes than the budget
    CLUSTER_ERROR = 4    # the Kubernetes cluster refused or failed (gala swarm)
    BUDGET_BROKEN = 99   # a latency/error budget is broken (gala gate; gala run --budgets), as k6's thresholds
    INTERRUPTED = 130    # stopped by Ctrl-C or SIGTERM; the results folder says "interrupted"


MEANING = {
    ExitCode.OK: "done",
    ExitCode.RUN_FAILED: "the run failed (Locust or the target died, or most requests failed)",
    ExitCode.BAD_INPUT: "bad input (one line names the file, line or option)",
    ExitCode.NODE_BUDGET_SHORT: "the plan's verdict is short: the node budget cannot cover every link, even at the band's p5",
    ExitCode.CLUSTER_ERROR: "the Kubernetes cluster refused or failed",
    ExitCode.BUDGET_BROKEN: "a latency or error budget is broken",
    ExitCode.INTERRUPTED: "stopped by Ctrl-C or SIGTERM",
}


def exit_codes_help(*codes: ExitCode, ok: str | None = None) -> str:
    """The `exit codes:` paragraph of a command's --help, from the one table."""
    rows = [f"  {int(c):<4} {ok if (c is ExitCode.OK and ok) else MEANING[c]}" for c in codes]
    return "\n".join(["exit codes (docs/exit-codes.md):", *rows])


class InputError(Exception):
    """Bad input (a file, a field, an argument). The message is one line naming where and what was expected."""

    exit_code = ExitCode.BAD_INPUT
