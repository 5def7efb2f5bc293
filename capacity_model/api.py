"""The capacity model's entry point: results folders in, a plan and its report out.

`plan_run` is what `gala plan` and the end of `gala run` call. Exit code 0 when the node budget
covers every link, 3 (ExitCode.NODE_BUDGET_SHORT) when it cannot (the plan then says which links are short); bad input raises
`gala.contract.errors.InputError` (exit 2 in the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from capacity_model.contracts import CapacitySpec, Measurements, Plan
from capacity_model.moves import read_allocation
from capacity_model.planner import make_plan
from capacity_model.report import ReportInputs, headline, write_report
from capacity_model.runs import RunSet, measure, read_runs
from capacity_model.spec import load_spec
from capacity_model.validate import Validation, validate
from gala.contract.errors import ExitCode, InputError

@dataclass
class PlanOutcome:
    exit_code: int
    headline: str
    out_dir: Path
    plan: Plan
    warnings: list[str] = field(default_factory=list)  # about the runs: interrupted, saturated, degraded, audit
    validation: Validation | None = None  # with `validate_dir`: the model against that run (no effect on exit_code)

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.html"


def _quiet(_: str) -> None:
    pass


def plan_run(run_dirs: list[Path], spec_path: Path | None = None, out_dir: Path | None = None,
             progress: Callable[[str], None] = _quiet, validate_dir: Path | None = None,
             from_allocation: Path | None = None) -> PlanOutcome:
    """Plan the night from one or more results folders; write the report into `out_dir`
    (default: `<first run>/plan`). With `validate_dir`, also hold the fitted model against that run
    (a run at a known allocation) and add the comparison to the report and `validation.json`."""
    run_dirs = [Path(p) for p in run_dirs]
    spec = load_spec(spec_path)
    progress(f"reading {len(run_dirs)} run(s)")
    runset = read_runs(run_dirs)
    # the run to validate against is read first, so that a bad folder fails before any planning
    checked = _read_validated(Path(validate_dir), spec) if validate_dir is not None else None
    m, probes = measure(runset, spec)
    progress(f"planning {len(m.links)} link(s) for {spec.peak.rate_per_s:,.0f} req/s "
             f"({spec.uncertainty.draws} Monte Carlo draws)")
    in_force = None
    if from_allocation is not None:  # the allocation in force the week's moves start from (default: grab-only's)
        in_force = read_allocation(Path(from_allocation), spec.redundancy.zones)
    plan = make_plan(spec, m, in_force=in_force, in_force_source=str(from_allocation) if in_force else None)
    validation = None
    if checked is not None:
        observed, run_id, processes = checked
        progress(f"validating the model against {run_id}")
        # idle cores are per target process: a run at another process count idles in proportion
        validation = validate(plan, m, observed, observed_run_id=run_id,
                              baseline_scale=processes / _processes(runset))
    out = Path(out_dir) if out_dir is not None else run_dirs[0] / "plan"
    progress(f"writing the report into {out}")
    try:
        write_report(plan, ReportInputs(run_paths=run_dirs, measurements=m, probes=probes,
                                        validation=validation), out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the report there ({exc.strerror or exc})") from None
    # exit 3 only on a verdict of short: inconclusive and within budget are both 0 (issue 10)
    code = int(ExitCode.NODE_BUDGET_SHORT if plan.verdict is not None and plan.verdict.kind == "short" else ExitCode.OK)
    return PlanOutcome(exit_code=code, headline=headline(plan), out_dir=out, plan=plan, warnings=list(runset.notes),
                       validation=validation)


def _processes(runset: RunSet) -> float:
    """Target processes behind the model's idle cores (the median over its runs)."""
    return float(np.median([r.info.target.processes for r in runset.runs]))


def _read_validated(path: Path, spec: CapacitySpec) -> tuple[Measurements, str, float]:
    """The run `--validate` names: its measurements, run id and target processes."""
    runset = read_runs([path])
    run = runset.runs[0]
    if run.cpu.empty or not (run.cpu["role"] == "target").any():
        raise InputError(f"{path / 'cpu.csv'}: no target CPU samples; --validate needs a run whose target "
                         "CPU gala read (the built-in target, or --target-pid)")
    return measure(runset, spec)[0], run.run_id, float(run.info.target.processes)
