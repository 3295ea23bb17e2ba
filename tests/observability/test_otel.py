"""OpenTelemetry linkage, recorded with the SDK's in-memory exporter.

A private TracerProvider (never the global one, which can be set only once per
process) makes the spans; the package only reads the current span.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from django.test import RequestFactory, override_settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from resilience_django import metrics, responses
from resilience_django.deadline import Deadline, _current


class Recorder:
    def __init__(self, sampler=None) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    def server_span(self):
        return self.tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER)

    def span(self):
        (span,) = self.exporter.get_finished_spans()
        return span


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.provider.shutdown()


@contextlib.contextmanager
def budget(seconds: float) -> Iterator[None]:
    token = _current.set(Deadline(seconds))
    try:
        yield
    finally:
        _current.reset(token)


def test_rejection_adds_an_event_with_rule_reason_and_remaining_budget(rec):
    with rec.server_span(), budget(2.0):
        metrics.request_rejected("orders-per-ip", "rate_limited")
    (event,) = rec.span().events
    assert event.name == "resilience.request_rejected"
    assert event.attributes["resilience.rule"] == "orders-per-ip"
    assert event.attributes["resilience.reason"] == "rate_limited"
    assert 1.0 < event.attributes["resilience.deadline.remaining_s"] <= 2.0


def test_breaker_short_circuit_adds_an_event_with_breaker_and_retry_after(rec):
    with rec.server_span():
        metrics.breaker_short_circuit("pricing", 12.5)
    events = rec.span().events
    assert [e.name for e in events] == ["resilience.breaker_short_circuit"]
    assert events[0].attributes["resilience.breaker"] == "pricing"
    assert events[0].attributes["resilience.reason"] == "breaker_open"
    assert events[0].attributes["resilience.retry_after_s"] == 12.5
    assert "resilience.deadline.remaining_s" not in events[0].attributes  # no deadline here


def test_fallback_transition_adds_an_event(rec):
    with rec.server_span():
        metrics.limiter_fallback_active(True, reason="slow answer (80.0 ms)")
    metrics.limiter_fallback_active(False)
    (event,) = rec.span().events
    assert event.name == "resilience.limiter_fallback"
    assert event.attributes["resilience.fallback_active"] is True
    assert event.attributes["resilience.reason"] == "slow answer (80.0 ms)"


@override_settings(RESILIENCE={})
def test_a_504_adds_a_deadline_event_and_sets_the_server_span_status_to_error(rec, client):
    with rec.server_span():
        response = client.get("/hello/", HTTP_X_TIMEOUT_MS="0")
    assert response.status_code == 504
    span = rec.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is None  # the status code says it all
    assert span.attributes["error.type"] == "504"
    (event,) = span.events
    assert event.name == "resilience.deadline_exceeded"
    assert event.attributes["resilience.route"] == "default"
    assert event.attributes["resilience.deadline.remaining_s"] <= 0


def test_deadline_event_names_the_budget_when_the_caller_gives_it(rec):
    with rec.server_span(), budget(0.0):
        metrics.deadline_exceeded("orders:quote", budget=0.3)
    (event,) = rec.span().events
    assert event.attributes["resilience.route"] == "orders:quote"
    assert event.attributes["resilience.deadline.budget_s"] == 0.3
    assert event.attributes["resilience.deadline.remaining_s"] <= 0


@override_settings(RESILIENCE={})
async def test_an_async_504_sets_the_span_status_to_error(rec, async_client):
    with rec.server_span():
        response = await async_client.get("/async-hello/", headers={"X-Timeout-Ms": "0"})
    assert response.status_code == 504
    assert rec.span().status.status_code is StatusCode.ERROR


@override_settings(RESILIENCE={})
def test_503_is_an_error_but_429_leaves_the_status_unset(rec):
    request = RequestFactory().get("/x")
    with rec.tracer.start_as_current_span("a", kind=SpanKind.SERVER):
        assert responses.rate_limited(request, rules=("r",), retry_after=1).status_code == 429
    with rec.tracer.start_as_current_span("b", kind=SpanKind.SERVER):
        response = responses.unavailable(request, reason="shed", name="n", retry_after=1)
        assert response.status_code == 503
    a, b = rec.exporter.get_finished_spans()
    assert a.status.status_code is StatusCode.UNSET
    assert "error.type" not in a.attributes
    assert b.status.status_code is StatusCode.ERROR
    assert b.attributes["error.type"] == "503"


def test_without_a_recording_span_nothing_is_added_and_counters_still_count():
    off = Recorder(sampler=ALWAYS_OFF)
    rule = f"unsampled-{uuid.uuid4().hex[:8]}"
    with off.tracer.start_as_current_span("dropped"):
        metrics.request_rejected(rule, "shed")
    assert off.exporter.get_finished_spans() == ()
    assert _exemplar_of(rule) is None
    assert _value_of(rule) == 1


def test_counter_carries_the_trace_id_as_exemplar(rec):
    rule = f"exemplar-{uuid.uuid4().hex[:8]}"
    with rec.server_span() as span:
        metrics.request_rejected(rule, "rate_limited")
        trace_id = format(span.get_span_context().trace_id, "032x")
    exemplar = _exemplar_of(rule)
    assert exemplar is not None
    assert exemplar.labels == {"trace_id": trace_id}
    assert exemplar.value == 1


def _rejected_sample(rule: str):
    text = openmetrics_latest(REGISTRY).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "resilience_requests_rejected_total"
                and sample.labels.get("rule") == rule
            ):
                return sample
    return None


def _exemplar_of(rule: str):
    sample = _rejected_sample(rule)
    return sample.exemplar if sample is not None else None


def _value_of(rule: str) -> float:
    sample = _rejected_sample(rule)
    return sample.value if sample is not None else 0.0


def test_limiter_latency_histogram_carries_the_trace_id_as_exemplar(rec):
    with rec.server_span() as span:
        metrics.limiter_backend_seconds(0.0123)  # lands in the 25 ms bucket
        trace_id = format(span.get_span_context().trace_id, "032x")
    text = openmetrics_latest(REGISTRY).decode()
    exemplars = [
        s.exemplar
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "resilience_limiter_backend_seconds_bucket" and s.labels["le"] == "0.025"
    ]
    assert exemplars[0] is not None
    assert exemplars[0].labels == {"trace_id": trace_id}
    assert exemplars[0].value == 0.0123


def test_a_real_redis_outage_reports_fallback_as_gauge_event_and_latency(rec):
    from resilience_django.limiting.decision import Algorithm, LimitCheck, Policy
    from resilience_django.limiting.hybrid import build_hybrid_limiter
    from resilience_django.limiting.local import LocalLimiter
    from resilience_django.units import Rate
    from tests.observability.scrape import value
    from tests.services import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: refused at once
    limiter = build_hybrid_limiter(
        {"URL": dead}, fallback_latency=0.05, fallback={}, local=LocalLimiter()
    )
    check = LimitCheck(Policy("obs", Rate(8, 3600.0), Algorithm.GCRA), "ip:1")
    count = value("resilience_limiter_backend_seconds_count")
    try:
        with rec.server_span():
            for _ in range(3):
                assert limiter.decide((check,)).backend == "local"
        assert limiter.fallback_active
        assert value("resilience_limiter_fallback_active") == 1
        assert value("resilience_limiter_backend_seconds_count") == count + 3
    finally:
        limiter.close()
        metrics.limiter_fallback_active(False)
    (event,) = rec.span().events
    assert event.name == "resilience.limiter_fallback"
    assert event.attributes["resilience.fallback_active"] is True
