"""The CI gate: hold a finished run to its budgets (and a baseline run), and stop a live run early.

Pure evaluation (`measure`, `evaluate`, `compare_percentile`, `percentile_noise_ms`, `render_table`,
`abort_check`) is kept apart from the I/O of `gate_run`, which reads the results folders and writes
the table, JSON and JUnit XML.

Baseline comparison: each run's per-second percentiles (timeseries.csv) are summarised by their median,
"the median second's p95", which a few slow seconds on a busy machine do not move. It regressed when it
is worse than the baseline's by more than the allowed ratio AND the difference is beyond run-to-run
noise: the standard error of each median, by a block bootstrap within each phase
(`percentile_noise_ms`), the two runs' errors added in quadrature, times `noise_z`, and at least one
latency bucket (Locust rounds latencies). Improvements are found the same way and reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from gala.gate.budgets import Budget, Budgets, Expression, check_against_run, load_budgets
from gala.gate.junit import JUnitCase, write_junit
from gala.contract.errors import InputError
from gala.contract.atomic import write_json_atomic
from gala.contract.histogram import histogram_percentiles
from gala.contract.results import ALL, Run, load_run

# Per-second percentiles of seconds with fewer requests than this are too coarse to use as noise samples.
MIN_REQUESTS_PER_SECOND = 5
BOOTSTRAP_DRAWS = 2000

Status = Literal["pass", "fail", "regressed", "improved", "unchanged"]


class GateResult(BaseModel):
    """One line of the gate: a budget, or a percentile compared with the baseline."""

    kind: Literal["budget", "baseline"]
    name: str
    link: str
    phase: str | None
    metric: str
    op: str | None = None
    threshold: float | None = None
    unit: str = ""
    measured: float | None
    requests: int | None = None          # requests behind the measured value
    margin: float | None = None          # positive: room left before the budget breaks
    margin_ratio: float | None = None
    baseline: float | None = None
    change_ratio: float | None = None    # (measured - baseline) / baseline
    noise: float | None = None           # the difference that counts as beyond noise
    status: Status
    passed: bool
    detail: str = ""
    source: str = ""                     # file:line of the budget


@dataclass
class GateOutcome:
    exit_code: int
    table: str
    results: list[GateResult]
    notes: list[str] = field(default_factory=list)

    @property
    def broken(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]


# ---------------------------------------------------------------- measuring a run

def _row(run: Run, link: str, phase: str | None) -> pd.Series | None:
    df = run.phase_link
    hit = df[(df["phase"] == (phase or ALL)) & (df["link"] == link)]
    return None if hit.empty else hit.iloc[0]


def _achieved_over_run(run: Run, link: str) -> float | None:
    """Achieved/intended over the phases that intended a rate for the link: requests / intended requests."""
    df = run.phase_link
    rows = df[(df["link"] == link) & (df["phase"] != ALL) & df["intended_rps"].notna()]
    intended = float((rows["intended_rps"] * rows["duration_s"]).sum())
    return float(rows["requests"].sum()) / intended if intended > 0 else None


def measure(run: Run, budget: Budget) -> tuple[float | None, int]:
    """The measured value of a budget's metric (None when the link saw no requests) and the request count.

    Raises InputError when the run cannot measure it by design (an achieved ratio where nothing was intended).
    """
    expr = budget.expr
    row = _row(run, budget.link, budget.phase)
    if row is None or int(row["requests"]) == 0:
        if expr.metric == "rps":
            return 0.0, 0
        if expr.metric == "achieved":
            if _intended(run, budget):
                return 0.0, 0
            raise _no_intention(budget)
        return None, 0
    requests = int(row["requests"])
    if expr.metric == "p":
        hist = run.histogram(budget.link, budget.phase)
        column = f"p{expr.quantile:g}_ms"
        if hist:
            return histogram_percentiles(hist, [expr.quantile / 100])[0], requests
        if column in row.index and pd.notna(row[column]):
            return float(row[column]), requests
        raise InputError(f"{budget.source}: {budget.field}: the run has no histogram for {budget.scope}, "
                         f"so only p(50), p(90), p(95) and p(99) can be measured")
    if expr.metric == "achieved":
        value = row["achieved_ratio"] if pd.notna(row["achieved_ratio"]) else None
        if value is None and budget.phase is None:
            value = _achieved_over_run(run, budget.link)
        if value is None:
            raise _no_intention(budget)
        return float(value), requests
    column = {"max": "max_ms", "avg": "mean_ms", "rate": "error_ratio", "rps": "rps"}[expr.metric]
    if expr.metric == "rate" and pd.isna(row[column]):
        return int(row["failures"]) / requests, requests
    return float(row[column]), requests


def _intended(run: Run, budget: Budget) -> bool:
    phases = [p for p in run.info.phases if budget.phase in (None, p.name)]
    return any(budget.link in p.intended_rps for p in phases)


def _no_intention(budget: Budget) -> InputError:
    return InputError(f"{budget.source}: {budget.field}: the run intended no rate for {budget.scope} "
                      "(only arrival-rate or paced phases have one), so an achieved ratio cannot be measured")


# ---------------------------------------------------------------- pure evaluation

def format_value(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "ms":
        return f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"
    if unit == "req/s":
        return f"{value:,.1f} req/s"
    return f"{value:.4g}"


def evaluate(budget: Budget, measured: float | None, requests: int | None = None) -> GateResult:
    """Hold one measured value to its budget."""
    expr = budget.expr
    base = dict(kind="budget", name=budget.name, link=budget.link, phase=budget.phase, metric=expr.label,
                op=expr.op, threshold=expr.value, unit=expr.unit, measured=measured, requests=requests,
                source=budget.source)
    if measured is None:
        return GateResult(**base, status="fail", passed=False, detail="no requests measured")
    margin = expr.value - measured if expr.is_ceiling else measured - expr.value
    ok = expr.holds(measured)
    return GateResult(**base, margin=margin, margin_ratio=margin / expr.value if expr.value else None,
                      status="pass" if ok else "fail", passed=ok)


def bucket_resolution_ms(ms: float) -> float:
    """The width of Locust's latency bucket at `ms`: a smaller difference is not measurable."""
    if not math.isfinite(ms) or ms < 100:
        return 1.0
    return 10.0 ** (int(math.log10(ms)) - 1)


