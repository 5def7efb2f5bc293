"""CPU per request per link from what the target attributed itself (`link_cpu.csv`, GET /admin/cpu).

The built-in target charges each link the thread CPU of its requests' whole path (parsing, aiohttp,
the middleware, the handler, writing the answer; an older or another target may charge only its
handlers). What no link is charged for is the process's CPU minus the links' sum, its idle CPU and its
speed samples. Where the links' CPU covers most of the process's (COVERED) that rest is the event
loop's own turns, spread equally per request. Where it is large (handlers only) it is not the same for
every link (a share request left ~0.37 CPU-ms of it, a setup request ~0.1, against ~0.22 on average,
in a calibration run), so it is regressed per link over the polling intervals, where counts and CPU
come from the target's own clocks at the same instant (no blur between neighbouring seconds). So, per
link l of a service:

    D[l] = charged CPU of l / requests of l  +  overhead per request of l (equal, or NNLS per link)

Where the intervals cannot separate the links (too few, or ill-conditioned), the overhead is spread
equally over every request instead. Standard errors: ratio estimators for the charged CPU, OLS for the
overhead. Pure: frames in, figures out.

The core's speed moves within a run on this machine kind (a link's CPU per request 0.070 -> 0.112 ms
within one phase). Where the target sampled it (`_speed` rows: the speed reference's work done in-run
and its CPU), each interval's CPU is scaled by its own speed over one speed for the whole plan, so every figure is CPU-seconds at that speed, whenever it was measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from capacity_model.demand import ILL_CONDITIONED
from gala.contract.results import PROCESS_ROW, SPEED_ROW

MIN_REQUESTS = 50  # fewer requests of a link than this: no attributed demand for it
FLAT_CV = 0.25     # a link whose requests per interval vary less than this (std / mean) never moved
# where the links' own CPU covers this much of the process's (the built-in target times each request's
# whole path), the rest is the event loop's own turns, spread equally per request: regressed per link, that
# ~20% remainder moved share's demand 16-35% between runs, against 5% spread equally, with the same mean
COVERED = 0.7


@dataclass
class Attributed:
    """Per service: link -> CPU-seconds per request and its standard error; per-run values; overhead."""

    cpu_s: dict[str, dict[str, float]] = field(default_factory=dict)  # service -> link -> D
    se_cpu_s: dict[str, dict[str, float]] = field(default_factory=dict)
    per_run: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # service -> link -> run -> D
    overhead_cpu_s: dict[str, float] = field(default_factory=dict)  # service -> unattributed CPU per request
    requests: dict[str, dict[str, int]] = field(default_factory=dict)  # service -> link -> requests
    # service -> how the overhead was shared: "regressed" per link, "covered" (the links' own CPU covers most
    # of the process's: the rest spread equally), "inseparable" (the polls could not separate the links: equally)
    overhead_shared: dict[str, str] = field(default_factory=dict)

    def links(self, service: str) -> list[str]:
        return list(self.cpu_s.get(service, {}))


def _interval_speed(units: np.ndarray, cpu: np.ndarray) -> np.ndarray:
    """Each poll interval's own in-run speed (units per CPU-second) from its `_speed` deltas; an interval
    without a sample takes its neighbour's. Measured over three default runs, pooling neighbours only
    blurs it (a total spread of 5.4% with each interval alone, 9.6% over 3 s, 11.6% over 31 s): a core's
    speed flips for seconds at a time."""
    own = np.divide(units, cpu, out=np.full(len(cpu), np.nan), where=np.asarray(cpu) > 0)
    return pd.Series(own).ffill().bfill().to_numpy()


def _intervals(frame: pd.DataFrame, idle_cores: float, n_pids: int, speed: float | None) -> list[dict]:
    """Per process: the deltas between consecutive polls (requests and CPU per link, process CPU, idle
    CPU), CPU scaled to `speed` by each interval's own in-run speed where the target sampled it."""
    out = []
    for _pid, g in frame.groupby("pid"):
        req = g.pivot_table(index="ts", columns="link", values="requests", aggfunc="last").sort_index().ffill().fillna(0)
        cpu = g.pivot_table(index="ts", columns="link", values="cpu_s", aggfunc="last").sort_index().ffill().fillna(0)
        if len(req) < 2 or PROCESS_ROW not in cpu.columns:
            continue
        dt = np.diff(req.index.to_numpy(dtype=float))
        d_req, d_cpu = req.diff().iloc[1:].clip(lower=0), cpu.diff().iloc[1:].clip(lower=0)
        links = [c for c in d_req.columns if c not in (PROCESS_ROW, SPEED_ROW)]
        sampled_any = SPEED_ROW in d_req.columns and d_req[SPEED_ROW].sum() > 0
        scale = (_interval_speed(d_req[SPEED_ROW].to_numpy(float), d_cpu[SPEED_ROW].to_numpy(float)) / speed
                 if sampled_any and speed else np.ones(len(d_req)))
        sampled = d_cpu[SPEED_ROW].to_numpy() if SPEED_ROW in d_cpu.columns else 0.0
        out.append({
            "req": d_req[links], "cpu": d_cpu[links].mul(scale, axis=0),
            "proc": (d_cpu[PROCESS_ROW].to_numpy() - sampled) * scale,
            "idle": idle_cores / max(n_pids, 1) * dt * scale,
        })
    return out


