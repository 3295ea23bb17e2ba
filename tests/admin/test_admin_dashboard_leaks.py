"""The dashboard says the fleet store is down without showing where it lives: no host, port
or password reaches the page or its JSON, whoever may view it; the server log keeps the cause."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from resilience_django.fleetstore import select
from tests.services import free_port

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/resilience_django/breakerdashboard/"


def test_a_fleet_store_outage_is_shown_without_its_address(
    viewer: User, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    config = {"FLEET": {"URL": f"redis://:hunter2@127.0.0.1:{port}/0"}}
    client = Client()
    client.force_login(viewer)
    with override_settings(RESILIENCE=config), caplog.at_level(logging.WARNING):
        select.reset()
        try:
            state = client.get(DASHBOARD + "api/").json()
            page = client.get(DASHBOARD).content.decode()
        finally:
            select.reset()

    assert state["fleet_error"] and "ConnectionError" in state["fleet_error"]
    for shown in (json.dumps(state), page):
        assert str(port) not in shown and "hunter2" not in shown and "127.0.0.1" not in shown
    assert str(port) in caplog.text  # the cause is in the server log
