"""A connection to the real PostgreSQL, outside Django's test-database machinery.

The deadline tests need only ``pg_sleep`` and ``SHOW``, no tables, so they
talk to the ``test`` database directly rather than creating a test database.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from django.db.utils import ConnectionHandler

from tests.services import POSTGRES_DSN, missing, port_open

_parsed = urlparse(POSTGRES_DSN)
PG_SETTINGS = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": (_parsed.path or "/test").lstrip("/"),
    "USER": _parsed.username or os.environ.get("USER", "postgres"),
    "PASSWORD": _parsed.password or "",
    "HOST": _parsed.hostname or "127.0.0.1",
    "PORT": str(_parsed.port or 5432),
}

handler = ConnectionHandler({"default": PG_SETTINGS, "pg": PG_SETTINGS})


def require_postgres() -> None:
    if not port_open(PG_SETTINGS["HOST"], int(PG_SETTINGS["PORT"])):
        missing(f"no PostgreSQL reachable at {PG_SETTINGS['HOST']}:{PG_SETTINGS['PORT']}")


def fetch_one(conn: object, sql: str) -> object:
    """The first row ``sql`` gives on ``conn``."""
    with conn.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(sql)
        return cursor.fetchone()
