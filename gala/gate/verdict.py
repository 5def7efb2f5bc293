"""The CI gate as a whole: hold a finished run to its budgets (and a baseline run), then say so as an
exit code, a table, JSON and JUnit XML. The I/O lives here; the evaluation is in `measure`
(one budget line), `noise` (against a baseline) and `abort` (a live run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from gala.contract.atomic import write_json_atomic
from gala.contract.errors import ExitCode, InputError
from gala.contract.results import Run, load_run
from gala.gate.budgets import Budgets, check_against_run, load_budgets
from gala.gate.junit import JUnitCase, write_junit
from gala.gate.measure import GateResult, evaluate, format_value, measure
from gala.gate.noise import compare_with_baseline

@dataclass
class GateOutcome:
    exit_code: int
    table: str
    results: list[GateResult]
    notes: list[str] = field(default_factory=list)

    @property
    def broken(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]



def render_table(title: str, results: list[GateResult], notes: list[str]) -> str:
    """The gate's table for people: budget, measured, margin, result; then what broke."""
    rows = [("budget", "measured", "margin", "result")]
    for r in results:
        if r.kind == "baseline" or r.margin is None:
            margin = r.detail
        else:
            pct = f" ({r.margin_ratio:+.0%})" if r.margin_ratio is not None and math.isfinite(r.margin_ratio) else ""
            margin = ("+" if r.margin >= 0 else "-") + format_value(abs(r.margin), r.unit) + pct
        result = {"pass": "pass", "unchanged": "pass", "improved": "improved",
                  "fail": "FAIL", "regressed": "REGRESSED"}[r.status]
        rows.append((r.name, format_value(r.measured, r.unit), margin, result))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [title]
    for i, row in enumerate(rows):
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    broken = [r for r in results if not r.passed]
    improved = [r for r in results if r.status == "improved"]
    lines += [f"note: {n}" for n in notes]
    if broken:
        lines.append(f"FAIL: {len(broken)} of {len(results)} broken: " + "; ".join(r.name for r in broken))
    else:
        lines.append(f"PASS: all {len(results)} hold")
    if improved:
        lines.append("improved: " + "; ".join(r.name for r in improved))
    return "\n".join(lines)


def run_notes(run: Run, base: Run | None = None) -> list[str]:
    """What makes a run's numbers less trustworthy, said next to the table."""
    info, notes = run.info, []
    if info.status != "complete":
        notes.append(f"run status is {info.status}" + (f" ({info.interrupt_reason})" if info.interrupt_reason else ""))
    if info.generator.saturated:
        notes.append("the load generator was saturated (>90% CPU): latencies include the generator's own delay")
    if info.audit.available and info.audit.passed is False:
        notes.append("the target's audit FAILED: see audit.json")
    if base is not None:
        if base.info.scenario.sha256 != info.scenario.sha256:
            notes.append(f"the baseline ran another scenario ({base.info.scenario.name} "
                         f"{base.info.scenario.sha256[:8]} vs {info.scenario.sha256[:8]})")
        if base.info.duration_scale != info.duration_scale:
            notes.append(f"the baseline ran at --duration-scale {base.info.duration_scale:g}, "
                         f"this run at {info.duration_scale:g}")
    return notes



def gate_run(run_dir: str | Path, budgets_path: str | Path, baseline_dir: str | Path | None = None,
             junit_path: str | Path | None = None, json_path: str | Path | None = None,
             out_dir: str | Path | None = None, allowed_regression: float | None = None) -> GateOutcome:
    """Gate one results folder: exit_code 0 when every budget holds, 99 (ExitCode.BUDGET_BROKEN) when one is broken.

    Bad input (a budgets file, a results folder, a link or phase the run does not have) raises
    InputError with one line naming the file and line; the CLI turns it into exit 2.
    `out_dir` writes gate.json and junit.xml there (the results folder's `gate/`).
    """
    budgets = load_budgets(budgets_path)
    run = load_run(run_dir)
    check_against_run(budgets, run.info.links, [p.name for p in run.info.phases])
    base = load_run(baseline_dir) if baseline_dir is not None else None
    allowed = budgets.baseline.allowed_regression if allowed_regression is None else allowed_regression
    if allowed < 0:
        raise InputError(f"--allowed-regression {allowed}: expected a ratio >= 0 (0.1 = 10% worse)")

    results = [evaluate(b, *measure(run, b)) for b in budgets.lines]
    if base is not None:
        results += compare_with_baseline(run, base, budgets, allowed)
    notes = run_notes(run, base)
    title = f"gala gate: {run.run_id} against {budgets.path}"
    if base is not None:
        title += (f"\nbaseline {base.run_id}: the median second's percentile regresses when more than "
                  f"{allowed:.0%} worse and beyond {budgets.baseline.noise_z:g} standard errors of noise")
    table = render_table(title, results, notes)
    passed = all(r.passed for r in results)
    outcome = GateOutcome(exit_code=int(ExitCode.OK if passed else ExitCode.BUDGET_BROKEN), table=table,
                          results=results, notes=notes)

    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path = json_path or out / "gate.json"
        junit_path = junit_path or out / "junit.xml"
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(json_path), gate_json(outcome, run, budgets, base, allowed))
    if junit_path is not None:
        write_junit(junit_path, f"gala gate: {run.run_id}", junit_cases(results),
                    properties={"run": str(run.path), "run_id": run.run_id, "budgets": str(budgets.path),
                                "baseline": str(base.path) if base else ""},
                    system_out=table)
    return outcome


def gate_json(outcome: GateOutcome, run: Run, budgets: Budgets, base: Run | None, allowed: float) -> dict:
    return {
        "passed": outcome.exit_code == 0,
        "exit_code": outcome.exit_code,
        "run": {"path": str(run.path), "run_id": run.run_id},
        "budgets": str(budgets.path),
        "baseline": None if base is None else {"path": str(base.path), "run_id": base.run_id,
                                               "allowed_regression": allowed,
                                               "noise_z": budgets.baseline.noise_z},
        "notes": outcome.notes,
        "results": [_finite(r.model_dump()) for r in outcome.results],
    }


def _finite(d: dict) -> dict:
    # JSON has no inf/nan: say null instead
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def junit_cases(results: list[GateResult]) -> list[JUnitCase]:
    cases = []
    for r in results:
        classname = "gala.gate." + r.link + (f".{r.phase}" if r.phase else "")
        name = r.name[len(r.link if r.phase is None else f"{r.link} [{r.phase}]") + 1:]
        failure = None
        if not r.passed:
            failure = f"{r.name}: measured {format_value(r.measured, r.unit)}" + (f"; {r.detail}" if r.detail else "")
        details = "\n".join(x for x in (
            f"measured: {format_value(r.measured, r.unit)}",
            f"budget: {r.op} {format_value(r.threshold, r.unit)}" if r.kind == "budget" else
            f"baseline: {format_value(r.baseline, r.unit)}",
            r.detail, f"defined at: {r.source}" if r.source else "") if x)
        cases.append(JUnitCase(classname=classname, name=name, failure=failure, details=details,
                               failure_type="BudgetBroken" if r.kind == "budget" else "Regression"))
    return cases
