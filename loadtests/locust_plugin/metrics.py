"""A Prometheus endpoint on the generator (`--metrics-port P`, 127.0.0.1 only): what gala measures, live.

Served by the local Locust process or the master (which holds the workers' merged counts), from the
stats plugin's own tables, so a scrape shows the same numbers the results folder will:

    gala_requests_total{phase,link}            requests attributed to a phase and a link
    gala_failures_total{phase,link}            of which failed
    gala_request_duration_seconds{phase,link}  latency histogram (from the Locust-rounded buckets)
    gala_users{user_class}                     users running now, per class
    gala_phase_active{phase}                   1 while the phase runs
    gala_intended_rps{link}                    the rate the scenario asks of the link now
    gala_achieved_rps{link}                    the link's requests in the last complete second
    gala_generator_cpu_percent{process}        CPU of each Locust process (local/master, and workers)
    gala_run_seconds                           seconds since the test started

`METRIC_NAMES` lists them (a dashboard test checks it names nothing else). Runs inside Locust (gevent).
"""

from __future__ import annotations

import logging

import numpy as np
from gevent.pywsgi import WSGIServer
from locust.runners import MasterRunner
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

log = logging.getLogger("gala.metrics")

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


def _buckets(cell) -> list[tuple[str, float]]:
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


class GalaCollector:
    """Builds every metric from the stats plugin at scrape time (nothing is kept twice)."""

    def __init__(self, environment, stats) -> None:
        self.env, self.stats = environment, stats
        self.plans = stats.scenario.planned_phases()

    def collect(self):
        stats, runner = self.stats, self.env.runner
        requests = CounterMetricFamily("gala_requests", "Requests attributed to a phase and a link",
                                       labels=["phase", "link"])
        failures = CounterMetricFamily("gala_failures", "Failed requests per phase and link", labels=["phase", "link"])
        latency = HistogramMetricFamily("gala_request_duration_seconds", "Request latency per phase and link "
                                        "(Locust-rounded)", labels=["phase", "link"])
        for (phase, link), cell in sorted(list(stats.phase_link.items())):
            requests.add_metric([phase, link], cell.requests)
            failures.add_metric([phase, link], cell.failures)
            latency.add_metric([phase, link], _buckets(cell), cell.sum_ms / 1000.0)
        yield from (requests, failures, latency)

        users = GaugeMetricFamily("gala_users", "Users running now, per user class", labels=["user_class"])
        classes = (getattr(runner, "reported_user_classes_count", None) if isinstance(runner, MasterRunner)
                   else runner.user_classes_count) or {}
        for name in stats.scenario.users:
            users.add_metric([name], float(classes.get(name, 0)))
        yield users

        started = stats.timeline.epoch0 is not None
        t = stats.now_s() if started else 0.0
        active = GaugeMetricFamily("gala_phase_active", "1 while the phase runs", labels=["phase"])
        for name, (start, end) in stats.timeline.times.items():
            active.add_metric([name], float(start is not None and end is None))
        yield active

        intended = GaugeMetricFamily("gala_intended_rps", "Requests/s the scenario asks of the link now",
                                     labels=["link"])
        achieved = GaugeMetricFamily("gala_achieved_rps", "The link's requests in the last complete second",
                                     labels=["link"])
        asked = intended_rps_now(stats.scenario, self.plans, t) if started and runner.state in ("spawning", "running") \
            else {}
        last = stats.live_second()
        for link in stats.scenario.links:
            intended.add_metric([link], asked.get(link, 0.0))
            cell = stats.second_link.get((last, link))
            achieved.add_metric([link], float(cell.requests) if cell else 0.0)
        yield from (intended, achieved)

        cpu = GaugeMetricFamily("gala_generator_cpu_percent", "CPU of each Locust process (100 = one core)",
                                labels=["process"])
        cpu.add_metric(["master" if isinstance(runner, MasterRunner) else "local"], float(runner.current_cpu_usage))
        if isinstance(runner, MasterRunner):
            for client in list(runner.clients.values()):
                cpu.add_metric([f"worker:{client.id}"], float(client.cpu_usage))
        yield cpu
        yield GaugeMetricFamily("gala_run_seconds", "Seconds since the test started", value=t)


def serve_metrics(environment, stats, port: int) -> WSGIServer:
    """Serve the metrics on http://127.0.0.1:PORT/metrics (any path answers) until Locust quits."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GalaCollector(environment, stats))
    server = WSGIServer(("127.0.0.1", port), make_wsgi_app(registry), log=None, error_log=log)
    server.start()
    environment.events.quit.add_listener(lambda **_kw: server.stop(timeout=1))
    log.info("gala: Prometheus metrics on http://127.0.0.1:%d/metrics", port)
    return server
