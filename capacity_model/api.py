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

from capacity_model.contracts import Assumption, CapacitySpec, Measurements, Plan
from capacity_model.moves import read_allocation
from capacity_model.anchor import assumptions as anchor_assumptions
from capacity_model.anchor import load_adjustment, node_speed, run_cores, run_speed
from capacity_model.attribution import in_run_speed
from capacity_model.heldout import HeldOut, operating_points, validate_knee
from capacity_model.scaleout import knee_points, scale_out
from capacity_model.knee_report import blind_step_runs, is_knee_search, load_knee
from capacity_model.operating import operating_blocks
from capacity_model.planner import make_plan
from capacity_model.report import ReportInputs, write_report
from capacity_model.summary import headline
from capacity_model.runs import RunSet, measure, read_runs
from capacity_model.spec import load_spec
from capacity_model.validate import Validation, validate
from gala.contract.atomic import write_json_atomic, write_text_atomic
from gala.contract.errors import ExitCode, InputError

@dataclass
class PlanOutcome:
    exit_code: int
    headline: str
    out_dir: Path
    plan: Plan
    warnings: list[str] = field(default_factory=list)  # about the runs: interrupted, saturated, degraded, audit
    validation: Validation | None = None  # with `validate_dir`: the model against that run (no effect on exit_code)
    heldout: HeldOut | None = None  # with `validate_dir` a knee search: the model against the measured knee

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
    # knee searches (gala probe) give the demand's curve up to the ceiling; runs give the mix
    knee_dirs = [p for p in run_dirs if is_knee_search(p)]
    knees = [load_knee(p) for p in knee_dirs]
    run_dirs = [p for p in run_dirs if not is_knee_search(p)]
    if not run_dirs:
        raise InputError("only knee searches were given: add a rehearsal's results folder (it gives the mix)")
    progress(f"reading {len(run_dirs)} run(s)" + (f" and {len(knees)} knee search(es)" if knees else ""))
    # a knee search that could not read the target's CPU is the black-box probe: its steps are step-load runs
    blind = [step for d, k in zip(knee_dirs, knees) for step in blind_step_runs(d, k)]
    runset = read_runs(run_dirs + blind)
    # the run to validate against is read first, so that a bad folder fails before any planning
    held_knee = load_knee(Path(validate_dir)) if validate_dir is not None and is_knee_search(validate_dir) else None
    checked = _read_validated(Path(validate_dir), spec) if validate_dir is not None and held_knee is None else None
    m, probes = measure(runset, spec)
    model_speed = run_speed([r.info for r in runset.runs])
    # where the target sampled its core's speed through the runs, its CPU per link is read at that speed
    m.speed_units_per_cpu_s = in_run_speed(m.link_cpu)
    speed_note = node_speed(spec, model_speed, m.speed_units_per_cpu_s)
    if speed_note:
        m.notes.append(speed_note)
    cores = float(np.median([run_cores(r.info) for r in runset.runs]))
    load = load_adjustment(m, spec.links or m.links, cores, spec.utilization_ceiling, knees, model_speed)
    scaled = node_scale_out(spec, knees, cores, load)
    if scaled is not None:
        m.notes.append(f"scale-out: {scaled}")
    progress(f"planning {len(m.links)} link(s) for {spec.peak.rate_per_s:,.0f} req/s "
             f"({spec.uncertainty.draws} Monte Carlo draws)")
    in_force = None
    if from_allocation is not None:  # the allocation in force the week's moves start from (default: grab-only's)
        in_force = read_allocation(Path(from_allocation), spec.redundancy.zones)
    plan = make_plan(spec, m, in_force=in_force, in_force_source=str(from_allocation) if in_force else None, load=load)
    plan.operating_points = operating_points(plan, m, spec.node.cores * spec.node.speed_vs_measured, load.source, load)
    plan.assumptions += anchor_assumptions(load, plan.links, spec.utilization_ceiling)
    if scaled is not None:
        plan.assumptions.append(Assumption(figure="node.capacity", value=f"node.speed_vs_measured "
                                           f"{spec.node.speed_vs_measured:.3g}", source="run", note=scaled))
    heldout = None
    if held_knee is not None:
        progress(f"holding the model against the knee search {held_knee.search_id}")
        base = {s.link: s.base_latency_ms for s in plan.sizing if s.base_latency_ms is not None}
        heldout = validate_knee(plan, m, held_knee, model_speed=model_speed, base_latency_ms=base, source=load.source,
                                adjust=load)
    validation = None
    if checked is not None:
        observed, run_id, processes = checked
        observed.speed_units_per_cpu_s = m.speed_units_per_cpu_s  # its CPU at the plan's speed, like for like
        progress(f"validating the model against {run_id}")
        # idle cores are per target process: a run at another process count idles in proportion
        validation = validate(plan, m, observed, observed_run_id=run_id,
                              baseline_scale=processes / _processes(runset))
    out = Path(out_dir) if out_dir is not None else run_dirs[0] / "plan"
    progress(f"writing the report into {out}")
    try:
        write_report(plan, ReportInputs(run_paths=run_dirs, measurements=m, probes=probes,
                                        validation=validation, extra=operating_blocks(plan, load, heldout)), out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the report there ({exc.strerror or exc})") from None
    if heldout is not None:
        write_text_atomic(out / "heldout.md", heldout.markdown())
        write_json_atomic(out / "heldout.json", heldout.as_json())
    # exit 3 only on a verdict of short: inconclusive and within budget are both 0 (issue 10)
    code = int(ExitCode.NODE_BUDGET_SHORT if plan.verdict is not None and plan.verdict.kind == "short" else ExitCode.OK)
    return PlanOutcome(exit_code=code, headline=headline(plan), out_dir=out, plan=plan, warnings=list(runset.notes),
                       validation=validation, heldout=heldout)


def node_scale_out(spec: CapacitySpec, knees: list, measured_cores: float, load) -> str | None:
    """With knee searches at two or more node sizes, the USL over them sets the night's node's efficiency
    (into node.speed_vs_measured) and its extrapolation error (into every demand's); returns the note."""
    sizes, rps = knee_points(knees)
    if len(set(sizes)) < 2:
        return None
    so = scale_out(sizes, rps, float(spec.node.cores), measured_at=measured_cores)
    spec.node.speed_vs_measured *= so.efficiency
    load.global_rel_error = so.rel_error
    return so.note + f"; node.speed_vs_measured × {so.efficiency:.3g}"


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
