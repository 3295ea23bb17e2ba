"""``@deadline`` tells async views by asgiref's ``iscoroutinefunction``: not the asyncio
one, deprecated in Python 3.14 (a warnings-as-errors suite failed on importing a view)."""

from __future__ import annotations

import asyncio
import inspect
import warnings
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from resilience_django.deadline import deadline


async def async_view(request: Any) -> str:
    return "async"


def marked_view(request: Any) -> Any:
    return async_view(request)


markcoroutinefunction(marked_view)


def test_decorating_calls_no_deprecated_asyncio_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    def deprecated(func: Any) -> bool:  # what Python 3.14 does
        warnings.warn("asyncio.iscoroutinefunction is deprecated", DeprecationWarning, 2)
        return inspect.iscoroutinefunction(func)

    monkeypatch.setattr(asyncio, "iscoroutinefunction", deprecated)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrapped = [deadline("1s")(view) for view in (async_view, marked_view)]
    assert all(iscoroutinefunction(view) for view in wrapped)
    assert [asyncio.run(view(None)) for view in wrapped] == ["async", "async"]
