"""Views and URLs for ``test_default_scope.py``: a settings rule and ``@limit`` without a scope.

Every response says which worker process answered (``X-Pid``), so the test
can tell that both workers served the burst.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import path

from resilience_django import limit


class PidMiddleware:
    """Outermost: stamps every answer, our 429s included, with the worker's pid."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Pid"] = str(os.getpid())
        return response


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@limit("20/m", key="ip", group="decorated-sync")
def decorated_sync(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@limit("20/m", key="ip", group="decorated-async")
async def decorated_async(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("ready/", plain),
    path("plain/", plain),
    path("decorated-sync/", decorated_sync),
    path("decorated-async/", decorated_async),
]
