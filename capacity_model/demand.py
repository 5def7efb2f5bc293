"""Service demand D[link, service] (CPU-seconds per request) from per-window throughput and CPU.

Per service s, non-negative least squares over the windows t:
    U_s(t) ~ U0_s + sum_l X_l(t) D[l, s],   U0_s >= 0, D >= 0
(U in cores busy, X in req/s). The rehearsal's phases change the mix over time, which is what makes
D identifiable; when two links' rates moved together (|corr| > 0.98) or a link's rate never moved
(then it cannot be told from U0), the fit says so in `unidentifiable`.

Standard errors come from a circular block bootstrap of the residuals (blocks of ~n^(1/3) windows,
because per-second residuals are autocorrelated), refitted by one unconstrained least-squares solve
for all draws and services at once, clipped at zero (refitting only NNLS's active set would hide the
uncertainty of a coefficient that sits on its bound, such as a U0 clipped to 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from capacity_model.contracts import BASELINE, DemandFit
from gala.contract.errors import InputError

COLLINEAR_CORR = 0.98
# a column-scaled design worse conditioned than this has a near-null direction worth naming
# (a run whose phases are flat gives ~50 and demands off by 20%; ramps and overlaps give ~6)
ILL_CONDITIONED = 30.0


def _collinear_pairs(X: np.ndarray, links: list[str], scaled: np.ndarray, intercept: bool = True
                     ) -> list[tuple[str, str]]:
    """Pairs of design columns that the windows cannot tell apart (`scaled`: the design as fitted)."""
    std = X.std(axis=0)
    flat = std <= 1e-9 * np.maximum(np.abs(X).max(axis=0), 1e-300)
    # a flat link is confused with the idle term only when there is one to fit
    pairs = [(links[i], BASELINE) for i in np.flatnonzero(flat)] if intercept else []
    live = np.flatnonzero(~flat)
    if live.size >= 2:
        corr = np.corrcoef(X[:, live], rowvar=False)
        i, j = np.triu_indices(live.size, k=1)
        hit = np.abs(corr[i, j]) > COLLINEAR_CORR
        pairs += [(links[live[a]], links[live[b]]) for a, b in zip(i[hit], j[hit])]
    # a near-null direction of the scaled design: its two heaviest columns are the confused pair
    _, sv, vt = np.linalg.svd(scaled, full_matrices=False)
    if sv.size >= 2 and sv[-1] <= sv[0] / ILL_CONDITIONED:
        names = [BASELINE, *links] if intercept else list(links)
        a, b = np.argsort(-np.abs(vt[-1]))[:2]
        pair = tuple(sorted((names[a], names[b]), key=lambda n: n == BASELINE))
        if pair not in pairs and pair[::-1] not in pairs:
            pairs.append(pair)
    return pairs


def _block_indices(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n) window indices of a circular block bootstrap."""
    block = max(1, int(round(n ** (1 / 3))))
    starts = rng.integers(0, n, size=(draws, -(-n // block)))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return idx.reshape(draws, -1)[:, :n]


def _quiet_level(X: np.ndarray, y: np.ndarray) -> float:
    """Mean busy cores over the quietest tenth of the windows (by the links' rates, each relative to its
    peak; at least 3 windows): the idle cannot be above it. A mean, so noise does not pull it below
    the idle as a low quantile of the busy cores would."""
    load = (X / np.maximum(X.max(axis=0), 1e-300)).sum(axis=1)
    k = max(3, len(y) // 10)
    return float(y[np.argsort(load, kind="stable")[:k]].mean())


def estimate_demand(throughput: pd.DataFrame, busy_cores: pd.DataFrame, *, idle: pd.DataFrame | None = None,
                    bootstrap_draws: int = 200, seed: int = 0) -> DemandFit:
    """Fit D[link, service] by NNLS per service; report R^2, residuals, conditioning, collinear links.

    `idle` (same windows as busy_cores, cores per service, NaN where unknown): the idle CPU measured
    before the load. A service whose idle is known for every window is fitted without an intercept on
    busy - idle; otherwise its idle term U0 is fitted but bounded to [0, the mean busy cores of the
    quietest windows] (a free intercept soaks up load: issue 10 saw U0 = 0.09 cores against a measured 0.000 and
    demands 22-47% low)."""
    if busy_cores.shape[1] == 0:
        raise InputError("measurements: no CPU samples of the target's processes; "
                         "the demand cannot be estimated (use a black-box probe instead)")
    frame = pd.concat([throughput, busy_cores], axis=1, keys=["x", "u"]).dropna()
    links, services = list(throughput.columns), list(busy_cores.columns)
    X = frame["x"].to_numpy(dtype=float)
    U = frame["u"].to_numpy(dtype=float)
    n = X.shape[0]
    if n < len(links) + 2:
        raise InputError(f"measurements: {n} windows with both throughput and CPU; "
                         f"need at least {len(links) + 2} to fit {len(links)} links")
    I = np.full_like(U, np.nan)
    if idle is not None:
        I = idle.reindex(index=frame.index, columns=services).to_numpy(dtype=float)
    known = ~np.isnan(I).any(axis=0)  # per service: idle measured in every window
    rng = np.random.default_rng(seed)
    idx = _block_indices(n, bootstrap_draws, rng) if bootstrap_draws > 1 else None

    coef = np.zeros((len(links) + 1, len(services)))
    se = np.zeros_like(coef)
    fitted = np.zeros_like(U)
    designs, pinvs = {}, {}
    for j in range(len(services)):
        if known[j]:
            A, y, off = X, U[:, j] - I[:, j], I[:, j]
        else:
            A, y, off = np.column_stack([np.ones(n), X]), U[:, j], np.zeros(n)
        scale = np.linalg.norm(A, axis=0)
        scale[scale == 0] = 1.0
        As = A / scale
        designs[bool(known[j])] = As
        c = nnls(As, y)[0]
        if not known[j]:
            # one upper bound on a convex problem: if NNLS breaks it, the optimum sits on it
            cap = _quiet_level(X, y) * scale[0]
            if c[0] > cap:
                c = np.concatenate([[cap], nnls(As[:, 1:], y - cap * As[:, 0])[0]])
        fit_j = As @ c
        fitted[:, j] = fit_j + off
        c = c / scale
        if known[j]:
            coef[0, j], coef[1:, j] = float(np.mean(I[:, j])), c
        else:
            coef[:, j] = c
        if idx is not None:
            # one pseudo-inverse serves every draw: coef* = pinv (fitted + resampled residuals), clipped at 0
            # (refitting only NNLS's active set would hide the error of a coefficient on its bound)
            if bool(known[j]) not in pinvs:
                pinvs[bool(known[j])] = np.linalg.pinv(As)  # the design is the same for every such service
            pinv = pinvs[bool(known[j])]
            r = y - fit_j
            sol = (pinv @ fit_j)[:, None] + pinv @ r[idx].T
            sd = np.maximum(sol / scale[:, None], 0.0).std(axis=1, ddof=1)
            if known[j]:
                se[1:, j] = sd
            else:
                se[:, j] = sd

    resid = U - fitted
    ss_res = (resid ** 2).sum(axis=0)
    ss_tot = ((U - U.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res <= 1e-18, 1.0, 0.0))
    # conditioning and confusion of the design as fitted: without an intercept when every idle is measured
    intercept = not bool(known.all())
    As = designs[not intercept]

    D, SE = coef[1:], se[1:]
    return DemandFit(
        links=links, services=services,
        cpu_s_per_request={l: {s: float(D[i, j]) for j, s in enumerate(services)} for i, l in enumerate(links)},
        standard_error_cpu_s={l: {s: float(SE[i, j]) for j, s in enumerate(services)} for i, l in enumerate(links)},
        baseline_busy_cores={s: float(coef[0, j]) for j, s in enumerate(services)},
        r2={s: float(r2[j]) for j, s in enumerate(services)},
        residual_std_cores={s: float(resid[:, j].std()) for j, s in enumerate(services)},
        condition_number=float(np.linalg.cond(As)),
        unidentifiable=_collinear_pairs(X, links, As, intercept=intercept),
        windows=n, bootstrap_draws=bootstrap_draws,
        idle_measured={s: bool(known[j]) for j, s in enumerate(services)},
    )


def fit_windows(throughput: pd.DataFrame, busy_cores: pd.DataFrame, idle: pd.DataFrame | None,
                window_s: dict[str, int], from_s: dict[str, float] | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Average the per-second frames (index (run_id, t_s)) over windows of `window_s[run_id]` seconds,
    starting at `from_s[run_id]`; the seconds before it (CPU ticks not yet on the run's clock) make one
    window of their own when there are at least 2; only whole windows are kept.
    Counts and CPU are averaged over the same seconds, so a blur of CPU between neighbouring seconds
    leaks only across a window's edges."""
    if not isinstance(throughput.index, pd.MultiIndex) or not window_s:
        return throughput, busy_cores, idle
    run = throughput.index.get_level_values(0)
    t = throughput.index.get_level_values(1).to_numpy(dtype=float)
    start = np.array([np.ceil((from_s or {}).get(r, 0.0)) for r in run])
    size = np.array([max(int(window_s.get(r, 1)), 1) for r in run])
    early = (t < start) & (start >= 2)
    keep = (t >= start) | early
    block = np.where(early, -1, np.floor((t - start) / size)).astype(int)
    size = np.where(early, start, size)
    key = pd.MultiIndex.from_arrays([run, block], names=["run_id", "window"])
    parts = []
    for frame in (throughput, busy_cores, idle):
        if frame is None:
            parts.append(None)
            continue
        f = frame.set_axis(key)[keep]
        parts.append(f)
    counts = pd.Series(1, index=key)[keep].groupby(level=[0, 1]).size()
    whole = counts.index[counts.to_numpy() >= pd.Series(size, index=key)[keep].groupby(level=[0, 1]).first()
                         .reindex(counts.index).to_numpy()]
    out = [None if f is None else f.groupby(level=[0, 1]).mean().reindex(whole) for f in parts]
    return out[0], out[1], out[2]


def floor_zero_demands(fit: DemandFit, throughput: pd.DataFrame, busy_cores: pd.DataFrame) -> tuple[DemandFit, dict[str, float]]:
    """Cost a link that carried traffic but got no demand at all (NNLS at its zero bound) at the pooled
    CPU per request of the run, with a standard error as large as the value.

    A request never costs nothing: a zero here means the run could not separate the link from the
    others (a short run, a link whose rate hardly moved), and sizing it for free is how a plan ends up
    with three servers for a link that broke on 1 February. Returns the fit and {link: pooled CPU-s}.
    """
    frame = pd.concat([throughput, busy_cores], axis=1, keys=["x", "u"]).dropna()
    X, U = frame["x"].reindex(columns=fit.links).fillna(0.0), frame["u"].reindex(columns=fit.services)
    busy = (U - pd.Series(fit.baseline_busy_cores)).clip(lower=0.0).sum()
    total_requests = float(X.to_numpy().sum())
    if total_requests <= 0:
        return fit, {}
    pooled = busy / total_requests  # per service: CPU-seconds per request of any link
    D, SE = fit.demand_frame(), fit.standard_error_frame()
    zero = D.index[(D.sum(axis=1) <= 0) & (X.sum(axis=0).reindex(D.index) > 0)]
    if len(zero) == 0 or not (pooled > 0).any():
        return fit, {}
    D.loc[zero] = np.tile(pooled.reindex(D.columns).to_numpy(), (len(zero), 1))
    SE.loc[zero] = D.loc[zero]
    floored = fit.model_copy(update={
        "cpu_s_per_request": {l: D.loc[l].to_dict() for l in fit.links},
        "standard_error_cpu_s": {l: SE.loc[l].to_dict() for l in fit.links},
    })
    return floored, {l: float(D.loc[l].sum()) for l in zero}
