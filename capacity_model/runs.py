"""Reading results folders into the capacity model's `Measurements`.

One or more runs (at the same or different scales) become aligned per-second frames: per-link
throughput and per-service busy cores of the target (the input of the demand fit), per-phase rates
(the mix) and per-phase latency percentiles from merged histograms. Runs that cannot be trusted are
refused (running, failed) or kept with a note the report shows (interrupted, degraded, generator
saturated, audit failed). Black-box links (no target CPU) get their per-node capacity from
`capacity_model.probe`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from capacity_model import probe
from capacity_model.contracts import PERCENTILE_COLUMNS, CapacitySpec, Measurements
from gala.contract.errors import InputError
from gala.contract.phases import owners
from gala.contract.histogram import histogram_percentiles, merge_histograms
from gala.contract.results import ALL, Run, load_link_cpu, load_run

# A run whose scenario name starts with this is a step-load probe: its steps give black-box
# capacities, not the night's mix (see loadtests/scenarios/probe.yaml).
PROBE_PREFIX = "probe"
# A run whose scenario name starts with this is a calibration (loadtests/scenarios/calibrate.yaml): its
# windows serve the demand fit, its phases are not the night's mix.
CALIBRATION_PREFIX = "calibrat"
LATENCY_COLUMNS = ["p50", "p90", "p95", "p99"]
# seconds per demand-fit window for a run whose CPU ticks were not aligned to the counting seconds:
# interpolation moves ~a quarter of a second's CPU into each neighbour, which over 5 s windows leaks
# only at the edges (issue 10: per-second fits of such runs were off by up to 50%); 3 s keeps enough
# windows in a short run
UNALIGNED_FIT_WINDOW_S = 3
ALIGNED_EARLY_S = 5.0


@dataclass
class RunSet:
    """The runs a plan is made from, and what was said about them while reading."""

    runs: list[Run]
    notes: list[str] = field(default_factory=list)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]

    @property
    def mix_runs(self) -> list[Run]:
        """Runs whose phases make the night's mix: every run but the step-load probes and the calibrations
        (their phases move links apart to measure them, not as the night will: all runs, if only those)."""
        rehearsals = [r for r in self.runs if not is_probe(r) and not is_calibration(r)]
        return rehearsals or self.runs

    @property
    def probe_runs(self) -> list[Run]:
        return [r for r in self.runs if is_probe(r)]


def is_probe(run: Run) -> bool:
    return run.info.scenario.name.lower().startswith(PROBE_PREFIX)


def is_calibration(run: Run) -> bool:
    return run.info.scenario.name.lower().startswith(CALIBRATION_PREFIX)


def read_runs(paths: list[Path]) -> RunSet:
    """Read each results folder; refuse unfinished or failed runs with one line, note the doubtful ones."""
    if not paths:
        raise InputError("gala plan: expected at least one results folder")
    runs: list[Run] = []
    notes: list[str] = []
    seen: dict[str, Path] = {}
    for path in paths:
        _refuse_a_parent_folder(Path(path))
        run = load_run(path)
        info = run.info
        if info.run_id in seen:
            raise InputError(f"{path}: run {info.run_id} is given twice (also as {seen[info.run_id]})")
        seen[info.run_id] = Path(path)
        if info.status == "failed":
            raise InputError(f"{Path(path) / 'run.json'}: status is 'failed': the run measured nothing a plan "
                             "can rest on; rerun it")
        if run.timeseries.empty or not (run.phase_link["requests"] > 0).any():
            raise InputError(f"{Path(path) / 'timeseries.csv'}: no request was measured; expected a run that "
                             "reached the target")
        notes.extend(_run_notes(run))
        runs.append(run)
    return RunSet(runs=runs, notes=notes)


def _refuse_a_parent_folder(path: Path) -> None:
    """`gala plan results/` names the folder of runs, not a run: say which runs it holds."""
    if path.is_dir() and not (path / "run.json").exists():
        runs = sorted(p.name for p in path.iterdir() if (p / "run.json").is_file())
        if runs:
            raise InputError(f"{path}: holds {len(runs)} results folder(s), not a run; expected one of them, "
                             f"e.g. {path / runs[-1]}")


def _run_notes(run: Run) -> list[str]:
    """What the report must say about a run whose numbers are partial or doubtful."""
    info, rid, out = run.info, run.run_id, []
    if info.interrupted or info.status == "interrupted":
        never = [p.name for p in info.phases if p.started_s is None]
        out.append(f"run {rid} was interrupted ({info.interrupt_reason or 'no reason recorded'}): planned "
                   f"from what it measured up to then" + (f"; phases never run: {', '.join(never)}" if never else ""))
    if info.generator.saturated:
        out.append(f"run {rid}: the load generator was saturated (peak {info.generator.peak_cpu_percent or 0:.0f}% "
                   "of a core): its latencies are not trustworthy, and neither are latency-based sizes from it")
    if info.status == "degraded" or info.degraded:
        what = "; ".join(f"{e.what}{': ' + e.detail if e.detail else ''}" for e in info.degraded) or "no detail"
        out.append(f"run {rid} is degraded (partial numbers): {what}")
    if info.audit.available and info.audit.passed is False:
        out.append(f"run {rid}: the target's audit failed: it served requests it got wrong, so its "
                   "throughput may overstate what it can do correctly")
    return out


# ---------------------------------------------------------------------------- frames

def _throughput(run: Run) -> pd.DataFrame:
    """Seconds x links (req/s) over the run's whole length, 0 where a link saw nothing."""
    ts = run.timeseries
    wide = ts.pivot_table(index="t_s", columns="link", values="requests", aggfunc="sum", fill_value=0)
    end = int(wide.index.max()) if len(wide) else 0
    if run.info.duration_s:
        end = max(end, int(np.floor(run.info.duration_s)) - 1)
    wide = wide.reindex(index=np.arange(0, end + 1), fill_value=0)
    wide.columns = [str(c) for c in wide.columns]
    wide.index.name = "t_s"
    return wide.astype(float)


