"""Queries check the deadline first; on PostgreSQL the budget bounds the query server-side."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client, override_settings

from resilience_django.clock import ManualClock
from resilience_django.deadline import Deadline, DeadlineExceeded, _current
from tests.pg import handler, require_postgres


@pytest.fixture
def pg(django_db_blocker: pytest.FixtureDef[object]) -> Iterator[object]:
    require_postgres()
    conn = handler["pg"]
    # A direct connection, not Django's test database: let pytest-django allow it.
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield conn
        conn.close()


def _run(conn: object, sql: str, params: list[object] | None = None) -> object:
    with conn.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute(sql, params)
        return cursor.fetchone()


@pytest.mark.django_db
def test_query_after_the_deadline_is_refused_before_it_runs() -> None:
    clock = ManualClock()
    token = _current.set(Deadline(0.1, clock=clock))
    try:
        assert _run(connection, "SELECT 1") == (1,)
        clock.advance(0.2)
        with pytest.raises(DeadlineExceeded):
            _run(connection, "SELECT 1")
    finally:
        _current.reset(token)
    assert _run(connection, "SELECT 1") == (1,)


@pytest.mark.postgres
def test_postgres_query_is_cancelled_server_side_at_the_deadline(pg: object) -> None:
    token = _current.set(Deadline(0.3))
    start = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded, match="cancelled"):
            _run(pg, "SELECT pg_sleep(3)")
    finally:
        _current.reset(token)
    assert time.monotonic() - start < 0.6


@pytest.mark.postgres
def test_postgres_timeout_is_reset_for_queries_outside_a_deadline(pg: object) -> None:
    token = _current.set(Deadline(5.0))
    try:
        timeout = _run(pg, "SHOW statement_timeout")
        assert timeout != ("0",)
    finally:
        _current.reset(token)
    assert _run(pg, "SHOW statement_timeout") == ("0",)


@pytest.mark.postgres
def test_postgres_timeout_from_an_earlier_short_deadline_does_not_leak(pg: object) -> None:
    token = _current.set(Deadline(0.2))
    try:
        _run(pg, "SELECT 1")
    finally:
        _current.reset(token)
    token = _current.set(Deadline(5.0))
    try:
        # Would be cancelled by a stale 200 ms statement_timeout.
        assert _run(pg, "SELECT pg_sleep(0.4)") is not None
    finally:
        _current.reset(token)


@pytest.mark.postgres
def test_postgres_query_within_budget_runs_normally(pg: object) -> None:
    token = _current.set(Deadline(2.0))
    try:
        assert _run(pg, "SELECT pg_sleep(0.05), 1")[1] == 1  # type: ignore[index]
    finally:
        _current.reset(token)


@pytest.mark.postgres
@override_settings(RESILIENCE={"DEADLINE": {"ROUTES": {"/pg-sleep/": "300ms"}}})
def test_view_with_a_slow_postgres_query_gets_504_not_500(pg: object, client: Client) -> None:
    start = time.monotonic()
    response = client.get("/pg-sleep/?s=3")
    assert response.status_code == 504
    assert time.monotonic() - start < 0.8


@pytest.mark.postgres
def test_postgres_query_under_a_month_long_deadline_runs_with_the_largest_timeout(
    pg: object,
) -> None:
    # 30 days is 2_592_000_000 ms, past PostgreSQL's largest statement_timeout:
    # sent as is, SET failed and every query of the request was a 500.
    token = _current.set(Deadline(30 * 86400.0))
    try:
        assert _run(pg, "SELECT 1") == (1,)
        assert _run(pg, "SHOW statement_timeout") == ("2147483647ms",)
    finally:
        _current.reset(token)
    assert _run(pg, "SHOW statement_timeout") == ("0",)


@pytest.mark.postgres
@override_settings(RESILIENCE={"DEADLINE": {"DEFAULT": None}})
def test_view_with_a_caller_budget_of_a_month_queries_postgres_normally(
    pg: object, client: Client
) -> None:
    response = client.get("/pg-sleep/?s=0", headers={"X-Timeout-Ms": str(30 * 86_400_000)})
    assert response.status_code == 200


@pytest.mark.postgres
def test_postgres_timeout_undone_by_a_rollback_is_sent_again(
    pg: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import transaction

    # transaction.atomic(using="pg") finds the connection among Django's own:
    # point it at this one.
    monkeypatch.setattr(transaction, "get_connection", lambda using=None: handler[using])
    # An earlier request leaves a short statement_timeout in force.
    token = _current.set(Deadline(0.2))
    try:
        _run(pg, "SELECT 1")
    finally:
        _current.reset(token)
    token = _current.set(Deadline(5.0))
    try:
        with pytest.raises(RuntimeError), transaction.atomic(using="pg"):
            # This request's own SET goes out in the transaction, and the
            # rollback undoes it: the 200 ms is back in force.
            _run(pg, "SELECT 1")
            raise RuntimeError("rolled back")
        # Was cancelled by the stale 200 ms: a 504 with 4 s left.
        assert _run(pg, "SELECT pg_sleep(0.4), 1")[1] == 1  # type: ignore[index]
        with transaction.atomic(using="pg"):
            _run(pg, "SELECT 1")
        # Committed, the value stays in force: still bounded by this deadline.
        assert _run(pg, "SHOW statement_timeout") != ("200ms",)
        assert _run(pg, "SHOW statement_timeout") != ("0",)
    finally:
        _current.reset(token)


@pytest.mark.postgres
def test_postgres_timeout_is_sent_again_on_a_new_connection(pg: object) -> None:
    token = _current.set(Deadline(5.0))
    try:
        _run(pg, "SELECT 1")
        pg.close()  # type: ignore[attr-defined]
        # Same wrapper, new session: it had run with no server-side bound.
        assert _run(pg, "SHOW statement_timeout") != ("0",)
    finally:
        _current.reset(token)
