"""Test settings with the metrics view on, open to loopback, for subprocess tests."""

from __future__ import annotations

from tests.settings import *  # noqa: F403

RESILIENCE = {"METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": ["127.0.0.1/32"]}}
