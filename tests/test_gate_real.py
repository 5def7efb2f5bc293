"""`gala gate` on real rehearsals against the built-in target: the default budgets pass clean runs,
injected chat latency breaks exactly the chat budgets, a baseline finds that regression but none
between two clean runs, and `gala run --abort-on-fail` stops a clearly broken run.

Why the baseline runs are made at the same time: on this shared 2-core machine, a clean run's
percentiles move by up to ~7x from one minute to the next (measured: the median second's grab p95 34 ms
in one run, 240 ms in the next), which is the machine, not run-to-run noise a run can see in itself.
Two clean runs and the slowed one run side by side, so they share the machine's load and the
comparison is of runs, as it is on a CI runner of its own. Four real runs in all, besides the
session's `short_run`: three at once (~30 s) and the abort run (~20 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import xmlschema

from conftest import REPO, gala

BUDGETS = REPO / "loadtests" / "scenarios" / "feb1.budgets.yaml"
XSD = Path(__file__).parent / "data" / "junit-10.xsd"
CHAT_LATENCY_MS = 1500  # over every chat ceiling in feb1.budgets.yaml (chat-phase p50 100, p95 1000, p99 1400)
RUN_TIMEOUT_S = 240


def run_folder(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if (p / "run.json").exists()]
    return folder


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Two clean runs and one with chat slowed (gated by `gala run --budgets` itself), started together."""
    root = tmp_path_factory.mktemp("side-by-side")
    extra = {"clean_a": [], "clean_b": [],
             "slow_chat": ["--inject", f"chat:latency={CHAT_LATENCY_MS}", "--budgets", str(BUDGETS)]}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "gala", "run", "--duration-scale", "0.2", "--no-plan", "--quiet",
             "--out", str(root / name), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        for name, args in extra.items()
    }
    outputs = {}
    try:
        for name, proc in procs.items():
            outputs[name] = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    expected = {"clean_a": 0, "clean_b": 0, "slow_chat": 99}  # the slowed run's own gate fails it
    for name, proc in procs.items():
        out, err = outputs[name]
        assert proc.returncode == expected[name], f"gala run ({name}) exited {proc.returncode}:\n{out[-3000:]}\n{err[-3000:]}"
    return {name: (run_folder(root / name), outputs[name][0]) for name in procs}


def gate(run: Path, tmp_path: Path, *extra: str):
    json_path = tmp_path / "gate.json"
    proc = gala("gate", str(run), "--budgets", str(BUDGETS), "--json", str(json_path),
                "--junit", str(tmp_path / "junit.xml"), *extra, timeout_s=120)
    assert proc.returncode in (0, 99), f"gala gate exited {proc.returncode}: {proc.stderr}"
    print(proc.stdout)  # the table, for whoever reads a failing test's output
    return proc, json.loads(json_path.read_text())


def test_default_budgets_pass_a_clean_run(short_run, tmp_path):
    proc, doc = gate(short_run, tmp_path)
    assert proc.returncode == 0 and doc["passed"], proc.stdout
    assert {r["link"] for r in doc["results"]} == {"grab", "share", "chat"}
    assert all(r["measured"] is not None and r["margin"] >= 0 for r in doc["results"])
    assert "PASS: all" in proc.stdout
    xmlschema.XMLSchema(str(XSD)).validate(str(tmp_path / "junit.xml"))


def test_default_budgets_pass_clean_runs_on_a_busier_machine(side_by_side, tmp_path):
    for name in ("clean_a", "clean_b"):
        proc, doc = gate(side_by_side[name][0], tmp_path)
        assert proc.returncode == 0 and doc["passed"], proc.stdout


def test_injected_chat_latency_breaks_exactly_the_chat_latency_budgets(side_by_side, tmp_path):
    proc, doc = gate(side_by_side["slow_chat"][0], tmp_path)
    assert proc.returncode == 99, proc.stdout
    broken = [r for r in doc["results"] if not r["passed"]]
    chat_latency = [r for r in doc["results"] if r["link"] == "chat" and r["unit"] == "ms"]
    assert {r["name"] for r in broken} == {r["name"] for r in chat_latency}, proc.stdout
    assert all(r["measured"] >= CHAT_LATENCY_MS * 0.9 for r in chat_latency)
    for r in broken:
        assert r["name"] in proc.stdout.split("FAIL:")[1]
    xmlschema.XMLSchema(str(XSD)).validate(str(tmp_path / "junit.xml"))


def test_gala_run_with_budgets_gates_its_own_run(side_by_side):
    folder, stdout = side_by_side["slow_chat"]
    doc = json.loads((folder / "gate" / "gate.json").read_text())
    assert doc["exit_code"] == 99 and {r["link"] for r in doc["results"] if not r["passed"]} == {"chat"}
    assert "FAIL:" in stdout and "chat [chat] p(50) < 100 ms" in stdout
    xmlschema.XMLSchema(str(XSD)).validate(str(folder / "gate" / "junit.xml"))


def test_baseline_finds_no_regression_between_two_clean_runs(side_by_side, tmp_path):
    a, b = side_by_side["clean_a"][0], side_by_side["clean_b"][0]
    for run, base in ((a, b), (b, a)):
        proc, doc = gate(run, tmp_path, "--baseline", str(base))
        compared = [r for r in doc["results"] if r["kind"] == "baseline"]
        assert len(compared) == 8  # grab, share, chat, chat [chat] x p95, p99
        assert not [r for r in compared if r["status"] == "regressed"], proc.stdout
        assert proc.returncode == 0


def test_baseline_finds_the_injected_chat_latency(side_by_side, tmp_path):
    slow, clean = side_by_side["slow_chat"][0], side_by_side["clean_a"][0]
    proc, doc = gate(slow, tmp_path, "--baseline", str(clean))
    regressed = {r["name"] for r in doc["results"] if r["status"] == "regressed"}
    assert regressed == {f"{s} p({q}) vs baseline" for s in ("chat", "chat [chat]") for q in (95, 99)}, proc.stdout
    # and the other way round, the same lines are improvements, and nothing breaks
    proc, doc = gate(clean, tmp_path, "--baseline", str(slow))
    assert {r["name"] for r in doc["results"] if r["status"] == "improved"} == regressed, proc.stdout
    assert proc.returncode == 0


def test_abort_on_fail_stops_a_run_once_chat_is_clearly_broken(tmp_path):
    budgets = tmp_path / "chat.budgets.yaml"
    # a short grace period, since a run at --duration-scale 0.15 reaches its chat phase after 7.5 s
    budgets.write_text("links:\n  chat:\n    p99_ms: 200\nabort: {grace_s: 2, min_requests: 50}\n")
    # 500 ms: clearly over 200 ms + the 50% margin, and quick enough that 50 chat requests finish early
    proc = gala("run", "--duration-scale", "0.15", "--no-plan", "--quiet", "--out", str(tmp_path / "runs"),
                "--inject", "chat:latency=500", "--budgets", str(budgets), "--abort-on-fail", timeout_s=RUN_TIMEOUT_S)
    assert proc.returncode == 99, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    info = json.loads((run_folder(tmp_path / "runs") / "run.json").read_text())
    assert info["interrupted"] and info["interrupt_reason"].startswith("abort-on-fail: chat p(99) <= 200 ms: "), info
    # it stopped in the chat phase, before the scenario's planned end
    chat = next(p for p in info["phases"] if p["name"] == "chat")
    assert chat["started_s"] is not None and chat["ended_s"] < chat["planned_end_s"], info["phases"]
    assert "FAIL:" in proc.stdout and "chat p(99) <= 200 ms" in proc.stdout
