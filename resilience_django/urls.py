"""URLs to mount under a prefix of your choice::

    path("resilience/", include("resilience_django.urls"))

``metrics/`` serves Prometheus metrics when ``RESILIENCE["METRICS"]["ENABLED"]`` is True;
``metrics`` without the slash too, answered directly: scrape configs name it either way,
and a redirect (``APPEND_SLASH``) is one more request, not followed by every scraper.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from .metrics_view import metrics_view

app_name = "resilience"

urlpatterns: list[URLPattern | URLResolver] = [
    path("metrics/", metrics_view, name="metrics"),
    path("metrics", metrics_view),
]
