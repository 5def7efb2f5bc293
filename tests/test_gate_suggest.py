"""`gala gate --suggest`: budgets derived from clean runs (synthetic folders with known latencies) pass those
runs, are valid budgets files, and break on a 10x slower run; and bad uses are one line, exit 2."""

from __future__ import annotations

import dataclasses

import pytest

from gala.cli import main
from gala.gate.suggest import nice_ceiling
from synth_runs import FEB1_PHASES, write_run


def slowed(factor: float):
    return [dataclasses.replace(p, median_ms={link: 20.0 * factor for link in p.rps}) for p in FEB1_PHASES]


def suggest(capsys, *args: str) -> str:
    assert main(["gate", "--suggest", *args]) == 0
    return capsys.readouterr().out


def test_suggested_budgets_pass_the_clean_runs_and_break_on_a_10x_regression(tmp_path, capsys):
    clean = [write_run(tmp_path, slowed(1.0), seed=s, run_id=f"clean-{s}") for s in (1, 2)]
    text = suggest(capsys, *map(str, clean), "--headroom", "3")
    assert "clean run(s): clean-1, clean-2" in text and "p50_ms:" in text and "p99_ms:" in text
    budgets = tmp_path / "suggested.yaml"
    budgets.write_text(text)
    for run in clean:
        assert main(["gate", str(run), "--budgets", str(budgets)]) == 0, capsys.readouterr().out
    slow = write_run(tmp_path, slowed(10.0), seed=3, run_id="slow")
    assert main(["gate", str(slow), "--budgets", str(budgets)]) == 99
    out = capsys.readouterr().out
    for link in ("grab", "share", "chat"):
        assert f"{link} p(50) <= " in out.split("FAIL:")[1], out


def test_the_headroom_and_floor_set_each_ceiling(tmp_path, capsys):
    run = write_run(tmp_path, slowed(1.0), seed=1)
    tight = suggest(capsys, str(run), "--headroom", "1", "--floor-ms", "0")
    loose = suggest(capsys, str(run), "--headroom", "10")
    p50 = lambda text: float(text.split("p50_ms:")[1].split()[0])  # noqa: E731
    assert 15 <= p50(tight) <= 26 and 150 <= p50(loose) <= 260
    assert [nice_ceiling(x) for x in (37.2, 1234, 0.0123, 100)] == [38, 1300, pytest.approx(0.013), 100]


@pytest.mark.parametrize("args,expected", [
    (["--headroom", "0.5"], "--headroom 0.5: expected a factor in 1..100"),
    (["--floor-ms", "nan"], "--floor-ms nan: expected milliseconds"),
])
def test_bad_suggest_options_are_one_line_exit_2(tmp_path, capsys, args, expected):
    run = write_run(tmp_path, slowed(1.0), seed=1)
    assert main(["gate", "--suggest", str(run), *args]) == 2
    assert expected in capsys.readouterr().err


def test_an_unclean_run_is_refused_and_gating_needs_budgets(tmp_path, capsys):
    failed = write_run(tmp_path, slowed(1.0), seed=1, status="degraded")
    assert main(["gate", "--suggest", str(failed)]) == 2
    assert "the run is degraded; expected a clean, complete run" in capsys.readouterr().err
    assert main(["gate", str(failed)]) == 2
    assert "--budgets FILE: required" in capsys.readouterr().err
