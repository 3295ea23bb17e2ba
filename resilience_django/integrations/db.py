"""Database queries bounded by the request's deadline, on PostgreSQL also on the server through
``statement_timeout`` (docs/deadlines.md, "Downstream")."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from ..deadline import DeadlineExceeded, _current

__all__ = ["deadline_execute_wrapper", "install"]

# On the connection wrapper: what is in force, (expiry of the deadline it was
# set for or None for the server's default, ms set, the _Uncommitted of a SET
# sent in a transaction, else None), or None for the server's default.
_STATE_ATTR = "_resilience_statement_timeout"
TOLERANCE = 0.050  # overrun accepted before paying a round trip to tighten the server timeout
# PostgreSQL's largest (INT_MAX ms): more is an error on every query, and a
# caller's grpc-timeout header may ask for years.
MAX_STATEMENT_TIMEOUT_MS = 2_147_483_647


def deadline_execute_wrapper(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    deadline = _current.get()
    connection: BaseDatabaseWrapper = context["connection"]
    postgres = connection.vendor == "postgresql"
    if deadline is None:
        state = getattr(connection, _STATE_ATTR, None) if postgres else None
        if state is not None and (state[0] is not None or not _stands(state)):
            # Under Django's wrapper, which would run us again.
            context["cursor"].cursor.execute("SET statement_timeout = DEFAULT")
            _record(connection, None, 0)
        return execute(sql, params, many, context)
    left = deadline.remaining()
    if left <= 0:
        raise DeadlineExceeded(
            f"deadline of {deadline.budget:.3f}s for {deadline.route} spent before a query"
        )
    if not postgres:
        return execute(sql, params, many, context)
    state = getattr(connection, _STATE_ATTR, None)
    # Re-send when the value in force belongs to another request (it could be
    # too short for this one), would let this query outlive the deadline, or
    # may have been undone by a rollback.
    if (
        state is None
        or state[0] != deadline.expires_at
        or time.monotonic() + state[1] / 1000 > deadline.expires_at + TOLERANCE
        or not _stands(state)
    ):
        millis = min(MAX_STATEMENT_TIMEOUT_MS, max(1, int(left * 1000)))
        context["cursor"].cursor.execute(f"SET statement_timeout = {millis}")
        _record(connection, deadline.expires_at, millis)
    try:
        return execute(sql, params, many, context)
    except DatabaseError as exc:
        # psycopg (3) and psycopg2 both report SQLSTATE 57014 (query_canceled).
        cause = exc.__cause__
        if (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) == "57014":
            raise DeadlineExceeded(
                f"query cancelled by the {deadline.budget:.3f}s deadline of {deadline.route}"
            ) from exc
        raise


class _Uncommitted:
    """A ``SET`` sent in a transaction: PostgreSQL undoes it if the transaction, or the
    savepoint it was sent in, rolls back, and the value from before is in force again."""

    __slots__ = ("committed", "connection")

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.committed = False

    def __call__(self) -> None:  # an on_commit hook
        self.committed = True

    def holds(self) -> bool:
        # Django drops the on_commit hooks of what rolls back, transaction or
        # savepoint: still pending, the SET stands.  Under manual transaction
        # management (no hooks) it is never trusted, and sent again.
        return self.committed or any(self in hook for hook in self.connection.run_on_commit)


def _record(connection: BaseDatabaseWrapper, expires_at: float | None, millis: int) -> None:
    """Remember the value just sent (``expires_at`` ``None``: the default), and whether a
    rollback may undo it."""
    if connection.get_autocommit():
        setattr(connection, _STATE_ATTR, None if expires_at is None else (expires_at, millis, None))
        return
    pending = _Uncommitted(connection)
    if connection.in_atomic_block:
        connection.on_commit(pending)
    setattr(connection, _STATE_ATTR, (expires_at, millis, pending))


def _stands(state: tuple[float | None, int, _Uncommitted | None]) -> bool:
    """Whether the value ``state`` records is still in force (no rollback undid it)."""
    return state[2] is None or state[2].holds()


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    # A new session (the wrapper reconnects after close()) has the server's default.
    setattr(connection, _STATE_ATTR, None)
    if deadline_execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(deadline_execute_wrapper)


def install() -> None:
    """Wrap every database connection, present and future (called from AppConfig.ready)."""
    connection_created.connect(_on_connection_created, dispatch_uid="resilience_django.db")
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        _on_connection_created(None, conn)
