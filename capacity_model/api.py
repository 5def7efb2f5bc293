"""The capacity model's entry point: results folders in, a plan and its report out.

`plan_run` is what `gala plan` and the end of `gala run` call. Exit code 0 when the node budget
covers every link, 3 when it cannot (the plan then says which links are short); bad input raises
`gala.errors.InputError` (exit 2 in the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from capacity_model.contracts import Plan
from capacity_model.planner import make_plan
from capacity_model.report import ReportInputs, headline, write_report
from capacity_model.runs import measure, read_runs
from capacity_model.spec import load_spec
from gala.errors import InputError

EXIT_OK = 0
EXIT_SHORT = 3  # the node budget cannot cover every link


@dataclass
class PlanOutcome:
    exit_code: int
    headline: str
    out_dir: Path
    plan: Plan
    warnings: list[str] = field(default_factory=list)  # about the runs: interrupted, saturated, degraded, audit

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.html"


def _quiet(_: str) -> None:
    pass


def plan_run(run_dirs: list[Path], spec_path: Path | None = None, out_dir: Path | None = None,
             progress: Callable[[str], None] = _quiet) -> PlanOutcome:
    """Plan the night from one or more results folders; write the report into `out_dir`
    (default: `<first run>/plan`)."""
    run_dirs = [Path(p) for p in run_dirs]
    spec = load_spec(spec_path)
    progress(f"reading {len(run_dirs)} run(s)")
    runset = read_runs(run_dirs)
    m, probes = measure(runset, spec)
    progress(f"planning {len(m.links)} link(s) for {spec.peak.rate_per_s:,.0f} req/s "
             f"({spec.uncertainty.draws} Monte Carlo draws)")
    plan = make_plan(spec, m)
    out = Path(out_dir) if out_dir is not None else run_dirs[0] / "plan"
    progress(f"writing the report into {out}")
    try:
        write_report(plan, ReportInputs(run_paths=run_dirs, measurements=m, probes=probes), out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the report there ({exc.strerror or exc})") from None
    code = EXIT_OK if plan.allocation.feasible else EXIT_SHORT
    return PlanOutcome(exit_code=code, headline=headline(plan), out_dir=out, plan=plan, warnings=list(runset.notes))
