"""Edges of ``ResilienceASGIMiddleware`` enforcing the deadline alone, driven with ASGI messages."""

from __future__ import annotations

import asyncio
from typing import Any

from django.test import override_settings

from resilience_django.asgi import ResilienceASGIMiddleware
from resilience_django.deadline import remaining
from tests.utils.asgi import call_asgi, http_scope

BUDGET = {"DEADLINE": {"DEFAULT": "100ms", "EXEMPT_STREAMS": ["/events"]}}


async def _call(app: Any, path: str) -> list[dict[str, Any]]:
    return await call_asgi(ResilienceASGIMiddleware(app, enforce_deadline=True), http_scope(path))


async def _stream_reporting_the_budget(scope: Any, receive: Any, send: Any) -> None:
    """A body (server-sent events, say) that outlives the budget and says what it sees."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.sleep(0.25)  # past the 100 ms budget
    await send({"type": "http.response.body", "body": repr(remaining()).encode()})


@override_settings(MIDDLEWARE=[], RESILIENCE=BUDGET)
async def test_an_exempt_body_sees_no_deadline_behind_the_wrapper_alone() -> None:
    # docs/deadlines.md: an exempt route's body "sees no deadline (deadline.remaining()
    # is None in it)", so its queries and outbound calls are not refused as too late.
    sent = await _call(_stream_reporting_the_budget, "/events/1")
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert bodies == [b"None"]


# A roomy budget: on a loaded machine 100 ms can pass before the app starts, and the
# wrapper's 504 would cancel it before it looks.
@override_settings(
    MIDDLEWARE=[], RESILIENCE={"DEADLINE": {"DEFAULT": "30s", "EXEMPT_STREAMS": ["/events"]}}
)
async def test_a_body_that_is_not_exempt_still_runs_under_its_deadline() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        seen.append(remaining())

    seen: list[float | None] = []
    await _call(app, "/other")
    assert len(seen) == 1 and seen[0] is not None and seen[0] < 30
