"""`gala run --knee`: the plan after the rehearsal rests on a knee search (issue 11).

A bad --knee is refused before any load (one line, exit 2, nothing made). One real short rehearsal with
`--knee measure` (feb1 at a fifth of its length, the built-in target held to half a core, the grab mix
only, a bounded search of short steps) writes the search's folder and a plan whose grab demand at the
ceiling is anchored on it, not extrapolated; that folder then serves `--knee DIR` after a tiny rehearsal,
whose plan is the one `gala plan RUN KNEE` makes; and a search the generator saturated (its verdict
injected) leaves that run's plan to the run alone, extrapolated, with exit 1. About 70 s in all: the
rehearsal ~20 s, three 3-second steps ~30 s (fewer fall short of the ceiling), the tiny rehearsal ~13 s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, gala

pytestmark = pytest.mark.timeout(240)

TINY = REPO / "tests" / "scenarios" / "tiny-gala.yaml"


def _half_written(tmp_path: Path) -> Path:
    """A search cut short before knee.json (written last): its step folders and nothing else."""
    folder = tmp_path / "knee-half"
    (folder / "steps" / "20261129-120000-probe-knee-grab-0").mkdir(parents=True)
    return folder


def _interrupted(tmp_path: Path) -> Path:
    """A whole knee.json of a search stopped by Ctrl-C in its first step: no step measured."""
    from capacity_model.contracts.knee import KneeSearch

    folder = tmp_path / "knee-interrupted"
    folder.mkdir()
    (folder / "knee.json").write_text(KneeSearch(
        search_id=folder.name, scenario="feb1.yaml", target="builtin", ceiling=0.7, budgets={},
        started_at="2026-11-29T12:00:00Z", ended_at="2026-11-29T12:00:08Z", wall_s=8, mixes=[],
        stopped="interrupted").model_dump_json())
    return folder


def _run_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "a-run"
    folder.mkdir()
    (folder / "run.json").write_text("{}")
    return folder


@pytest.mark.parametrize("make, extra, says", [
    (lambda t: t / "nosuch", [], "no such folder"),
    (_half_written, [], "no knee.json (a search still running or cut short"),
    (_run_folder, [], "no knee.json"),
    (_interrupted, [], "mixes: no step measured (the search stopped: interrupted)"),
    (lambda t: "measure", ["--no-plan"], "--knee: a knee is for the plan; drop --no-plan"),
    (lambda t: "measure", ["--host", "http://127.0.0.1:9"], "--knee measure: needs the target's CPU"),
], ids=["missing", "half-written", "a-run-folder", "interrupted", "no-plan", "black-box"])
def test_a_bad_knee_is_one_line_exit_2_and_nothing_made(tmp_path, make, extra, says):
    out = tmp_path / "out"
    proc = gala("run", "--knee", str(make(tmp_path)), *extra, "--out", str(out), timeout_s=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("gala: ") and says in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not out.exists()


def _plan(run_dir: Path) -> dict:
    return json.loads((run_dir / "plan" / "plan.json").read_text())


def _anchored(plan: dict, link: str) -> bool:
    """The plan says the link's demand at the ceiling comes from the knee search (measured), not the
    rehearsal's demand extrapolated linearly."""
    (row,) = [a for a in plan["assumptions"] if a["figure"] == f"demand_at_ceiling.{link}"]
    return row["source"] == "run" and row["note"].startswith("knee search")


