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

# On the connection wrapper, the value in force: a _State.
_STATE_ATTR = "_resilience_statement_timeout"
TOLERANCE = 0.050  # overrun accepted before paying a round trip to tighten the server timeout
# PostgreSQL's largest (INT_MAX ms): more is an error on every query, and a
# caller's grpc-timeout header may ask for years.
MAX_STATEMENT_TIMEOUT_MS = 2_147_483_647
_IDLE = 0  # psycopg's and psycopg2's TransactionStatus.IDLE: no transaction open


def deadline_execute_wrapper(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    deadline = _current.get()
    connection: BaseDatabaseWrapper = context["connection"]
    if deadline is not None and (left := deadline.remaining()) <= 0:
        raise DeadlineExceeded(
            f"deadline of {deadline.budget:.3f}s for {deadline.route} spent before a query"
        )
    if connection.vendor != "postgresql":
        return execute(sql, params, many, context)
    cursor = context["cursor"]
    state = getattr(connection, _STATE_ATTR, None)
    if deadline is None:
        if state is not None and (state[0] is not None or not _stands(state, cursor)):
            # executemany's executor: the SET goes as one empty parameter set.
            execute("SET statement_timeout = DEFAULT", [()] if many else None, many, context)
            state = _record(connection, None, 0)
    # Re-send when the value in force belongs to another request (it could be too short for
    # this one), would let this query outlive the deadline, or was undone by a rollback.
    elif (
        state is None
        or state[0] != deadline.expires_at
        or time.monotonic() + state[1] / 1000 > deadline.expires_at + TOLERANCE
        or not _stands(state, cursor)
    ):
        millis = min(MAX_STATEMENT_TIMEOUT_MS, max(1, int(left * 1000)))
        execute(f"SET statement_timeout = {millis}", [()] if many else None, many, context)
        state = _record(connection, deadline.expires_at, millis)
    try:
        return execute(sql, params, many, context)
    except DatabaseError as exc:
        # psycopg (3) and psycopg2 both report SQLSTATE 57014 (query_canceled).
        cause = exc.__cause__
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if deadline is not None and code == "57014":
            raise DeadlineExceeded(
                f"query cancelled by the {deadline.budget:.3f}s deadline of {deadline.route}"
            ) from exc
        raise
    finally:
        # Django's savepoint rollbacks come through here: one may undo a pending SET.
        pending = state[2] if state is not None else None
        if pending is not None and isinstance(sql, str) and sql.lstrip()[:8].upper() == "ROLLBACK":
            pending.undone = True


class _Uncommitted:
    """A ``SET`` sent in a transaction: PostgreSQL undoes it if the transaction, or a savepoint
    around it, rolls back, and the value from before is in force again."""

    __slots__ = ("committed", "undone")

    def __init__(self) -> None:
        self.committed = self.undone = False

    def __call__(self) -> None:  # an on_commit hook: Django drops it if the SET rolls back
        self.committed = True


# (expiry of the deadline it was set for, or None: the server's default; ms set; the _Uncommitted
# of a SET sent in a transaction), or None for the server's default.
_State = tuple[float | None, int, _Uncommitted | None] | None
_UNKNOWN: _State = (float("-inf"), 0, None)  # no deadline's expiry: the next query sends its value


def _record(connection: BaseDatabaseWrapper, expires_at: float | None, millis: int) -> _State:
    """Remember the value just sent (``expires_at`` ``None``: the default), and whether a
    rollback may undo it."""
    if connection.get_autocommit():
        state: _State = None if expires_at is None else (expires_at, millis, None)
    else:
        pending = _Uncommitted()
        state = (expires_at, millis, pending)
        if connection.in_atomic_block:  # this wrapper's, not the thread's connections[alias]
            connection.on_commit(pending)
    setattr(connection, _STATE_ATTR, state)
    return state


def _stands(state: _State, cursor: Any) -> bool:
    """Whether the value ``state`` records is still in force (no rollback undid it)."""
    pending = state[2] if state is not None else None
    if pending is None or pending.committed:
        return True
    # Uncommitted, it stands while its transaction is open (idle: it ended, and its hook did not
    # say committed) and no savepoint rolled back (docs/deadlines.md, "Downstream").
    return not pending.undone and cursor.connection.info.transaction_status != _IDLE


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    # A new session has the server's default; one from Django's pool, what its last user set.
    pooled = connection.settings_dict.get("OPTIONS", {}).get("pool")
    setattr(connection, _STATE_ATTR, _UNKNOWN if pooled else None)
    # First, outermost: a user's execute_wrapper() open since before the connect pops its own.
    if deadline_execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, deadline_execute_wrapper)


def install() -> None:
    """Wrap every database connection, present and future (called from AppConfig.ready)."""
    connection_created.connect(_on_connection_created, dispatch_uid="resilience_django.db")
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        _on_connection_created(None, conn)