def in_run_speed(link_cpu: dict[str, pd.DataFrame]) -> float | None:
    """The speed (units per CPU-second) the targets' cores ran at over all the runs' polls: their
    sampled work over its CPU; None where no target sampled it."""
    units = cpu = 0.0
    for frame in link_cpu.values():
        for _pid, g in frame[frame["link"] == SPEED_ROW].groupby("pid"):
            g = g.sort_values("ts")
            units += float(g["requests"].iloc[-1] - g["requests"].iloc[0])
            cpu += float(g["cpu_s"].iloc[-1] - g["cpu_s"].iloc[0])
    return units / cpu if units > 0 and cpu > 0 else None


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


def _overhead_per_link(req: pd.DataFrame, unattributed: np.ndarray, links: list[str]
                       ) -> tuple[dict[str, float], dict[str, float]] | None:
    """What no handler was charged for, per request of each link: NNLS of each interval's unattributed CPU
    on its requests per link, with OLS standard errors. Counts and CPU come from the target's own clocks
    at the same instant, so there is no blur to fit around. None when the intervals cannot separate the
    links (too few, or a design worse conditioned than ILL_CONDITIONED)."""
    A = req[links].to_numpy(dtype=float)
    keep = A.sum(axis=1) > 0
    A, y = A[keep], unattributed[keep]
    if A.shape[0] < len(links) + 3:
        return None
    norm = np.linalg.norm(A, axis=0)
    if (norm == 0).any() or np.linalg.cond(A / norm) > ILL_CONDITIONED:
        return None
    coef, _ = nnls(A, y)
    dof = max(A.shape[0] - len(links), 1)
    cov = float(((y - A @ coef) ** 2).sum()) / dof * np.linalg.pinv(A.T @ A)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return dict(zip(links, coef.tolist())), dict(zip(links, se.tolist()))


