"""Scenario files: the packaged ones load, plans are right, and every kind of bad input gives one line
`path:LINE: field: what was expected` (from the library and from the locustfile, without a traceback)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from loadtests.orchestrator.generator import locust_argv
from loadtests.scenario import DEFAULT_SCENARIO, PACKAGED_DIR, ScenarioError, load_scenario

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
name: t
seed: 1
target: {url: builtin}
links:
  a: {}
  b: {critical: false}
users:
  U:
    requests:
      - {path: /x, link: a, weight: 3}
      - {path: /y, link: b}
    rate_per_s: 2
phases:
  - name: one
    duration_s: 10
    users: {U: 5}
  - name: two
    start_s: 5
    duration_s: 10
    users: {U: 5}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def error_of(path: Path) -> str:
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_feb1_loads_with_overlapping_phases_and_its_critical_links():
    sc = load_scenario(DEFAULT_SCENARIO)
    assert sc.name == "feb1" and sc.seed == 2016 and sc.target.builtin
    assert sc.critical_links == ["grab", "share", "chat"] and "setup" in sc.links
    plans = sc.planned_phases()
    assert [p.name for p in plans] == ["grab", "share-burst", "chat"]
    assert plans[1].start_s < plans[0].end_s and plans[2].start_s < plans[1].end_s  # overlaps, as on the night
    assert 80 <= sc.total_duration_s <= 100
    assert len(sc.sha256) == 64 and sc.source_path == DEFAULT_SCENARIO.resolve()
    assert sc.target.audit_path == "/admin/audit" and sc.target.after_run[0].path == "/admin/draw"


def test_every_packaged_scenario_loads():
    for path in sorted(PACKAGED_DIR.rglob("*.yaml")):
        if path.name.endswith(".budgets.yaml"):
            continue  # budgets files, not scenarios
        load_scenario(path)


def test_duration_scale_seed_and_intended_rates(tmp_path):
    sc = load_scenario(write(tmp_path, GOOD), duration_scale=0.5, seed=99)
    assert sc.seed == 99 and sc.duration_scale == 0.5
    one, two = sc.planned_phases()
    assert (one.start_s, one.end_s, two.start_s, two.end_s) == (0.0, 5.0, 2.5, 7.5)
    assert sc.total_duration_s == 7.5
    # Phase one owns [0, 2.5): 5 users x 2/s; two owns [2.5, 7.5): 10 users on [2.5, 5), 5 on [5, 7.5).
    # Intended rps = expected attributed requests / phase duration, split 3:1 between links a and b.
    assert one.intended_rps["a"] == pytest.approx(10 * 2.5 / 5 * 0.75)
    assert two.intended_rps["a"] == pytest.approx((20 * 2.5 + 10 * 2.5) / 5 * 0.75)
    assert two.intended_rps["b"] == pytest.approx((20 * 2.5 + 10 * 2.5) / 5 * 0.25)


def test_arrival_rate_step_sets_user_pace(tmp_path):
    text = GOOD.replace("    users: {U: 5}\n  - name: two", "    users: {U: 5}\n    arrival_rps: {a: 30}\n  - name: two")
    sc = load_scenario(write(tmp_path, text))
    one = sc.planned_phases()[0]
    assert one.user_rate_per_s["U"] == pytest.approx(30 / (5 * 0.75))
    # Phase one owns [0, 5): its users are paced to 30/s on link a.
    assert one.intended_rps["a"] == pytest.approx(30 * 5 / 10)
    assert sc.user_rates_at(1.0)["U"] == pytest.approx(8.0) and sc.user_rates_at(6.0)["U"] == pytest.approx(2.0)


@pytest.mark.parametrize("old,new,line,expected", [
    ("    duration_s: 10\n    users: {U: 5}\n  - name: two", "    duration_s: 0\n    users: {U: 5}\n  - name: two",
     15, "phases[0].duration_s: expected a number >= 0.1, got 0"),
    ("    users: {U: 5}\n  - name: two", "    users: {V: 5}\n  - name: two", 16,
     "phases[0].users.V: unknown user 'V'; expected one of: U"),
    ("{path: /y, link: b}", "{path: /y, link: c}", 11, "users.U.requests[1].link: unknown link 'c'; expected one of: a, b"),
    ("  - name: two", "  - name: one", 17, "phases[1].name: duplicate phase name 'one'; expected unique names"),
    ("url: builtin", "url: http://198.51.100.3:80", 3,
     "target: url 'http://198.51.100.3:80' is not on loopback; set target.allow_remote_target: true"),
    ("url: builtin", "url: ftp//x", 3, 'target.url: expected "builtin" or an http(s) URL'),
    ("    rate_per_s: 2", "    rate_pre_s: 2", 12, "users.U.rate_pre_s: unknown field; check its spelling"),
    ("    rate_per_s: 2", "    rate_per_s: fast", 12, "users.U.rate_per_s: expected a number, got 'fast'"),
    ("    rate_per_s: 2", "    rate_per_s: 2\n    class_path: a.b:C", 8,
     "users.U: expected exactly one of class_path (a Python user class) or requests (a list)"),
    ("links:\n  a: {}\n  b: {critical: false}\n", "", 1, "links: missing; expected this field"),
    ("    start_s: 5", "    start_s: [5", 19, "expected ',' or ']'"),  # libyaml's wording or PyYAML's
])
def test_errors_name_file_line_and_field(tmp_path, old, new, line, expected):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    msg = error_of(path)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert expected in msg, msg


def test_arrival_rate_needs_a_user_that_carries_the_link(tmp_path):
    text = GOOD.replace("    users: {U: 5}\n  - name: two", "    users: {U: 5}\n    arrival_rps: {c: 3}\n  - name: two")
    text = text.replace("  b: {critical: false}", "  b: {critical: false}\n  c: {}")
    path = write(tmp_path, text)
    assert error_of(path) == (f"{path}:18: phases[0].arrival_rps.c: no user of this phase makes 'c' requests; "
                              "expected users whose requests (or link_shares) include that link")


def test_missing_file_and_not_a_mapping(tmp_path):
    assert error_of(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: no such scenario file"
    path = write(tmp_path, "- just\n- a list\n")
    assert error_of(path).startswith(f"{path}:1: expected a mapping")


def test_locustfile_reports_a_bad_scenario_in_one_line_and_exits_2(tmp_path):
    path = write(tmp_path, GOOD.replace("    users: {U: 5}\n  - name: two", "    users: {W: 5}\n  - name: two"))
    proc = subprocess.run(locust_argv(scenario=path), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{path}:16: phases[0].users.W: unknown user 'W'" in proc.stderr
