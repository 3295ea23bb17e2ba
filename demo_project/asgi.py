"""ASGI entry point of the demo: the fast path in front of Django and the downstreams.

Run it with ``uvicorn demo_project.asgi:application`` (``--workers N`` works:
the demo's shared state lives in a file cache or Redis, see settings.py).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_app = get_asgi_application()

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from demo_project import downstream  # noqa: E402
from demo_project.orders import clients  # noqa: E402
from resilience_django.asgi import ResilienceASGIMiddleware  # noqa: E402


async def services(scope, receive, send):  # type: ignore[no-untyped-def]
    """The order service (Django) and, under /downstream/, the services it calls."""
    if scope["type"] == "http" and scope["path"].startswith(downstream.PREFIX):
        await downstream.app(scope, receive, send)
    else:
        await django_app(scope, receive, send)


# Pay the start-up costs (URLconf, views, HTTP clients) before the first order
# does: it has 800 ms for everything.
get_resolver().url_patterns  # noqa: B018
clients.warm_up()

# The admin's and the dashboard's CSS and JS, served from the apps' static
# folders as runserver does (fine for a demo on 127.0.0.1; in production a web
# server or whitenoise serves collected files).  Outermost, so asset requests
# are not counted against the service's limits.
# enforce_deadline: the downstreams under /downstream/ are not Django, so the
# ASGI layer itself must cut them at their caller's X-Timeout-Ms.
application = ASGIStaticFilesHandler(ResilienceASGIMiddleware(services, enforce_deadline=True))
