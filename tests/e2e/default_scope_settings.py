"""The e2e settings, serving ``default_scope_app`` with the pid-stamping middleware outermost."""

from __future__ import annotations

from tests.e2e.settings import *  # noqa: F403
from tests.e2e.settings import MIDDLEWARE

ROOT_URLCONF = "tests.e2e.default_scope_app"
MIDDLEWARE = ["tests.e2e.default_scope_app.PidMiddleware", *MIDDLEWARE]
