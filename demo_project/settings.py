"""The demo order service: SQLite, local limits, no Redis needed.

With REDIS_URL set, limits are shared through Redis (with local fallback).
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

# Where the order service finds its downstreams: the demo serves them itself.
DOWNSTREAM_URL = os.environ.get("DEMO_DOWNSTREAM_URL", "http://127.0.0.1:8000/downstream")

REDIS_URL = os.environ.get("REDIS_URL")

RESILIENCE: dict[str, object] = {
    "BACKEND": "redis" if REDIS_URL else "local",
    "DEADLINE": {
        "DEFAULT": "10s",
        "ROUTES": {"/api/orders": "800ms", "/downstream/": "2s"},
    },
}
if REDIS_URL:
    RESILIENCE["REDIS"] = {"URL": REDIS_URL}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"resilience_django": {"handlers": ["console"], "level": "WARNING"}},
}
