"""Synthetic results folders with known truth, written through gala.contract.results' models, for the plan tests.

A `SynthPhase` says how long a phase lasts and what each link's arrival rate is; the writer draws
per-second Poisson request counts, makes each target service's CPU follow U = U0 + sum X*D (plus
noise), and writes run.json, phase_link_stats.csv, histograms.json, timeseries.csv and cpu.csv
exactly as results/README.md documents them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gala.contract.histogram import histogram_mean, histogram_percentiles, merge_histograms
from gala.contract.results import (
    ALL,
    CPU_COLUMNS,
    LINK_CPU_COLUMNS,
    PHASE_LINK_COLUMNS,
    TIMESERIES_COLUMNS,
    GeneratorInfo,
    PhaseRecord,
    RunInfo,
    ScenarioRef,
    TargetInfo,
)

LINKS = ["grab", "share", "chat"]
# CPU-seconds per request of each link on each target service: the truth the plan must recover
# (about what the night allows: 295e6 req/s on 10,000 32-core nodes is ~1 CPU-ms per request).
DEMAND_S = {
    "api": {"grab": 0.00006, "share": 0.00020, "chat": 0.00012},
    "store": {"grab": 0.00002, "share": 0.00010, "chat": 0.00003},
}
IDLE_CORES = {"api": 0.04, "store": 0.02}


@dataclass
class SynthPhase:
    name: str
    duration_s: int
    rps: dict[str, float]
    # median latency (ms) per link in this phase; p99 is about 3x the median
    median_ms: dict[str, float] = field(default_factory=dict)
    error_ratio: dict[str, float] = field(default_factory=dict)


FEB1_PHASES = [
    SynthPhase("grab", 30, {"grab": 4000, "share": 200, "chat": 100}),
    SynthPhase("share burst", 30, {"grab": 1200, "share": 1600, "chat": 600}),
    SynthPhase("chat", 30, {"grab": 600, "share": 700, "chat": 2200}),
]


def _latency_samples(rng: np.random.Generator, n: int, median_ms: float) -> np.ndarray:
    # lognormal with sigma 0.5: p99/p50 = exp(2.33*0.5) ~ 3.2
    return median_ms * np.exp(rng.normal(0.0, 0.5, size=n))


def _round_ms(ms: np.ndarray) -> np.ndarray:
    """round_response_time over an array: 1 ms below 100 ms, 10 ms below 1 s, 100 ms below 10 s, then 1 s."""
    step = np.select([ms < 100, ms < 1000, ms < 10000], [1, 10, 100], 1000)
    return (np.round(ms / step) * step).astype(np.int64)


def _hist(samples: np.ndarray) -> dict[int, int]:
    keys, counts = np.unique(_round_ms(samples), return_counts=True)
    return {int(k): int(c) for k, c in zip(keys, counts)}


def write_run(
    folder: Path,
    phases: list[SynthPhase] = FEB1_PHASES,
    *,
    seed: int = 7,
    run_id: str | None = None,
    scenario: str = "feb1",
    demand_s: dict[str, dict[str, float]] = DEMAND_S,
    idle_cores: dict[str, float] = IDLE_CORES,
    cpu_noise_cores: float = 0.004,
    nodes: int = 1,
    status: str = "complete",
    saturated: bool = False,
    rate_scale: float = 1.0,
    with_cpu: bool = True,
    measured_idle: bool = True,
    sampler_offset_s: float | None = None,
    link_cpu: str | None = None,
    overhead_s: float = 0.00003,
) -> Path:
    """Write one synthetic results folder and return its path.

    `measured_idle`: run.json says the target's idle CPU was measured before the load (as gala run
    does), with the true idle. `sampler_offset_s`: the CPU sampler ticked that far into each second and
    cpu.csv interpolated its samples onto whole seconds (the blur of issue 10), and run.json says the
    ticks were not aligned; None: ticks on the run's clock. `link_cpu`: the service that attributes its
    own CPU per link (link_cpu.csv, as the built-in target does): each request's handler is charged
    its demand minus `overhead_s`, the rest goes unattributed."""
    rng = np.random.default_rng(seed)
    run_id = run_id or f"20260205-120000-{scenario}-{seed:06x}"
    folder = Path(folder) / run_id
    folder.mkdir(parents=True, exist_ok=True)
    links = sorted({link for p in phases for link in p.rps}, key=lambda l: (LINKS + [l]).index(l))

    ts_rows, cpu_rows, stat_rows, records = [], [], [], []
    busy_all: dict[str, list[np.ndarray]] = {}
    counts_all: dict[str, list[np.ndarray]] = {}
    hists: dict[str, dict[str, dict[int, int]]] = {}
    t0, epoch = 0, 1_770_000_000
    for ph in phases:
        records.append(PhaseRecord(
            name=ph.name, planned_start_s=t0, planned_end_s=t0 + ph.duration_s,
            started_s=float(t0), ended_s=float(t0 + ph.duration_s),
            intended_rps={k: v * rate_scale for k, v in ph.rps.items()},
        ))
        secs = np.arange(t0, t0 + ph.duration_s)
        counts = {l: rng.poisson(ph.rps.get(l, 0.0) * rate_scale, size=len(secs)) for l in links}
        hists[ph.name] = {}
        for link in links:
            n = counts[link]
            if n.sum() == 0:
                continue
            med = ph.median_ms.get(link, 20.0)
            fails = rng.binomial(n, ph.error_ratio.get(link, 0.0))
            samples = _latency_samples(rng, int(n.sum()), med)
            hists[ph.name][link] = _hist(samples)
            offsets = np.concatenate([[0], np.cumsum(n)])
            for i, t in enumerate(secs):
                if n[i] == 0:
                    continue
                p50, p95, p99 = np.percentile(_round_ms(samples[offsets[i]:offsets[i + 1]]), [50, 95, 99])
                ts_rows.append([int(t), epoch + int(t), ph.name, link, int(n[i]), int(fails[i]), p50, p95, p99])
            stat_rows.append((ph.name, link, int(n.sum()), int(fails.sum()), float(ph.duration_s),
                              ph.rps.get(link, 0.0) * rate_scale, hists[ph.name][link]))
        if with_cpu:
            for svc, d in demand_s.items():
                busy = idle_cores[svc] + sum(counts[l] * d.get(l, 0.0) for l in links)
                busy = np.clip(busy + rng.normal(0.0, cpu_noise_cores, size=len(secs)), 0.0, None)
                busy_all.setdefault(svc, []).append(busy)
            for link in links:
                counts_all.setdefault(link, []).append(counts[link])
        t0 += ph.duration_s
    if with_cpu:
        secs = np.arange(t0)
        for svc in demand_s:
            busy = np.concatenate(busy_all[svc])
            if sampler_offset_s is not None:
                # cumulative CPU read at t + offset, interpolated back onto whole seconds (cpu.csv's rule)
                cum = np.concatenate([[0.0], np.cumsum(busy)])
                ticks = np.arange(0, t0) + sampler_offset_s
                read = np.interp(ticks, np.arange(t0 + 1), cum)
                edges = np.clip(np.arange(t0 + 1), ticks[0], ticks[-1])
                busy = np.diff(np.interp(edges, ticks, read))
                busy[0], busy[-1] = busy[1], busy[-2]  # the edge seconds outside the samples
            cum = np.cumsum(busy)
            for i, t in enumerate(secs):
                cpu_rows.append([int(t), epoch + int(t), "target", 100 + list(demand_s).index(svc),
                                 svc, 100.0 * busy[i], cum[i], 80.0])
        for t in secs:
            cpu_rows.append([int(t), epoch + int(t), "generator", 99, "locust", 35.0, 0.0, 60.0])
        if link_cpu is not None:
            _write_link_cpu(folder, links, {l: np.concatenate(counts_all[l]) for l in links},
                            demand_s[link_cpu], idle_cores[link_cpu], overhead_s, epoch, rng)

    total_s = float(t0)
    all_hists = {l: merge_histograms(*(hists[p][l] for p in hists if l in hists[p])) for l in links}
    rows = []

    def row(phase, link, req, fail, dur, intended, hist):
        p50, p90, p95, p99, pmax = histogram_percentiles(hist, [0.5, 0.9, 0.95, 0.99, 1.0])
        rps = req / dur if dur else 0.0
        return [phase, link, req, fail, fail / req if req else 0.0, dur, rps,
                intended if intended else None, rps / intended if intended else None,
                histogram_mean(hist), p50, p90, p95, p99, pmax]

    for phase, link, req, fail, dur, intended, hist in stat_rows:
        rows.append(row(phase, link, req, fail, dur, intended, hist))
    for ph in phases:
        mine = [r for r in stat_rows if r[0] == ph.name]
        rows.append(row(ph.name, ALL, sum(r[2] for r in mine), sum(r[3] for r in mine), float(ph.duration_s),
                        None, merge_histograms(*(r[6] for r in mine))))
    for link in links:
        mine = [r for r in stat_rows if r[1] == link]
        rows.append(row(ALL, link, sum(r[2] for r in mine), sum(r[3] for r in mine), total_s, None, all_hists[link]))
    rows.append(row(ALL, ALL, sum(r[2] for r in stat_rows), sum(r[3] for r in stat_rows), total_s, None,
                    merge_histograms(*all_hists.values())))

    pd.DataFrame(rows, columns=PHASE_LINK_COLUMNS).to_csv(folder / "phase_link_stats.csv", index=False)
    pd.DataFrame(ts_rows, columns=TIMESERIES_COLUMNS).to_csv(folder / "timeseries.csv", index=False)
    pd.DataFrame(cpu_rows, columns=CPU_COLUMNS).to_csv(folder / "cpu.csv", index=False)
    (folder / "histograms.json").write_text(json.dumps({
        "bucketing": "locust",
        "phases": {p: {l: {str(k): v for k, v in h.items()} for l, h in d.items()} for p, d in hists.items()},
        "all": {l: {str(k): v for k, v in h.items()} for l, h in all_hists.items()},
    }))
    scenario_text = json.dumps([p.__dict__ for p in phases])
    (folder / "scenario.yaml").write_text(f"# synthetic\nname: {scenario}\n")
    info = RunInfo(
        run_id=run_id, status=status, interrupted=status == "interrupted",
        interrupt_reason="SIGTERM" if status == "interrupted" else None,
        scenario=ScenarioRef(name=scenario, sha256=hashlib.sha256(scenario_text.encode()).hexdigest(), seed=seed),
        links=links, critical_links=[l for l in links if l in LINKS],
        target=TargetInfo(url="http://127.0.0.1:1", builtin=True, pids=[100, 101], nodes=nodes,
                          processes=len(demand_s),
                          **({"idle": {"cores": dict(idle_cores), "window_s": 2.0, "window_start_s": -3.0}}
                             if measured_idle and with_cpu else {})),
        cpu_sampling={"interval_s": 1.0, "aligned_from_s": None if sampler_offset_s is not None else 0.0},
        started_at="2026-02-05T12:00:00Z", ended_at="2026-02-05T12:01:30Z", duration_s=total_s,
        phases=records,
        generator=GeneratorInfo(peak_cpu_percent=95.0 if saturated else 40.0, saturated=saturated),
    )
    (folder / "run.json").write_text(info.model_dump_json(indent=2))
    return folder


def _write_link_cpu(folder: Path, links: list[str], counts: dict[str, np.ndarray], demand: dict[str, float],
                    idle: float, overhead_s: float, epoch: int, rng: np.random.Generator) -> None:
    """link_cpu.csv of a target that times its handlers: polled at every whole second, and once before."""
    n = len(next(iter(counts.values())))
    handler = {l: np.cumsum(counts[l] * max(demand.get(l, 0.0) - overhead_s, 0.0)) for l in links}
    req = {l: np.cumsum(counts[l]) for l in links}
    proc = np.cumsum(idle + sum(counts[l] * demand.get(l, 0.0) for l in links) + rng.normal(0, 0.001, n))
    rows = [[-1.0, epoch - 1.0, 100, "_process", 0, 0.5]]
    for t in range(n):
        ts = epoch + t + 1.0
        rows.append([t + 1.0, ts, 100, "_process", int(sum(req[l][t] for l in links)), 0.5 + idle + proc[t]])
        rows += [[t + 1.0, ts, 100, l, int(req[l][t]), float(handler[l][t])] for l in links]
    pd.DataFrame(rows, columns=LINK_CPU_COLUMNS).to_csv(folder / "link_cpu.csv", index=False)


def step_phases(capacity_rps: dict[str, float], steps: list[float], base_ms: float = 10.0,
                step_s: int = 10) -> list[SynthPhase]:
    """A step-load probe: every link's rate rises through `steps` (fractions of its capacity);
    latency follows M/M/1 (base / (1 - rho)) and errors appear once rho passes 0.97."""
    phases = []
    for i, frac in enumerate(steps, start=1):
        rho = min(frac, 0.995)
        phases.append(SynthPhase(
            f"step {i}", step_s, {l: c * frac for l, c in capacity_rps.items()},
            median_ms={l: base_ms / (1.0 - rho) for l in capacity_rps},
            error_ratio={l: (0.2 if frac > 0.97 else 0.0) for l in capacity_rps},
        ))
    return phases
