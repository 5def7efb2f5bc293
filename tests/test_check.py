"""`gala check`: good files pass with the plan printed; bad ones list every fault at once (FILE:LINE), flag
what cannot work (an arrival rate the users cannot carry, a budget naming no link, a phase owning no
time), stay out of pandas/scipy/Locust; `gala run` refuses the same files before anything starts; and
`${ENV}` substitution in scenario values. No load is sent here."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, gala
from gala.cli.run import timespan
from loadtests.scenario import DEFAULT_SCENARIO, load_scenario
from loadtests.scenario.load import substitute_env

FEB1_BUDGETS = REPO / "loadtests" / "scenarios" / "feb1.budgets.yaml"
SPEC = REPO / "capacity_model" / "specs" / "gala-2016.yaml"

GOOD = """\
name: t
target: {url: builtin}
links: {a: {}, b: {}}
users:
  U: {requests: [{path: /x, link: a}, {path: /y, link: b}], rate_per_s: 2}
phases:
  - {name: one, duration_s: 10, users: {U: 5}}
  - {name: two, duration_s: 10, users: {U: 10}}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def faults_of(proc: subprocess.CompletedProcess) -> list[str]:
    return [l.removeprefix("gala check: ") for l in proc.stderr.splitlines() if "fault(s)" not in l]


def test_feb1_with_its_budgets_and_spec_passes_and_prints_the_plan():
    proc = gala("check", str(DEFAULT_SCENARIO), "--budgets", str(FEB1_BUDGETS), "--spec", str(SPEC), timeout_s=60)
    assert proc.returncode == 0, proc.stderr
    sc = load_scenario(DEFAULT_SCENARIO)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("feb1: 4 links, 3 user classes, 3 phases, 90 s, at most 510 users at once")
    for plan in sc.planned_phases():  # each phase's row carries its users and its intended total
        row = next(l for l in lines if l.startswith(plan.name + " "))
        assert f"{plan.start_s:g}-{plan.end_s:g}" in row
        assert all(f"{u} {n}" in row for u, n in plan.users.items())
        assert row.split()[-1] == f"{sum(plan.intended_rps.values()):,.0f}"
    assert lines[-1].startswith("gala check: OK")


