"""The gate's noise model: is a percentile's change against a baseline run beyond run-to-run noise?

Each run's per-second percentiles (timeseries.csv) are summarised by their median, "the median
second's p95", which a few slow seconds on a busy machine do not move. It regressed when it is worse
than the baseline's by more than the allowed ratio AND the difference is beyond noise: the standard
error of each median, by a circular block bootstrap within each phase (`percentile_noise_ms`), the two
runs' errors added in quadrature, times `noise_z`, and at least one latency bucket (Locust rounds
latencies). Improvements are found the same way and reported. Pure (numpy/pandas over `Run`s).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gala.contract.errors import InputError
from gala.contract.results import Run
from gala.gate.budgets import Budgets
from gala.gate.measure import GateResult, Status, format_value

# Per-second percentiles of seconds with fewer requests than this are too coarse to use as noise samples.
MIN_REQUESTS_PER_SECOND = 5
BOOTSTRAP_DRAWS = 2000

def bucket_resolution_ms(ms: float) -> float:
    """The width of Locust's latency bucket at `ms`: a smaller difference is not measurable."""
    if not math.isfinite(ms) or ms < 100:
        return 1.0
    return 10.0 ** (int(math.log10(ms)) - 1)


def percentile_noise_ms(per_second: np.ndarray, strata: np.ndarray | None = None,
                        draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> float:
    """Standard error of the median of per-second percentiles, by a circular block bootstrap.

    Seconds are resampled in blocks of about m^(1/3) consecutive seconds (m: seconds in the stratum),
    because load on a shared machine drifts over several seconds, so neighbouring seconds are not
    independent. With `strata` (each second's phase), blocks are drawn within their phase, so the spread
    between phases (a grab burst is slower than the chat tail) is not mistaken for noise.
    inf with fewer than 3 seconds: too few to tell.
    """
    x = np.asarray(per_second, dtype=float)
    keep = np.isfinite(x)
    x = x[keep]
    if x.size < 3:
        return math.inf
    groups = np.zeros(x.size, dtype=int) if strata is None else pd.factorize(np.asarray(strata)[keep])[0]
    rng = np.random.default_rng(seed)
    samples = []
    for g in range(groups.max() + 1):
        series = x[groups == g]
        m = series.size
        block = max(1, math.ceil(m ** (1 / 3)))
        starts = rng.integers(0, m, size=(draws, math.ceil(m / block), 1))
        idx = ((starts + np.arange(block)) % m).reshape(draws, -1)[:, :m]
        samples.append(series[idx])
    medians = np.median(np.concatenate(samples, axis=1), axis=1)
    return float(medians.std(ddof=1))


def compare_percentile(measured: float, baseline: float, se_measured: float, se_baseline: float,
                       allowed_regression: float, noise_z: float) -> tuple[Status, float, float]:
    """Classify a percentile against the baseline: (status, change ratio, noise threshold in ms)."""
    delta = measured - baseline
    noise = max(noise_z * math.hypot(se_measured, se_baseline), bucket_resolution_ms(max(measured, baseline)))
    change = delta / baseline if baseline > 0 else (math.inf if delta > 0 else 0.0)
    if change > allowed_regression and delta > noise:
        return "regressed", change, noise
    # symmetric in ratio: improved when the baseline was more than the allowed ratio worse than this run
    if -delta > noise and (measured <= 0 or -delta / measured > allowed_regression):
        return "improved", change, noise
    return "unchanged", change, noise


def per_second_percentiles(run: Run, link: str, phase: str | None, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A link's per-second percentiles (timeseries.csv) and each second's phase, without seconds too
    sparse to mean much."""
    ts = run.timeseries
    rows = ts[ts["link"] == link]
    if phase is not None:
        rows = rows[rows["phase"] == phase]
    busy = rows[rows["requests"] >= MIN_REQUESTS_PER_SECOND]
    rows = busy if len(busy) >= 3 else rows
    return rows[column].to_numpy(dtype=float), rows["phase"].to_numpy()


def compare_with_baseline(run: Run, base: Run, budgets: Budgets, allowed_regression: float) -> list[GateResult]:
    """One line per budgeted scope (link, phase) and baseline metric, comparing the median second's
    percentile (robust to a few slow seconds on a busy machine) of the run and of the baseline."""
    out = []
    policy = budgets.baseline
    for link, phase in dict.fromkeys((b.link, b.phase) for b in budgets.lines):
        scope = link if phase is None else f"{link} [{phase}]"
        for column in policy.metrics:
            label = f"p({column[1:-3]})"
            series = [per_second_percentiles(r, link, phase, column) for r in (run, base)]
            if not np.isfinite(series[1][0]).any():
                raise InputError(f"{base.path}: the baseline run has no requests on {scope}; "
                                 "compare runs of the same scenario")
            cur, prev = (float(np.nanmedian(x)) if np.isfinite(x).any() else None for x, _ in series)
            common = dict(kind="baseline", name=f"{scope} {label} vs baseline", link=link, phase=phase,
                          metric=label, unit="ms", measured=cur, baseline=prev,
                          threshold=prev * (1 + allowed_regression))
            if cur is None:
                out.append(GateResult(**common, status="fail", passed=False, detail="no requests measured"))
                continue
            se = [percentile_noise_ms(x, phases) for x, phases in series]
            status, change, noise = compare_percentile(cur, prev, se[0], se[1], allowed_regression, policy.noise_z)
            noise_text = (f"noise ±{format_value(noise, 'ms')}" if math.isfinite(noise)
                          else "too few busy seconds to tell from noise")
            out.append(GateResult(**common, change_ratio=change, noise=noise, status=status,
                                  passed=status != "regressed", margin=prev * (1 + allowed_regression) - cur,
                                  detail=f"baseline {format_value(prev, 'ms')}, {change:+.0%} ({noise_text})"))
    return out
