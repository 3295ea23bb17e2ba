"""A user's test settings: production's RESILIENCE with BACKEND switched to "local".

``REDIS`` still names the ``default`` cache, which is LocMem here: with the
local backend nothing uses it, so ``manage.py test`` must not stop on it.
"""

from __future__ import annotations

SECRET_KEY = "sample-project-tests-only"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "sample_urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "resilience_django"]
MIDDLEWARE = ["resilience_django.middleware.ResilienceMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
RESILIENCE = {
    "BACKEND": "local",
    "REDIS": {"CACHE": "default"},
    "LIMITS": [{"name": "orders-per-ip", "path": "/orders/", "key": "ip", "rate": "4/m"}],
    "BREAKERS": {"pricing": {"failure_threshold": 3, "open_for": "30s"}},
}