def test_class_paths_are_found_from_any_working_directory(tmp_path):
    # gala's own users are in an installed (editable) package: found through Python's finders, not imported
    proc = subprocess.run([sys.executable, "-m", "gala", "check", str(DEFAULT_SCENARIO)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_check_stays_out_of_pandas_scipy_and_locust():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "gala", "check", str(DEFAULT_SCENARIO),
                           "--budgets", str(FEB1_BUDGETS), "--spec", str(SPEC)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {l.split("|")[-1].strip() for l in proc.stderr.splitlines() if l.startswith("import time:")}
    assert imported and not {m for m in imported if m.split(".")[0] in ("pandas", "scipy", "locust", "gevent",
                                                                          "matplotlib")}


def test_every_field_fault_at_once_with_its_line(tmp_path):
    path = write(tmp_path, GOOD.replace("rate_per_s: 2", "rate_per_s: fast, pacing: sometimes")
                 .replace("duration_s: 10, users: {U: 10}", "duration_s: -1, users: {U: 10}, colour: red"))
    proc = gala("check", str(path), timeout_s=60)
    assert proc.returncode == 2 and proc.stdout == ""
    faults = faults_of(proc)
    assert sorted(faults) == sorted([
        f"{path}:5: users.U.rate_per_s: expected a number, got 'fast'",
        f"{path}:5: users.U.pacing: expected 'poisson', 'jittered', 'burst' or 'none', got 'sometimes'",
        f"{path}:8: phases[1].duration_s: expected a number >= 0.1, got -1",
        f"{path}:8: phases[1].colour: unknown field; check its spelling (expected one of: name, duration_s, "
        "start_s, users, spawn_rate, arrival_rps)",
    ]), proc.stderr
    assert "Traceback" not in proc.stderr and "4 fault(s)" in proc.stderr


def test_what_cannot_work_is_flagged_all_at_once(tmp_path):
    # 250 req/s on link a from 1 user (250 actions/s), a phase covered by a later one, a budget on no link
    path = write(tmp_path, GOOD.replace("{U: 5}}", "{U: 1}, arrival_rps: {a: 125}}")
                 + "  - {name: three, start_s: 10, duration_s: 10, users: {U: 1}}\n")
    budgets = write(tmp_path, "links:\n  a: {p95_ms: 100}\n  nope: {p95_ms: 100}\n"
                              "  b: {phases: {four: {p99_ms: 10}}}\n", "b.yaml")
    proc = gala("check", str(path), "--budgets", str(budgets), timeout_s=60)
    assert proc.returncode == 2, proc.stdout
    faults = faults_of(proc)
    assert any(f.startswith(f"{path}:7: phases[0].arrival_rps.a: phase 'one' asks each of its 1 U users for "
                            "250.0 actions/s, more than the 50/s one user can make") and "at least 6 U users" in f
               for f in faults), faults
    assert any(f.startswith(f"{path}:8: phases[1]: phase 'two' owns no time") for f in faults), faults
    assert f"{budgets}:3: links.nope: unknown link; expected one of a, b" in faults
    assert f"{budgets}:4: links.b.phases.four: unknown phase; expected one of one, two, three" in faults
    assert len(faults) == 4, faults


def test_cross_field_faults_are_all_listed(tmp_path):
    path = write(tmp_path, GOOD.replace("link: b}", "link: c}").replace("{U: 10}", "{V: 10}"))
    faults = faults_of(gala("check", str(path), timeout_s=60))
    assert faults == [f"{path}:5: users.U.requests[1].link: unknown link 'c'; expected one of: a, b",
                      f"{path}:8: phases[1].users.V: unknown user 'V'; expected one of: U"]


def test_a_spec_naming_what_the_scenario_lacks(tmp_path):
    spec = write(tmp_path, SPEC.read_text() + "\n", "spec.yaml")
    spec.write_text(spec.read_text().replace("links: null", "links: [a, zzz]"))
    line = next(i for i, l in enumerate(spec.read_text().splitlines(), 1) if l.startswith("links:"))
    proc = gala("check", str(write(tmp_path, GOOD)), "--spec", str(spec), timeout_s=60)
    assert proc.returncode == 2
    # a copy of the default spec names grab in its what-if: written there, so refused too
    what_if = next(i for i, l in enumerate(spec.read_text().splitlines(), 1) if l.strip().startswith("link: grab"))
    assert faults_of(proc) == [f"{spec}:{line}: links.1: unknown link 'zzz'; expected one of a, b",
                               f"{spec}:{what_if}: grab_only.link: unknown link 'grab'; expected one of a, b"]


def test_gala_run_refuses_the_same_faults_before_starting_anything(tmp_path):
    path = write(tmp_path, GOOD.replace("{U: 5}}", "{U: 1}, arrival_rps: {a: 125}}"))
    out = tmp_path / "results"
    proc = gala("run", "--scenario", str(path), "--out", str(out), "--no-plan", timeout_s=60)
    assert proc.returncode == 2
    assert f"{path}:7: phases[0].arrival_rps.a: phase 'one' asks each of its 1 U users" in proc.stderr
    assert not out.exists()  # no folder, no target, no Locust


def test_users_scaling_and_locust_time_spans():
    proc = gala("check", str(DEFAULT_SCENARIO), "-u", "102", timeout_s=60)
    assert proc.returncode == 0
    assert "at most 102 users at once, users x0.2 (-u)" in proc.stdout
    assert "GrabUser 12, ShareUser 40" in proc.stdout  # 60 and 200, times 0.2
    assert [timespan(t) for t in ("90", "90s", "2m", "1h30m", "1m30s")] == [90, 90, 120, 5400, 90]
    bad = gala("run", "-t", "soon", timeout_s=60)
    assert bad.returncode == 2 and "expected a time like 30s, 2m or 1h30m" in bad.stderr
    refused = gala("run", "-u", "0", "--no-plan", timeout_s=60)
    assert refused.returncode == 2 and "-u/--users: expected a count >= 1, got 0" in refused.stderr
    helptext = gala("run", "--help", timeout_s=60).stdout
    assert "-u/--users N scales every phase's users" in " ".join(helptext.split())


def test_env_substitution_in_values():
    lines = {("a",): 3, ("b", 0): 4, ("c",): 5}
    data = {"a": "${HOST:-http://127.0.0.1:9}/x", "b": ["Bearer ${TOKEN}"], "c": "$${LITERAL} ${EMPTY:-d}"}
    out, faults = substitute_env(data, lines, "f.yaml", env={"TOKEN": "t0k", "EMPTY": ""})
    assert faults == [] and out == {"a": "http://127.0.0.1:9/x", "b": ["Bearer t0k"], "c": "${LITERAL} d"}
    _, faults = substitute_env(data, lines, "f.yaml", env={"EMPTY": ""})
    assert faults == ["f.yaml:4: b[0]: ${TOKEN}: the environment variable TOKEN is not set; set it, or write "
                      "${TOKEN:-default}"]
    _, faults = substitute_env({"a": "${1x}"}, lines, "f.yaml", env={})
    assert faults == ["f.yaml:3: a: ${1x} is not a variable reference; expected ${NAME} or ${NAME:-default} "
                      "(write $${ for a literal ${)"]


def test_env_substitution_in_a_scenario_file(tmp_path, monkeypatch):
    # in YAML's flow style ({...}) a reference is quoted: its braces would be YAML's
    text = GOOD.replace("rate_per_s: 2", "rate_per_s: '${GALA_T_RATE:-3}'").replace("path: /x", "path: '/${GALA_T_P}'")
    path = write(tmp_path, text)
    proc = gala("check", str(path), timeout_s=60)
    assert faults_of(proc) == [f"{path}:5: users.U.requests[0].path: ${{GALA_T_P}}: the environment variable "
                               "GALA_T_P is not set; set it, or write ${GALA_T_P:-default}"]
    monkeypatch.setenv("GALA_T_P", "items")
    monkeypatch.setenv("GALA_T_RATE", "4")
    sc = load_scenario(path)
    assert sc.users["U"].rate_per_s == 4.0 and sc.users["U"].requests[0].path == "/items"
    assert sc.sha256 == __import__("hashlib").sha256(path.read_bytes()).hexdigest()  # of the file as written


@pytest.mark.parametrize("old,new,expected", [
    ("link: b}", "link: b, expect: {status: 999}}", "users.U.requests[1].expect.status: expected HTTP status codes"),
    ("rate_per_s: 2", "rate_per_s: 2, feeder: {csv: nope.csv}", "users.U.feeder.csv: "),
    ("path: /x", "path: '/{{sku}}'", "users.U.requests: uses {{sku}} but the user has no feeder"),
])
def test_declarative_checks_and_feeders_are_checked(tmp_path, old, new, expected):
    faults = faults_of(gala("check", str(write(tmp_path, GOOD.replace(old, new))), timeout_s=60))
    assert len(faults) == 1 and expected in faults[0], faults
