"""`gala swarm size`: workers and pods from the generator CPU per request of a results folder."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, gala
from gala.contract.atomic import write_json_atomic
from gala.contract.results import (CPU_COLUMNS, PHASE_LINK_COLUMNS, TIMESERIES_COLUMNS, GeneratorInfo, PhaseRecord,
                                   RunInfo, ScenarioRef, TargetInfo, load_run)
from loadtests.swarm.size import NIGHT_RPS, generator_cost, size_for, write_overlay


def write_synthetic_run(parent: Path, run_id: str = "20260201-200000-feb1-a1b2c3", *, requests: int = 10_000,
                        generator_cpu_s: tuple[float, ...] = (6.0, 4.0), target_cpu_s: float = 50.0) -> Path:
    """A finished results folder written through gala/contract/results.py: `requests` in all, and generator
    processes whose cumulative cpu_s ends at the given values (the target's CPU must be ignored)."""
    folder = parent / run_id
    folder.mkdir(parents=True)
    info = RunInfo(run_id=run_id, status="complete", scenario=ScenarioRef(name="feb1", sha256="0" * 64),
                   links=["grab", "chat"], target=TargetInfo(url="http://192.0.2.10:8080"),
                   started_at="2026-02-01T20:00:00Z", ended_at="2026-02-01T20:00:10Z", duration_s=10.0,
                   phases=[PhaseRecord(name="grab", planned_start_s=0, planned_end_s=10, started_s=0, ended_s=10)],
                   generator=GeneratorInfo(mode="distributed", processes=len(generator_cpu_s), workers=len(generator_cpu_s) - 1))
    write_json_atomic(folder / "run.json", info.model_dump(mode="json"))
    (folder / "scenario.yaml").write_text((REPO / "k8s/base/scenario.yaml").read_text())
    grab, chat = int(requests * 0.7), requests - int(requests * 0.7)
    rows = [("grab", "grab", grab), ("grab", "chat", chat), ("grab", "_all", requests),
            ("_all", "grab", grab), ("_all", "chat", chat), ("_all", "_all", requests)]
    pl = pd.DataFrame([{c: None for c in PHASE_LINK_COLUMNS} | {"phase": p, "link": l, "requests": n, "failures": 0,
                        "duration_s": 10.0, "rps": n / 10} for p, l, n in rows], columns=PHASE_LINK_COLUMNS)
    pl.to_csv(folder / "phase_link_stats.csv", index=False)
    pd.DataFrame(columns=TIMESERIES_COLUMNS).to_csv(folder / "timeseries.csv", index=False)
    cpu = []
    procs = [("generator", 1000 + i, total) for i, total in enumerate(generator_cpu_s)] + [("target", 99, target_cpu_s)]
    for role, pid, total in procs:
        for t in range(1, 11):  # cumulative CPU-seconds, rising to `total` at the last second
            cpu.append({"t_s": t, "ts": 1.77e9 + t, "role": role, "pid": pid, "name": "locust" if role == "generator" else "target",
                        "cpu_percent": 100 * total / 10, "cpu_s": total * t / 10, "rss_mb": 80.0})
    pd.DataFrame(cpu, columns=CPU_COLUMNS).to_csv(folder / "cpu.csv", index=False)
    (folder / "histograms.json").write_text('{"bucketing": "locust", "phases": {}, "all": {}}')
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv"):
        (folder / name).write_text("")
    (folder / "locust_report.html").write_text("<html></html>")
    (folder / "locust.log").write_text("")
    return folder


def test_generator_cost_uses_last_cumulative_cpu_of_generator_processes(tmp_path):
    run = load_run(write_synthetic_run(tmp_path, requests=10_000, generator_cpu_s=(6.0, 4.0)))
    cost = generator_cost(run)
    assert cost.requests == 10_000 and cost.processes == 2
    assert cost.generator_cpu_s == pytest.approx(10.0)  # the target's 50 CPU-s are not the generator's
    assert cost.cpu_s_per_request == pytest.approx(1e-3)


def test_size_arithmetic():
    s = size_for(1_000, 1e-3, worker_cpu_target=0.7, pod_cpu_limit=1.0)
    assert s.cores == pytest.approx(1.0) and s.workers == 2 and s.pods == 2 and s.workers_per_pod == 1
    s = size_for(NIGHT_RPS, 1e-3, worker_cpu_target=0.5, pod_cpu_limit=2.0)
    assert s.workers == math.ceil(295e3 / 0.5) and s.workers_per_pod == 4 and s.pods == math.ceil(s.workers / 4)


def test_size_cli_prints_the_rate_and_the_night(tmp_path):
    folder = write_synthetic_run(tmp_path)
    proc = gala("swarm", "size", "--rps", "5000", "--from", str(folder), timeout_s=60)
    assert proc.returncode == 0, proc.stderr
    assert "1.000 ms CPU per request" in proc.stdout
    assert "5,000 req/s: 5.0 cores -> 8 workers at 0.7 core -> 8 pods" in proc.stdout
    # 295e6 req/s x 1 ms = 295,000 cores / 0.7 = 421,429 workers.
    assert "295,000,000 req/s (the night: 17.7e9 requests/min): 295,000.0 cores -> 421,429 workers" in proc.stdout


def test_size_write_overlay_sets_replicas_that_kustomize_renders(tmp_path):
    folder = write_synthetic_run(tmp_path / "results")
    overlays = tmp_path / "k8s" / "overlays"
    shutil.copytree(REPO / "k8s" / "base", tmp_path / "k8s" / "base")
    shutil.copytree(REPO / "k8s" / "overlays" / "gala-night", overlays / "gala-night")
    proc = gala("swarm", "size", "--rps", "5000", "--from", str(folder), "--write-overlay",
                "--overlay-dir", str(overlays / "gala-night"), timeout_s=60)
    assert proc.returncode == 0, proc.stderr
    from test_k8s_manifests import kustomize

    objs = {(d["kind"], d["metadata"]["name"]): d for d in kustomize(str(overlays / "gala-night"))}
    assert objs["Job", "gala-worker"]["spec"]["parallelism"] == 8 == objs["Job", "gala-worker"]["spec"]["completions"]
    env = {e["name"]: e["value"] for e in objs["Job", "gala-master"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GALA_WORKERS"] == "8"
    assert objs["ConfigMap", "gala-scenario"]["data"]["scenario.yaml"] == (folder / "scenario.yaml").read_text()


def test_write_overlay_refuses_a_patch_without_the_jobs(tmp_path):
    (tmp_path / "swarm.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
    from gala.contract.errors import InputError

    with pytest.raises(InputError, match="swarm.yaml: expected patches of Job gala-worker"):
        write_overlay(tmp_path, 3, "test")


@pytest.mark.parametrize("mutate, expected", [
    (lambda f: (f / "cpu.csv").write_text(",".join(CPU_COLUMNS) + "\n"), "no rows with role=generator"),
    (lambda f: (f / "run.json").unlink(), "run.json: missing"),
    (lambda f: (f / "run.json").write_text((f / "run.json").read_text().replace('"processes": 2', '"processes": 3')),
     "CPU of 2 generator process(es) sampled, but the run had 3 (remote workers?)"),
])
def test_size_bad_folder_is_one_line_exit_2(tmp_path, mutate, expected):
    folder = write_synthetic_run(tmp_path)
    mutate(folder)
    proc = gala("swarm", "size", "--rps", "100", "--from", str(folder), timeout_s=60)
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr


def test_size_on_a_real_short_run(short_run):
    """The session's real rehearsal (tests/conftest.py): its generator cost sizes the night."""
    cost = generator_cost(load_run(short_run))
    assert cost.requests > 0 and cost.generator_cpu_s > 0
    proc = gala("swarm", "size", "--rps", str(NIGHT_RPS), "--from", str(short_run), timeout_s=60)
    assert proc.returncode == 0, proc.stderr
    night = size_for(NIGHT_RPS, cost.cpu_s_per_request)
    assert f"-> {night.workers:,} workers" in proc.stdout and night.workers > 1000


HOSTILE_SCENARIOS = {
    # name: (how the run's scenario.yaml is spoiled, its line, what the one line says)
    "not UTF-8": (lambda t: t.replace("name: swarm-smoke", "name: swarm-smoke\ndescription: caf\xe9").encode("latin-1"),
                  4, "not UTF-8 text; expected a YAML scenario"),
    "a python tag": (lambda t: t.replace("seed: 2016", "seed: !!python/object/apply:os.system [true]").encode(), 5,
                     "seed: explicit tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    "an unknown link": (lambda t: t.replace("link: health}", "link: nope}").encode(), 15,
                        "users.probe.requests[0].link: unknown link 'nope'"),
    "a class that is not a Locust user": (lambda t: t.replace(
        "    requests:\n    - {method: GET, path: /healthz, link: health}",
        "    class_path: 'json:JSONDecoder'").encode(), 14,
        "users.probe.class_path: json:JSONDecoder is a class not derived from locust.User"),
}


@pytest.mark.parametrize("case", HOSTILE_SCENARIOS)
def test_write_overlay_holds_the_runs_scenario_to_gala_checks_checks(tmp_path, case):
    """The scenario a swarm would run goes through `gala check`'s reader and checks: one line, exit 2, and
    the overlay is left as it was."""
    spoil, line, expected = HOSTILE_SCENARIOS[case]
    folder = write_synthetic_run(tmp_path / "results")
    (folder / "scenario.yaml").write_bytes(spoil((folder / "scenario.yaml").read_text(encoding="utf-8")))
    overlay = tmp_path / "gala-night"
    shutil.copytree(REPO / "k8s" / "overlays" / "gala-night", overlay)
    proc = gala("swarm", "size", "--rps", "5000", "--from", str(folder), "--write-overlay",
                "--overlay-dir", str(overlay), timeout_s=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"gala: {folder / 'scenario.yaml'}:{line}: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr, proc.stderr
    for name in ("swarm.yaml", "scenario.yaml"):
        assert (overlay / name).read_bytes() == (REPO / "k8s" / "overlays" / "gala-night" / name).read_bytes()


def test_render_holds_its_scenario_to_gala_checks_checks(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text((REPO / "k8s/base/scenario.yaml").read_text().replace(
        "    requests:\n    - {method: GET, path: /healthz, link: health}", "    class_path: 'json:JSONDecoder'"))
    proc = gala("swarm", "render", "--target-url", "http://192.0.2.10:8080", "--scenario", str(bad), timeout_s=120)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{bad}:14: users.probe.class_path: json:JSONDecoder is a class not derived from locust.User" in proc.stderr
