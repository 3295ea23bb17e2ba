"""Structured logs: safe extra= fields, JSON output, and no per-request noise above DEBUG."""

from __future__ import annotations

import json
import logging
import uuid

from django.test import override_settings

from resilience_django.breakers import events
from resilience_django.breakers.policy import parse_breaker_policy
from resilience_django.breakers.state import Breaker
from resilience_django.observability.log import JsonFormatter, fields, fields_of
from resilience_django.view_limits.decorator import process_limiter


def test_fields_renames_names_a_log_record_already_has():
    extra = fields(breaker="pricing", name="x", message="m", reason="r")
    assert extra == {
        "breaker": "pricing",
        "resilience_name": "x",
        "resilience_message": "m",
        "reason": "r",
    }
    # logging raises KeyError for extra={"name": ...}; the renamed dict is accepted.
    logger = logging.getLogger("resilience_django.tests")
    record = logger.makeRecord(logger.name, logging.WARNING, "f", 1, "msg", (), None, extra=extra)
    assert fields_of(record) == extra


def test_json_formatter_writes_the_extra_fields():
    logger = logging.getLogger("resilience_django.tests")
    record = logger.makeRecord(
        logger.name, logging.WARNING, "f", 1, "breaker %s opened", ("pricing",), None,
        extra=fields(breaker="pricing", to_state="open"),
    )  # fmt: skip
    payload = json.loads(JsonFormatter().format(record))
    assert payload["level"] == "WARNING"
    assert payload["logger"] == "resilience_django.tests"
    assert payload["message"] == "breaker pricing opened"
    assert payload["breaker"] == "pricing"
    assert payload["to_state"] == "open"


def test_a_breaker_transition_is_one_warning_with_the_documented_fields(caplog):
    name = f"logged-{uuid.uuid4().hex[:8]}"
    breaker = Breaker(name, parse_breaker_policy(name, {"failure_threshold": 1}))
    with caplog.at_level(logging.DEBUG, logger="resilience_django"):
        breaker.record_failure(breaker.acquire())
        assert events.flush()
    mine = [r for r in caplog.records if getattr(r, "breaker", None) == name]
    assert [r.levelno for r in mine] == [logging.WARNING]
    assert mine[0].name == "resilience_django.breakers"
    got = fields_of(mine[0])
    assert {"breaker", "from_state", "to_state", "reason", "generation"} <= set(got)
    assert (got["from_state"], got["to_state"]) == ("closed", "open")


@override_settings(RESILIENCE={})
def test_per_request_events_log_nothing_above_debug(client, caplog):
    with caplog.at_level(logging.DEBUG, logger="resilience_django"):
        for _ in range(5):
            assert client.get("/hello/", HTTP_X_TIMEOUT_MS="0").status_code == 504
            assert client.get("/hello/", HTTP_GRPC_TIMEOUT="garbage").status_code == 200
        with override_settings(MIDDLEWARE=[], ROOT_URLCONF="tests.limiting.urls"):
            process_limiter().clear()
            statuses = [client.get("/sync-ip/").status_code for _ in range(5)]
            assert statuses.count(429) == 3
    ours = [r for r in caplog.records if r.name.startswith("resilience_django")]
    assert [r for r in ours if r.levelno > logging.DEBUG] == []