def percentile_noise_ms(per_second: np.ndarray, strata: np.ndarray | None = None,
                        draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> float:
    """Standard error of the median of per-second percentiles, by a circular block bootstrap.

    Seconds are resampled in blocks of about m^(1/3) consecutive seconds (m: seconds in the stratum),
    because load on a shared machine drifts over several seconds, so neighbouring seconds are not
    independent. With `strata` (each second's phase), blocks are drawn within their phase, so the spread
    between phases (a grab burst is slower than the chat tail) is not mistaken for noise.
    inf with fewer than 3 seconds: too few to tell.
    """
    x = np.asarray(per_second, dtype=float)
    keep = np.isfinite(x)
    x = x[keep]
    if x.size < 3:
        return math.inf
    groups = np.zeros(x.size, dtype=int) if strata is None else pd.factorize(np.asarray(strata)[keep])[0]
    rng = np.random.default_rng(seed)
    samples = []
    for g in range(groups.max() + 1):
        series = x[groups == g]
        m = series.size
        block = max(1, math.ceil(m ** (1 / 3)))
        starts = rng.integers(0, m, size=(draws, math.ceil(m / block), 1))
        idx = ((starts + np.arange(block)) % m).reshape(draws, -1)[:, :m]
        samples.append(series[idx])
    medians = np.median(np.concatenate(samples, axis=1), axis=1)
    return float(medians.std(ddof=1))


def compare_percentile(measured: float, baseline: float, se_measured: float, se_baseline: float,
                       allowed_regression: float, noise_z: float) -> tuple[Status, float, float]:
    """Classify a percentile against the baseline: (status, change ratio, noise threshold in ms)."""
    delta = measured - baseline
    noise = max(noise_z * math.hypot(se_measured, se_baseline), bucket_resolution_ms(max(measured, baseline)))
    change = delta / baseline if baseline > 0 else (math.inf if delta > 0 else 0.0)
    if change > allowed_regression and delta > noise:
        return "regressed", change, noise
    # symmetric in ratio: improved when the baseline was more than the allowed ratio worse than this run
    if -delta > noise and (measured <= 0 or -delta / measured > allowed_regression):
        return "improved", change, noise
    return "unchanged", change, noise


def per_second_percentiles(run: Run, link: str, phase: str | None, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A link's per-second percentiles (timeseries.csv) and each second's phase, without seconds too
    sparse to mean much."""
    ts = run.timeseries
    rows = ts[ts["link"] == link]
    if phase is not None:
        rows = rows[rows["phase"] == phase]
    busy = rows[rows["requests"] >= MIN_REQUESTS_PER_SECOND]
    rows = busy if len(busy) >= 3 else rows
    return rows[column].to_numpy(dtype=float), rows["phase"].to_numpy()


def compare_with_baseline(run: Run, base: Run, budgets: Budgets, allowed_regression: float) -> list[GateResult]:
    """One line per budgeted scope (link, phase) and baseline metric, comparing the median second's
    percentile (robust to a few slow seconds on a busy machine) of the run and of the baseline."""
    out = []
    policy = budgets.baseline
    for link, phase in dict.fromkeys((b.link, b.phase) for b in budgets.lines):
        scope = link if phase is None else f"{link} [{phase}]"
        for column in policy.metrics:
            label = f"p({column[1:-3]})"
            series = [per_second_percentiles(r, link, phase, column) for r in (run, base)]
            if not np.isfinite(series[1][0]).any():
                raise InputError(f"{base.path}: the baseline run has no requests on {scope}; "
                                 "compare runs of the same scenario")
            cur, prev = (float(np.nanmedian(x)) if np.isfinite(x).any() else None for x, _ in series)
            common = dict(kind="baseline", name=f"{scope} {label} vs baseline", link=link, phase=phase,
                          metric=label, unit="ms", measured=cur, baseline=prev,
                          threshold=prev * (1 + allowed_regression))
            if cur is None:
                out.append(GateResult(**common, status="fail", passed=False, detail="no requests measured"))
                continue
            se = [percentile_noise_ms(x, phases) for x, phases in series]
            status, change, noise = compare_percentile(cur, prev, se[0], se[1], allowed_regression, policy.noise_z)
            noise_text = (f"noise ±{format_value(noise, 'ms')}" if math.isfinite(noise)
                          else "too few busy seconds to tell from noise")
            out.append(GateResult(**common, change_ratio=change, noise=noise, status=status,
                                  passed=status != "regressed", margin=prev * (1 + allowed_regression) - cur,
                                  detail=f"baseline {format_value(prev, 'ms')}, {change:+.0%} ({noise_text})"))
    return out


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


# ---------------------------------------------------------------- live abort

def abort_check(budgets: Budgets, live: dict) -> str | None:
    """The reason to stop a running rehearsal now, or None. Conservative, like k6's abortOnFail with a delay.

    Only ceilings on p(50)/p(95)/p(99) and the error ratio are checked (the rest need the finished run);
    only after `abort.grace_s`, with at least `abort.min_requests` requests in the budget's scope, and only
    when the measured value is over the ceiling by more than `abort.margin` (50% by default).
    `live` is the stats plugin's live.json: whole-run figures per link under "links", the current
    phase's under "phase_links".
    """
    policy = budgets.abort
    if float(live.get("t_s") or 0.0) < policy.grace_s:
        return None
    for b in budgets.lines:
        if b.phase is None:
            stats = (live.get("links") or {}).get(b.link)
        elif b.phase == live.get("phase"):
            stats = (live.get("phase_links") or {}).get(b.link)
        else:
            continue
        if not stats or int(stats.get("requests") or 0) < policy.min_requests:
            continue
        measured = _live_value(b.expr, stats)
        if measured is None or not b.expr.is_ceiling:
            continue
        if measured > b.expr.value * (1 + policy.margin) and not b.expr.holds(measured):
            return (f"{b.name}: {format_value(measured, b.expr.unit)} after {int(stats['requests']):,} requests "
                    f"(over the budget by more than {policy.margin:.0%}; {b.source})")
    return None


def _live_value(expr: Expression, stats: dict) -> float | None:
    if expr.metric == "rate":
        failures = int(stats.get("failures") or 0)
        # a handful of failures is not "clearly broken", whatever the ratio
        return failures / int(stats["requests"]) if failures >= 10 else None
    if expr.metric == "p" and expr.quantile in (50.0, 95.0, 99.0):
        value = stats.get(f"p{expr.quantile:g}_ms")
        return None if value is None else float(value)
    return None


# ---------------------------------------------------------------- the gate, with its I/O

def gate_run(run_dir: str | Path, budgets_path: str | Path, baseline_dir: str | Path | None = None,
             junit_path: str | Path | None = None, json_path: str | Path | None = None,
             out_dir: str | Path | None = None, allowed_regression: float | None = None) -> GateOutcome:
    """Gate one results folder: exit_code 0 when every budget holds, 1 when one is broken.

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
    outcome = GateOutcome(exit_code=0 if all(r.passed for r in results) else 1, table=table,
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
