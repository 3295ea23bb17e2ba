"""``/metrics`` answers with and without the trailing slash, and reverses to the slash."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.urls import reverse

ENABLED = {"METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1"]}}


@pytest.mark.parametrize("url", ["/resilience/metrics/", "/resilience/metrics"])
@override_settings(RESILIENCE=ENABLED)
def test_metrics_answer_with_and_without_the_trailing_slash(client: Client, url: str) -> None:
    response = client.get(url, REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200  # not a 301 to the slash, not a 404
    assert b"resilience_" in response.content


def test_the_named_url_keeps_its_trailing_slash() -> None:
    assert reverse("resilience:metrics") == "/resilience/metrics/"
