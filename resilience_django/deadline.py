"""Request deadlines: a budget that starts when the request arrives (docs/deadlines.md).

The current deadline lives in a context variable (it follows the request into tasks and
asgiref's threads); the module is callable, for ``@resilience_django.deadline("500ms")``.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sys
import types
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction

from . import clock as _clock
from .clock import Clock
from .exceptions import ResilienceError
from .loop_alarm import Alarm, alarm_clock
from .units import parse_deadline_budget

__all__ = [
    "Deadline",
    "DeadlineExceeded",
    "check",
    "current",
    "deadline",
    "format_grpc_timeout",
    "parse_grpc_timeout",
    "parse_timeout_ms",
    "remaining",
]

F = TypeVar("F", bound=Callable[..., Any])


class DeadlineExceeded(ResilienceError, TimeoutError):
    """The request's budget is spent; raised instead of starting more work."""


class Deadline:
    """A point in monotonic time by which the request must be answered."""

    __slots__ = (
        "_alarm",
        "_clock",
        "_grace",
        "_loop",
        "budget",
        "by_caller",
        "expires_at",
        "route",
        "started_at",
    )

    def __init__(
        self,
        budget: float,
        started_at: float | None = None,
        route: str = "default",
        clock: Clock | None = None,
    ) -> None:
        # None: the process clock, bound now (set_clock runs between requests).
        self._clock = clock = _clock.source if clock is None else clock
        self.started_at = started_at = clock() if started_at is None else started_at
        self.budget = budget
        self.expires_at = started_at + budget
        self.route = route
        # The caller's own budget (grpc-timeout, X-Timeout-Ms) is the one in force:
        # running out of it says nothing about the route's health.
        self.by_caller = False
        # _alarm, _loop and _grace stay unset until arm() (costing requests nothing).

    def arm(
        self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop, grace: float = 0.0
    ) -> Alarm:
        """Cancel ``task`` ``grace`` seconds after the budget runs out; call on ``loop``.
        The caller closes the alarm when the work ends and asks it, on ``CancelledError``,
        whether it fired; a budget tightened later moves the last ``arm``'s alarm."""
        alarm = alarm_clock(loop).arm(task, loop.time() + self.expires_at - self._clock() + grace)
        self._alarm, self._loop, self._grace = alarm, loop, grace
        return alarm

    def remaining(self) -> float:
        return self.expires_at - self._clock()

    def expired(self) -> bool:
        return self._clock() >= self.expires_at

    def tighten(self, budget: float, route: str | None = None) -> None:
        """Shorten the budget (counted from arrival); a looser budget is ignored."""
        expires_at = self.started_at + budget
        if expires_at >= self.expires_at:
            return
        self.expires_at = expires_at
        self.budget = budget
        self.by_caller = False
        if route is not None:
            self.route = route
        loop: asyncio.AbstractEventLoop | None = getattr(self, "_loop", None)
        if loop is None:
            return
        # From a sync view's worker thread: the alarm is moved on its event loop.
        try:
            in_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            self._reschedule()
        else:
            loop.call_soon_threadsafe(self._reschedule)

    def _reschedule(self) -> None:
        self._alarm.reschedule(self._loop.time() + self.remaining() + self._grace)

    def __repr__(self) -> str:
        return (
            f"<Deadline {self.route} budget={self.budget:.3f}s remaining={self.remaining():.3f}s>"
        )


_current: ContextVar[Deadline | None] = ContextVar("resilience_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the request being handled, or ``None`` outside one."""
    return _current.get()


def remaining() -> float | None:
    """Seconds left in the current request's budget (may be negative), or ``None``."""
    dl = _current.get()
    return None if dl is None else dl.remaining()


def check() -> None:
    """Raise ``DeadlineExceeded`` if the current request's budget is spent."""
    dl = _current.get()
    if dl is not None and dl.expired():
        raise DeadlineExceeded(f"deadline of {dl.budget:.3f}s for {dl.route} exceeded")


# --- incoming headers -------------------------------------------------------

# gRPC: "TimeoutValue: 1*8DIGIT", "TimeoutUnit: H M S m u n"
_GRPC_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])\Z")
_GRPC_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_TIMEOUT_MS = re.compile(r"[0-9]{1,10}\Z")  # not \d: it takes Unicode digits
# HTTP's optional whitespace: str.strip() would also take \xa0, \x85 (latin-1 headers).
_OWS = " \t"


def parse_grpc_timeout(value: str) -> float | None:
    """Seconds from a ``grpc-timeout`` value such as ``"250m"``; ``None`` if malformed."""
    match = _GRPC_TIMEOUT.match(value.strip(_OWS))
    if match is None:
        return None
    return int(match.group(1)) * _GRPC_UNITS[match.group(2)]


def parse_timeout_ms(value: str) -> float | None:
    """Seconds from an ``X-Timeout-Ms`` integer; ``None`` if malformed."""
    value = value.strip(_OWS)
    if _TIMEOUT_MS.match(value) is None:
        return None
    return int(value) / 1000.0


def format_grpc_timeout(seconds: float) -> str:
    """A ``grpc-timeout`` value for a budget: milliseconds, or finer below one.

    >>> format_grpc_timeout(0.25), format_grpc_timeout(0.0005)
    ('250m', '500u')
    """
    seconds = max(seconds, 0.0)
    if seconds < 1e-3:
        return f"{int(seconds * 1e6)}u"
    millis = int(seconds * 1e3)
    if millis < 100_000_000:
        return f"{millis}m"
    return f"{min(int(seconds), 99_999_999)}S"


# --- the view decorator -----------------------------------------------------


def deadline(budget: str | float) -> Callable[[F], F]:
    """Give one view a tighter budget than its route: ``@deadline("500ms")``, counted from
    the request's arrival; it only ever tightens (a shorter route budget wins)."""
    seconds = parse_deadline_budget(budget)  # more than zero, a day at most, as in settings

    def enter(view: Callable[..., Any]) -> tuple[Deadline, Token[Deadline | None] | None]:
        route = getattr(view, "__qualname__", "view")
        dl = _current.get()
        token = None
        if dl is None:
            dl = Deadline(seconds, route=route)
            token = _current.set(dl)
        else:
            dl.tighten(seconds, route=route)
        if dl.expired():
            if token is not None:
                _current.reset(token)
            raise DeadlineExceeded(f"deadline of {seconds:.3f}s spent before the view")
        return dl, token

    def decorate(view: F) -> F:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                dl, token = enter(view)
                try:
                    # An alarm on this loop cancels the request, and this view with it;
                    # without one (no middleware, asyncio.run in a thread) enforce it here.
                    if getattr(dl, "_loop", None) is asyncio.get_running_loop():
                        return await view(*args, **kwargs)
                    timeout = asyncio.timeout(dl.remaining())
                    try:
                        async with timeout:
                            return await view(*args, **kwargs)
                    except TimeoutError as exc:
                        if not timeout.expired():
                            raise  # the view's own, not the budget's
                        raise DeadlineExceeded(f"deadline of {seconds:.3f}s exceeded") from exc
                finally:
                    if token is not None:
                        _current.reset(token)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(view)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            _, token = enter(view)
            try:
                return view(*args, **kwargs)
            finally:
                if token is not None:
                    _current.reset(token)

        return sync_wrapper  # type: ignore[return-value]

    return decorate


class _CallableModule(types.ModuleType):
    """Lets ``resilience_django.deadline("500ms")`` act as the decorator."""

    __call__ = staticmethod(deadline)


sys.modules[__name__].__class__ = _CallableModule
