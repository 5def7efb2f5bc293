"""gala's request spans for `--otel`: one OpenTelemetry span per request, made from gala's stats hook.

Locust's automatic traces cover only `requests`-based users; this gives FastHttpUser (gala's own users,
and any plain Locust user named in a scenario) a span too, with gala's phase and link. Each span is kind
CLIENT, named `<method> <request name>`, runs from when the request began (Locust's `start_time`, which
gala's phase attribution uses too; else now minus its time) for its response time, and has attributes
gala.phase, gala.link, gala.request.name, http.request.method (HTTP verbs only), http.response.status_code
(when a reply came), error.type and status ERROR on failures. Request names are bounded (MAX_NAMES) as
Locust bounds its own metric, so a run with many names cannot explode span names either.

Spans go to the tracer provider Locust configured, and there are none when `OTEL_TRACES_EXPORTER` names
no exporter but `none` (read as Locust reads it, default `otlp`), when no provider was set, or with the
SDK disabled. A `requests`-based HttpUser's request gets no gala span when Locust's requests/urllib3
instrumentation is on: Locust's span already carries the HTTP details and the trace context sent to the
target, and a second span would count each such request twice. Imports neither Locust nor gevent.
"""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger("gala.otel")
MAX_NAMES = 20  # as Locust's own exporter: a run with many request names must not explode the series
TOO_MANY = "Too many unique request names"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
# Locust's _setup_auto_instrumentation: these trace every request a `requests`-based HttpUser makes
LOCUST_INSTRUMENTORS = (("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
                        ("opentelemetry.instrumentation.urllib3", "URLLib3Instrumentor"))


def name_bound():
    """name -> itself for the first MAX_NAMES names seen, TOO_MANY for any other."""
    names: set[str] = set()

    def bound(name: str) -> str:
        if name in names:
            return name
        if len(names) >= MAX_NAMES:
            return TOO_MANY
        names.add(name)
        return name
    return bound


def traces_exported() -> bool:
    """OTEL_TRACES_EXPORTER read as Locust reads it: False when it names no exporter but `none`."""
    exporters = {e.strip().lower() for e in os.getenv("OTEL_TRACES_EXPORTER", "otlp").split(",") if e.strip()}
    return bool(exporters - {"none"})


def locust_traces_requests() -> bool:
    """True when Locust turned on its requests or urllib3 instrumentation (a module never imported was not)."""
    for module, cls in LOCUST_INSTRUMENTORS:
        mod = sys.modules.get(module)
        if mod is not None and getattr(mod, cls)().is_instrumented_by_opentelemetry:
            return True
    return False


def request_spans(bound, provider=None):
    """The stats observer that records one span per request on `provider` (default: the global one, which
    Locust set), or None when no traces are exported."""
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    provider = provider or trace.get_tracer_provider()
    if not traces_exported() or isinstance(provider, trace.ProxyTracerProvider):
        return None
    tracer = provider.get_tracer("gala")
    if isinstance(tracer, trace.NoOpTracer):  # OTEL_SDK_DISABLED
        return None
    traced_by_locust: tuple = ()
    if locust_traces_requests():
        import requests  # only then: this module stays importable before gevent's monkey-patching
        traced_by_locust = (requests.Response,)
    client = trace.SpanKind.CLIENT

    def span(phase: str, link: str, name: str, response_time_ms: float, exception, request_type=None,
             response=None, start_epoch=None, **_kw) -> None:
        if isinstance(response, traced_by_locust):
            return
        name = bound(name)
        attributes = {"gala.phase": phase, "gala.link": link, "gala.request.name": name}
        method = str(request_type or "").upper()
        if method in HTTP_METHODS:
            attributes["http.request.method"] = method
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and status > 0:  # 0 or None: no reply (connection refused, timeout)
            attributes["http.response.status_code"] = status
        if exception is not None:
            attributes["error.type"] = type(exception).__name__
        # from when Locust says the request began (what gala's phase attribution uses), else now - its time
        duration_ns = int(response_time_ms * 1e6)
        start_ns = int(start_epoch * 1e9) if start_epoch is not None else time.time_ns() - duration_ns
        s = tracer.start_span(f"{request_type} {name}" if request_type else name, kind=client,
                              attributes=attributes, start_time=start_ns)
        if exception is not None:
            s.set_status(Status(StatusCode.ERROR, str(exception)[:200]))
        s.end(end_time=start_ns + duration_ns)

    log.debug("gala: one span per request (gala.phase, gala.link)")
    return span
