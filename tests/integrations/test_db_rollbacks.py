"""statement_timeout after rollbacks of every kind, judged with Django's documented API only."""

from __future__ import annotations

import pytest
from django.db import transaction

from resilience_django.deadline import Deadline, _current
from tests.pg import fetch_one


def _under(seconds: float, conn: object, sql: str) -> object:
    token = _current.set(Deadline(seconds))
    try:
        return fetch_one(conn, sql)
    finally:
        _current.reset(token)


@pytest.mark.postgres
def test_postgres_timeout_undone_by_a_savepoint_rollback_is_sent_again(pg: object) -> None:
    with transaction.atomic(using="pg"):
        token = None
        try:
            with pytest.raises(RuntimeError), transaction.atomic(using="pg"):
                token = _current.set(Deadline(5.0))  # after the SAVEPOINT went out
                fetch_one(pg, "SELECT 1")  # so this deadline's SET goes out inside the savepoint
                raise RuntimeError("savepoint rolled back")
            # The rollback put the default back; the same deadline must send its value again.
            assert fetch_one(pg, "SHOW statement_timeout") != ("0",)
        finally:
            if token is not None:
                _current.reset(token)


@pytest.mark.postgres
def test_postgres_timeout_rolled_back_just_before_the_next_transaction_is_sent_again(
    pg: object,
) -> None:
    _under(0.2, pg, "SELECT 1")
    token = _current.set(Deadline(5.0))
    try:
        with pytest.raises(RuntimeError), transaction.atomic(using="pg"):
            fetch_one(pg, "SELECT 1")
            raise RuntimeError("rolled back")
        with transaction.atomic(using="pg"):  # no query between the two transactions
            assert fetch_one(pg, "SELECT pg_sleep(0.4), 1")[1] == 1  # type: ignore[index]
    finally:
        _current.reset(token)


@pytest.mark.postgres
def test_postgres_timeout_under_manual_transactions_follows_commit_and_rollback(
    pg: object,
) -> None:
    _under(0.2, pg, "SELECT 1")
    token = _current.set(Deadline(5.0))
    pg.set_autocommit(False)  # type: ignore[attr-defined]
    try:
        fetch_one(pg, "SELECT 1")
        pg.rollback()  # type: ignore[attr-defined]
        assert fetch_one(pg, "SELECT pg_sleep(0.4), 1")[1] == 1  # type: ignore[index]
        pg.commit()  # type: ignore[attr-defined]
        assert fetch_one(pg, "SHOW statement_timeout") not in {("0",), ("200ms",)}
        pg.rollback()  # type: ignore[attr-defined]
    finally:
        _current.reset(token)
        pg.set_autocommit(True)  # type: ignore[attr-defined]
    assert fetch_one(pg, "SHOW statement_timeout") == ("0",)


@pytest.mark.postgres
def test_postgres_default_restored_in_a_rolled_back_transaction_is_restored_again(
    pg: object,
) -> None:
    _under(0.2, pg, "SELECT 1")
    with pytest.raises(RuntimeError), transaction.atomic(using="pg"):
        fetch_one(pg, "SELECT 1")  # outside any deadline: the default, sent in the transaction
        raise RuntimeError("rolled back")
    assert fetch_one(pg, "SHOW statement_timeout") == ("0",)
