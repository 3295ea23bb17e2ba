"""The compiled state the adapters consult on every request.

Built once from the parsed settings (and, later, the admin's rules) and
swapped whole when they change, so a request reads one immutable object and
never takes a lock or queries the database to find its rules.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from .conf import ResilienceSettings, get_settings, on_reload
from .deadline_policy import DeadlinePolicy

__all__ = ["Early", "Runtime", "get_runtime", "reset_runtime"]


@dataclass(frozen=True, slots=True)
class Early:
    """A response given without running the view (429, 503)."""

    response: HttpResponseBase


class Runtime:
    __slots__ = ("deadlines", "settings")

    def __init__(self, settings: ResilienceSettings) -> None:
        self.settings = settings
        self.deadlines = DeadlinePolicy(settings.deadline)

    def admit_sync(self, request: HttpRequest) -> Early | None:
        return None

    async def admit_async(self, request: HttpRequest) -> Early | None:
        return None

    async def admit_scope(self, scope: Any, shim: Any) -> Early | None:
        """Decide, from the ASGI scope alone, the rules that need no Django request."""
        return None

    def admit_view_sync(self, request: HttpRequest) -> Early | None:
        return None

    async def admit_view_async(self, request: HttpRequest) -> Early | None:
        return None

    def finish(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return response

    def release(self, request: HttpRequest) -> None:
        """The view was abandoned (deadline): free what admission took."""

    def exception_response(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        return None


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    runtime = _runtime
    if runtime is None:
        runtime = _build()
    return runtime


def _build() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(get_settings())
        return _runtime


def reset_runtime() -> None:
    global _runtime
    with _lock:
        _runtime = None


def _on_settings_reload() -> None:
    reset_runtime()


on_reload(_on_settings_reload)
