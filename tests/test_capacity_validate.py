"""Validation (`gala plan RUN_A --validate RUN_B`): the model fitted on one run against another run.

Real: two short rehearsals of the built-in target (the session's `short_run` and one more with another
seed); the per-phase CPU predicted from the first must match what the second measured. Synthetic: a run
whose true demand doubled must fail validation, one with the same demand must pass, one at three times
the rates must be flagged as an extrapolation, and bad folders exit 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capacity_model.api import plan_run
from capacity_model.validate import Tolerance, Validation
from conftest import gala
from gala.cli import main
from synth_runs import DEMAND_S, FEB1_PHASES, IDLE_CORES, write_run

FAST_SPEC = """\
latency_budgets:
  grab:  {percentile: 99, latency_ms: 200}
  share: {percentile: 99, latency_ms: 500}
  chat:  {percentile: 99, latency_ms: 300}
uncertainty: {draws: 20}
"""


@pytest.fixture
def spec(tmp_path) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(FAST_SPEC)
    return p


@pytest.fixture(scope="module")
def second_run(tmp_path_factory) -> Path:
    """A second real short rehearsal, another seed: the run at a known allocation (1 built-in target process)."""
    out = tmp_path_factory.mktemp("validate-run")
    gala("run", "--duration-scale", "0.2", "--no-plan", "--seed", "7", "--out", str(out), timeout_s=240, check=True)
    (folder,) = [p for p in out.iterdir() if (p / "run.json").exists()]
    return folder


def _plan(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------- real runs

def test_real_pair_cpu_predicted_per_phase(short_run, second_run, tmp_path, capsys):
    out = tmp_path / "plan"
    code, stdout, stderr = _plan(capsys, str(short_run), "--validate", str(second_run), "--out", str(out))
    assert code in (0, 3), stderr
    v = Validation.model_validate_json((out / "validation.json").read_text())
    assert v.model_run_ids == [short_run.name] and v.validated_run_id == second_run.name
    assert v.allocation_nodes == 1 and v.allocation_cores == 1.0  # one single-threaded target process
    # one check per phase of the feb1 scenario, on the target's one service, each over some seconds
    assert [c.phase for c in v.cpu] == ["grab", "share-burst", "chat"]
    for c in v.cpu:
        print(f"{c.phase}: predicted {c.predicted_cores:.3f} ± {c.predicted_se_cores:.3f} cores, measured "
              f"{c.measured_cores:.3f}, error {c.error_cores:+.3f} ({c.relative_error:+.0%})")
        assert c.windows >= 3 and 0.0 < c.measured_cores < 1.05
        assert 0.0 < c.predicted_cores and c.predicted_utilization == pytest.approx(c.predicted_cores)
        t = Tolerance()
        assert c.tolerance_cores == pytest.approx(max(t.cpu_cores, t.cpu_relative * c.measured_cores, t.cpu_sigmas
                                                      * (c.predicted_se_cores ** 2 + c.measured_se_cores ** 2) ** 0.5))
        assert abs(c.error_cores) <= c.tolerance_cores
        assert c.passed
    assert v.cpu_passed
    # latency: every planned link that ran in a phase has a prediction (base + Erlang C wait) and a measurement
    # (a link a short run cannot identify is not sized, so it has no prediction: the plan names it instead)
    refused = set(json.loads((out / "plan.json").read_text())["refused"])
    ran = {(l.phase, l.link) for l in v.latency}
    assert {(p, l) for p, l in [("grab", "grab"), ("share-burst", "share"), ("chat", "chat")] if l not in refused} <= ran
    assert not {l for _, l in ran} & refused
    for l in v.latency:
        assert l.measured_ms is not None and l.measured_ms > 0
        assert l.predicted_ms is not None and 0 < l.utilization < 1
    # the outputs: the CLI's line, validation.md and the report's section
    assert f"validation against {second_run.name}: CPU PASS" in stdout
    assert "# Validation against" in (out / "validation.md").read_text()
    assert f"## Validation against {second_run.name}" in (out / "report.md").read_text()


# ---------------------------------------------------------------------------- synthetic runs

def _doubled() -> dict[str, dict[str, float]]:
    return {svc: {l: 2 * d for l, d in links.items()} for svc, links in DEMAND_S.items()}


def test_doubled_demand_fails_and_same_demand_passes(tmp_path, spec, capsys):
    model = write_run(tmp_path / "a", seed=7)
    same = write_run(tmp_path / "b", seed=8)
    doubled = write_run(tmp_path / "c", seed=9, demand_s=_doubled())

    ok = plan_run([model], spec_path=spec, out_dir=tmp_path / "ok", validate_dir=same).validation
    assert ok.cpu_passed and ok.passed and not ok.extrapolation
    # latency is constant in these runs: base percentile + a short Erlang C wait at low load matches it
    assert {(c.phase, c.link) for c in ok.latency} >= {("grab", "grab"), ("chat", "chat")}
    assert all(c.passed for c in ok.latency)
    assert {(c.phase, c.service) for c in ok.cpu} == {(p.name, s) for p in FEB1_PHASES for s in DEMAND_S}
    for c in ok.cpu:  # the truth: U0 + sum rate x demand
        phase = next(p for p in FEB1_PHASES if p.name == c.phase)
        truth = IDLE_CORES[c.service] + sum(r * DEMAND_S[c.service][l] for l, r in phase.rps.items())
        assert c.predicted_cores == pytest.approx(truth, rel=0.05)
        assert c.measured_cores == pytest.approx(truth, rel=0.05)

    code, stdout, stderr = _plan(capsys, str(model), "--spec", str(spec), "--validate", str(doubled),
                                 "--out", str(tmp_path / "bad"))
    assert code == 0, stderr  # validation is a report: the plan's exit code is the plan's
    assert "CPU FAIL" in stdout
    bad = Validation.model_validate_json((tmp_path / "bad" / "validation.json").read_text())
    assert not bad.cpu_passed and not bad.passed
    for c in bad.cpu:  # the model predicts half of the requests' CPU: every phase and service misses
        assert not c.passed and c.error_cores < -c.tolerance_cores
        assert c.relative_error < -0.3


def test_a_mix_beyond_the_model_is_an_extrapolation(tmp_path, spec):
    model = write_run(tmp_path / "a", seed=7)
    busier = write_run(tmp_path / "b", seed=8, rate_scale=3.0)
    v = plan_run([model], spec_path=spec, out_dir=tmp_path / "out", validate_dir=busier).validation
    text = "\n".join(v.extrapolation)
    assert "phase grab: grab at" in text and "extrapolates" in text
    # linear demand still holds at three times the rates: the warning is about trust, not the verdict
    assert v.cpu_passed


# ---------------------------------------------------------------------------- bad input

def test_validate_on_a_bad_folder_is_one_line_exit_2(tmp_path, spec, capsys):
    model = write_run(tmp_path / "a", seed=7)
    missing = tmp_path / "nowhere"
    code, stdout, stderr = _plan(capsys, str(model), "--spec", str(spec), "--validate", str(missing))
    assert code == 2 and stdout == "" and "Traceback" not in stderr
    (error,) = [line for line in stderr.splitlines() if line.startswith("gala: ")]  # progress lines aside
    assert str(missing) in error

    no_cpu = write_run(tmp_path / "b", seed=8, with_cpu=False)
    code, _, stderr = _plan(capsys, str(model), "--spec", str(spec), "--validate", str(no_cpu))
    (error,) = [line for line in stderr.splitlines() if line.startswith("gala: ")]
    assert code == 2 and str(no_cpu / "cpu.csv") in error and "no target CPU samples" in error
    assert not (model / "plan").exists()  # nothing planned or written before the bad folder was refused