def _sized_sanely(plan: dict) -> None:
    """Every sized link has more than a node per zone and the band is finite: a knee curve falling towards
    zero once sized grab at 3 nodes and made the band NaN."""
    zones = plan["allocation"]["zones"]
    assert all(l["required_nodes"] > zones for l in plan["allocation"]["links"]), plan["allocation"]
    total = plan["uncertainty"]["total"]
    assert all(isinstance(total[q], (int, float)) and 0 < total[q] < 1e9 for q in ("p5", "p50", "p95")), total


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One real `gala run --knee measure`: (process, the run's folder, the knee search's folder)."""
    out = tmp_path_factory.mktemp("run-knee")
    proc = gala("run", "--duration-scale", "0.2", "--knee", "measure", "--target-cpu-limit", "0.5",
                "--knee-phase", "grab", "--knee-max-time", "28", "--knee-step-s", "3", "--out", str(out),
                timeout_s=200)
    runs = [p for p in out.iterdir() if (p / "run.json").is_file()]
    knees = [p for p in out.iterdir() if (p / "knee.json").is_file()]
    assert len(runs) == 1 and len(knees) == 1, (sorted(out.iterdir()), proc.stdout[-3000:], proc.stderr[-3000:])
    return proc, runs[0], knees[0]


def test_run_knee_measure_plans_at_the_measured_knee(measured):
    proc, run_dir, knee_dir = measured
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gala run (knee): grab step 0:" in proc.stdout and f"gala run: knee search {knee_dir}" in proc.stdout
    knee = json.loads((knee_dir / "knee.json").read_text())
    (mix,) = knee["mixes"]
    assert mix["mix"] == "grab" and knee["cpu_limit_cores"] == 0.5 and len(mix["steps"]) >= 2
    plan = _plan(run_dir)
    assert _anchored(plan, "grab"), plan["assumptions"]
    _sized_sanely(plan)
    assert plan["operating_points"] and {p["source"] for p in plan["operating_points"]} == {"load-dependent"}
    # not the rehearsal's linear extrapolation, which the plan of the run alone says it is
    assert not any(n.startswith("grab: figures extrapolated linearly") for n in plan.get("notes", []))


def test_run_knee_dir_is_the_plan_of_run_and_knee(measured, tmp_path):
    """The searched folder as --knee DIR after a tiny rehearsal: the plan `gala plan RUN KNEE` makes."""
    from capacity_model.api import plan_run

    _, _, knee_dir = measured
    out = tmp_path / "out"
    proc = gala("run", "--scenario", str(TINY), "--knee", str(knee_dir), "--quiet", "--out", str(out), timeout_s=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = out.iterdir()
    plan = _plan(run_dir)
    assert _anchored(plan, "grab"), plan["assumptions"]
    _sized_sanely(plan)
    again = plan_run([run_dir, knee_dir], out_dir=tmp_path / "again").plan
    assert plan["allocation"] == json.loads(again.model_dump_json())["allocation"]


def test_a_search_the_generator_saturated_leaves_the_plan_to_the_run_alone_and_exits_1(measured, tmp_path,
                                                                                      monkeypatch, capsys):
    """The search's own verdict injected (probe.search returns what a generator-saturated search returns,
    exit 1); the run's folder and the plan are real: the plan is the run's alone, extrapolated, exit 1."""
    import shutil

    from capacity_model.knee_report import load_knee
    from gala.cli import build_parser, probe, run_knee
    from gala.cli.run import after_run
    from gala.contract.results import load_run_info
    from loadtests.orchestrator.options import RunOutcome

    _, run_src, knee_dir = measured
    run_dir = tmp_path / run_src.name
    shutil.copytree(run_src, run_dir, ignore=shutil.ignore_patterns("plan"))
    stopped = load_knee(knee_dir).model_copy(update={"stopped": "the generator saturated in mix grab: 97% of a core"})
    monkeypatch.setattr(probe, "search", lambda s: (1, stopped))
    args = build_parser().parse_args(["run", "--quiet", "--knee", "measure", "--out", str(tmp_path)])
    knee = run_knee.Knee(search=probe.Search(args=args, say=lambda _m: None, bench=None, mixes=[], budgets={},
                                             ceiling=0.7, node_cores=0.5))
    code = after_run(RunOutcome(run_dir=run_dir, info=load_run_info(run_dir), exit_code=0), args, knee)
    err = capsys.readouterr().err
    assert code == 1 and "the knee search stopped: the generator saturated in mix grab" in err, err
    plan = _plan(run_dir)
    assert not _anchored(plan, "grab")
    # the rehearsal's own demand, extrapolated from the utilization it measured (the band widened by the
    # distance to the ceiling, which depends on how fast this machine's core ran the rehearsal)
    (row,) = [a for a in plan["assumptions"] if a["figure"] == "demand_at_ceiling.grab"]
    assert row["source"] == "assumed" and "extrapolated linearly from" in row["note"], row
