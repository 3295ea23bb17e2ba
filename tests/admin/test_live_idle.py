"""Live reload after an idle spell: the reload thread checks the version on its own each
interval, so the first request after a quiet period is decided on the current rules, not on
the ones loaded before the quiet period (requests only wake it early)."""

from __future__ import annotations

import time

import pytest
from django.test import Client, override_settings

from resilience_django import live
from resilience_django.models import LimitRule
from tests.utils.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _rate_in_force() -> str | None:
    rules = live.admin_rules().limit_rules
    return str(rules[0].rate) if rules else None


@override_settings(RESILIENCE={"RELOAD_INTERVAL": "200ms"})
def test_a_change_saved_while_no_request_comes_is_in_force_for_the_next_request(
    live_thread: None, client: Client
) -> None:
    rule = LimitRule.objects.create(name="idle", path="/hello/", rate="100/m")
    live.maybe_reload(time.monotonic())  # a request starts the thread
    wait_for(lambda: _rate_in_force() == "100/m", what="the first load")

    # Saved (and committed) while no request comes in: nothing calls maybe_reload.
    rule.rate = "5/m"
    rule.save()
    wait_for(lambda: _rate_in_force() == "5/m", what="the reload without a request")

    response = client.get("/hello/", REMOTE_ADDR="10.9.0.1")
    assert response["RateLimit-Policy"] == '"idle";q=5;w=60'


@override_settings(RESILIENCE={"RELOAD_INTERVAL": "200ms"})
def test_reset_retires_the_running_thread(live_thread: None) -> None:
    live.maybe_reload(time.monotonic())
    thread = live._state.thread
    assert thread is not None and thread.is_alive()
    live.reset()  # tests and settings changes: the thread must not poll on for good
    wait_for(lambda: not thread.is_alive(), what="the old thread to end")
