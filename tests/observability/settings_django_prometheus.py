"""Test settings with django-prometheus installed beside us (its app, middleware and URLs)."""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "django_prometheus"]
MIDDLEWARE = [
    MIDDLEWARE[0],  # ours first, as the docs say
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    *MIDDLEWARE[1:],
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
ROOT_URLCONF = "tests.observability.urls_django_prometheus"
