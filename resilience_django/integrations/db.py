"""Database queries bounded by the request's deadline.

Every query made inside a request first checks the deadline and raises
``DeadlineExceeded`` instead of starting when the budget is spent: that is
what stops a sync view whose client was already answered 504.  On PostgreSQL
the remaining budget also bounds the query on the server through
``statement_timeout``.

Setting ``statement_timeout`` costs a round trip, so it is sent only when the
value in force on the connection would let the query outlive the deadline by
more than a small tolerance, and reset when a query runs outside any
deadline.  (A ``SET`` inside a transaction that later rolls back is undone by
PostgreSQL; the tracking then errs on the side of a timeout already reset.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from ..deadline import DeadlineExceeded, _current

__all__ = ["deadline_execute_wrapper", "install"]

# Attribute on the connection wrapper: (expiry of the deadline it was set for, ms set)
_STATE_ATTR = "_resilience_statement_timeout"
# Overrun we accept before paying a round trip to tighten the server timeout.
TOLERANCE = 0.050
# PostgreSQL's largest statement_timeout (INT_MAX ms, about 24.8 days); a
# larger value is an error on every query.  Settings hold budgets to a day,
# but a caller's grpc-timeout header may ask for years.
MAX_STATEMENT_TIMEOUT_MS = 2_147_483_647


def deadline_execute_wrapper(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    deadline = _current.get()
    connection: BaseDatabaseWrapper = context["connection"]
    postgres = connection.vendor == "postgresql"
    if deadline is None:
        if postgres and getattr(connection, _STATE_ATTR, None) is not None:
            _raw_execute(context, "SET statement_timeout = DEFAULT")
            setattr(connection, _STATE_ATTR, None)
        return execute(sql, params, many, context)
    left = deadline.remaining()
    if left <= 0:
        raise DeadlineExceeded(
            f"deadline of {deadline.budget:.3f}s for {deadline.route} spent before a query"
        )
    if not postgres:
        return execute(sql, params, many, context)
    now = time.monotonic()
    state = getattr(connection, _STATE_ATTR, None)
    # Re-send when the value in force belongs to another request (it could be
    # too short for this one) or would let this query outlive the deadline.
    if (
        state is None
        or state[0] != deadline.expires_at
        or now + state[1] / 1000 > deadline.expires_at + TOLERANCE
    ):
        millis = min(MAX_STATEMENT_TIMEOUT_MS, max(1, int(left * 1000)))
        _raw_execute(context, f"SET statement_timeout = {millis}")
        setattr(connection, _STATE_ATTR, (deadline.expires_at, millis))
    try:
        return execute(sql, params, many, context)
    except DatabaseError as exc:
        if _is_statement_timeout(exc):
            raise DeadlineExceeded(
                f"query cancelled by the {deadline.budget:.3f}s deadline of {deadline.route}"
            ) from exc
        raise


def _raw_execute(context: dict[str, Any], sql: str) -> None:
    # The DB-API cursor under Django's wrapper: going through the wrapper
    # would run this function again.
    context["cursor"].cursor.execute(sql)


def _is_statement_timeout(exc: BaseException) -> bool:
    cause = exc.__cause__
    # psycopg (3) and psycopg2 both report SQLSTATE 57014 (query_canceled).
    code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    return code == "57014"


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if deadline_execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(deadline_execute_wrapper)


def install() -> None:
    """Wrap every database connection, present and future (called from AppConfig.ready)."""
    connection_created.connect(_on_connection_created, dispatch_uid="resilience_django.db")
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        _on_connection_created(None, conn)
