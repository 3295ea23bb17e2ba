"""The PostgreSQL connection the database-integration tests share (tests/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction

from tests.pg import handler, require_postgres


@pytest.fixture
def pg(
    django_db_blocker: pytest.FixtureDef[object], monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    """The real PostgreSQL as alias ``pg`` (a module may define its own ``pg`` instead)."""
    require_postgres()
    conn = handler["pg"]
    # transaction.atomic(using="pg") finds the connection among Django's own: point it here.
    monkeypatch.setattr(transaction, "get_connection", lambda using=None: handler[using])
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield conn
        conn.close()
