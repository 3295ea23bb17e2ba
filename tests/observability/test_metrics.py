"""The metrics facade, read back through the exposition text and prometheus-client's parser.

The default registry is process-wide and other tests report into it too, so
every assertion is about a delta measured around the action.
"""

from __future__ import annotations

import importlib.util
import uuid

import prometheus_client
import pytest
from django.test import override_settings

from resilience_django import metrics
from resilience_django.observability import registered
from resilience_django.view_limits.decorator import process_limiter

from .scrape import families, value


def unique(prefix: str) -> str:
    # A label value no other test uses, so the series starts at zero.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_families_have_the_contract_names_types_and_labels():
    metrics.enabled()
    found = families()
    expected = {
        "resilience_requests_rejected": ("counter", "rejected"),
        "resilience_deadline_exceeded": ("counter", "deadline"),
        "resilience_breaker_state": ("gauge", "breaker_state"),
        "resilience_breaker_transitions": ("counter", "breaker_transitions"),
        "resilience_breaker_calls": ("counter", "breaker_calls"),
        "resilience_limiter_backend_seconds": ("histogram", "backend_seconds"),
        "resilience_limiter_fallback_active": ("gauge", "fallback"),
        "resilience_inflight_requests": ("gauge", "inflight"),
        "resilience_concurrency_limit": ("gauge", "concurrency_limit"),
        "resilience_bad_headers": ("counter", "bad_header"),
    }
    for name, (kind, key) in expected.items():
        assert name in found, name
        assert found[name].type == kind, name
        assert metrics._SPECS[key][1] == name
    labels = {key: spec[3] for key, spec in metrics._SPECS.items()}
    assert labels["rejected"] == ("rule", "reason")
    assert labels["deadline"] == ("route",)
    assert labels["breaker_state"] == ("breaker",)
    assert labels["breaker_transitions"] == ("breaker", "from_state", "to_state")
    assert labels["breaker_calls"] == ("breaker", "outcome")
    assert labels["inflight"] == ("route",)


def test_breaker_state_gauge_follows_the_state_names():
    name = unique("gauge")
    for state, number in (("open", 1), ("half_open", 2), ("closed", 0)):
        metrics.breaker_state(name, state)
        assert value("resilience_breaker_state", breaker=name) == number


def test_request_rejected_adds_exactly_one_per_call():
    rule = unique("rule")
    before = value("resilience_requests_rejected_total", rule=rule, reason="rate_limited")
    metrics.request_rejected(rule, "rate_limited")
    after = value("resilience_requests_rejected_total", rule=rule, reason="rate_limited")
    assert after - before == 1
    assert value("resilience_requests_rejected_total", rule=rule, reason="shed") == 0


def test_counters_and_histogram_move_by_what_was_reported():
    b = unique("b")
    metrics.breaker_transition(b, "closed", "open")
    metrics.bad_header("x-obs-test")
    labels = {"breaker": b, "from_state": "closed", "to_state": "open"}
    assert value("resilience_breaker_transitions_total", **labels) == 1
    before_bad = value("resilience_bad_headers_total", header="x-obs-test")
    metrics.bad_header("x-obs-test")
    assert value("resilience_bad_headers_total", header="x-obs-test") == before_bad + 1

    count = value("resilience_limiter_backend_seconds_count")
    total = value("resilience_limiter_backend_seconds_sum")
    under_1ms = value("resilience_limiter_backend_seconds_bucket", le="0.001")
    metrics.limiter_backend_seconds(0.0007)
    metrics.limiter_backend_seconds(0.2)
    assert value("resilience_limiter_backend_seconds_count") == count + 2
    assert value("resilience_limiter_backend_seconds_sum") == pytest.approx(total + 0.2007)
    assert value("resilience_limiter_backend_seconds_bucket", le="0.001") == under_1ms + 1


def test_fallback_gauge_and_inflight_gauge():
    metrics.limiter_fallback_active(True)
    assert value("resilience_limiter_fallback_active") == 1
    metrics.limiter_fallback_active(False)
    assert value("resilience_limiter_fallback_active") == 0
    route = unique("route")
    metrics.inflight(route, 1)
    metrics.inflight(route, 1)
    metrics.inflight(route, -1)
    assert value("resilience_inflight_requests", route=route) == 1


