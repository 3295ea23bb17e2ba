"""The demo order service: SQLite, local limits, no Redis needed.

What the team behind this service decided, and why (each key is in DESIGN.md):

* ``/api/orders`` has 800 ms end to end; every downstream call carries what is
  left (``X-Timeout-Ms``), and the downstreams honour it.
* pricing is optional (a list price stands in), inventory is required (a fast
  503 beats a slow one), risk is required but flaky, so it is retried.
* each client IP may place 60 orders a minute in bursts of 20; a partner key
  limit is tried out in shadow mode from the admin (``demo_setup`` loads it).
* at most 12 orders in flight (the process is CPU-bound well before that), 48
  more may queue for 300 ms; the rest get 503 at once.

Environment: ``DEMO_DB`` (SQLite file), ``DEMO_CACHE_DIR`` (the shared file
cache), ``DEMO_DOWNSTREAM_URL`` (where the downstreams are served), ``REDIS_URL``
(limits, fleet and cache in Redis, with local fallback for limits).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-" + "x" * 40)
DEBUG = os.environ.get("DEMO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "demo_project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"
LOGIN_URL = "admin:login"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "resilience_django",
    "demo_project.orders",
]

MIDDLEWARE = [
    "resilience_django.middleware.ResilienceMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

REDIS_URL = os.environ.get("REDIS_URL")

# The chaos knobs, the breaker fleet snapshots and the admin's live-reload
# version all live in the "default" cache, so it must be one every worker
# shares: a directory on disk (uvicorn --workers N on one machine), or Redis
# when REDIS_URL is set (workers on several machines).  The per-process
# LocMemCache would give each worker its own knobs and its own dashboard.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "resilience-demo",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ.get("DEMO_CACHE_DIR", str(BASE_DIR / ".cache")),
        }
    }

# Where the order service finds its downstreams: the demo serves them itself.
DOWNSTREAM_URL = os.environ.get("DEMO_DOWNSTREAM_URL", "http://127.0.0.1:8000/downstream")

# Only the demo's own machine may claim to forward for someone else: that is
# how demo_traffic plays several clients (X-Forwarded-For from 127.0.0.1).
# Behind a real proxy, name the proxy's network here, never a client's.
LOCAL = ["127.0.0.1/32", "::1/128"]
SCOPE = "distributed" if REDIS_URL else "local"

RESILIENCE: dict[str, object] = {
    "BACKEND": "redis" if REDIS_URL else "local",
    "TRUSTED_PROXIES": LOCAL,
    "DEADLINE": {
        "DEFAULT": "10s",
        "ROUTES": {"/api/orders": "800ms"},
    },
    "LIMITS": [
        {
            "name": "orders-per-client",
            "path": "/api/orders",
            "methods": ["POST"],
            "key": "ip",
            "rate": "60/m",
            "burst": 20,
            "algorithm": "token_bucket",
            "scope": SCOPE,
        },
    ],
    "SHEDDING": [
        {
            "name": "orders",
            "path": "/api/orders",
            "max_concurrent": 12,
            "queue": 48,
            "max_wait": "300ms",
        },
    ],
    "BREAKERS": {
        # Optional dependency: trip early, probe again soon; open in every
        # worker together so the fleet stops calling it at once.
        "pricing": {
            "failure_threshold": 5,
            "open_for": "5s",
            "half_open_calls": 3,
            "close_ratio": 0.66,
            "window": "30s",
            "error_rate": 0.5,
            "min_calls": 10,
            "shared": True,
        },
        # Required dependency: a few failures in a row are enough to stop waiting on it.
        "inventory": {
            "failure_threshold": 3,
            "open_for": "5s",
            "half_open_calls": 2,
            "close_ratio": 1.0,
            "window": "30s",
            "error_rate": 0.5,
            "min_calls": 10,
        },
        # Flaky by nature and retried (every attempt counts): judge it on its error
        # rate over the window, not on a streak, or a 40 % error rate trips it at once.
        "risk": {
            "failure_threshold": 12,
            "open_for": "5s",
            "half_open_calls": 3,
            "close_ratio": 0.66,
            "window": "30s",
            "error_rate": 0.6,
            "min_calls": 20,
        },
    },
    "METRICS": {"ENABLED": True, "ALLOWED_NETWORKS": LOCAL, "ALLOW_STAFF": True},
}
if REDIS_URL:
    RESILIENCE["REDIS"] = {"URL": REDIS_URL}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"resilience_django": {"handlers": ["console"], "level": "WARNING"}},
}
