"""The ASGI application uvicorn serves; the ``*_asgi`` variants add our fast path."""

from __future__ import annotations

import django
from django.conf import settings
from django.core.asgi import get_asgi_application

django.setup()
application = get_asgi_application()
if settings.ASGI_FAST_PATH:
    from resilience_django.asgi import ResilienceASGIMiddleware

    application = ResilienceASGIMiddleware(application)  # type: ignore[assignment]
