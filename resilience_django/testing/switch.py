"""``disable_limits``: no 429 and no shedding 503 in tests that are not about them."""

from __future__ import annotations

import functools
import unittest
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction

from ..switch import set_limits_enabled

__all__ = ["disable_limits"]

_T = TypeVar("_T")


class disable_limits:  # used like override_settings, so named like it
    """Turn rate limits and load shedding off: settings rules, admin rules and ``@limit``.

    A context manager, and a decorator for test functions (sync or async) and
    ``TestCase`` classes, like ``override_settings``; it composes with it (an
    ``override_settings(RESILIENCE=...)`` inside still has no limits).
    Deadlines and breakers keep working.

    >>> from resilience_django.testing import disable_limits
    >>> with disable_limits():
    ...     pass  # requests here are never limited or shed
    """

    def __enter__(self) -> None:
        set_limits_enabled(False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        set_limits_enabled(True)

    def __call__(self, target: _T) -> _T:
        if isinstance(target, type):
            return self._decorate_class(target)  # type: ignore[return-value]
        if not callable(target):
            raise TypeError(f"disable_limits cannot decorate {target!r}")
        func: Callable[..., Any] = target
        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_inner(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return async_inner  # type: ignore[return-value]

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return inner  # type: ignore[return-value]

    @staticmethod
    def _decorate_class(cls: type[Any]) -> type[Any]:
        if not issubclass(cls, unittest.TestCase):
            raise TypeError("disable_limits decorates TestCase classes only")
        original = cls.setUp

        # Per test, like override_settings on a method: each test turns it on
        # and a cleanup turns it off, even when setUp or the test fails.
        def setUp(self: unittest.TestCase) -> None:
            set_limits_enabled(False)
            self.addCleanup(set_limits_enabled, True)
            original(self)

        cls.setUp = setUp  # type: ignore[method-assign]
        return cls