def _service_demand(parts: list[dict]) -> tuple[dict[str, float], dict[str, float], float, dict[str, int], str]:
    req = pd.concat([p["req"] for p in parts], ignore_index=True).fillna(0)
    cpu = pd.concat([p["cpu"] for p in parts], ignore_index=True).reindex(columns=req.columns).fillna(0)
    proc = np.concatenate([p["proc"] for p in parts])
    idle = np.concatenate([p["idle"] for p in parts])
    all_req = req.to_numpy().sum(axis=1)
    unattributed = np.clip(proc - cpu.to_numpy().sum(axis=1) - idle, 0.0, None)
    o, o_se = _ratio(unattributed, all_req)
    links = [str(l) for l in req.columns if int(req[l].sum()) >= MIN_REQUESTS]
    # the overhead is not the same for every link (measured: a share request ~0.37 CPU-ms of it, a setup
    # request ~0.1, against 0.22 on average): regress it per link where the intervals separate the links.
    # A link whose rate never moved (the harness's own once-a-second polls) would act as a free intercept
    # and soak up load: it keeps the equal share and stays out of the design
    req = req.rename(columns=str)
    covered = float(cpu.to_numpy().sum()) >= COVERED * float(np.clip(proc - idle, 0.0, None).sum())
    moving = [] if covered else [l for l in links if req[l].std() > FLAT_CV * max(req[l].mean(), 1e-12)]
    per_link = _overhead_per_link(req, unattributed - o * req[[l for l in links if l not in moving]].sum(axis=1)
                                  .to_numpy(), moving) if moving and np.isfinite(o) else None
    D, SE, N = {}, {}, {}
    for link in links:
        h, h_se = _ratio(cpu[link].to_numpy(), req[link].to_numpy())
        if per_link is not None and link in per_link[0]:
            ol, ol_se = per_link[0][link], per_link[1][link]
        else:
            ol, ol_se = (o if np.isfinite(o) else 0.0), (o_se if np.isfinite(o_se) else 0.0)
        D[link] = h + ol
        SE[link] = float(np.hypot(h_se, ol_se))
        N[link] = int(req[link].sum())
    shared = "regressed" if per_link is not None else "covered" if covered else "inseparable"
    return D, SE, float(o) if np.isfinite(o) else 0.0, N, shared


def attributed_demand(link_cpu: dict[str, pd.DataFrame], idle_cores: dict[str, dict[str, float]],
                      speed: float | None = None) -> Attributed:
    """Pool every run's polls per service (cpu.csv's process name); also each run alone, for the spread.
    CPU is expressed at `speed` (default: the runs' own in-run speed) where the target sampled its speed."""
    out = Attributed()
    speed = speed or in_run_speed(link_cpu)
    by_service: dict[str, list[dict]] = {}
    for run_id, frame in link_cpu.items():
        for service, g in frame.groupby("service"):
            idle = idle_cores.get(run_id, {}).get(str(service), 0.0)
            parts = _intervals(g, idle, g["pid"].nunique(), speed)
            if not parts:
                continue
            by_service.setdefault(str(service), []).extend(parts)
            D = _service_demand(parts)[0]
            for link, d in D.items():
                out.per_run.setdefault(str(service), {}).setdefault(link, {})[run_id] = d
    for service, parts in by_service.items():
        D, SE, o, N, shared = _service_demand(parts)
        if D:
            out.cpu_s[service], out.se_cpu_s[service] = D, SE
            out.overhead_cpu_s[service], out.requests[service] = o, N
            out.overhead_shared[service] = shared
    return out


def busy_at_speed(busy: pd.DataFrame, link_cpu: dict[str, pd.DataFrame], speed: float | None) -> pd.DataFrame:
    """cpu.csv's busy cores (rows (run_id, second), a column per service) read at `speed`, like the target's
    own figures: each second of a service whose processes sampled their speed × that second's speed (their
    mean) / `speed`; every other second as measured. So the regression cross-checks like with like."""
    if not speed or not isinstance(busy.index, pd.MultiIndex):
        return busy
    out = busy.copy()
    runs, seconds = busy.index.get_level_values(0), busy.index.get_level_values(1).to_numpy(dtype=float)
    for run_id, frame in link_cpu.items():
        sel = np.asarray(runs == run_id)
        for service, g in frame[frame["link"] == SPEED_ROW].groupby("service"):
            if str(service) not in out.columns or not sel.any():
                continue
            per_pid = []
            for _pid, p in g.sort_values("ts").groupby("pid"):
                t = p["t_s"].to_numpy(dtype=float)
                if len(t) < 2:
                    continue
                own = _interval_speed(np.diff(p["requests"].to_numpy(float)), np.diff(p["cpu_s"].to_numpy(float)))
                k = np.searchsorted(t, seconds[sel] + 0.5) - 1  # the poll interval holding each second's middle
                per_pid.append(np.where((k >= 0) & (k < own.size), own[np.clip(k, 0, own.size - 1)], np.nan))
            if not per_pid:
                continue
            with np.errstate(all="ignore"):
                mean = pd.Series(np.nanmean(per_pid, axis=0)).fillna(speed).to_numpy()
            out.loc[sel, str(service)] = out.loc[sel, str(service)].to_numpy() * mean / speed
    return out
