"""`gala run --budgets` holds the budgets against the scenario before any load is sent."""

from __future__ import annotations

from conftest import gala


def test_a_budget_on_an_unknown_link_fails_before_the_run(tmp_path):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("version: 1\nlinks:\n  grab:\n    p95_ms: 500\n  nosuch:\n    p95_ms: 100\n")
    out = tmp_path / "results"
    proc = gala("run", "--budgets", str(budgets), "--out", str(out), timeout_s=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"gala: {budgets}:5: links.nosuch: unknown link; expected one of grab, share, chat, setup"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists() or not any(out.iterdir()), "no results folder for a run that never started"
