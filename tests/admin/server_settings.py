"""Settings for the servers the admin end-to-end and browser tests start."""

from __future__ import annotations

import json
import os

from tests.e2e.settings import *  # noqa: F403

ROOT_URLCONF = "tests.admin.urls"
# The default hasher is slow on purpose; the tests log in a few times.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A whole DATABASES entry (JSON), e.g. a PostgreSQL database the servers share.
if os.environ.get("RESILIENCE_TEST_DATABASE"):
    DATABASES = {"default": json.loads(os.environ["RESILIENCE_TEST_DATABASE"])}
