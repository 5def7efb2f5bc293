"""OpenTelemetry with gala's phase and link: rides on Locust's own `--otel` support (Locust 2.47).

Locust's `--otel` sets up the SDK from the standard `OTEL_*` variables (exporters `otlp`, `console`,
`none`; endpoint, protocol, service name) and records `locust.client.duration` (attribute `name`) and
`locust.users.count` (attribute `user_class`). gala adds, on the same meter provider:

    gala.client.duration   histogram (s) of every request, attributes name, link, phase, error.type
    gala.link.intended_rate  gauge (req/s) the scenario asks of each link now, attributes link, phase

and, on the tracer provider Locust configured, one span per request with gala.phase and gala.link
(spans.py: FastHttpUser too, which Locust's automatic traces miss; none when OTEL_TRACES_EXPORTER is
`none`; a `requests`-based HttpUser's requests are left to Locust's own spans).

Request names are bounded (MAX_NAMES) for both. Every Locust process records its own requests (workers
included); the gauge comes from the local process or the master. Runs inside Locust (gevent).
"""

from __future__ import annotations

import logging

from locust.runners import WorkerRunner

from loadtests.locust_plugin.exposition import intended_rps_now
from loadtests.locust_plugin.spans import name_bound, request_spans

log = logging.getLogger("gala.otel")


def instrument(environment, stats) -> bool:
    """Add gala's instruments to the providers Locust configured; False when there is no SDK."""
    try:
        from opentelemetry import metrics
    except ImportError:
        log.error("gala: --otel needs the OpenTelemetry SDK: pip install 'gala[otel]'")
        return False
    meter = metrics.get_meter("gala")
    duration = meter.create_histogram("gala.client.duration", unit="s",
                                      description="Time to last byte per request, with gala's phase and link")
    bound = name_bound()

    def observe(phase: str, link: str, name: str, response_time_ms: float, exception, **_kw) -> None:
        attributes = {"name": bound(name), "link": link, "phase": phase}
        if exception is not None:
            attributes["error.type"] = type(exception).__name__
        duration.record(response_time_ms / 1000.0, attributes=attributes)

    stats.observers.append(observe)
    spans = request_spans(bound)
    if spans is not None:
        stats.observers.append(spans)
    if not isinstance(environment.runner, WorkerRunner):
        plans = stats.scenario.planned_phases()

        def intended(_options):
            if stats.timeline.epoch0 is None:
                return
            t = stats.now_s()
            phase = stats.timeline.owner(t)
            for link, rps in intended_rps_now(stats.scenario, plans, t).items():
                yield metrics.Observation(rps, {"link": link, "phase": phase})

        meter.create_observable_gauge("gala.link.intended_rate", callbacks=[intended], unit="{request}/s",
                                      description="Requests/s the scenario asks of each link now")
    return True
