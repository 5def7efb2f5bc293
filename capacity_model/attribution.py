"""CPU per request per link from what the target attributed itself (`link_cpu.csv`, GET /admin/cpu).

The built-in target times each link's handlers with the thread's CPU clock. What no handler is charged
for (aiohttp's parsing and writing, the event loop) is the process's CPU minus the handlers' sum minus
its idle CPU; it is spread equally over every request the process handled (an assumption: the plan
states it, and the regression cross-checks it). So, per link l of a service:

    D[l] = handler CPU of l / requests of l  +  (process CPU - all handlers - idle) / all requests

Standard errors are those of ratio estimators over the polling intervals (about a second each).
Pure: frames in, figures out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gala.contract.results import PROCESS_ROW

MIN_REQUESTS = 50  # fewer requests of a link than this: no attributed demand for it


@dataclass
class Attributed:
    """Per service: link -> CPU-seconds per request and its standard error; per-run values; overhead."""

    cpu_s: dict[str, dict[str, float]] = field(default_factory=dict)  # service -> link -> D
    se_cpu_s: dict[str, dict[str, float]] = field(default_factory=dict)
    per_run: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # service -> link -> run -> D
    overhead_cpu_s: dict[str, float] = field(default_factory=dict)  # service -> unattributed CPU per request
    requests: dict[str, dict[str, int]] = field(default_factory=dict)  # service -> link -> requests

    def links(self, service: str) -> list[str]:
        return list(self.cpu_s.get(service, {}))


def _intervals(frame: pd.DataFrame, idle_cores: float, n_pids: int) -> list[dict]:
    """Per process: the deltas between consecutive polls (requests and CPU per link, process CPU, idle CPU)."""
    out = []
    for _pid, g in frame.groupby("pid"):
        req = g.pivot_table(index="ts", columns="link", values="requests", aggfunc="last").sort_index().ffill().fillna(0)
        cpu = g.pivot_table(index="ts", columns="link", values="cpu_s", aggfunc="last").sort_index().ffill().fillna(0)
        if len(req) < 2 or PROCESS_ROW not in cpu.columns:
            continue
        dt = np.diff(req.index.to_numpy(dtype=float))
        d_req, d_cpu = req.diff().iloc[1:].clip(lower=0), cpu.diff().iloc[1:].clip(lower=0)
        links = [c for c in d_req.columns if c != PROCESS_ROW]
        out.append({
            "req": d_req[links], "cpu": d_cpu[links],
            "proc": d_cpu[PROCESS_ROW].to_numpy(), "idle": idle_cores / max(n_pids, 1) * dt,
        })
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio estimator sum(num)/sum(den) and its standard error over the intervals."""
    total = float(den.sum())
    if total <= 0:
        return float("nan"), float("nan")
    r = float(num.sum()) / total
    n = num.size
    e = num - r * den
    se = np.sqrt(n / max(n - 1, 1) * float((e ** 2).sum())) / total
    return r, se


def _service_demand(parts: list[dict]) -> tuple[dict[str, float], dict[str, float], float, dict[str, int]]:
    req = pd.concat([p["req"] for p in parts], ignore_index=True).fillna(0)
    cpu = pd.concat([p["cpu"] for p in parts], ignore_index=True).reindex(columns=req.columns).fillna(0)
    proc = np.concatenate([p["proc"] for p in parts])
    idle = np.concatenate([p["idle"] for p in parts])
    all_req = req.to_numpy().sum(axis=1)
    unattributed = np.clip(proc - cpu.to_numpy().sum(axis=1) - idle, 0.0, None)
    o, o_se = _ratio(unattributed, all_req)
    D, SE, N = {}, {}, {}
    for link in req.columns:
        n = int(req[link].sum())
        if n < MIN_REQUESTS:
            continue
        h, h_se = _ratio(cpu[link].to_numpy(), req[link].to_numpy())
        D[str(link)] = h + (o if np.isfinite(o) else 0.0)
        SE[str(link)] = float(np.hypot(h_se, o_se if np.isfinite(o_se) else 0.0))
        N[str(link)] = n
    return D, SE, float(o) if np.isfinite(o) else 0.0, N


def attributed_demand(link_cpu: dict[str, pd.DataFrame], idle_cores: dict[str, dict[str, float]]) -> Attributed:
    """Pool every run's polls per service (cpu.csv's process name); also each run alone, for the spread."""
    out = Attributed()
    by_service: dict[str, list[dict]] = {}
    for run_id, frame in link_cpu.items():
        for service, g in frame.groupby("service"):
            idle = idle_cores.get(run_id, {}).get(str(service), 0.0)
            parts = _intervals(g, idle, g["pid"].nunique())
            if not parts:
                continue
            by_service.setdefault(str(service), []).extend(parts)
            D, _, _, _ = _service_demand(parts)
            for link, d in D.items():
                out.per_run.setdefault(str(service), {}).setdefault(link, {})[run_id] = d
    for service, parts in by_service.items():
        D, SE, o, N = _service_demand(parts)
        if D:
            out.cpu_s[service], out.se_cpu_s[service] = D, SE
            out.overhead_cpu_s[service], out.requests[service] = o, N
    return out