def _busy_cores(run: Run) -> pd.DataFrame:
    """Seconds x services: cores busy in the target's processes, summed per process name (replicas of a
    service add up), from `cpu_percent` (a row t_s is the second [t_s, t_s+1), as timeseries.csv).

    So N processes of one program are one pooled service, not N services: the built-in target's
    workers (`gala run --target-processes N`) run the same code behind one port (one accept queue)
    over one shared store, so any request can land on any of them and their CPU per request is one
    demand; sizing then spreads that service's load over nodes. Processes of other programs (the
    shared store's redis-server) are services of their own, with their own demand."""
    cpu = run.cpu
    target = cpu[cpu["role"] == "target"]
    if target.empty:
        return pd.DataFrame(index=pd.Index([], name="t_s", dtype=int))
    target = target.assign(name=target["name"].map(service_name))
    wide = target.pivot_table(index="t_s", columns="name", values="cpu_percent", aggfunc="sum") / 100.0
    wide.columns = [str(c) for c in wide.columns]
    wide.index = wide.index.astype(int)
    return wide


def service_name(process_name: str) -> str:
    """A process name as a service: an interpreter's version suffix dropped (python3, python3.11 -> python),
    so that runs whose target was started through another launcher plan as one service."""
    return re.sub(r"^(python|pypy)[\d.]*$", r"\1", str(process_name))


def _window_phase(run: Run, seconds: np.ndarray) -> np.ndarray:
    """Phase of each second (its middle), by the one phase-owner rule (gala.contract.phases)."""
    phases = run.info.phases
    idx = owners([p.started_s for p in phases], [p.ended_s for p in phases], seconds + 0.5)
    return np.array([phases[i].name for i in idx], dtype=object)


def _windows(runset: RunSet) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, list[str]]:
    """Aligned (throughput, busy_cores, window_phase) indexed by (run_id, t_s), and notes."""
    notes: list[str] = []
    parts = []
    for run in runset.runs:
        x, u = _throughput(run), _busy_cores(run)
        parts.append((run, x, u))
        target = run.cpu[run.cpu["role"] == "target"]
        for name, pids in target.assign(name=target["name"].map(service_name)).groupby("name")["pid"].nunique().items():
            if pids > 1:
                notes.append(f"{run.run_id}: {pids} target processes named {name} are pooled as one service "
                             "(replicas of one program: their CPU adds up into one demand per request)")
    with_cpu = [p for p in parts if not p[2].empty]
    if with_cpu and len(with_cpu) < len(parts):
        skipped = [p[0].run_id for p in parts if p[2].empty]
        notes.append(f"runs without target CPU samples ({', '.join(skipped)}) are left out of the demand fit")
        parts = with_cpu
    services = sorted(set().union(*(set(p[2].columns) for p in parts))) if with_cpu else []
    if with_cpu:
        common = sorted(set.intersection(*(set(p[2].columns) for p in parts)))
        if common != services:
            notes.append(f"target services seen in only some runs are left out: "
                         f"{', '.join(s for s in services if s not in common)}")
            services = common
    xs, us, phases = [], [], []
    for run, x, u in parts:
        if with_cpu:
            # only the seconds both files cover; a service missing a second is not a zero
            u = u.reindex(columns=services)
            sec = x.index.intersection(u.dropna().index)
            x, u = x.loc[sec], u.loc[sec]
        else:
            u = pd.DataFrame(index=x.index)
        key = pd.MultiIndex.from_arrays([[run.run_id] * len(x), x.index.to_numpy()], names=["run_id", "t_s"])
        xs.append(x.set_axis(key))
        us.append(u.set_axis(key))
        phases.append(pd.Series(_window_phase(run, x.index.to_numpy()), index=key, name="phase"))
    order = list(dict.fromkeys(l for run, _, _ in parts for l in run.info.links))
    throughput = pd.concat(xs).fillna(0.0)
    throughput = throughput[sorted(throughput.columns, key=lambda l: (order + [l]).index(l))]
    busy = pd.concat(us) if with_cpu else pd.DataFrame(index=throughput.index)
    return throughput, busy, pd.concat(phases), notes


