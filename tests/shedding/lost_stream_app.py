"""A streamed error answer whose request is cancelled before Django sends it, for
``test_lost_stream_e2e.py``.

Django logs every answer of status 400 and up in a thread hop *after* the
middleware returned it (``get_response_async``); a client that goes away during
that hop gets the request's task cancelled there, and Django drops the response
without ever closing it.  ``SlowLogHandler`` holds the first ``/stream/`` answer
in that hop: it creates the file ``$LOST_STREAM_MARKER`` (the test then hangs
up) and waits until Django has given the request up (``request_finished``).

``/stream/`` answers 502 with a streamed body (a view passing an upstream's
error through); ``/state/`` reports the ``stream`` rule's bulkhead.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path

from resilience_django.runtime import get_runtime

MARKER = os.environ.get("LOST_STREAM_MARKER", "")
_holding = threading.Event()  # the first /stream/ answer is in the log hop
_given_up = threading.Event()  # ... and Django has finished its request


class SlowLogHandler(logging.Handler):
    """A log handler that is slow exactly once (a remote log sink having a bad moment)."""

    def emit(self, record: logging.LogRecord) -> None:
        if _holding.is_set() or not MARKER or "/stream/" not in record.getMessage():
            return
        _holding.set()
        with open(MARKER, "w"):
            pass
        _given_up.wait(timeout=30.0)


def _finished(**kwargs: Any) -> None:
    if _holding.is_set():
        _given_up.set()


request_finished.connect(_finished)


async def _chunks() -> AsyncIterator[bytes]:
    yield b"upstream failed\n"


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_chunks(), status=502)


def state(request: HttpRequest) -> JsonResponse:
    shedder = get_runtime().shedder
    assert shedder is not None, "the test configures a SHEDDING rule"
    bulkhead = shedder.bulkhead("stream")
    return JsonResponse({"inflight": bulkhead.inflight, "limit": bulkhead.limit})


urlpatterns = [
    path("ready/", lambda request: HttpResponse("ok")),
    path("stream/", stream),
    path("state/", state),
]
