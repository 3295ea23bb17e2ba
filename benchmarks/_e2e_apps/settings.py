"""Settings for the end-to-end benchmark; everything but the variant is shared.

All variants run the same project: same apps, same URL, the same async
hello-world view, ``DEBUG = False``, no other middleware, so the differences
measured are ours and the peer's alone.
"""

from __future__ import annotations

import os

VARIANT = os.environ.get("BENCH_E2E_VARIANT", "plain")
REDIS_URL = os.environ.get("BENCH_E2E_REDIS_URL", "redis://127.0.0.1:6379/15")

# A rate that never rejects: we time the admit path, as every real request would.
NEVER = "1000000000/s"
PATH = "/hello/"

OURS = "resilience_django.middleware.ResilienceMiddleware"
LOCAL_RULE = {"name": "hello-ip", "path": PATH, "key": "ip", "rate": NEVER}
DEADLINE = {"ROUTES": {PATH: "5s"}}

# What ``django-admin startproject`` generates: a realistic stack to compare against.
STARTPROJECT = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# variant -> (MIDDLEWARE, RESILIENCE, cache backend, view wrapped by django-ratelimit)
VARIANTS: dict[str, tuple[list[str], dict[str, object], str, bool]] = {
    "plain": ([], {}, "locmem", False),
    "ours_local": ([OURS], {"LIMITS": [LOCAL_RULE], "DEADLINE": DEADLINE}, "locmem", False),
    # Same settings; asgi.py adds ResilienceASGIMiddleware in front of Django.
    "ours_local_asgi": ([OURS], {"LIMITS": [LOCAL_RULE], "DEADLINE": DEADLINE}, "locmem", False),
    "ratelimit_locmem": ([], {}, "locmem", True),
    "ours_redis": (
        [OURS],
        {
            "BACKEND": "redis",
            "REDIS": {"CACHE": "default"},
            "LIMITS": [{**LOCAL_RULE, "scope": "distributed"}],
            "DEADLINE": DEADLINE,
        },
        "redis",
        False,
    ),
    "ratelimit_redis": ([], {}, "redis", True),
    # Diagnostics (``bench_e2e.py --variants``): what each part of ours costs.
    "ours_local_noheaders": (
        [OURS],
        {"LIMITS": [LOCAL_RULE], "DEADLINE": DEADLINE, "RATELIMIT_HEADERS": False},
        "locmem",
        False,
    ),
    "ours_limit_only": ([OURS], {"LIMITS": [LOCAL_RULE]}, "locmem", False),
    "ours_deadline_only": ([OURS], {"DEADLINE": DEADLINE}, "locmem", False),
    "ours_empty": ([OURS], {}, "locmem", False),
    "startproject": (STARTPROJECT, {}, "locmem", False),
    "ours_local_startproject": (
        [OURS, *STARTPROJECT],
        {"LIMITS": [LOCAL_RULE], "DEADLINE": DEADLINE},
        "locmem",
        False,
    ),
    "ours_redis_asgi": (
        [OURS],
        {
            "BACKEND": "redis",
            "REDIS": {"CACHE": "default"},
            "LIMITS": [{**LOCAL_RULE, "scope": "distributed"}],
            "DEADLINE": DEADLINE,
        },
        "redis",
        False,
    ),
    # In-process A/B (inproc.py): handlers with and without our middleware in
    # one process; django-ratelimit's view is at /rl/hello/, which no rule matches.
    "inproc": ([], {"LIMITS": [LOCAL_RULE], "DEADLINE": DEADLINE}, "locmem", False),
}

MIDDLEWARE, RESILIENCE, _cache, RATELIMITED = VARIANTS[VARIANT]
if os.environ.get("BENCH_E2E_QUIET"):
    # bench_e2e_instructions.py: no live-reload poll, no fleet publisher.  Their
    # work is per second, not per request, and valgrind's slowdown would charge
    # it to requests many times over.
    RESILIENCE = {**RESILIENCE, "RELOAD_INTERVAL": None, "FLEET": {"ENABLED": False}}
ASGI_FAST_PATH = VARIANT.endswith("_asgi")

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "benchmarks._e2e_apps.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "resilience_django",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_E2E_SQLITE", "/tmp/resilience-bench-e2e.sqlite3"),
    }
}
if _cache == "redis":
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING = {"version": 1, "disable_existing_loggers": False}
