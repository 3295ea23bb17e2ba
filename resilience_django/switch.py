"""The process-wide switch that turns rate limits and load shedding off (for tests); read
when engines and shedders are built, so the hot path pays nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["limits_enabled", "on_change", "set_limits_enabled"]

_lock = threading.Lock()
# A depth, not a flag: nested disable_limits() blocks each undo only their own.
_disabled = 0
_callbacks: list[Callable[[], None]] = []


def limits_enabled() -> bool:
    """False while some ``disable_limits()`` is in effect."""
    return _disabled == 0


def set_limits_enabled(enabled: bool) -> None:
    """``False`` turns limits and shedding off (nestable); ``True`` undoes one ``False``."""
    global _disabled
    with _lock:
        before = _disabled
        _disabled = before - 1 if enabled else before + 1
        if _disabled < 0:
            _disabled = 0
            raise RuntimeError("set_limits_enabled(True) without a matching False")
        changed = (before == 0) != (_disabled == 0)
    if changed:
        for callback in list(_callbacks):
            callback()


def on_change(callback: Callable[[], None]) -> None:
    """Call ``callback()`` whenever limits turn on or off."""
    _callbacks.append(callback)
