"""ASGI entry point of the demo: the fast path in front of Django."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_app = get_asgi_application()

from resilience_django.asgi import ResilienceASGIMiddleware  # noqa: E402

application = ResilienceASGIMiddleware(django_app)
