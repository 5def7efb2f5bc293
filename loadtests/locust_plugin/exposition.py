"""The pure parts of the generator's metrics (Prometheus and OpenTelemetry): the metric names, the
cumulative latency buckets, and the rate the scenario asks of each link at a moment. No Locust, no
gevent: importable anywhere (the dashboard test reads `METRIC_NAMES`)."""

from __future__ import annotations

import numpy as np

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METRIC_NAMES = ("gala_requests_total", "gala_failures_total", "gala_request_duration_seconds", "gala_users",
                "gala_phase_active", "gala_intended_rps", "gala_achieved_rps", "gala_generator_cpu_percent",
                "gala_run_seconds")


def intended_rps_now(scenario, plans, t_s: float) -> dict[str, float]:
    """What the scenario asks of each link at run time t_s: the running users x their pace x their shares."""
    counts: dict[str, int] = {}
    for p in plans:
        if p.start_s <= t_s < p.end_s:
            for u, n in p.users.items():
                counts[u] = counts.get(u, 0) + n
    rates = scenario.user_rates_at(t_s)
    out: dict[str, float] = {}
    for u, n in counts.items():
        spec = scenario.users[u]
        if n and spec.pacing != "none":
            for link, share in spec.shares().items():
                out[link] = out.get(link, 0.0) + n * rates[u] * share
    return out


def cumulative_buckets(cell) -> list[tuple[str, float]]:
    """Cumulative counts at each `le` (seconds) from a cell's rounded-millisecond buckets."""
    if not cell.buckets:
        return [*((f"{b:g}", 0.0) for b in BUCKETS_S), ("+Inf", 0.0)]
    keys = np.fromiter(cell.buckets.keys(), dtype=float)
    counts = np.fromiter(cell.buckets.values(), dtype=float)
    order = np.argsort(keys)
    cum = np.cumsum(counts[order])
    at = np.searchsorted(keys[order], np.asarray(BUCKETS_S) * 1000.0, side="right")
    le = [float(cum[i - 1]) if i else 0.0 for i in at]
    return [*zip((f"{b:g}" for b in BUCKETS_S), le), ("+Inf", float(cell.requests))]
