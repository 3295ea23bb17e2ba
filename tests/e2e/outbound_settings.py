"""The e2e settings, serving ``tests.e2e.outbound_app`` (views calling a slow downstream)."""

from __future__ import annotations

from .settings import *  # noqa: F403

ROOT_URLCONF = "tests.e2e.outbound_app"
