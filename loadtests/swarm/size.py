"""Size a swarm: Locust workers and pods needed to generate a request rate, from a measured run.

The measure is the generator's CPU per request in a results folder: the CPU-seconds of every
generator process (cpu.csv, role=generator, cumulative `cpu_s`: its last value per process) over
the run's requests (phase_link_stats.csv, `_all,_all`). A Locust worker is one process that uses at
most one core; it is planned at a CPU target below that (0.7 core by default) so that its latencies
stay trustworthy, and a pod holds `floor(pod CPU limit / target)` workers (one, by default).
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml
from pydantic import BaseModel

from gala.contract.errors import InputError
from gala.contract.results import ALL, Run, ResultsError

NIGHT_RPS = 295e6  # 17.7e9 requests a minute (SEED-FACTS.md)


class GeneratorCost(BaseModel):
    """What one request cost the generator in a measured run."""

    run_id: str
    requests: int
    generator_cpu_s: float
    processes: int

    @property
    def cpu_s_per_request(self) -> float:
        return self.generator_cpu_s / self.requests


class SwarmSize(BaseModel):
    rps: float
    cpu_s_per_request: float
    worker_cpu_target: float
    pod_cpu_limit: float
    workers_per_pod: int
    cores: float
    workers: int
    pods: int


def generator_cost(run: Run) -> GeneratorCost:
    """Generator CPU-seconds and requests of a run; ResultsError when either is missing."""
    pl = run.phase_link
    total = pl[(pl["phase"] == ALL) & (pl["link"] == ALL)]
    if total.empty or int(total["requests"].iloc[0]) <= 0:
        raise ResultsError(f"{run.path / 'phase_link_stats.csv'}: no `_all,_all` row with requests > 0")
    gen = run.cpu[run.cpu["role"] == "generator"]
    if gen.empty:
        raise ResultsError(f"{run.path / 'cpu.csv'}: no rows with role=generator: this run did not sample its generator's CPU")
    # cpu_s is cumulative per process: its largest value is what the process used over the run.
    per_process = gen.groupby("pid")["cpu_s"].max()
    if per_process.size < run.info.generator.processes:
        # A master with remote workers (a swarm) samples only itself: the cost would look far too low.
        raise ResultsError(f"{run.path / 'cpu.csv'}: CPU of {per_process.size} generator process(es) sampled, but the run had "
                           f"{run.info.generator.processes} (remote workers?); measure with a local run: gala run [--workers N]")
    cpu_s = float(per_process.sum())
    if not cpu_s > 0:
        raise ResultsError(f"{run.path / 'cpu.csv'}: generator cpu_s sums to {cpu_s}; expected > 0")
    return GeneratorCost(run_id=run.run_id, requests=int(total["requests"].iloc[0]), generator_cpu_s=cpu_s,
                         processes=int(per_process.size))


def size_for(rps: float, cpu_s_per_request: float, *, worker_cpu_target: float = 0.7,
             pod_cpu_limit: float = 1.0) -> SwarmSize:
    """Workers (each at `worker_cpu_target` cores) and pods (`pod_cpu_limit` cores each) for `rps`."""
    if not (rps > 0 and math.isfinite(rps)):
        raise InputError(f"--rps: expected a rate > 0, got {rps}")
    if not 0 < worker_cpu_target <= 1:
        raise InputError(f"--worker-cpu: expected a share of one core in (0, 1], got {worker_cpu_target}")
    if pod_cpu_limit < worker_cpu_target:
        raise InputError(f"--pod-cpu-limit: {pod_cpu_limit} cores cannot hold one worker at {worker_cpu_target} cores")
    cores = rps * cpu_s_per_request
    workers = max(1, math.ceil(cores / worker_cpu_target))
    per_pod = max(1, math.floor(pod_cpu_limit / worker_cpu_target + 1e-9))
    return SwarmSize(rps=rps, cpu_s_per_request=cpu_s_per_request, worker_cpu_target=worker_cpu_target,
                     pod_cpu_limit=pod_cpu_limit, workers_per_pod=per_pod, cores=cores, workers=workers,
                     pods=math.ceil(workers / per_pod))


def latest_run(results_dir: Path) -> Path:
    """The newest finished folder under results/ (run ids sort by time)."""
    folders = sorted(p for p in results_dir.glob("*/run.json")) if results_dir.is_dir() else []
    if not folders:
        raise InputError(f"{results_dir}: no results folder to measure the generator's cost; run `gala run` or pass --from")
    return folders[-1].parent


def write_overlay(overlay_dir: Path, workers: int, note: str) -> Path:
    """Set the overlay's worker count (worker Job parallelism/completions, master GALA_WORKERS)."""
    path = overlay_dir / "swarm.yaml"
    if not path.exists():
        raise InputError(f"{path}: missing; expected the overlay's swarm.yaml patch")
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    seen = set()
    for d in docs:
        name = d.get("metadata", {}).get("name")
        if d.get("kind") == "Job" and name == "gala-worker":
            d.setdefault("spec", {}).update(parallelism=workers, completions=workers)
            seen.add(name)
        if d.get("kind") == "Job" and name == "gala-master":
            for c in d["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    if e["name"] == "GALA_WORKERS":
                        e["value"] = str(workers)
                        seen.add(name)
    if seen != {"gala-worker", "gala-master"}:
        raise InputError(f"{path}: expected patches of Job gala-worker and of Job gala-master's GALA_WORKERS env")
    header = f"# Written by `gala swarm size --write-overlay`: {note}\n"
    path.write_text(header + yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    return path
