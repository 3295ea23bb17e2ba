"""The hello-world async view, bare and behind django-ratelimit."""

from __future__ import annotations

from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponse


async def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, world!", content_type="text/plain")


def ratelimited_hello() -> object:
    """``@ratelimit(key="ip", rate=...)`` on the async view.

    django-ratelimit 4.1's decorator is not async-aware: its wrapper is a plain
    function that returns the view's coroutine, which Django would take for a
    sync view.  Marking the wrapper as a coroutine function is the cheapest
    correct way to use it on an async view: its cache calls run inline on the
    event loop (no thread hop), which favours the peer.
    """
    from django_ratelimit.decorators import ratelimit

    from .settings import NEVER

    wrapped = ratelimit(key="ip", rate=NEVER)(hello)
    return markcoroutinefunction(wrapped)
