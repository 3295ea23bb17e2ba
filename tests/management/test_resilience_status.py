from __future__ import annotations

import json
import os
from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from resilience_django.breakers import fleet
from resilience_django.breakers.fleet import FleetPublisher
from resilience_django.breakers.policy import BreakerPolicy
from resilience_django.breakers.registry import registry
from resilience_django.breakers.state import Breaker
from resilience_django.limiting.health import register as register_limiter_health

SETTINGS = {
    "FLEET": {"PREFIX": "status-test", "TTL": 30},
    "LIMITS": [{"name": "orders-per-ip", "rate": "100/m", "scope": "distributed"}],
    "SHEDDING": [
        {"name": "orders", "path": "/api/orders", "max_concurrent": 50, "queue": 100,
         "max_wait": "200ms", "critical_share": 0.2},
    ],
}  # fmt: skip


@pytest.fixture(autouse=True)
def published() -> Iterator[None]:
    # Limiters built by other tests register their health; this process's is local.
    register_limiter_health(None)
    fleet.stop()
    registry.clear()
    with override_settings(RESILIENCE=SETTINGS):
        store = fleet.get_store()
        assert store is not None
        pricing = Breaker("pricing", BreakerPolicy(failure_threshold=1))
        pricing.record_failure(pricing.acquire())
        inventory = Breaker("inventory")
        inventory.record_success(inventory.acquire())
        FleetPublisher(store, lambda: [pricing, inventory]).tick()
        yield
        fleet.stop()
    registry.clear()


def test_prints_every_breaker_with_state_rates_and_last_transition() -> None:
    out = StringIO()
    call_command("resilience_status", stdout=out)
    text = out.getvalue()
    pricing = next(line for line in text.splitlines() if line.strip().startswith("pricing"))
    assert f":{os.getpid()}" in pricing
    assert "open" in pricing and "closed -> open" in pricing
    assert "1 consecutive failures" in pricing
    inventory = next(line for line in text.splitlines() if line.strip().startswith("inventory"))
    assert "closed" in inventory and "0.0%" in inventory


@pytest.mark.django_db
def test_prints_the_limiter_backend_health_and_the_rules_from_settings_and_admin() -> None:
    from resilience_django.models import LimitRule

    LimitRule.objects.create(name="admin-burst", rate="5/s", key="ip", algorithm="gcra")
    out = StringIO()
    call_command("resilience_status", stdout=out)
    text = out.getvalue()
    assert "Limiter backend" in text
    assert "backend: local" in text
    assert (
        "orders-per-ip: 100/60s sliding_window key=ip on * distributed enforce (settings)" in text
    )
    assert "admin-burst: 5/1s gcra key=ip on * local enforce (admin)" in text


@pytest.mark.django_db
def test_prints_the_shedding_rules_from_settings_then_admin_in_the_order_they_apply() -> None:
    from resilience_django.models import SheddingRule

    SheddingRule.objects.create(name="search", path="/api/search", max_concurrent=200,
                                adaptive=True, min_concurrent=10, max_wait="1s")  # fmt: skip
    SheddingRule.objects.create(name="checkout", path="/api/checkout", max_concurrent=5,
                                critical=True, position=-1)  # fmt: skip
    SheddingRule.objects.create(name="orders", max_concurrent=1)  # settings win: left out
    out = StringIO()
    call_command("resilience_status", stdout=out)
    text = out.getvalue()
    section = text[text.index("Shedding rules in force") :].splitlines()[1:4]
    assert section == [
        "  orders: max_concurrent=50 queue=100 max_wait=200ms on /api/orders "
        "critical_share=0.2 (settings)",
        "  checkout: max_concurrent=5 queue=0 max_wait=100ms on /api/checkout critical (admin)",
        "  search: max_concurrent=10..200 adaptive queue=0 max_wait=1s on /api/search (admin)",
    ]


def test_an_unreachable_database_leaves_the_settings_rules_and_says_so() -> None:
    # No django_db mark: pytest-django refuses the query, as a down database would.
    out = StringIO()
    call_command("resilience_status", stdout=out)
    text = out.getvalue()
    assert "orders-per-ip:" in text
    assert "orders: max_concurrent=50" in text
    assert "admin rules unavailable" in text


@pytest.mark.django_db
def test_json_output_carries_the_same_facts() -> None:
    out = StringIO()
    call_command("resilience_status", "--json", stdout=out)
    doc = json.loads(out.getvalue())
    states = {row["name"]: row["state"] for row in doc["breakers"]}
    assert states == {"inventory": "closed", "pricing": "open"}
    assert doc["rules"][0]["name"] == "orders-per-ip"
    (shedding,) = doc["shedding"]
    assert (shedding["name"], shedding["max_concurrent"], shedding["source"]) == (
        "orders", 50, "settings",
    )  # fmt: skip


def test_says_so_when_no_breaker_has_reported() -> None:
    with override_settings(RESILIENCE={"FLEET": {"PREFIX": "status-empty"}}):
        out = StringIO()
        call_command("resilience_status", stdout=out)
    assert "no breakers reported" in out.getvalue()
