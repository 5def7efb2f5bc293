"""gala's request spans (`--otel`) in-process, on a tracer provider of the test's own with an in-memory
exporter: what one span holds, failures, the bound on request names, when there are none (no exporter, no
provider, SDK disabled) and requests-based users left to Locust's instrumentation. The real run that reads
them back from the console exporter is in tests/test_watch.py."""

from __future__ import annotations

import sys
import types

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from loadtests.locust_plugin.spans import MAX_NAMES, TOO_MANY, name_bound, request_spans


class CatchResponseError(Exception):
    """Stands for Locust's (this process must not import Locust: gevent would monkey-patch the test run)."""


class Reply:
    """Stands for a FastHttpUser's FastResponse: a status_code, not a requests.Response."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


@pytest.fixture
def traced(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_a_span_per_request_with_phase_link_method_status_and_times(traced):
    provider, exporter = traced
    observe = request_spans(name_bound(), provider)
    observe("grab", "grab", "grab:tap", 12.5, None, request_type="POST", response=Reply(200),
            start_epoch=1_800_000_000.25)
    (s,) = exporter.get_finished_spans()
    assert s.name == "POST grab:tap" and s.kind == trace.SpanKind.CLIENT
    assert dict(s.attributes) == {"gala.phase": "grab", "gala.link": "grab", "gala.request.name": "grab:tap",
                                  "http.request.method": "POST", "http.response.status_code": 200}
    assert s.start_time == pytest.approx(1_800_000_000_250_000_000, abs=1000)
    assert s.end_time - s.start_time == 12_500_000
    assert s.status.status_code == StatusCode.UNSET


def test_a_failure_is_an_error_span_and_no_reply_has_no_status(traced):
    provider, exporter = traced
    observe = request_spans(name_bound(), provider)
    observe("chat", "chat", "chat:send", 3.0, CatchResponseError("HTTP 503"), request_type="GET",
            response=Reply(503), start_epoch=None)
    observe("chat", "chat", "chat:send", 1.0, ConnectionRefusedError("refused"), request_type="GET",
            response=Reply(0))
    observe("setup", "setup", "redis:get", 0.5, None, request_type="redis")   # not HTTP: no method, no reply
    failed, refused, other = exporter.get_finished_spans()
    assert failed.status.status_code == StatusCode.ERROR and failed.status.description == "HTTP 503"
    assert failed.attributes["error.type"] == "CatchResponseError"
    assert failed.attributes["http.response.status_code"] == 503
    assert refused.attributes["error.type"] == "ConnectionRefusedError"
    assert "http.response.status_code" not in refused.attributes
    assert other.name == "redis redis:get" and other.status.status_code == StatusCode.UNSET
    assert "http.request.method" not in other.attributes and "error.type" not in other.attributes


def test_request_names_are_bounded_as_the_metrics_are(traced):
    provider, exporter = traced
    observe = request_spans(name_bound(), provider)
    for i in range(MAX_NAMES + 5):
        observe("grab", "grab", f"grab:item-{i}", 1.0, None, request_type="GET", response=Reply(200))
    observe("grab", "grab", "grab:item-0", 1.0, None, request_type="GET", response=Reply(200))
    names = [s.attributes["gala.request.name"] for s in exporter.get_finished_spans()]
    assert len(set(names)) == MAX_NAMES + 1 and names.count(TOO_MANY) == 5 and names[-1] == "grab:item-0"


@pytest.mark.parametrize("setting", ["none", " None ", ",", ""])
def test_no_spans_when_no_trace_exporter_is_named(traced, monkeypatch, setting):
    provider, _ = traced
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", setting)
    assert request_spans(name_bound(), provider) is None


def test_spans_when_an_exporter_is_named_beside_none_or_by_locusts_default(traced, monkeypatch):
    provider, _ = traced
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none, console")
    assert request_spans(name_bound(), provider) is not None
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")   # Locust's default: otlp
    assert request_spans(name_bound(), provider) is not None


def test_no_spans_without_a_tracer_provider_or_with_the_sdk_disabled(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert request_spans(name_bound(), trace.ProxyTracerProvider()) is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert request_spans(name_bound(), TracerProvider()) is None


def test_requests_based_users_are_left_to_locusts_instrumentation_when_it_is_on(traced, monkeypatch):
    import requests

    provider, exporter = traced
    reply = requests.Response()
    reply.status_code = 200
    observe = request_spans(name_bound(), provider)   # no requests instrumentation loaded: gala traces them
    observe("grab", "grab", "grab:tap", 1.0, None, request_type="GET", response=reply)
    assert len(exporter.get_finished_spans()) == 1

    class On:
        is_instrumented_by_opentelemetry = True

    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.requests",
                        types.SimpleNamespace(RequestsInstrumentor=On))
    observe = request_spans(name_bound(), provider)
    observe("grab", "grab", "grab:tap", 1.0, None, request_type="GET", response=reply)
    observe("grab", "grab", "grab:tap", 1.0, None, request_type="GET", response=Reply(200))  # FastHttpUser's
    spans = exporter.get_finished_spans()
    assert len(spans) == 2 and spans[1].attributes["http.response.status_code"] == 200
