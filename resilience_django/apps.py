from __future__ import annotations

from django.apps import AppConfig


class ResilienceConfig(AppConfig):
    name = "resilience_django"
    verbose_name = "Resilience"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registering checks and the database wrapper here, not at import
        # time, keeps `import resilience_django` free of side effects.
        from . import checks  # noqa: F401
        from .integrations import db
        from .wiring import connect

        db.install()
        # An open breaker or a deadline escaping a middleware below ours: a 503/504, not a 500.
        from django.core.signals import got_request_exception

        from .middleware import note_inner_exception

        got_request_exception.connect(
            note_inner_exception, dispatch_uid="resilience_django.inner_exception"
        )
        # Breaker policies, the breaker signal and the fleet, handed to the core.
        connect()