def test_registering_again_reuses_the_collectors_instead_of_raising():
    metrics.enabled()
    for key in metrics._SPECS:
        assert metrics._register(prometheus_client, key) is metrics._get(key)


def test_a_second_copy_of_the_module_shares_the_registered_collectors():
    # What a reload or a second import path does: run the module body again.
    spec = importlib.util.find_spec("resilience_django.metrics")
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)  # not put in sys.modules: the package keeps its own
    rule = unique("copy")
    copy.request_rejected(rule, "shed")
    metrics.request_rejected(rule, "shed")
    assert value("resilience_requests_rejected_total", rule=rule, reason="shed") == 2


def test_a_foreign_metric_with_our_name_is_skipped_not_crashed_on(caplog, monkeypatch):
    # The registry already holds a metric of our name that this package did not
    # register (another library's): an empty record of ours stands for that.
    monkeypatch.setattr(registered, "COLLECTORS", {})
    with caplog.at_level("WARNING", logger="resilience_django.metrics"):
        assert metrics._register(prometheus_client, "bad_header") is None
    assert "registered by someone else" in caplog.text


@override_settings(RESILIENCE={})
def test_a_504_increments_deadline_exceeded_by_exactly_one(client):
    before = value("resilience_deadline_exceeded_total", route="default")
    response = client.get("/hello/", HTTP_X_TIMEOUT_MS="0")
    assert response.status_code == 504
    assert value("resilience_deadline_exceeded_total", route="default") == before + 1


@override_settings(RESILIENCE={})
async def test_an_async_504_increments_deadline_exceeded_by_exactly_one(async_client):
    before = value("resilience_deadline_exceeded_total", route="default")
    response = await async_client.get("/async-hello/", headers={"X-Timeout-Ms": "0"})
    assert response.status_code == 504
    assert value("resilience_deadline_exceeded_total", route="default") == before + 1


@override_settings(MIDDLEWARE=[], ROOT_URLCONF="tests.limiting.urls")
def test_a_429_increments_requests_rejected_by_exactly_one(client):
    process_limiter().clear()
    before = value("resilience_requests_rejected_total", rule="sync-ip", reason="rate_limited")
    statuses = [client.get("/sync-ip/").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    after = value("resilience_requests_rejected_total", rule="sync-ip", reason="rate_limited")
    assert after == before + 1


def test_a_real_breaker_trip_sets_the_state_gauge_to_open():
    from resilience_django.breakers import events
    from resilience_django.breakers.policy import parse_breaker_policy
    from resilience_django.breakers.state import Breaker

    name = unique("trip")
    policy = parse_breaker_policy(name, {"failure_threshold": 2, "open_for": "30s"})
    b = Breaker(name, policy)
    for _ in range(2):
        token = b.acquire()
        b.record_failure(token)
    assert events.flush()
    assert value("resilience_breaker_state", breaker=name) == 1
    transitions = value(
        "resilience_breaker_transitions_total", breaker=name, from_state="closed", to_state="open"
    )
    assert transitions == 1


def test_a_real_bulkhead_reports_inflight_and_sheds_into_requests_rejected():
    from resilience_django.shedding.bulkhead import Bulkhead, Permit, Shed

    name = unique("bulkhead")
    bulkhead = Bulkhead(name, 1, queue=0)
    first = bulkhead.acquire_sync(timeout=0)
    assert isinstance(first, Permit)
    assert value("resilience_inflight_requests", route=name) == 1
    assert isinstance(bulkhead.acquire_sync(timeout=0), Shed)
    assert value("resilience_requests_rejected_total", rule=name, reason="shed") == 1
    first.release()
    assert value("resilience_inflight_requests", route=name) == 0


def test_a_new_breaker_has_a_closed_state_series_before_any_transition() -> None:
    from prometheus_client import REGISTRY

    from resilience_django.breakers.registry import get_breaker

    get_breaker("fresh-gauge-breaker")
    labels = {"breaker": "fresh-gauge-breaker"}
    value = REGISTRY.get_sample_value("resilience_breaker_state", labels)
    assert value == 0.0
