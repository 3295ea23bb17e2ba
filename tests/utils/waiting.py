"""Waiting for a condition with a deadline, never for a fixed time (CI machines are loaded)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def holds_within(condition: Callable[[], Any], timeout: float = 10.0, every: float = 0.01) -> bool:
    """Whether ``condition()`` becomes truthy within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "condition",
    every: float = 0.05,
) -> float:
    """Wait until ``condition()`` is truthy: the seconds it took, or AssertionError
    after ``timeout``."""
    start = time.monotonic()
    if not holds_within(condition, timeout, every):
        raise AssertionError(f"{what}: not true after {timeout}s")
    return time.monotonic() - start


def succeeds(action: Callable[[], Any]) -> bool:
    """Whether ``action()`` returns without raising (a condition for ``wait_for``: a
    client reconnects on its next call once a restarted server is back)."""
    try:
        action()
    except Exception:
        return False
    return True
