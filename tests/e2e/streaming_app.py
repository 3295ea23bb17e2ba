"""Streamed bodies and long sync views, for the end-to-end tests of bulkheads and deadlines.

``/stream/<kind>/``, ``/cut/<kind>/`` and ``/events/<kind>/`` stream ``n``
chunks of 10 bytes, one every ``step`` seconds, from a sync generator
(``sync``), an async generator (``async``) or a ``FileResponse`` (``file``: a
file that takes ``step`` per read; it has a length, so the response has a
``Content-Length``).  Each test's settings give the three prefixes their own
budgets, shedding rules and exemptions.

``/work/`` is a sync view that works for ``s`` seconds in small steps and
records how many of its bodies run at once; ``/work-stats/`` reports that,
and ``?reset=1`` starts a new count.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator

from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import include, path

CHUNK = b"0123456789"


class SlowFile(io.BytesIO):
    """A file of ``n`` chunks whose every read takes ``step`` seconds."""

    def __init__(self, n: int, step: float) -> None:
        super().__init__(CHUNK * n)
        self.step = step

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(self.step)
        return super().read(len(CHUNK))


def _sync_chunks(n: int, step: float) -> Iterator[bytes]:
    for _ in range(n):
        time.sleep(step)
        yield CHUNK


async def _async_chunks(n: int, step: float) -> AsyncIterator[bytes]:
    for _ in range(n):
        await asyncio.sleep(step)
        yield CHUNK


def _shape(request: HttpRequest) -> tuple[int, float]:
    return int(request.GET.get("n", "20")), float(request.GET.get("step", "0.1"))


def sync_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_sync_chunks(*_shape(request)))


def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_async_chunks(*_shape(request)))


def file_stream(request: HttpRequest) -> FileResponse:
    return FileResponse(SlowFile(*_shape(request)))


_lock = threading.Lock()
_running = 0
_most = 0
_bodies = 0


def work(request: HttpRequest) -> HttpResponse:
    """Works ``s`` seconds in 20 ms steps, counting how many of these run at once."""
    global _running, _most, _bodies
    with _lock:
        _running += 1
        _bodies += 1
        _most = max(_most, _running)
    try:
        end = time.monotonic() + float(request.GET.get("s", "2"))
        while time.monotonic() < end:
            time.sleep(0.02)
    finally:
        with _lock:
            _running -= 1
    return HttpResponse("worked")


def work_stats(request: HttpRequest) -> JsonResponse:
    global _most, _bodies
    with _lock:
        stats = {"running": _running, "most": _most, "bodies": _bodies}
        if request.GET.get("reset"):
            _most = _running
            _bodies = 0
    return JsonResponse({**stats, "threads": threading.active_count()})


streams = [
    path("sync/", sync_stream),
    path("async/", async_stream),
    path("file/", file_stream),
]

urlpatterns = [
    path("ready/", lambda request: HttpResponse("ok")),
    path("stream/", include(streams)),
    path("cut/", include(streams)),
    path("events/", include(streams)),
    path("work/", work),
    path("work-stats/", work_stats),
    path("resilience/", include("resilience_django.urls")),
]
