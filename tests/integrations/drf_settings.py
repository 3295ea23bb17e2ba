"""Settings for a real server with DRF and its token app (``test_drf_e2e.py``)."""

from __future__ import annotations

from tests.e2e.settings import *  # noqa: F403
from tests.e2e.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework", "rest_framework.authtoken"]
ROOT_URLCONF = "tests.integrations.drf_views"
REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "2/min", "uploads": "2/m"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
