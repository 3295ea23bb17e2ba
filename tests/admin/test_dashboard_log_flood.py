"""During a fleet store outage the dashboard logs the outage once a minute, not once per poll
(each open tab polls every couple of seconds), as the fleet thread does."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings

from resilience_django.admin_views.state import snapshot
from resilience_django.fleetstore import select
from tests.services import free_port

pytestmark = pytest.mark.django_db


def test_an_outage_is_logged_once_not_once_per_poll(caplog: pytest.LogCaptureFixture) -> None:
    config = {"FLEET": {"URL": f"redis://127.0.0.1:{free_port()}/0"}}
    with override_settings(RESILIENCE=config), caplog.at_level(logging.WARNING):
        select.reset()
        try:
            for _ in range(30):  # a minute of one open dashboard tab
                assert snapshot()["fleet_error"]
        finally:
            select.reset()
    logged = [r for r in caplog.records if "fleet store down" in r.getMessage()]
    assert len(logged) <= 1, f"{len(logged)} warnings for one outage"
