"""The budgets file: k6-style expressions parsed strictly, and every fault reported as FILE:LINE: field: expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from gala.gate.budgets import Expression, load_budgets, parse_expression
from gala.contract.errors import InputError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text, metric, quantile, op, value", [
    ("p(99) < 250", "p", 99.0, "<", 250.0),
    ("p(95)<=300", "p", 95.0, "<=", 300.0),
    ("  p( 99.9 )  <  1000 ", "p", 99.9, "<", 1000.0),
    ("med <= 40", "p", 50.0, "<=", 40.0),
    ("avg < 30.5", "avg", None, "<", 30.5),
    ("max < 1000", "max", None, "<", 1000.0),
    ("rate < 0.01", "rate", None, "<", 0.01),
    ("rate<1e-3", "rate", None, "<", 0.001),
    ("rps > 100", "rps", None, ">", 100.0),
    ("achieved >= 0.9", "achieved", None, ">=", 0.9),
])
def test_k6_expressions_parse(text, metric, quantile, op, value):
    assert parse_expression(text) == Expression(metric, quantile, op, value)


@pytest.mark.parametrize("text, why", [
    ("p(99) > 250", "ceiling"),          # a latency budget is a ceiling
    ("rps < 100", "floor"),
    ("p(99) == 250", "not a k6-style"),
    ("p(99) < 250ms", "not a k6-style"),  # no units
    ("p99 < 250", "not a k6-style"),
    ("p(0) < 250", "percentile"),
    ("p(101) < 250", "percentile"),
    ("rate < 2", "error ratio"),
    ("p(99) < -5", "not a k6-style"),
    ("latency < 5", "not a k6-style"),
    ("p(99) < 250 and rate < 0.1", "not a k6-style"),
    ("", "not a k6-style"),
])
def test_bad_expressions_say_what_was_expected(text, why):
    with pytest.raises(ValueError, match=why):
        parse_expression(text)


@given(st.sampled_from(["p(50)", "p(95)", "p(99)", "p(99.9)", "max", "avg"]),
       st.sampled_from(["<", "<="]), st.floats(min_value=0.001, max_value=1e6, allow_nan=False))
def test_expression_text_round_trips(label, op, value):
    expr = parse_expression(f"{label} {op} {value!r}")
    again = parse_expression(expr.text().removesuffix(" ms"))
    assert again.metric == expr.metric and again.op == op and again.quantile == expr.quantile
    assert again.value == pytest.approx(value, rel=1e-5)
    # a ceiling holds below its value and breaks above it
    assert expr.holds(value * 0.5) and not expr.holds(value * 2)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    return path


def test_structured_keys_expressions_and_phases_become_budget_lines(tmp_path):
    path = write(tmp_path, """\
version: 1
links:
  grab:
    p95_ms: 300
    error_ratio: 0.01
    thresholds: ["p(99) < 800", "rps > 10"]
    phases:
      grab: {p99_ms: 600}
  chat:
    phases:
      chat:
        min_achieved_ratio: 0.8
baseline: {allowed_regression: 0.2, metrics: [p99_ms]}
abort: {grace_s: 5, min_requests: 50}
""")
    b = load_budgets(path)
    assert [(x.link, x.phase, x.expr.text(), x.source.rsplit(":", 1)[1]) for x in b.lines] == [
        ("grab", None, "p(95) <= 300 ms", "4"),
        ("grab", None, "rate <= 0.01", "5"),
        ("grab", None, "p(99) < 800 ms", "6"),
        ("grab", None, "rps > 10 req/s", "6"),
        ("grab", "grab", "p(99) <= 600 ms", "8"),
        ("chat", "chat", "achieved >= 0.8", "12"),
    ]
    assert b.baseline.allowed_regression == 0.2 and b.baseline.metrics == ["p99_ms"]
    assert b.abort.grace_s == 5 and b.abort.min_requests == 50 and b.abort.margin == 0.5
    assert b.links == ["grab", "chat"]


@pytest.mark.parametrize("text, message", [
    ("links:\n  grab:\n    p95_ms: '300'\n", r":3: links\.grab\.p95_ms: expected a number, got '300'"),
    ("links:\n  grab:\n    p95_ms: true\n", r":3: links\.grab\.p95_ms: expected a number, got True"),
    ("links:\n  grab:\n    p95_ms: -3\n", r":3: links\.grab\.p95_ms: expected a number > 0, got -3"),
    ("links:\n  grab:\n    error_ratio: 5\n", r":3: links\.grab\.error_ratio: expected a number <= 1"),
    ("links:\n  grab:\n    p95: 3\n", r":3: links\.grab\.p95: unknown field; check its spelling \(expected one of: p50_ms, .*thresholds, phases\)"),
    ("links:\n  grab:\n    thresholds:\n      - p(99) < 250\n      - p(99) > 250\n",
     r":5: links\.grab\.thresholds\[1\]: 'p\(99\) > 250': p\(99\) is a ceiling; expected < or <="),
    ("links:\n  grab:\n    thresholds: [5]\n", r":3: links\.grab\.thresholds\[0\]: expected a k6-style expression"),
    ("links:\n  grab:\n    thresholds: p(99) < 3\n", r":3: links\.grab\.thresholds: expected a list"),
    ("links:\n  grab: 300\n", r":2: links\.grab: expected a mapping, got 300"),
    ("links:\n  grab:\n    phases:\n      grab: {}\n", r":4: links\.grab\.phases\.grab: expected at least one budget"),
    ("links: {}\n", r":1: links: expected at least one link"),
    ("version: 2\nlinks:\n  grab: {p95_ms: 1}\n", r":1: version: expected 1, got 2"),
    ("links:\n  grab: {p95_ms: 1}\n  grab: {p99_ms: 1}\n", r":3: links\.grab: duplicate key"),
    ("links:\n  grab: [p95_ms: 3\n", r":3: not valid YAML"),
    ("", r":1: \(top level\): expected a mapping with `links:`"),
    ("- grab\n", r":1: \(top level\): expected a mapping"),
    ("budgets:\n  grab: {p95_ms: 1}\n", r":1: budgets: unknown field"),
    ("links:\n  grab: {p95_ms: 1}\nbaseline: {allowed_regression: x}\n",
     r":3: baseline\.allowed_regression: expected a number, got 'x'"),
])
def test_malformed_budgets_name_file_line_and_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as info:
        load_budgets(path)
    assert str(info.value).startswith(f"{path}:") and "\n" not in str(info.value)


def test_missing_budgets_file_is_bad_input(tmp_path):
    with pytest.raises(InputError, match="no such budgets file"):
        load_budgets(tmp_path / "nope.yaml")


def test_default_budgets_for_the_builtin_target_load():
    b = load_budgets(REPO / "loadtests" / "scenarios" / "feb1.budgets.yaml")
    assert {x.link for x in b.lines} >= {"grab", "share", "chat"}


def test_the_example_workflow_gates_and_publishes_what_it_wrote():
    import yaml

    flow = yaml.safe_load((REPO / "examples" / "ci" / "github-actions.yml").read_text())
    steps = flow["jobs"]["gate"]["steps"]
    scripts = "\n".join(s.get("run", "") for s in steps)
    assert "gala run" in scripts and "gala gate" in scripts and "feb1.budgets.yaml" in scripts
    junit = scripts.split("--junit ")[1].split()[0]
    reporter = next(s for s in steps if "test-reporter" in s.get("uses", ""))
    assert reporter["with"]["path"] == junit and reporter["with"]["reporter"] == "java-junit"
    artifact = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    assert junit.startswith(artifact["with"]["path"])
    assert flow["permissions"]["checks"] == "write"
