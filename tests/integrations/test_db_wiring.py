"""How the query wrapper sits on a connection: beside a user's own execute wrappers, and on a
connection another thread shares, judged against real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.utils import ConnectionHandler

from resilience_django.deadline import Deadline, DeadlineExceeded, _current
from resilience_django.integrations.db import deadline_execute_wrapper
from tests.pg import PG_SETTINGS, fetch_one, handler, require_postgres


@pytest.mark.postgres
def test_a_users_execute_wrapper_that_saw_the_connection_open_is_removed_on_exit(pg: Any) -> None:
    pg.close()
    seen: list[str] = []

    def mine(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        seen.append(sql)
        return execute(sql, *args)

    # Django's documented API; the first query inside it opens the connection.
    with pg.execute_wrapper(mine):
        fetch_one(pg, "SELECT 1")
    fetch_one(pg, "SELECT 2")
    assert seen == ["SELECT 1"]  # the user's wrapper is gone, not ours
    assert pg.execute_wrappers == [deadline_execute_wrapper]


@pytest.mark.postgres
def test_timeout_set_on_a_shared_connection_from_another_thread_is_resent_after_rollback(
    pg: Any,
) -> None:
    deadline = Deadline(30.0)
    failed: list[BaseException] = []

    def query_in_a_worker() -> None:
        token = _current.set(deadline)
        try:
            fetch_one(pg, "SELECT 1")  # its SET goes out inside the savepoint below
        except BaseException as exc:
            failed.append(exc)
        finally:
            _current.reset(token)
            handler["pg"].close()  # the worker's own wrapper, if anything opened it

    token = None
    try:
        with transaction.atomic(using="pg"):
            with pytest.raises(RuntimeError), transaction.atomic(using="pg"):
                token = _current.set(deadline)  # after the SAVEPOINT went out
                pg.inc_thread_sharing()
                try:
                    worker = threading.Thread(target=query_in_a_worker)
                    worker.start()
                    worker.join(timeout=60)
                finally:
                    pg.dec_thread_sharing()
                raise RuntimeError("savepoint rolled back")
            assert not failed
            # The rollback undid the worker's SET: the same deadline must send it again.
            assert fetch_one(pg, "SHOW statement_timeout") != ("0",)
    finally:
        if token is not None:
            _current.reset(token)


@pytest.mark.postgres
def test_a_pooled_connection_does_not_keep_a_short_timeout_for_the_next_request(
    django_db_blocker: pytest.FixtureDef[object],
) -> None:
    require_postgres()
    pool = {"min_size": 1, "max_size": 1}
    settings = {**PG_SETTINGS, "OPTIONS": {"pool": pool}}
    pooled = ConnectionHandler({"default": settings})["default"]
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        try:
            token = _current.set(Deadline(0.2))
            try:
                fetch_one(pooled, "SELECT 1")
            finally:
                _current.reset(token)
            pooled.close()  # the request ends: the session goes back to the pool, 200 ms set
            # The next request (no deadline) gets the same session: it must not be cancelled.
            assert fetch_one(pooled, "SELECT pg_sleep(0.4), 1") == ("", 1)
            assert fetch_one(pooled, "SHOW statement_timeout") == ("0",)
        finally:
            pooled.close()
            pooled.close_pool()


@pytest.mark.postgres
async def test_sync_to_async_queries_in_an_async_view_follow_its_deadline(pg: Any) -> None:
    def query(sql: str) -> object:
        return fetch_one(handler["pg"], sql)  # the worker thread's own connection, kept open

    token = _current.set(Deadline(0.3))
    try:
        with pytest.raises(DeadlineExceeded, match="cancelled"):
            await sync_to_async(query)("SELECT pg_sleep(3)")
    finally:
        _current.reset(token)
    try:  # the next request, no deadline, same thread and connection: the default is back
        assert await sync_to_async(query)("SHOW statement_timeout") == ("0",)
    finally:
        await sync_to_async(lambda: handler["pg"].close())()
