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
        # Breaker policies, the breaker signal and the fleet, handed to the core.
        connect()
