"""The e2e settings serving ``tests.shedding.lost_stream_app``, with its slow log handler."""

from __future__ import annotations

from tests.e2e.settings import *  # noqa: F403

ROOT_URLCONF = "tests.shedding.lost_stream_app"
MIDDLEWARE = ["resilience_django.middleware.ResilienceMiddleware"]
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]  # no admin URLs here
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"slow": {"class": "tests.shedding.lost_stream_app.SlowLogHandler"}},
    "loggers": {"django.request": {"handlers": ["slow"], "level": "WARNING"}},
}
