"""The limiter's own round trip: one prebuilt command out, one bulk string back.

The limiter sends one command shape (EVALSHA) and gets one reply shape (a bulk
string, or an error), thousands of times a second.  redis-py's general path
costs several times what the script does: taking a connection from the pool
polls the socket to prove it idle (three system calls, two ``getpid``) and
updates its bookkeeping, and the reply goes through a buffered general
parser.  So each ``Wire`` keeps a few of its pool's connections to itself and
talks on their sockets directly: on Linux a sync decision is two system
calls, ``sendto`` and ``recvfrom`` (redis-py's ``GET``: nine).  redis-py
still does all the rest: it makes the connections (TLS, AUTH, SELECT,
Sentinel's primary lookup, socket timeouts), and the pool still counts them,
closes them on ``disconnect()`` and caps them at ``max_connections``.

Semantics kept from redis-py: a reply is read whole or the connection is
dropped (so the next call never reads a stale reply); a socket timeout raises
``redis.exceptions.TimeoutError``, a broken or closed socket ``ConnectionError``,
an error reply its redis-py exception (``NoScriptError`` …).  A connection that
sat idle for a while is checked the way the pool checks one before use, so an
idle socket that Redis closed (a restart in a quiet hour) is replaced instead
of failing a request; one in steady use is not, as that check is the cost
being avoided.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import socket
import struct
import sys
import time
import weakref
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis._parsers import BaseParser
from redis.exceptions import ConnectionError, InvalidResponse, NoScriptError, TimeoutError

from ..loop_alarm import alarm_clock

__all__ = ["AsyncWire", "SyncWire", "within"]

# A connection unused for longer than this is checked before use.
IDLE_CHECK = 1.0
_CHUNK = 65536
_CLOSED = "Connection closed by server."
_monotonic = time.monotonic
# Linux bounds a blocking socket's send and recv in the kernel (SO_SNDTIMEO,
# SO_RCVTIMEO); Python's own socket timeout instead polls before every send and
# every recv: two more system calls per round trip.
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
_wires: weakref.WeakSet[SyncWire | AsyncWire] = weakref.WeakSet()
T = TypeVar("T")


def _parse(data: bytes) -> bytes | None:
    """The bulk string ``data`` holds, or ``None`` while it is incomplete.

    Raises the redis-py exception of an error reply.
    """
    end = data.find(b"\r\n")
    if end <= 0:
        return None
    kind = data[0]
    if kind == 36:  # b"$"
        size = int(data[1:end])
        if size < 0:  # a nil reply is complete as it stands: fail now, not at the timeout
            raise InvalidResponse(f"Unexpected reply to the limiter's script: {data[:40]!r}")
        stop = end + 2 + size
        if len(data) < stop + 2:
            return None
        if len(data) != stop + 2:
            raise InvalidResponse(f"Unexpected reply to the limiter's script: {data[:40]!r}")
        return data[end + 2 : stop]
    if kind == 45:  # b"-"
        raise BaseParser.parse_error(data[1:end].decode("utf-8", "replace"))  # type: ignore[no-untyped-call]
    raise InvalidResponse(f"Unexpected reply to the limiter's script: {data[:40]!r}")


class SyncWire:
    """Round trips on a sync pool's connections, each used by one thread at a time."""

    __slots__ = ("__weakref__", "_free", "_keep", "_pool")

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        # (connection, last used); list.pop/append are atomic, so threads
        # share it without a lock.
        self._free: list[tuple[Any, float]] = []
        self._keep = _keep_for(pool)
        _wires.add(self)

    def _put(self, conn: Any, used: float) -> None:
        # Kept for the next decision, or given back to the pool beyond _keep
        # (see _keep_for).  The length check races harmlessly: at worst a
        # connection or two more or fewer stay kept.
        if len(self._free) < self._keep:
            self._free.append((conn, used))
        else:
            self._pool.release(conn)

    def call(self, command: bytes) -> bytes:
        """Send ``command``; return its bulk-string reply's bytes."""
        free = self._free
        try:
            conn, used = free.pop()
        except IndexError:
            conn, used = self._pool.get_connection(), _monotonic()
        try:
            sock = conn._sock
            if sock is None:
                conn.connect()
                sock = conn._sock
            elif _monotonic() - used > IDLE_CHECK and _stale(conn):
                conn.disconnect()
                conn.connect()
                sock = conn._sock
            # redis-py leaves (and its idle check puts back) Python's timeout mode.
            timeout = sock.gettimeout()
            if timeout and _KERNEL_TIMEOUTS and type(sock) is socket.socket:
                _kernel_timeouts(sock, timeout)
            sock.sendall(command)
            data = sock.recv(_CHUNK)
            while (payload := _parse(data)) is None:
                chunk = sock.recv(_CHUNK)
                if not chunk:
                    raise ConnectionError(_CLOSED)
                data += chunk
        except NoScriptError:
            self._put(conn, _monotonic())
            raise
        except BaseException as exc:
            # Whatever broke, never hand back a half-read connection.
            conn.disconnect()
            self._put(conn, 0.0)
            # socket.timeout, or EAGAIN from a kernel timeout on a blocking socket
            if isinstance(exc, builtins.TimeoutError | BlockingIOError):
                raise TimeoutError("Timeout reading from socket") from exc
            if isinstance(exc, OSError):
                raise ConnectionError(f"Error while talking to Redis: {exc}") from exc
            raise
        self._put(conn, _monotonic())
        return payload

    def clear(self) -> None:
        """Forget the connections (after fork: they belong to the parent)."""
        self._free = []


