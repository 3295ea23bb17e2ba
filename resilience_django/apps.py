from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import got_request_exception


class ResilienceConfig(AppConfig):
    name = "resilience_django"
    verbose_name = "Resilience"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Here, not at import time: `import resilience_django` stays free of side effects.
        from . import checks  # noqa: F401
        from .integrations import db
        from .middleware import note_inner_exception
        from .wiring import connect

        db.install()
        # An open breaker or a deadline escaping a middleware below ours: a 503/504, not a 500.
        uid = "resilience_django.inner_exception"
        got_request_exception.connect(note_inner_exception, dispatch_uid=uid)
        connect()  # breaker policies, the breaker signal and the fleet, handed to the core
