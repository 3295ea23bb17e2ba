"""``disable_limits``: no 429 and no shedding 503 in tests that are not about them."""

from __future__ import annotations

from django.test.utils import TestContextDecorator

from ..switch import set_limits_enabled

__all__ = ["disable_limits"]


class disable_limits(TestContextDecorator):  # built like override_settings, so named like it
    """Turn rate limits and load shedding off: settings rules, admin rules and ``@limit``.

    A context manager, and a decorator for test functions (sync or async) and ``TestCase``
    classes (per test: each test turns it on, a cleanup off, even when ``setUp`` fails),
    like ``override_settings``, with which it composes.  Deadlines and breakers keep working.
    """

    def __init__(self) -> None:
        # No attr_name or kwarg_name: a bare @disable_limits must be a TypeError, not an
        # object pytest silently does not collect.
        super().__init__()

    def enable(self) -> None:
        set_limits_enabled(False)

    def disable(self) -> None:
        set_limits_enabled(True)
