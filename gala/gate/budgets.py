"""The budgets file: latency, error and throughput budgets per link (and phase) that `gala gate` holds a run to.

A budgets file is YAML, validated with pydantic; every error is one line `FILE:LINE: field.path: expected …`,
with the line taken from the YAML node marks (yaml.compose), so a CI maintainer sees exactly what to fix.

    version: 1
    links:
      grab:
        p95_ms: 300            # ceilings: p50_ms p90_ms p95_ms p99_ms max_ms mean_ms error_ratio
        error_ratio: 0.01
        min_rps: 100           # floors: min_rps, min_achieved_ratio (achieved / intended rate)
        thresholds: ["p(99) < 800", "rate < 0.01"]   # k6-style, same meaning
        phases:
          grab: {p99_ms: 600}  # only the requests of that phase
    baseline: {allowed_regression: 0.1, metrics: [p95_ms, p99_ms], noise_z: 3}
    abort: {grace_s: 10, min_requests: 200, margin: 0.5}

Each key or expression becomes one `Budget` line: one row of the gate's table, one JUnit testcase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gala.contract.errors import InputError
from gala.contract.yamlfile import field_path, line_of, load_marked, validation_faults

# Metric names as k6 spells them; `rate` is the error ratio, `achieved` the achieved/intended rate ratio.
CEILING_METRICS = ("p", "med", "avg", "max", "rate")
FLOOR_METRICS = ("rps", "achieved")
UNITS = {"p": "ms", "med": "ms", "avg": "ms", "max": "ms", "rate": "", "rps": "req/s", "achieved": ""}
# Structured keys: (metric, percentile, comparison) for each.
KEY_METRICS: dict[str, tuple[str, float | None, str]] = {
    "p50_ms": ("p", 50.0, "<="), "p90_ms": ("p", 90.0, "<="), "p95_ms": ("p", 95.0, "<="),
    "p99_ms": ("p", 99.0, "<="), "max_ms": ("max", None, "<="), "mean_ms": ("avg", None, "<="),
    "error_ratio": ("rate", None, "<="), "min_rps": ("rps", None, ">="),
    "min_achieved_ratio": ("achieved", None, ">="),
}
BASELINE_METRICS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms")

_NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_EXPRESSION = re.compile(
    rf"^\s*(?:p\(\s*(?P<q>{_NUMBER})\s*\)|(?P<name>med|avg|max|rate|rps|achieved))"
    rf"\s*(?P<op><=|<|>=|>)\s*(?P<value>{_NUMBER})\s*$"
)
_EXPRESSION_HELP = "a k6-style expression like 'p(99) < 250', 'rate < 0.01', 'max < 1000', 'rps > 100', 'achieved > 0.9'"


@dataclass(frozen=True)
class Expression:
    """One parsed comparison: `metric[(q)] op value`."""

    metric: str
    quantile: float | None
    op: str
    value: float

    @property
    def label(self) -> str:
        """The metric as k6 writes it: p(99), max, rate, ..."""
        if self.metric == "p":
            return f"p({self.quantile:g})"
        return self.metric

    @property
    def unit(self) -> str:
        return UNITS[self.metric]

    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.label} {self.op} {self.value:g}{unit}"

    def holds(self, measured: float) -> bool:
        return {"<": measured < self.value, "<=": measured <= self.value,
                ">": measured > self.value, ">=": measured >= self.value}[self.op]

    @property
    def is_ceiling(self) -> bool:
        return self.op in ("<", "<=")


def parse_expression(text: Any) -> Expression:
    """Parse a k6-style threshold strictly; raise ValueError saying what was expected."""
    if not isinstance(text, str):
        raise ValueError(f"expected {_EXPRESSION_HELP}")
    m = _EXPRESSION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not {_EXPRESSION_HELP} (no units, one of < <= > >=)")
    metric = "p" if m["q"] is not None else m["name"]
    quantile = float(m["q"]) if m["q"] is not None else None
    if metric == "med":
        metric, quantile = "p", 50.0
    op, value = m["op"], float(m["value"])
    if not value <= MAX_VALUE:  # 1e999 is inf: a ceiling that can never break
        raise ValueError(f"{text!r}: expected a value of at most {MAX_VALUE:g}")
    if metric == "p" and not 0 < quantile <= 100:
        raise ValueError(f"{text!r}: the percentile in p(…) must be in (0, 100]")
    if metric in CEILING_METRICS and op not in ("<", "<="):
        raise ValueError(f"{text!r}: {m['name'] or f'p({quantile:g})'} is a ceiling; expected < or <=")
    if metric in FLOOR_METRICS and op not in (">", ">="):
        raise ValueError(f"{text!r}: {metric} is a floor; expected > or >=")
    if metric == "rate" and value > 1:
        raise ValueError(f"{text!r}: rate is the error ratio; expected a value in [0, 1]")
    return Expression(metric=metric, quantile=quantile, op=op, value=value)


Threshold = Annotated[Expression, BeforeValidator(parse_expression)]
# Ranges (docs/gate.md): finite everywhere; a latency ceiling of at most an hour; a rate up to 1e9/s.
MAX_LATENCY_MS = 3_600_000.0
MAX_VALUE = 1e9
LatencyMs = Annotated[float, Field(gt=0, le=MAX_LATENCY_MS, allow_inf_nan=False)]
Ratio = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)


class ScopeBudget(_Strict):
    """The budgets of one link, for the whole run or for one phase."""

    p50_ms: LatencyMs | None = None
    p90_ms: LatencyMs | None = None
    p95_ms: LatencyMs | None = None
    p99_ms: LatencyMs | None = None
    max_ms: LatencyMs | None = None
    mean_ms: LatencyMs | None = None
    error_ratio: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    min_rps: Annotated[float, Field(ge=0, le=MAX_VALUE, allow_inf_nan=False)] | None = None
    min_achieved_ratio: Ratio | None = None
    thresholds: list[Threshold] = Field(default_factory=list, max_length=100)


class LinkBudget(ScopeBudget):
    phases: dict[str, ScopeBudget] = Field(default_factory=dict)


class BaselinePolicy(_Strict):
    """How a run is compared with a baseline run (`gala gate --baseline`)."""

    allowed_regression: Ratio = 0.1
    metrics: list[Literal["p50_ms", "p90_ms", "p95_ms", "p99_ms"]] = Field(default_factory=lambda: ["p95_ms", "p99_ms"])
    # a difference counts as beyond noise when it exceeds noise_z standard errors (see gate.percentile_noise_ms)
    noise_z: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 3.0


class AbortPolicy(_Strict):
    """When `gala run --abort-on-fail` stops a run early: only when a budget is clearly broken."""

    grace_s: Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)] = 10.0
    min_requests: Annotated[int, Field(ge=1, le=10**9)] = 200
    margin: Ratio = 0.5   # measured must exceed the ceiling by this fraction


class BudgetsFile(_Strict):
    version: Literal[1] = 1
    links: dict[str, LinkBudget] = Field(max_length=1000)
    baseline: BaselinePolicy = Field(default_factory=BaselinePolicy)
    abort: AbortPolicy = Field(default_factory=AbortPolicy)


@dataclass(frozen=True)
class Budget:
    """One budget line: a link (and phase, None = the whole run) held to one expression."""

    link: str
    phase: str | None
    expr: Expression
    source: str        # "file:LINE", where the line is written
    field: str         # the field path, e.g. links.chat.phases.chat.p99_ms
    link_line: int
    phase_line: int | None

    @property
    def scope(self) -> str:
        return self.link if self.phase is None else f"{self.link} [{self.phase}]"

    @property
    def name(self) -> str:
        return f"{self.scope} {self.expr.text()}"


@dataclass
class Budgets:
    """A loaded budgets file: its lines in file order, and its baseline and abort policies."""

    path: Path
    lines: list[Budget]
    baseline: BaselinePolicy
    abort: AbortPolicy

    @property
    def links(self) -> list[str]:
        return list(dict.fromkeys(b.link for b in self.lines))


def read_budgets(path: str | Path) -> tuple[Budgets | None, list[str]]:
    """Read and validate a budgets file: (the budgets, []) or (None, every fault found, one line each)."""
    path = Path(path)
    try:
        data, lines = load_marked(path, "budgets")
    except InputError as exc:
        return None, [str(exc)]
    if data is None:
        return None, [f"{path}:1: (top level): expected a mapping with `links:`, the file is empty"]
    if not isinstance(data, dict):
        return None, [f"{path}:1: (top level): expected a mapping with `links:`"]
    parsed, faults = validation_faults(BudgetsFile, data, lines, str(path))
    if faults:
        return None, faults
    if not parsed.links:
        return None, [f"{path}:{line_of(lines, ('links',))}: links: expected at least one link with a budget"]
    try:
        return Budgets(path=path, lines=_budget_lines(parsed, path, lines), baseline=parsed.baseline,
                       abort=parsed.abort), []
    except InputError as exc:
        return None, [str(exc)]


def load_budgets(path: str | Path) -> Budgets:
    """Read and validate a budgets file; raise InputError `FILE:LINE: field: expected …` on the first fault."""
    budgets, faults = read_budgets(path)
    if faults:
        raise InputError(faults[0])
    return budgets


def _scope_lines(scope: ScopeBudget, prefix: tuple, link: str, phase: str | None,
                 path: Path, lines: dict[tuple, int]) -> list[Budget]:
    out = []
    link_line = lines[("links", link)]
    phase_line = None if phase is None else lines[prefix]
    for key, (metric, q, op) in KEY_METRICS.items():
        value = getattr(scope, key)
        if value is not None:
            loc = prefix + (key,)
            out.append(Budget(link, phase, Expression(metric, q, op, float(value)), f"{path}:{lines[loc]}",
                              field_path(loc), link_line, phase_line))
    for i, expr in enumerate(scope.thresholds):
        loc = prefix + ("thresholds", i)
        out.append(Budget(link, phase, expr, f"{path}:{lines[loc]}", field_path(loc), link_line, phase_line))
    if not out:
        raise InputError(f"{path}:{lines[prefix]}: {field_path(prefix)}: expected at least one budget "
                         f"(one of {', '.join(KEY_METRICS)}, thresholds)")
    return out


def _budget_lines(parsed: BudgetsFile, path: Path, lines: dict[tuple, int]) -> list[Budget]:
    out: list[Budget] = []
    for link, lb in parsed.links.items():
        if any(getattr(lb, k) is not None for k in KEY_METRICS) or lb.thresholds or not lb.phases:
            out += _scope_lines(lb, ("links", link), link, None, path, lines)
        for phase, pb in lb.phases.items():
            out += _scope_lines(pb, ("links", link, "phases", phase), link, phase, path, lines)
    return out


def budget_faults(budgets: Budgets, links: list[str], phases: list[str],
                  intended: dict[str, set[str]] | None = None) -> list[str]:
    """Every budget on a link or phase the run (or scenario) does not have, one line each naming the
    file and line; with `intended` (phase -> links the scenario intends a rate for), also every
    achieved-ratio budget that nothing intends, so it could never be measured."""
    known_links = set(links) | {"_all"}
    out: list[str] = []
    for b in budgets.lines:
        if b.link not in known_links:
            out.append(f"{budgets.path}:{b.link_line}: links.{b.link}: unknown link; expected one of {', '.join(links)}")
        elif b.phase is not None and b.phase not in phases:
            out.append(f"{budgets.path}:{b.phase_line}: links.{b.link}.phases.{b.phase}: unknown phase; "
                       f"expected one of {', '.join(phases)}")
        elif intended is not None and b.expr.metric == "achieved" and not any(
                b.link in ls for ph, ls in intended.items() if b.phase in (None, ph)):
            out.append(f"{b.source}: {b.field}: the scenario intends no rate for {b.scope} (no user's "
                       "link_shares or requests name it there), so an achieved ratio cannot be measured")
    return list(dict.fromkeys(out))


def check_against_run(budgets: Budgets, links: list[str], phases: list[str]) -> None:
    """Refuse (InputError naming the file and line) a budget on a link or phase the run does not have.

    `gala run --budgets` can call this before the run, with the scenario's links and phases.
    """
    faults = budget_faults(budgets, links, phases)
    if faults:
        raise InputError(faults[0])
