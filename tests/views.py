"""Views the tests and the end-to-end server exercise."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator

import httpx
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from resilience_django import deadline as deadline_api
from resilience_django import limit
from resilience_django.deadline import DeadlineExceeded
from resilience_django.integrations.httpx import AsyncResilientTransport, ResilientTransport


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello")


async def async_hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello")


def budget(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"remaining": deadline_api.remaining()})


async def async_budget(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"remaining": deadline_api.remaining()})


async def async_slow(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(float(request.GET.get("s", "2")))
    return HttpResponse("finished")


def sync_slow(request: HttpRequest) -> HttpResponse:
    """Sleeps, then queries: the query is where an abandoned thread stops."""
    marker = request.GET.get("marker")
    time.sleep(float(request.GET.get("s", "2")))
    outcome = "query-ran"
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DeadlineExceeded:
        outcome = "stopped-at-query"
        raise
    finally:
        if marker:
            # Leaves a trace for the end-to-end test: was the abandoned view stopped?
            # Written aside and renamed, so the test never reads a created, empty file.
            with open(marker + ".tmp", "w") as fh:
                fh.write(outcome)
            os.replace(marker + ".tmp", marker)
    return HttpResponse("finished")


def sync_query(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        row = cursor.fetchone()
    return HttpResponse(str(row[0] if row else None))


def pg_sleep(request: HttpRequest) -> HttpResponse:
    from tests.pg import handler

    seconds = float(request.GET.get("s", "2"))
    with handler["pg"].cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])
    return HttpResponse("slept")


def outbound(request: HttpRequest) -> JsonResponse:
    with httpx.Client(transport=ResilientTransport()) as client:
        answer = client.get(request.GET["url"])
    return JsonResponse({"status": answer.status_code, "body": answer.text})


async def async_outbound(request: HttpRequest) -> JsonResponse:
    async with httpx.AsyncClient(transport=AsyncResilientTransport()) as client:
        answer = await client.get(request.GET["url"])
    return JsonResponse({"status": answer.status_code, "body": answer.text})


@deadline_api("100ms")
async def decorated_async_slow(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(1)
    return HttpResponse("finished")


@limit("1000/m", key="ip", group="view-own")
async def limited_hello(request: HttpRequest) -> HttpResponse:
    """A view with its own ``@limit``, for paths that also have a middleware rule."""
    return HttpResponse("Hello")


def ran_marker(request: HttpRequest) -> HttpResponse:
    """Records that it ran, so a test can prove a spent budget never reached the view."""
    path = request.GET.get("marker")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"pid": os.getpid()}) + "\n")
    return HttpResponse("ran")


def failing(request: HttpRequest) -> HttpResponse:
    """Answers the status it is asked for; records that it ran when given a marker."""
    marker = request.GET.get("marker")
    if marker:
        with open(marker, "a") as fh:
            fh.write("ran\n")
    return HttpResponse("status", status=int(request.GET.get("status", "500")))


async def async_failing(request: HttpRequest) -> HttpResponse:
    return HttpResponse("status", status=int(request.GET.get("status", "500")))


def dependency_open(request: HttpRequest) -> HttpResponse:
    """Calls a dependency through a breaker that an operator forced open."""
    import resilience_django

    with resilience_django.breaker(request.GET.get("name", "forced-dependency")):
        return HttpResponse("called")


def _chunks(request: HttpRequest) -> tuple[int, float]:
    return int(request.GET.get("n", "3")), float(request.GET.get("step", "0"))


def stream_sync(request: HttpRequest) -> StreamingHttpResponse:
    """Streams ``n`` chunks, one every ``step`` seconds, from a sync generator
    (after ``wait`` seconds of work before answering)."""
    n, step = _chunks(request)
    time.sleep(float(request.GET.get("wait", "0")))

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            time.sleep(step)
            yield b"%d," % i

    return StreamingHttpResponse(chunks())


async def stream_async(request: HttpRequest) -> StreamingHttpResponse:
    """Streams ``n`` chunks, one every ``step`` seconds, from an async generator."""
    n, step = _chunks(request)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(n):
            await asyncio.sleep(step)
            yield b"%d," % i

    return StreamingHttpResponse(chunks())


def sync_sleep(request: HttpRequest) -> HttpResponse:
    """Sleeps ``s`` seconds and makes no query: nothing stops it at its deadline."""
    time.sleep(float(request.GET.get("s", "0.5")))
    return HttpResponse("slept")
