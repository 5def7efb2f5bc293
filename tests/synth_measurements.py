"""Synthetic measurements with known truth (demands, latencies), for tests and benchmarks.

Per-second Poisson request counts per link from each phase's rates, CPU per service following
U = U0 + X D plus Gaussian noise: the model must recover D. Pure numpy/pandas; no files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from capacity_model.contracts import Measurements

# the feb1 scenario's shape: a grab burst, sharing (while grabbing tails off), chatting
FEB1_PHASES = {
    "grab": {"grab": 750.0, "setup": 20.0},
    "share-burst": {"grab": 180.0, "share": 280.0, "setup": 5.0},
    "chat": {"chat": 500.0, "setup": 5.0},
}
FEB1_DEMAND = {"grab": {"target": 0.0004}, "share": {"target": 0.0012}, "chat": {"target": 0.0006},
               "setup": {"target": 0.002}}
FEB1_LATENCY_MS = {"grab": 8.0, "share": 15.0, "chat": 10.0, "setup": 20.0}


def synthetic_measurements(phases: dict[str, dict[str, float]] | None = None,
                           demand: dict[str, dict[str, float]] | None = None, *,
                           seconds_per_phase: int = 30, baseline_cores: float = 0.05, noise_cores: float = 0.01,
                           low_load_ms: dict[str, float] | None = None, critical: list[str] | None = None,
                           cores_per_node: float = 2.0, ramp_up: bool = True, seed: int = 0) -> Measurements:
    """Measurements of a run whose phases have the given per-link rates and whose services the given
    demands D[link][service] (CPU-seconds per request)."""
    phases = phases or FEB1_PHASES
    demand = demand or FEB1_DEMAND
    low_load_ms = low_load_ms or FEB1_LATENCY_MS
    rng = np.random.default_rng(seed)
    links = sorted({l for r in phases.values() for l in r} | set(demand))
    services = sorted({s for d in demand.values() for s in d})
    names = list(phases)
    rates = np.array([[phases[p].get(l, 0.0) for l in links] for p in names])
    window_phase = np.repeat(np.arange(len(names)), seconds_per_phase)
    # users spawn over the first third of a phase, so the load ramps up as in a real run
    ramp = np.tile(np.minimum(1.0, (np.arange(seconds_per_phase) + 1) / max(seconds_per_phase / 3, 1)), len(names))
    X = rng.poisson(rates[window_phase] * (ramp[:, None] if ramp_up else 1.0)).astype(float)
    D = np.array([[demand.get(l, {}).get(s, 0.0) for s in services] for l in links])
    U = baseline_cores + X @ D + rng.normal(0.0, noise_cores, size=(X.shape[0], len(services)))
    index = pd.MultiIndex.from_arrays([np.repeat("synthetic", X.shape[0]), np.arange(X.shape[0])],
                                      names=["run_id", "t_s"])
    throughput = pd.DataFrame(X, index=index, columns=links)
    phase_rps = throughput.groupby(window_phase).mean()
    phase_rps.index = names
    lat_rows = [(p, l) for p in names for l in links if phases[p].get(l, 0.0) > 0]
    # percentiles grow with the phase's load a little, as a real run's would
    load = {p: sum(phases[p].values()) / max(sum(r.values()) for r in phases.values()) for p in names}
    lat = pd.DataFrame([[low_load_ms.get(l, 10.0) * (1 + 0.5 * load[p]) * f for f in (1.0, 2.0, 3.0)]
                        for p, l in lat_rows], index=pd.MultiIndex.from_tuples(lat_rows, names=["phase", "link"]),
                       columns=["p50", "p95", "p99"])
    return Measurements(
        run_ids=["synthetic"], links=critical or [l for l in links if l != "setup"], throughput=throughput,
        busy_cores=pd.DataFrame(U, index=index, columns=services), phase_rps=phase_rps, phase_latency_ms=lat,
        window_phase=pd.Series(np.array(names)[window_phase], index=index), measured_nodes=1,
        measured_cores_per_node=cores_per_node,
    )
