"""A view with a known capacity, and a window on its adaptive limit, for the shedding e2e tests.

``/work/`` holds a slot of ``CAPACITY`` (an ``asyncio.Semaphore`` standing for
a pool of database connections or worker threads) for ``SERVICE`` seconds, so
past ``CAPACITY`` in flight its latency grows linearly with the number in
flight: the server's real concurrency capacity is exactly ``CAPACITY``.  The
test declares both in the environment, next to its ``RESILIENCE`` settings;
``tests.e2e.shedding_settings`` serves these URLs.

``/shedding/<rule>/`` reports the rule's bulkhead as the server sees it, so the
test reads the limit the controller settled on rather than guessing it.
"""

from __future__ import annotations

import asyncio
import os

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from resilience_django.runtime import get_runtime

CAPACITY = int(os.environ.get("SHEDDING_TEST_CAPACITY", "10"))
SERVICE = float(os.environ.get("SHEDDING_TEST_SERVICE", "0.05"))
# Created on import, bound to uvicorn's one loop on first use.
_capacity = asyncio.Semaphore(CAPACITY)


async def work(request: HttpRequest) -> HttpResponse:
    async with _capacity:
        await asyncio.sleep(SERVICE)
    return HttpResponse("done")


def bulkhead_state(request: HttpRequest, rule: str) -> JsonResponse:
    shedder = get_runtime().shedder
    assert shedder is not None, "the test configures a SHEDDING rule"
    bulkhead = shedder.bulkhead(rule)
    adaptive = bulkhead._adaptive  # for the failure message: is it stuck in a probe?
    return JsonResponse(
        {
            "limit": bulkhead.limit,
            "inflight": bulkhead.inflight,
            "waiting": bulkhead.waiting,
            "baseline": adaptive.baseline_rtt if adaptive is not None else None,
            "probing": adaptive.probing if adaptive is not None else None,
        }
    )


urlpatterns = [
    path("ready/", lambda request: HttpResponse("ok")),
    path("work/", work),
    path("shedding/<str:rule>/", bulkhead_state),
]
