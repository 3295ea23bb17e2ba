"""Databases the fleet store tests share between processes: a SQLite file, or a fresh
PostgreSQL database on the real server (created for one test and dropped after it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.pg import PG_SETTINGS, require_postgres


def sqlite_database(tmp: Path) -> dict[str, Any]:
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp / "shared.sqlite3")}


def _admin_connection() -> Any:
    import psycopg

    return psycopg.connect(
        host=PG_SETTINGS["HOST"], port=PG_SETTINGS["PORT"], user=PG_SETTINGS["USER"],
        password=PG_SETTINGS["PASSWORD"] or None, dbname=PG_SETTINGS["NAME"], autocommit=True,
    )  # fmt: skip


@contextmanager
def postgres_database() -> Iterator[dict[str, Any]]:
    """Settings for a database of its own on the test PostgreSQL, dropped afterwards."""
    require_postgres()
    name = f"resilience_fleet_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**PG_SETTINGS, "NAME": name}
    finally:
        with _admin_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def set_connections_allowed(database: dict[str, Any], allowed: bool) -> None:
    """Refuse (and cut) or allow again every connection to ``database``: a database down."""
    name = database["NAME"]
    with _admin_connection() as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
