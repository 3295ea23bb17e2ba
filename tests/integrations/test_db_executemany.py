"""executemany under a deadline: the statement_timeout SET goes out as a plain statement."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience_django.deadline import Deadline, _current
from tests.pg import handler, require_postgres


@pytest.fixture
def pg(django_db_blocker: pytest.FixtureDef[object]) -> Iterator[object]:
    require_postgres()
    conn = handler["pg"]
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield conn
        conn.close()


@pytest.mark.postgres
def test_executemany_under_a_deadline_sends_its_timeout_and_runs(pg: object) -> None:
    with pg.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute("CREATE TEMP TABLE resilience_many (n int)")
        token = _current.set(Deadline(5.0))
        try:
            # The SET before it was sent as an executemany with no parameters: a TypeError.
            cursor.executemany("INSERT INTO resilience_many VALUES (%s)", [(1,), (2,)])
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() != ("0",)
        finally:
            _current.reset(token)
        cursor.execute("SELECT count(*) FROM resilience_many")
        assert cursor.fetchone() == (2,)
        # Outside any deadline the reset to the default goes out before an executemany too.
        cursor.executemany("INSERT INTO resilience_many VALUES (%s)", [(3,)])
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("0",)
