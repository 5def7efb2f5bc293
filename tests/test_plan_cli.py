"""`gala plan` on the command line: synthetic folders with known demands, bad input, an infeasible budget,
and a real short rehearsal."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from conftest import gala
from gala.cli import main
from synth_runs import DEMAND_S, LINKS, write_run

FAST_SPEC = """\
mix: {source: measured}
latency_budgets:
  grab:  {percentile: 99, latency_ms: 200}
  share: {percentile: 99, latency_ms: 500}
  chat:  {percentile: 99, latency_ms: 300}
redundancy: {zones: 3, survive_zone_loss: true}
uncertainty: {draws: 50}
"""


def write_spec(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(FAST_SPEC + extra)
    return p


def plan_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """The real CLI entry point in this process (no interpreter start-up): exit code, stdout, stderr."""
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, (code, err)
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("gala plan: reading")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def synth_plan(tmp_path_factory):
    """Two synthetic runs (1x and 0.5x), planned through the real CLI."""
    d = tmp_path_factory.mktemp("synth-plan")
    runs = [write_run(d, seed=31), write_run(d, seed=32, rate_scale=0.5)]
    out = d / "plan-out"
    proc = gala("plan", *map(str, runs), "--spec", str(write_spec(d)), "--out", str(out), timeout_s=120)
    return proc, out


def test_plan_recovers_the_demands_and_sizes_from_them(synth_plan):
    proc, out = synth_plan
    assert proc.returncode == 0, proc.stderr
    plan = json.loads((out / "plan.json").read_text())
    for link in LINKS:
        for svc, d in DEMAND_S.items():
            assert plan["demand"]["cpu_s_per_request"][link][svc] == pytest.approx(d[link], rel=0.05), (link, svc)
    assert plan["methods"] == {l: "cpu-demand" for l in LINKS}
    # sizes follow from the demands: each (link, service) pool keeps its busiest phase under the
    # ceiling; computed here from the TRUE demands, the plan's pools agree within the fit's error
    cores, ceiling = plan["spec"]["node"]["cores"], plan["spec"]["utilization_ceiling"]
    for s in plan["sizing"]:
        peak = max(rates[s["link"]] for rates in plan["mix"]["rate_per_s"].values())
        pools = {p["service"]: p for p in s["services"]}
        assert set(pools) == set(DEMAND_S)
        for svc, demand in DEMAND_S.items():
            expected = math.ceil(peak * demand[s["link"]] / (cores * ceiling))
            assert pools[svc]["nodes_for_utilization"] == pytest.approx(expected, rel=0.06), (s["link"], svc)
        assert s["nodes_required"] >= s["nodes_before_redundancy"] >= s["nodes_for_utilization"]
        assert max(ph["utilization"] for ph in s["phases"]) <= ceiling + 1e-9
    # the headline: nodes per link, total against the budget, the 1 February verdict, the report path
    assert "total" in proc.stdout and "of 10000 nodes" in proc.stdout
    assert "1 February what-if:" in proc.stdout
    assert f"report: {out / 'report.html'}" in proc.stdout
    alloc = pd.read_csv(out / "allocation.csv")
    assert list(alloc["link"]) == LINKS
    assert alloc["nodes"].sum() == plan["allocation"]["total_nodes"]


def test_default_out_is_the_first_run_plan_folder(tmp_path, capsys):
    run = write_run(tmp_path, seed=33)
    code, out, err = plan_in_process(capsys, str(run), "--spec", str(write_spec(tmp_path)))
    assert code == 0, err
    assert f"report: {run / 'plan' / 'report.html'}" in out
    assert (run / "plan" / "report.md").exists() and (run / "plan" / "plan.json").exists()


def test_an_infeasible_node_budget_exits_3_and_names_the_short_links(tmp_path, capsys):
    run = write_run(tmp_path, seed=34)
    code, stdout, err = plan_in_process(capsys, str(run), "--spec", str(write_spec(tmp_path, "node_budget: 3000\n")),
                                        "--out", str(tmp_path / "out"))
    assert code == 3, (stdout, err)
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    short = [a["link"] for a in plan["allocation"]["links"] if a["shortfall_nodes"] > 0]
    assert short and not plan["allocation"]["feasible"]
    assert plan["allocation"]["total_nodes"] <= 3000 < plan["allocation"]["required_nodes"]
    assert "cannot cover every link" in stdout
    for link in short:
        assert f"{link} short by" in stdout
    assert "cannot cover every link" in (tmp_path / "out" / "report.md").read_text()


def _break(folder: Path, how: str) -> None:
    if how == "missing run.json":
        (folder / "run.json").unlink()
    elif how == "status running":
        info = json.loads((folder / "run.json").read_text())
        info["status"] = "running"
        (folder / "run.json").write_text(json.dumps(info))
    elif how == "missing CSV column":
        ts = pd.read_csv(folder / "timeseries.csv").drop(columns=["requests"])
        ts.to_csv(folder / "timeseries.csv", index=False)


@pytest.mark.parametrize("how, needles", [
    ("missing run.json", ["run.json: missing"]),
    ("status running", ["run.json: status is 'running'"]),
    ("missing CSV column", ["timeseries.csv: missing column(s) requests"]),
])
def test_a_bad_folder_is_refused_with_one_line(tmp_path, capsys, how, needles):
    run = write_run(tmp_path, seed=35)
    _break(run, how)
    assert_one_line_error(*plan_in_process(capsys, str(run))[::2], str(run), *needles)
    assert not (run / "plan").exists()


def test_a_bad_spec_is_refused_with_its_line(tmp_path, capsys):
    run = write_run(tmp_path, seed=36)
    spec = write_spec(tmp_path, "utilization_ceiling: 1.5\n")
    assert_one_line_error(*plan_in_process(capsys, str(run), "--spec", str(spec))[::2],
                          f"{spec}:{FAST_SPEC.count(chr(10)) + 1}: utilization_ceiling")


def test_a_missing_folder_is_refused(tmp_path, capsys):
    assert_one_line_error(*plan_in_process(capsys, str(tmp_path / "nope"))[::2], "nope", "not a results folder")


def test_the_folder_of_runs_instead_of_a_run_names_one(tmp_path, capsys):
    run = write_run(tmp_path, seed=38)
    assert_one_line_error(*plan_in_process(capsys, str(tmp_path))[::2], "holds 1 results folder(s)", str(run))


def test_a_bad_folder_through_the_real_command_line(tmp_path):
    """The installed entry point too: exit 2, one line on stderr, no traceback."""
    run = write_run(tmp_path, seed=37)
    _break(run, "status running")
    proc = gala("plan", str(run), timeout_s=60)
    assert_one_line_error(proc.returncode, proc.stderr, "status is 'running'")


def test_plan_of_a_real_short_run(short_run, tmp_path):
    """The session's real `gala run --duration-scale 0.2 --no-plan` folder, planned with the default spec."""
    out = tmp_path / "plan"
    proc = gala("plan", str(short_run), "--out", str(out), timeout_s=180)
    assert proc.returncode in (0, 3), (proc.returncode, proc.stdout, proc.stderr)
    for name in ("report.md", "report.html", "allocation.csv", "plan.json"):
        assert (out / name).stat().st_size > 0, name
    run_info = json.loads((short_run / "run.json").read_text())
    report = (out / "report.md").read_text()
    for link in run_info["critical_links"]:
        assert link in report
    plan = json.loads((out / "plan.json").read_text())
    # every critical link is sized, or refused with the reason and the run that would identify it
    refused = set(plan["refused"])
    assert set(plan["links"]) | refused == set(run_info["critical_links"]) and not set(plan["links"]) & refused
    for ident in plan["identification"]:
        assert ident["identified"] == (ident["link"] not in refused)
        if not ident["identified"]:
            assert ident["reason"] and ident["fix"], ident
            assert f"{ident['link']} NOT SIZED" in proc.stdout
    assert plan["verdict"]["kind"] != "within budget" or not refused, plan["verdict"]  # never a confident total
    overloaded = {h["link"] for h in plan["feb1"]["links"] if h["overloaded"]}
    assert {"share", "chat"} - refused <= overloaded, plan["feb1"]
    assert "1 February what-if:" in proc.stdout
