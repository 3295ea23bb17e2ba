"""Settings for the real servers the end-to-end tests start.

The test passes its ``RESILIENCE`` value as JSON in ``RESILIENCE_TEST_CONFIG``
and a SQLite file in ``RESILIENCE_TEST_SQLITE``, so each server runs exactly
the configuration its test declares.
"""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403

RESILIENCE = json.loads(os.environ.get("RESILIENCE_TEST_CONFIG", "{}"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("RESILIENCE_TEST_SQLITE", "/tmp/resilience-e2e.sqlite3"),
    }
}
if os.environ.get("RESILIENCE_TEST_CACHE_DIR"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ["RESILIENCE_TEST_CACHE_DIR"],
        }
    }