def _keep_for(pool: Any) -> int:
    """How many connections a wire keeps between decisions.

    A kept connection stays checked out of the pool, so a wire that kept all
    it ever used would, after one burst of ``max_connections`` concurrent
    decisions, leave nothing for the NOSCRIPT reload and the health probe,
    which go through the pool: they would fail while Redis is healthy and trip
    the fallback.  Two connections stay the pool's; at most 32 are kept (a
    burst beyond that takes and gives back pool connections, redis-py's cost).
    """
    return max(0, min(32, int(getattr(pool, "max_connections", 64)) - 2))


def _kernel_timeouts(sock: socket.socket, timeout: float) -> None:
    """Make ``sock`` blocking, its timeout kept by the kernel: the same bound, fewer syscalls."""
    seconds = int(timeout)
    timeval = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.settimeout(None)


def _stale(conn: Any) -> bool:
    try:
        return bool(conn.can_read())
    except Exception:
        return True


class AsyncWire:
    """Round trips on a ``redis.asyncio`` pool's connections, on that pool's loop."""

    __slots__ = ("__weakref__", "_free", "_keep", "pool")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._free: list[tuple[Any, float]] = []
        self._keep = _keep_for(pool)
        _wires.add(self)

    async def _put(self, conn: Any, used: float) -> None:
        if len(self._free) < self._keep:
            self._free.append((conn, used))
        else:
            await self.pool.release(conn)

    async def call(self, command: bytes) -> bytes:
        """Send ``command``; return its bulk-string reply's bytes.

        Unbounded here: the caller wraps it in ``asyncio.timeout``; a cancelled
        call drops its connection.
        """
        free = self._free
        try:
            conn, used = free.pop()
        except IndexError:
            conn, used = await self.pool.get_connection(), _monotonic()
        try:
            writer = conn._writer
            if writer is None:
                await conn.connect()
                writer = conn._writer
            elif _monotonic() - used > IDLE_CHECK and await _astale(conn):
                await conn.disconnect(nowait=True)
                await conn.connect()
                writer = conn._writer
            reader = conn._reader
            # No drain(): one small command per connection in flight cannot
            # pile up in the transport's buffer, and the caller's timeout
            # drops the connection if Redis stops reading.
            writer.write(command)
            data = await reader.read(_CHUNK)
            while (payload := _parse(data)) is None:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    raise ConnectionError(_CLOSED)
                data += chunk
        except NoScriptError:
            await self._put(conn, _monotonic())
            raise
        except BaseException as exc:
            await conn.disconnect(nowait=True)
            await self._put(conn, 0.0)
            if isinstance(exc, OSError):
                raise ConnectionError(f"Error while talking to Redis: {exc}") from exc
            raise
        await self._put(conn, _monotonic())
        return payload

    def clear(self) -> None:
        self._free = []


async def within(aw: Awaitable[T], seconds: float | None) -> T:
    """``await aw``, or ``TimeoutError`` after ``seconds``: ``asyncio.timeout`` for one call.

    The same semantics (the task is cancelled at the deadline, the cancellation
    turned into ``TimeoutError`` and taken back; a cancellation from elsewhere
    passes through), on the loop's alarm clock (``loop_alarm.py``, the one the
    request deadlines use) instead of a ``Timeout`` context manager, which
    costs several microseconds per decision.
    """
    if seconds is None:
        return await aw
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)
    if task is None:  # as asyncio.timeout says
        if asyncio.iscoroutine(aw):
            aw.close()
        raise RuntimeError("Timeout should be used inside a task")
    alarm = alarm_clock(loop).arm(task, loop.time() + seconds)
    try:
        return await aw
    except asyncio.CancelledError as exc:
        if alarm.fired_for(task):
            raise builtins.TimeoutError from exc
        raise
    finally:
        alarm.close(task)


async def _astale(conn: Any) -> bool:
    try:
        return bool(await conn.can_read_destructive())
    except Exception:
        return True


def _after_fork_in_child() -> None:
    # The parent's sockets are not ours to talk on; the pool reconnects.
    for wire in list(_wires):
        wire.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
