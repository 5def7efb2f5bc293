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
    gala_generator_cpu_percent{process}        CPU of each Locust process (local/master since the last scrape;
                                               workers as they last reported it to the master)
    gala_run_seconds                           seconds since the test started

`exposition.METRIC_NAMES` lists them (a dashboard test checks it names nothing else). Runs inside Locust
(gevent); the pure parts are in `exposition.py`.
"""

from __future__ import annotations

import logging
import time

import psutil
from gevent.pywsgi import WSGIServer
from locust.runners import MasterRunner
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from loadtests.locust_plugin.exposition import cumulative_buckets, intended_rps_now

log = logging.getLogger("gala.metrics")

class GalaCollector:
    """Builds every metric from the stats plugin at scrape time (nothing is kept twice)."""

    def __init__(self, environment, stats) -> None:
        self.env, self.stats = environment, stats
        self.plans = stats.scenario.planned_phases()
        self.process = psutil.Process()
        self._cpu_mark = (self.process.create_time(), 0.0)  # (wall time, CPU seconds) at the last scrape

    def own_cpu_percent(self) -> float:
        """This process's CPU since the previous scrape (the first: since it started), 100 = one core.
        Locust's own figure is refreshed only every 5 s, so a short run would show 0."""
        now, t = time.time(), self.process.cpu_times()
        cpu = t.user + t.system
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, cpu)
        return 100.0 * (cpu - cpu_then) / max(now - then, 1e-3)

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
            latency.add_metric([phase, link], cumulative_buckets(cell), cell.sum_ms / 1000.0)
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
        cpu.add_metric(["master" if isinstance(runner, MasterRunner) else "local"], self.own_cpu_percent())
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
