"""Views that call a slow downstream through a breaker, for the outbound deadline e2e tests.

``tests.e2e.outbound_settings`` serves these URLs, under uvicorn
(``tests.e2e.asgi``) and under gunicorn's sync workers (``tests.e2e.wsgi``).
Each view calls ``?url=`` through the breaker ``downstream`` and answers what
it got; ``/finished/`` counts the calls that have ended (an abandoned sync
view's call ends after its 504 was sent), so a test can wait for their
verdicts instead of sleeping.
"""

from __future__ import annotations

import asyncio
import ssl
import threading

import httpx
import requests
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from resilience_django.breakers.registry import get_breaker
from resilience_django.integrations.httpx import AsyncResilientTransport, ResilientTransport
from resilience_django.integrations.requests import ResilientAdapter

BREAKER = "downstream"
_finished = 0
_lock = threading.Lock()
# Built once: a client or an SSL context per request costs tens of milliseconds
# on a loaded machine, out of a 100 ms budget the call itself must get.
_CLIENT = httpx.Client(transport=ResilientTransport(breaker=BREAKER), timeout=10.0)
_SSL = ssl.create_default_context()
_SESSION = requests.Session()
_SESSION.mount("http://", ResilientAdapter(breaker=BREAKER))


def _done() -> None:
    global _finished
    with _lock:
        _finished += 1


def sync_httpx(request: HttpRequest) -> HttpResponse:
    try:
        return HttpResponse(_CLIENT.get(request.GET["url"]).text)
    finally:
        _done()


def sync_requests(request: HttpRequest) -> HttpResponse:
    try:
        return HttpResponse(_SESSION.get(request.GET["url"], timeout=10.0).text)
    finally:
        _done()


async def async_httpx(request: HttpRequest) -> HttpResponse:
    # A client per request: under WSGI each async view runs in an event loop of its own.
    transport = AsyncResilientTransport(httpx.AsyncHTTPTransport(verify=_SSL), breaker=BREAKER)
    try:
        async with httpx.AsyncClient(transport=transport, timeout=10.0) as client:
            return HttpResponse((await client.get(request.GET["url"])).text)
    finally:
        _done()


async def async_sleep(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(float(request.GET.get("s", "1")))
    return HttpResponse("slept")


def ready(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ready")


def finished(request: HttpRequest) -> JsonResponse:
    with _lock:
        count = _finished
    return JsonResponse({"finished": count, "breaker": get_breaker(BREAKER).state})


urlpatterns = [
    path("ready/", ready),
    path("finished/", finished),
    path("sync-httpx/", sync_httpx),
    path("sync-requests/", sync_requests),
    path("async-httpx/", async_httpx),
    path("async-sleep/", async_sleep),
]
