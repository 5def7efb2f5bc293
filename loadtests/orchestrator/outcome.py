"""How a run ended: its status and exit code (`run_status`), and what `gala run` prints at the end
(the table per phase and link, warnings, the audit, the folder)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd

from gala.contract.errors import ExitCode
from gala.contract.results import PHASE_LINK_COLUMNS, RunInfo
from loadtests.orchestrator.options import RunOptions
from loadtests.orchestrator.table import phase_table
from loadtests.scenario import DEFAULT_SCENARIO


# More than this share of a run's requests failed: the run measured failures, not the target (exit 1).
MOST_FAILED = 0.5


def failed_ratio(stats: pd.DataFrame) -> float | None:
    """Failures / requests over the whole run (phase `_all`, every link), None when nothing was sent."""
    if stats.empty or "phase" not in stats:
        return None
    rows = stats[(stats["phase"] == "_all") & (stats["link"] == "_all")]
    if rows.empty:
        rows = stats[(stats["phase"] == "_all") & (stats["link"] != "_all")]
    requests = float(rows["requests"].sum())
    return float(rows["failures"].sum()) / requests if requests > 0 else None


def run_status(*, stop_reason: str | None, signalled: bool, generator_started: bool, started: bool,
               locust_code: int | None, failure: str | None, degraded: list, locust_log: Path,
               failed: float | None = None) -> tuple[str, str | None, int]:
    """(status, reason, exit code) of a run that has ended, from what the runner saw.

    A run whose target died, or in which more than half the requests failed (`failed`), ran to its end
    and its folder is whole (status degraded, the event in run.json), but it measured a broken target:
    exit 1 (docs/exit-codes.md). A lost worker leaves a partial but valid measurement: exit 0.
    """
    if stop_reason:
        code = ExitCode.INTERRUPTED if signalled else ExitCode.OK
        if stop_reason.startswith("time bound"):
            code = ExitCode.RUN_FAILED
        return "interrupted", stop_reason, int(code)
    if not generator_started or locust_code != 0 or not started:
        reason = "Locust did not start the test" if not started else f"Locust exited with code {locust_code}"
        if not started and (why := last_error(locust_log)):
            reason += f" (locust.log: {why})"
        if not generator_started:
            reason = failure or "the generator was never started"
        return "failed", reason, int(ExitCode.RUN_FAILED)
    target_died = any(ev["what"] == "target-exited" for ev in degraded)
    if failed is not None and failed > MOST_FAILED and not target_died:  # (a dead target explains it already)
        degraded.append({"t_s": None, "what": "most-requests-failed",
                         "detail": f"{failed:.0%} of the run's requests failed (more than {MOST_FAILED:.0%})"})
    broken = [ev for ev in degraded if ev["what"] in ("target-exited", "most-requests-failed")]
    if broken:
        return "degraded", None, int(ExitCode.RUN_FAILED)
    return ("degraded" if degraded else "complete"), None, int(ExitCode.OK)


def print_report(info: RunInfo, stats: pd.DataFrame, load, run_dir: Path) -> None:
    """The end of `gala run`'s output: the table, warnings (stderr), the audit, the folder."""
    out = sys.stdout
    print(file=out)
    print(phase_table(stats, [p.name for p in info.phases]), file=out)
    print(file=out)
    warn = lambda msg: print(f"gala run: warning: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    if load.saturated:
        warn(f"generator process(es) {', '.join(map(str, load.saturated_pids))} were above 90% of a core "
             f"for more than 10% of the run: latencies are not trustworthy (try --workers N)")
    for ev in info.degraded:
        warn(f"degraded: {ev.what}" + (f" at {ev.t_s} s" if ev.t_s is not None else "") + f" ({ev.detail})")
    if info.audit.available:
        verdict = "passed" if info.audit.passed else "FAILED"
        print(f"audit: {verdict} (audit.json)", file=out)
    elif getattr(info.audit, "error", None):
        warn(f"audit unavailable: {info.audit.error}")
    if info.interrupted:
        print(f"run {info.status}: {info.interrupt_reason}", file=out)
    print(f"results: {run_dir}", file=out, flush=True)


def last_error(log: Path) -> str | None:
    """The last error Locust logged (or the last line of a traceback), to say why a run failed."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-200:]
    except OSError:
        return None
    for line in reversed(lines):
        if "/ERROR/" in line or "/CRITICAL/" in line:
            return line.split(": ", 1)[-1].strip()[:300]
        if line and not line.startswith((" ", "[")) and ("Error" in line or "Exception" in line):
            return line.strip()[:300]
    return None


def generator_mode(opts: RunOptions) -> str:
    if opts.remote_workers and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"  # the master pod of a swarm: its workers are pods
    return "distributed" if opts.workers or opts.remote_workers else "local"


def display_path(path: Path) -> str:
    """A scenario path as a person would type it: relative to here, or to the project for a packaged one."""
    path = Path(path).resolve()
    for base in (Path.cwd(), DEFAULT_SCENARIO.parent.parent.parent):
        if path.is_relative_to(base):
            return str(path.relative_to(base))
    return str(path)


def read_phase_link_stats(run_dir: Path) -> pd.DataFrame:
    """The run's phase_link_stats.csv as far as Locust wrote it; empty when it wrote none."""
    try:
        return pd.read_csv(run_dir / "phase_link_stats.csv")
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError):
        return pd.DataFrame(columns=PHASE_LINK_COLUMNS)
