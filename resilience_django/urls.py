"""URLs to mount under a prefix: ``path("resilience/", include("resilience_django.urls"))``.

``metrics/`` serves Prometheus metrics when ``RESILIENCE["METRICS"]["ENABLED"]``; so does
``metrics``: scrape configs name it either way, and not every scraper follows a redirect."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from .metrics_view import metrics_view

app_name = "resilience"

urlpatterns: list[URLPattern | URLResolver] = [
    path("metrics/", metrics_view, name="metrics"),
    path("metrics", metrics_view),
]
