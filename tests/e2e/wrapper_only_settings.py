"""``tests.e2e.streaming_app`` with no ``ResilienceMiddleware``: only the ASGI wrapper
(``tests.e2e.asgi_fastpath``) enforces the deadline."""

from __future__ import annotations

from .settings import *  # noqa: F403

ROOT_URLCONF = "tests.e2e.streaming_app"
MIDDLEWARE: list[str] = []
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]  # no admin URLs here