def _phase_rows(runs: list[Run]) -> pd.DataFrame:
    """Per (phase, link) rows of phase_link_stats.csv across runs, phases in the order they first ran."""
    frames = []
    for order, run in enumerate(runs):
        pl = run.phase_link
        pl = pl[(pl["phase"] != ALL) & (pl["link"] != ALL)].copy()
        pl["run_id"] = run.run_id
        pl["phase"] = pl["phase"].astype(str)
        pl["link"] = pl["link"].astype(str)
        frames.append(pl)
    return pd.concat(frames, ignore_index=True)


def phase_rps(runs: list[Run]) -> pd.DataFrame:
    """Phase x link req/s; a phase that ran in several runs gets its requests over its summed duration."""
    rows = _phase_rows(runs)
    order = list(dict.fromkeys(rows["phase"]))
    # a phase's duration counts once per run, whichever links it saw
    dur = rows.drop_duplicates(["run_id", "phase"]).groupby("phase")["duration_s"].sum()
    req = rows.pivot_table(index="phase", columns="link", values="requests", aggfunc="sum", fill_value=0)
    out = req.div(dur.reindex(req.index), axis=0).reindex(order)
    out.columns = [str(c) for c in out.columns]
    links = list(dict.fromkeys(l for r in runs for l in r.info.links))
    out = out[sorted(out.columns, key=lambda l: (links + [l]).index(l))]
    out.index.name = "phase"
    return out.fillna(0.0)


def phase_latency(runs: list[Run]) -> pd.DataFrame:
    """(phase, link) x p50/p90/p95/p99 in ms, from histograms merged across runs (CSV values when a run
    has no histogram for that pair)."""
    rows = _phase_rows(runs)
    qs = [p / 100.0 for p in PERCENTILE_COLUMNS]
    by_run = {r.run_id: r for r in runs}
    out = {}
    for (phase, link), grp in rows.groupby(["phase", "link"], sort=False):
        hists = [by_run[rid].histogram(link, phase) for rid in grp["run_id"]]
        if all(hists):
            out[(phase, link)] = histogram_percentiles(merge_histograms(*hists), qs)
        else:
            # without histograms, a request-weighted mean of the runs' percentiles is the best left
            w = grp["requests"].to_numpy(float)
            vals = grp[[f"{c}_ms" for c in LATENCY_COLUMNS]].to_numpy(float)
            out[(phase, link)] = list(np.average(vals, axis=0, weights=w if w.sum() else None))
    frame = pd.DataFrame.from_dict(out, orient="index", columns=LATENCY_COLUMNS)
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["phase", "link"])
    return frame


def phase_steps(runs: list[Run]) -> pd.DataFrame:
    """Per run, phase and link: requests, error ratio, rps, intended and achieved ratio, percentiles, nodes,
    the link's share of the phase's requests and the link the phase meant to load most (the rows the
    black-box probe reads)."""
    rows = _phase_rows(runs)
    nodes = {r.run_id: r.info.target.nodes for r in runs}
    leader = {(r.run_id, p.name): max(p.intended_rps, key=p.intended_rps.get)
              for r in runs for p in r.info.phases if p.intended_rps}
    rows["nodes"] = rows["run_id"].map(nodes)
    rows["intended_leader"] = [leader.get(k) for k in zip(rows["run_id"], rows["phase"])]
    total = rows.groupby(["run_id", "phase"])["requests"].transform("sum")
    rows["share"] = rows["requests"] / total.where(total > 0, 1)
    return rows


