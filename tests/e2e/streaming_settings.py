"""The e2e settings, serving ``tests.e2e.streaming_app`` behind ``ResilienceMiddleware``."""

from __future__ import annotations

from .settings import *  # noqa: F403

ROOT_URLCONF = "tests.e2e.streaming_app"
MIDDLEWARE = ["resilience_django.middleware.ResilienceMiddleware"]
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]  # no admin URLs here
