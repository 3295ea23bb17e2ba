"""The e2e settings, serving ``tests.e2e.shedding_app`` (a view of known capacity)."""

from __future__ import annotations

from .settings import *  # noqa: F403

ROOT_URLCONF = "tests.e2e.shedding_app"
# Only our middleware: at hundreds of requests a second on a shared 2-core
# machine, every millisecond of Django per request is load the test would
# measure instead of the view's capacity.
MIDDLEWARE = ["resilience_django.middleware.ResilienceMiddleware"]
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]  # no admin URLs here