def _measured_shape(runs: list[Run], spec: CapacitySpec) -> tuple[int, float, list[str]]:
    """Target nodes and cores per node behind the measurements, and notes on how they were found."""
    notes = []
    nodes = [r.info.target.nodes for r in runs]
    measured_nodes = max(set(nodes), key=nodes.count)
    if len(set(nodes)) > 1:
        notes.append(f"runs at different scales ({', '.join(map(str, sorted(set(nodes))))} target nodes): "
                     f"demands are per request, the latency base is from {measured_nodes}-node runs")
    cores = []
    for r in runs:
        declared = (r.info.target.model_extra or {}).get("cores_per_node")
        if declared:
            cores.append(float(declared))
        elif r.info.target.builtin:
            # the built-in target is single-threaded Python: one process keeps at most one core busy
            cores.append(r.info.target.processes / max(r.info.target.nodes, 1))
        else:
            # a staging node unknown to gala is taken for a night-time node: a measured node
            # never counts for more than one of the night's, whatever their cores
            cores.append(float(spec.node.cores))
            notes.append(f"run {r.run_id}: the target's cores per node are not recorded; assumed the spec's "
                         f"node.cores ({spec.node.cores}): one measured node = one node on the night")
    return measured_nodes, float(np.median(cores)), notes


def _critical_links(runs: list[Run]) -> list[str]:
    links: list[str] = []
    for r in runs:
        links.extend(r.info.critical_links or r.info.links)
    return list(dict.fromkeys(links))


def measure(runset: RunSet, spec: CapacitySpec) -> tuple[Measurements, dict[str, "probe.ProbeResult"]]:
    """Everything the planner needs from the runs; black-box links get their capacity from the probe
    (returned too, for the report's step tables)."""
    throughput, busy, window_phase, notes = _windows(runset)
    mix_runs = runset.mix_runs
    if all(is_probe(r) for r in runset.runs):
        notes.append("only step-load probe runs were given: their steps stand for the night's phases; "
                     "declare the mix in the spec (mix.source: declared) for a better plan")
    nodes, cores, shape_notes = _measured_shape(runset.runs, spec)
    links = spec.links or _critical_links(runset.runs)
    m = Measurements(
        run_ids=runset.run_ids,
        links=links,
        throughput=throughput,
        busy_cores=busy,
        phase_rps=phase_rps(mix_runs),
        phase_latency_ms=phase_latency(mix_runs),
        window_phase=window_phase,
        measured_nodes=nodes,
        measured_cores_per_node=cores,
        notes=[*runset.notes, *notes, *shape_notes],
    )
    cpu_links = _cpu_measured_links(throughput, busy)
    black_box = [l for l in links if l not in cpu_links]
    # the knee comes from the step-load runs (or, without any, from every run's phases)
    found = probe.black_box_capacity(phase_steps(runset.probe_runs or runset.runs), spec, black_box) \
        if black_box else {}
    for link, result in found.items():
        m.method[link] = "black-box"
        m.capacity_per_node[link] = result.capacity_per_node_rps
        if result.usl is not None:
            m.usl[link] = result.usl
        if result.scale_usl is not None:
            m.scale_usl[link] = result.scale_usl
        m.notes.append(result.note)
    for link in links:
        m.method.setdefault(link, "cpu-demand")
    for run in runset.runs:
        _read_cpu_extras(run, m)
    return m.validate(), found


def _read_cpu_extras(run: Run, m: Measurements) -> None:
    """What a run says about its CPU beyond cpu.csv: the idle measured before the load, whether the
    sampler ticked on the counting seconds, and the target's own CPU per link (link_cpu.csv)."""
    extra = run.info.target.model_extra or {}
    idle = (extra.get("idle") or {}).get("cores")
    if isinstance(idle, dict) and idle:
        cores: dict[str, float] = {}
        for k, v in idle.items():
            cores[service_name(str(k))] = cores.get(service_name(str(k)), 0.0) + float(v)
        m.idle_cores[run.run_id] = cores
    sampling = (run.info.model_extra or {}).get("cpu_sampling") or {}
    aligned_from = sampling.get("aligned_from_s")
    # aligned from the load's first seconds: 1 s windows after that; aligned late (or never): longer windows
    if aligned_from is not None and aligned_from <= ALIGNED_EARLY_S:
        m.fit_window_s[run.run_id] = 1
        m.fit_from_s[run.run_id] = float(aligned_from)
    else:
        m.fit_window_s[run.run_id] = UNALIGNED_FIT_WINDOW_S
    frame = load_link_cpu(run.path)
    if frame is not None and not frame.empty:
        names = run.cpu[run.cpu["role"] == "target"].drop_duplicates("pid").set_index("pid")["name"].map(service_name)
        frame = frame.copy()
        frame["service"] = frame["pid"].map(names).fillna("target").astype(str)
        m.link_cpu[run.run_id] = frame


def _cpu_measured_links(throughput: pd.DataFrame, busy: pd.DataFrame) -> set[str]:
    """Links whose requests ran in seconds where the target's CPU was sampled."""
    if busy.shape[1] == 0 or busy.empty:
        return set()
    seen = throughput.sum(axis=0)
    return {str(l) for l in seen[seen > 0].index}


def read_measurements(paths: list[Path], spec: CapacitySpec) -> Measurements:
    """Results folders -> Measurements."""
    return measure(read_runs(paths), spec)[0]
